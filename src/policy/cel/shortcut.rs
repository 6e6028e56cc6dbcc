//! Rule shortcuts: the part of a rule Warrant can decide itself, compiled at load and tried
//! before the engine evaluates the rule.
//!
//! Most rules are built from a few shapes: `&&`, `||` and `!` over string tests on a request's
//! fields — `source.spiffe_id == "spiffe://…"`, `request.method in ["GET", "HEAD"]`,
//! `request.path.startsWith("/api/")`, `request.headers["x-env"] == "prod"`,
//! `"x-debug" in request.headers`. A shortcut is such a rule compiled to a small tree that
//! reads the fields straight from the request's [`RequestVariables`] (found by position at
//! load, not by name per request) and compares strings, without the engine's name resolution,
//! overload dispatch or intermediate values. Anything else in the rule (another function, a
//! macro, arithmetic, a literal of another type, `data`) is opaque to it.
//!
//! A shortcut answers `Some(matched)` only when the engine would evaluate the rule to exactly
//! `matched`, and `None` otherwise — then the engine evaluates the rule as usual, errors
//! included. The reasoning, node by node (CEL language definition, "Logical Operators",
//! "Equality", "Lists and maps"; `cel` 0.15's interpreter):
//! - A string test answers only when its field resolves to a string (a header map's entry, to
//!   a string present in it): CEL compares strings by code point, which is what Rust's `==`,
//!   `starts_with`, `ends_with` and `contains` do on UTF-8 text. A field that is not a string,
//!   a missing entry, anything unexpected: `None`.
//! - `"k" in m` answers only when the field is a map: it asks the map, as the engine does.
//! - `&&` is `false` when any operand is `false`, even if another is an error or not a bool;
//!   `true` when every operand is `true`. `||` likewise with `true`. Otherwise `None`.
//! - `!` negates an answer; `true` and `false` answer themselves.
//!
//! A test evaluates thousands of expressions over these shapes, mixed with opaque ones, both
//! ways on many requests, and requires the shortcut's every answer to be the engine's.

use std::sync::Arc;

use cel::common::ast::{Expr, IdedExpr, LiteralValue, operators};
use cel::common::types::CelString;
use cel::common::value::{BuiltinRef, Val};

use super::activation::{RequestVariables, Slot, TextOf};

/// A rule, or the part of it Warrant decides itself (see the module documentation).
#[derive(Debug)]
pub(super) enum Shortcut {
    /// `true` or `false`.
    Literal(bool),
    /// `a && b && …`: `false` if any is, `true` if all are.
    And(Box<[Shortcut]>),
    /// `a || b || …`: `true` if any is, `false` if all are.
    Or(Box<[Shortcut]>),
    /// `!a`.
    Not(Box<Shortcut>),
    /// A test of the string a field (or a map field's entry) holds.
    Test {
        /// Where the string is read from.
        operand: Operand,
        /// What it must satisfy.
        test: StringTest,
    },
    /// `"key" in map`, where a field or variable holds the map.
    HasKey {
        /// The map (`request.headers`).
        map: Map,
        /// The key.
        key: Key,
    },
    /// Anything else: the engine decides.
    Opaque,
}

/// Where a tested string is read from.
#[derive(Debug)]
pub(super) enum Operand {
    /// A string field borrowed from the request (`request.path`, `source.spiffe_id`): read
    /// straight from it, nothing built ([`Build::Text`]).
    Text(TextOf),
    /// A field (`workload.error`), or a variable, whose value is built.
    Value(Slot),
    /// An entry, by a literal key, of a map: `request.headers["x-env"]`,
    /// `request.query["expand"]`, `context.service`, `source.certificate.serial`.
    Entry {
        /// The map.
        map: Map,
        /// The key.
        key: Key,
    },
}

/// The map an entry is looked up in.
#[derive(Debug)]
pub(super) enum Map {
    /// `request.headers`, read from the request's headers (those the policy observes).
    Headers,
    /// `request.query`, read from the query string (the first occurrence winning).
    Query,
    /// `context`, read from the request's `context_extensions`.
    Context,
    /// Any other map, as built for the engine.
    Built(Slot),
}

/// A literal map key, as text and as a CEL string.
#[derive(Debug)]
pub(super) struct Key {
    text: Arc<str>,
    cel: CelString<'static>,
}

impl Key {
    fn new(text: Arc<str>) -> Self {
        Key {
            cel: CelString::from(text.to_string()),
            text,
        }
    }
}

/// A test on a string.
#[derive(Debug)]
pub(super) enum StringTest {
    /// `== "literal"`.
    Equals(Arc<str>),
    /// `!= "literal"`.
    NotEquals(Arc<str>),
    /// `in ["a", "b", …]`.
    In(Box<[Arc<str>]>),
    /// `.startsWith("literal")`.
    StartsWith(Arc<str>),
    /// `.endsWith("literal")`.
    EndsWith(Arc<str>),
    /// `.contains("literal")`.
    Contains(Arc<str>),
}

impl StringTest {
    fn holds(&self, text: &str) -> bool {
        match self {
            StringTest::Equals(literal) => text == &**literal,
            StringTest::NotEquals(literal) => text != &**literal,
            StringTest::In(literals) => literals.iter().any(|literal| text == &**literal),
            StringTest::StartsWith(literal) => text.starts_with(&**literal),
            StringTest::EndsWith(literal) => text.ends_with(&**literal),
            StringTest::Contains(literal) => text.contains(&**literal),
        }
    }
}

impl Shortcut {
    /// The shortcut of a rule's (final, rewritten) syntax tree; `None` when no part of it is
    /// Warrant's to decide.
    pub(super) fn compile(expr: &IdedExpr) -> Option<Shortcut> {
        match Shortcut::of(expr) {
            Shortcut::Opaque => None,
            shortcut => Some(shortcut),
        }
    }

    fn of(expr: &IdedExpr) -> Shortcut {
        match &expr.expr {
            Expr::Literal(LiteralValue::Boolean(value)) => Shortcut::Literal(*value.inner()),
            Expr::Call(call) if call.target.is_none() => {
                match (call.func_name.as_str(), &call.args[..]) {
                    (operators::LOGICAL_AND, [_, _]) => {
                        Shortcut::chain(expr, operators::LOGICAL_AND)
                    }
                    (operators::LOGICAL_OR, [_, _]) => Shortcut::chain(expr, operators::LOGICAL_OR),
                    (operators::LOGICAL_NOT, [operand]) => match Shortcut::of(operand) {
                        Shortcut::Opaque => Shortcut::Opaque,
                        inner => Shortcut::Not(Box::new(inner)),
                    },
                    (operators::EQUALS, [left, right]) => {
                        Shortcut::comparison(left, right, StringTest::Equals)
                    }
                    (operators::NOT_EQUALS, [left, right]) => {
                        Shortcut::comparison(left, right, StringTest::NotEquals)
                    }
                    (operators::IN, [element, container]) => {
                        Shortcut::membership(element, container)
                    }
                    _ => Shortcut::Opaque,
                }
            }
            Expr::Call(call) => {
                let (Some(target), [argument]) = (&call.target, &call.args[..]) else {
                    return Shortcut::Opaque;
                };
                let (Some(operand), Some(literal)) =
                    (Operand::of(target), string_literal(argument))
                else {
                    return Shortcut::Opaque;
                };
                let test = match call.func_name.as_str() {
                    "startsWith" => StringTest::StartsWith(literal),
                    "endsWith" => StringTest::EndsWith(literal),
                    "contains" => StringTest::Contains(literal),
                    _ => return Shortcut::Opaque,
                };
                Shortcut::Test { operand, test }
            }
            _ => Shortcut::Opaque,
        }
    }

    /// A chain of `operator` (`&&` or `||`), flattened; opaque when every operand is.
    fn chain(expr: &IdedExpr, operator: &str) -> Shortcut {
        let mut operands = Vec::new();
        flatten(expr, operator, &mut operands);
        let parts: Vec<Shortcut> = operands.into_iter().map(Shortcut::of).collect();
        if parts.iter().all(|part| matches!(part, Shortcut::Opaque)) {
            return Shortcut::Opaque;
        }
        if operator == operators::LOGICAL_AND {
            Shortcut::And(parts.into())
        } else {
            Shortcut::Or(parts.into())
        }
    }

    /// `operand == "literal"` (either way round), or `!=`.
    fn comparison(left: &IdedExpr, right: &IdedExpr, test: fn(Arc<str>) -> StringTest) -> Shortcut {
        let (operand, literal) = match (string_literal(left), string_literal(right)) {
            (None, Some(literal)) => (left, literal),
            (Some(literal), None) => (right, literal),
            _ => return Shortcut::Opaque,
        };
        match Operand::of(operand) {
            Some(operand) => Shortcut::Test {
                operand,
                test: test(literal),
            },
            None => Shortcut::Opaque,
        }
    }

    /// `operand in ["a", …]` or `"key" in map_field`.
    fn membership(element: &IdedExpr, container: &IdedExpr) -> Shortcut {
        if let Expr::List(list) = &container.expr {
            let literals: Option<Vec<Arc<str>>> =
                list.elements.iter().map(string_literal).collect();
            return match (Operand::of(element), literals) {
                (Some(operand), Some(literals)) if list.optional_indices.is_empty() => {
                    Shortcut::Test {
                        operand,
                        test: StringTest::In(literals.into()),
                    }
                }
                _ => Shortcut::Opaque,
            };
        }
        match (string_literal(element), slot(container)) {
            (Some(key), Some(map)) => Shortcut::HasKey {
                map: Map::of(map),
                key: Key::new(key),
            },
            _ => Shortcut::Opaque,
        }
    }

    /// Whether every part of the rule is Warrant's to decide (nothing opaque) and costs in
    /// proportion to the rule's own literals, not to the request: `==`, `!=`, `in` a list,
    /// `startsWith`, `endsWith` and map lookups, by the shortcut or, when that cannot answer,
    /// by the engine. Not `contains`, which searches the whole value: a request body may be
    /// `limits.max_request_bytes` long.
    pub(super) fn is_bounded(&self) -> bool {
        match self {
            Shortcut::Opaque
            | Shortcut::Test {
                test: StringTest::Contains(_),
                ..
            } => false,
            Shortcut::And(parts) | Shortcut::Or(parts) => parts.iter().all(Shortcut::is_bounded),
            Shortcut::Not(inner) => inner.is_bounded(),
            Shortcut::Literal(_) | Shortcut::Test { .. } | Shortcut::HasKey { .. } => true,
        }
    }

    /// What the engine would evaluate this to in `variables`' request, when Warrant can tell
    /// (see the module documentation); `None` when the engine must evaluate it.
    pub(super) fn decide(&self, variables: &RequestVariables<'_>) -> Option<bool> {
        match self {
            Shortcut::Literal(value) => Some(*value),
            Shortcut::And(parts) => chain(parts, variables, false),
            Shortcut::Or(parts) => chain(parts, variables, true),
            Shortcut::Not(inner) => inner.decide(variables).map(|value| !value),
            Shortcut::Test { operand, test } => match operand {
                Operand::Text(text) => Some(test.holds(variables.text(*text))),
                Operand::Value(slot) => Some(test.holds(text(variables.get(*slot)?)?)),
                Operand::Entry { map, key } => match map {
                    Map::Headers => Some(test.holds(variables.header(&key.text)?)),
                    Map::Query => Some(test.holds(&variables.query(&key.text)?)),
                    Map::Context => Some(test.holds(variables.context(&key.text)?)),
                    Map::Built(map) => {
                        let map = built_map(variables, *map)?;
                        let entry = map.as_indexer()?.get(&key.cel).ok()?;
                        Some(test.holds(text(entry.as_ref())?))
                    }
                },
            },
            Shortcut::HasKey { map, key } => match map {
                Map::Headers => Some(variables.header(&key.text).is_some()),
                Map::Query => Some(variables.query(&key.text).is_some()),
                Map::Context => Some(variables.context(&key.text).is_some()),
                Map::Built(map) => built_map(variables, *map)?
                    .as_container()?
                    .contains(&key.cel)
                    .ok(),
            },
            Shortcut::Opaque => None,
        }
    }
}

/// The map at `map`, when the value built there is one.
fn built_map<'v>(variables: &'v RequestVariables<'_>, map: Slot) -> Option<&'v dyn Val> {
    let map = variables.get(map)?;
    matches!(map.as_builtin(), BuiltinRef::Map(_)).then_some(map)
}

/// A chain of `&&` (`absorbing` is `false`) or `||` (`absorbing` is `true`): `absorbing` as
/// soon as one operand is, the other value when every operand is, else undecided.
fn chain(parts: &[Shortcut], variables: &RequestVariables<'_>, absorbing: bool) -> Option<bool> {
    let mut all = true;
    for part in parts {
        match part.decide(variables) {
            Some(value) if value == absorbing => return Some(absorbing),
            Some(_) => {}
            None => all = false,
        }
    }
    all.then_some(!absorbing)
}

impl Operand {
    /// A per-request value ([`slot`]), an entry of one by a literal key
    /// (`request.headers["x-env"]`), or by a field name when it is a map (`context.service`,
    /// `source.certificate.serial`).
    fn of(expr: &IdedExpr) -> Option<Operand> {
        if let Some(slot) = slot(expr) {
            return Some(slot.text().map_or(Operand::Value(slot), Operand::Text));
        }
        let (map, key) = match &expr.expr {
            Expr::Select(select) if !select.test => (&*select.operand, Arc::from(&*select.field)),
            Expr::Call(call) if call.func_name == operators::INDEX && call.target.is_none() => {
                let [map, key] = &call.args[..] else {
                    return None;
                };
                (map, string_literal(key)?)
            }
            _ => return None,
        };
        Some(Operand::Entry {
            map: Map::of(slot(map)?),
            key: Key::new(key),
        })
    }
}

impl Map {
    /// `request.headers`, `request.query` and `context` are read from the request; any other
    /// map is built.
    fn of(slot: Slot) -> Map {
        if Some(slot) == Slot::field("request", "headers") {
            Map::Headers
        } else if Some(slot) == Slot::field("request", "query") {
            Map::Query
        } else if Some(slot) == Slot::variable("context") {
            Map::Context
        } else {
            Map::Built(slot)
        }
    }
}

/// Where a per-request value is kept, for a variable (`context`) or a field of one with fixed
/// fields (`request.path`, a plain selection, not `has()`).
fn slot(expr: &IdedExpr) -> Option<Slot> {
    match &expr.expr {
        Expr::Ident(variable) => Slot::variable(variable),
        Expr::Select(select) if !select.test => match &select.operand.expr {
            Expr::Ident(variable) => Slot::field(variable, &select.field),
            _ => None,
        },
        _ => None,
    }
}

fn string_literal(expr: &IdedExpr) -> Option<Arc<str>> {
    match &expr.expr {
        Expr::Literal(LiteralValue::String(text)) => Some(Arc::from(text.inner())),
        _ => None,
    }
}

/// The string a value holds, if it is one.
fn text(value: &dyn Val) -> Option<&str> {
    match value.as_builtin() {
        BuiltinRef::String(text) => Some(text.inner()),
        _ => None,
    }
}

/// The operands of a chain of the binary `operator`, left to right, through nested calls of
/// it (the engine treats only its two-operand form as the operator).
fn flatten<'e>(expr: &'e IdedExpr, operator: &str, out: &mut Vec<&'e IdedExpr>) {
    match &expr.expr {
        Expr::Call(call)
            if call.target.is_none() && call.func_name == operator && call.args.len() == 2 =>
        {
            for arg in &call.args {
                flatten(arg, operator, out);
            }
        }
        _ => out.push(expr),
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::time::{Duration, SystemTime};

    use cel::Value;

    use super::super::CelEnv;
    use super::super::environment::HeadersRead;
    use super::*;
    use crate::policy::{Policy, PolicySource};
    use crate::request::{AuthzRequest, HttpRequest, Peer};
    use crate::trust::Identities;

    /// Tests a shortcut decides, tests it leaves to the engine, and ones that can fail.
    const ATOMS: &[&str] = &[
        r#"source.namespace == "shop""#,
        r#""frontend" != source.service_account"#,
        r#"request.method in ["GET", "HEAD"]"#,
        r#"request.path.startsWith("/api/")"#,
        r#"request.path.endsWith("/42")"#,
        r#"request.host.contains("shop")"#,
        r#""x-debug" in request.headers"#,
        r#"request.headers["x-env"] == "prod""#,
        r#"request.query["expand"] == "1""#,
        r#"!(request.method == "GET")"#,
        "true",
        "false",
        r#"source.certificate.serial == """#,
        r#"context.service == "payments""#,
        r#"context.service.startsWith("pay")"#,
        r#"request.headers["x-env"] in ["prod", "dev"]"#,
        r#"request.headers["x-env"] != "dev""#,
        r#""path" in request"#,
        r#"request["path"] == "/other""#,
        r#""service" in context"#,
        r#"request.headers.x_env != "prod""#,
        "source.port == 41000",
        r#"int(request.headers["x-num"]) > 1"#,
        r#"request.headers["x-num"]"#,
        r#"size(request.path) > 3 || [1].exists(request, request == 1)"#,
    ];

    /// Every `op` tree over `atoms` with `n` leaves, each of `&&` and `||`.
    fn trees(atoms: &[&str], n: usize) -> Vec<String> {
        if n == 1 {
            return atoms.iter().map(|a| (*a).to_owned()).collect();
        }
        let mut out = Vec::new();
        for left in 1..n {
            for l in trees(atoms, left) {
                for r in trees(atoms, n - left) {
                    out.push(format!("({l} && {r})"));
                    out.push(format!("({l} || {r})"));
                }
            }
        }
        out
    }

    fn request(
        principal: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> AuthzRequest {
        AuthzRequest {
            source: Peer {
                principal: principal.into(),
                address: "10.0.0.7".into(),
                port: 41000,
                ..Peer::default()
            },
            http: Some(HttpRequest {
                id: "req-1".into(),
                method: method.into(),
                path: path.into(),
                host: "payments.shop".into(),
                headers: headers
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                ..HttpRequest::default()
            }),
            time: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)),
            ..AuthzRequest::default()
        }
    }

    /// Requests that make each atom true, false and (where it can) fail.
    fn requests() -> Vec<AuthzRequest> {
        let frontend = "spiffe://prod.example.org/ns/shop/sa/frontend";
        let with_context = |mut request: AuthzRequest, service: &str| {
            request
                .context_extensions
                .insert("service".to_owned(), service.to_owned());
            request
        };
        vec![
            with_context(
                request(frontend, "GET", "/api/v1/42?expand=1", &[("x-env", "prod")]),
                "payments",
            ),
            request(
                frontend,
                "POST",
                "/other",
                &[("x-debug", "1"), ("x-num", "5")],
            ),
            request(
                "spiffe://prod.example.org/ns/other/sa/batch",
                "HEAD",
                "/api/",
                &[("x-env", "dev"), ("x-num", "abc")],
            ),
            request(
                "spiffe://prod.example.org/custom/path",
                "GET",
                "/42?expand=2",
                &[],
            ),
            request(
                frontend,
                "DELETE",
                "/",
                &[("x-debug", ""), ("x-env", "prod")],
            ),
            // Repeated names (a hand-built request; Envoy's arrive joined): the map keeps the
            // last. Escaped and repeated query parameters: the first wins, decoded.
            request(
                frontend,
                "GET",
                "/api/x?expand=%31&expand=2&a=%ZZ&flag",
                &[("x-env", "dev"), ("x-debug", "1"), ("x-env", "prod")],
            ),
            AuthzRequest {
                http: None,
                ..request(frontend, "GET", "/", &[])
            },
        ]
    }

    fn identities(policy: &Policy, request: &AuthzRequest) -> Identities {
        match policy.trust.establish(request, SystemTime::now()) {
            Ok((identities, Ok(()))) => identities,
            _ => panic!("the test's caller is trusted"),
        }
    }

    #[test]
    fn a_shortcut_answers_only_what_the_engine_would() {
        let trust = PolicySource {
            path: PathBuf::from("policy.yaml"),
            text: "trust:\n  trust_domains: [prod.example.org]\nrules: []\n".to_owned(),
        };
        let policy = Policy::compile(&[trust], &mut |path: &Path, _| {
            Err(std::io::Error::other(format!("{}", path.display())))
        })
        .expect("the trust section compiles");
        let requests = requests();
        let cases: Vec<(Identities, &AuthzRequest)> = requests
            .iter()
            .map(|request| (identities(&policy, request), request))
            .collect();
        let mut expressions = trees(ATOMS, 1);
        expressions.extend(trees(ATOMS, 2));
        let negated: Vec<String> = expressions.iter().map(|e| format!("!({e})")).collect();
        expressions.extend(negated);
        expressions.extend(trees(&ATOMS[..8], 3));
        expressions.extend(trees(&ATOMS[8..16], 3));
        expressions.extend(trees(&ATOMS[16..], 3));

        let mut env = CelEnv::default();
        for atom in ATOMS {
            assert!(env.compile(atom).is_ok(), "{atom} loads");
        }
        let mut some_headers = HeadersRead::Named(Default::default());
        some_headers.insert("x-env");
        let (mut decided, mut undecided, mut failing) = (0, 0, 0);
        for (source, headers) in expressions
            .iter()
            .flat_map(|e| [(e, &HeadersRead::All), (e, &some_headers)])
        {
            let Ok(expression) = env.compile(source) else {
                continue;
            };
            for (identities, request) in &cases {
                let now = SystemTime::now();
                let engine = {
                    let variables = RequestVariables::new(identities, request, now, headers);
                    let activation = env.activation(&variables);
                    Value::resolve(&expression.expr, &activation.scope)
                };
                let variables = RequestVariables::new(identities, request, now, headers);
                let answer = expression
                    .shortcut
                    .as_ref()
                    .and_then(|shortcut| shortcut.decide(&variables));
                match answer {
                    Some(answer) => {
                        decided += 1;
                        assert!(
                            matches!(engine, Ok(Value::Bool(b)) if b == answer),
                            "{source} on {:?}: the shortcut answers {answer}, the engine {engine:?}",
                            request.http
                        );
                    }
                    None => {
                        undecided += 1;
                        if engine.is_err() {
                            failing += 1;
                        }
                    }
                }
                // And the rule decides as the engine evaluates it.
                let activation = env.activation(&variables);
                let decision = env.eval(&expression, &activation);
                match (&engine, decision) {
                    (Ok(Value::Bool(b)), Ok(d)) => assert_eq!(*b, d, "{source}"),
                    (Ok(Value::Bool(_)), Err(e)) => panic!("{source}: {e}"),
                    (_, Ok(d)) => panic!("{source}: decides {d}, the engine gives {engine:?}"),
                    (_, Err(_)) => {}
                }
            }
        }
        assert!(
            decided > 100_000 && undecided > 50_000 && failing > 30_000,
            "{decided} decided, {undecided} left to the engine, {failing} of them failing"
        );
    }
}
