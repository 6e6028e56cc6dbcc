//! `loop_bound`: the macro iterations one evaluation can run, known at load.

use super::*;

/// The loop bound of `source` compiled with `data` bound.
fn bound(data: serde_json::Value, source: &str) -> Option<u64> {
    let mut env = CelEnv::default();
    if let serde_json::Value::Object(data) = data {
        env.bind_data(&data);
    }
    env.compile(source)
        .unwrap_or_else(|e| panic!("{source}: {e}"))
        .loop_bound()
}

#[test]
fn expressions_without_macros_do_not_loop() {
    let none = serde_json::json!({"admins": ["a", "b"]});
    for source in [
        r#"request.path.startsWith("/api") && source.namespace == "shop""#,
        r#"source.spiffe_id in data.admins"#,
        r#"request.path.split("/").size() > 2 && "x-a" in request.headers"#,
        r#"request.body.matches("^[a-z]+$")"#,
    ] {
        assert_eq!(bound(none.clone(), source), Some(0), "{source}");
    }
}

#[test]
fn ranges_known_at_load_have_their_size() {
    let data = serde_json::json!({
        "admins": ["a", "b", "c"],
        "zones": {"eu": 1, "us": 2},
        "nested": {"teams": [["x"], ["y"], ["z"], ["w"]]},
    });
    // One iteration per element, each with its condition and step (no iterations of their
    // own): the bound is the range's size.
    for (source, expected) in [
        (r#"["/a", "/b"].exists(p, request.path.startsWith(p))"#, 2),
        (r#"{"a": 1, "b": 2}.all(k, k != request.path)"#, 2),
        (r#"data.admins.exists(a, a == source.spiffe_id)"#, 3),
        (r#"data["admins"].exists(a, a == source.spiffe_id)"#, 3),
        (r#"data.zones.exists(z, z == request.host)"#, 2),
        (r#"data.nested.teams.exists(t, source.spiffe_id in t)"#, 4),
        // Nested: multiplied.
        (
            r#"data.admins.all(a, data.nested.teams.exists(t, a in t))"#,
            3 * (1 + 4),
        ),
        // Side by side: added.
        (
            r#"data.admins.exists(a, a == source.spiffe_id) || data.zones.exists(z, z == request.host)"#,
            5,
        ),
        // A macro's result ranged over again.
        (
            r#"data.admins.map(a, a + "x").exists(b, b == request.path)"#,
            3 + 3,
        ),
    ] {
        assert_eq!(bound(data.clone(), source), Some(expected), "{source}");
    }
}

#[test]
fn ranges_a_request_fixes_are_unbounded() {
    let data = serde_json::json!({"admins": ["a", "b"]});
    for source in [
        r#"request.headers.exists(h, h.startsWith("x-debug"))"#,
        r#"request.path.split("/").exists(s, s == "admin")"#,
        r#"data.admins.exists(a, request.path.split("/").exists(s, s == a))"#,
        r#"metadata.exists(k, k == "x")"#,
        // A range naming a macro variable is fixed per iteration, not at load.
        r#"[data.admins].exists(l, l.exists(a, a == source.spiffe_id))"#,
        // `data` hidden by a macro variable is not the operator's data.
        r#"[["x"]].exists(data, data.exists(a, a == source.spiffe_id))"#,
    ] {
        assert_eq!(bound(data.clone(), source), None, "{source}");
    }
}

#[test]
fn a_huge_nesting_saturates_instead_of_overflowing() {
    let data = serde_json::json!({"n": (0..1000).collect::<Vec<_>>()});
    let source = (0..8).fold("true".to_owned(), |inner, level| {
        format!("data.n.all(v{level}, {inner})")
    });
    assert_eq!(bound(data, &source), Some(u64::MAX));
}
