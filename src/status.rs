//! The status page of the admin listener: `/status` (JSON) and `/` (the same as a small HTML
//! page). What an operator checks first: the version and uptime, the serving policy's revision
//! and when it was loaded, the last reload error, each rule with its effect, mode and how often
//! it decided (or, for a shadow rule, matched) since start, the audit sinks' queues and drops,
//! and the listeners and their TLS. No secrets and no request data: rule ids, counts, addresses.

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{Value, json};

use crate::audit::Sink;
use crate::server::live::LivePolicy;

/// What the server knows of itself, fixed at start.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    /// When the server started (wall clock), for the uptime.
    pub started: SystemTime,
    /// `127.0.0.1:9191` or `unix:/run/warrant/authz.sock`.
    pub grpc: String,
    /// `off`, `TLS` or `mTLS`.
    pub tls: &'static str,
    /// How many `tls.allowed_callers` patterns restrict callers (0: any caller the TLS admits).
    pub allowed_callers: usize,
    /// The listener's TLS, for its certificate's expiry and reload errors.
    pub tls_state: Option<Arc<crate::server::tls::Tls>>,
    /// The admin listener's bound address, or `off`.
    pub admin: String,
    /// Where the decision log goes: `stdout`, `stderr`, `off` or a file path.
    pub decision_log: String,
    /// The OTLP endpoint, or `off`.
    pub otlp: String,
}

/// An endpoint URL without what may be a secret: userinfo (`user:password@`), query and
/// fragment (`?token=…`).
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let path = path.split(['?', '#']).next().unwrap_or("");
    let scheme = if scheme.is_empty() {
        String::new()
    } else {
        format!("{scheme}://")
    };
    format!("{scheme}{host}{path}")
}

fn rfc3339(time: SystemTime) -> String {
    let time: chrono::DateTime<chrono::Utc> = time.into();
    time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The status as JSON.
pub fn json(info: &ServerInfo, live: &LivePolicy) -> Value {
    let policy = live.current();
    let metrics = live.metrics();
    let status = live.status();
    let (decided, shadow) = metrics.rule_counts();
    let count = |map: &std::collections::HashMap<Arc<str>, u64>, id: &Arc<str>| {
        map.get(id).copied().unwrap_or(0)
    };
    let rules: Vec<Value> = policy
        .rule_ids()
        .map(|(effect, id)| {
            json!({"id": &**id, "effect": effect.as_str(), "mode": "enforce", "decided": count(&decided, id)})
        })
        .chain(policy.shadow_rule_ids().map(|(effect, id)| {
            json!({"id": &**id, "effect": effect.as_str(), "mode": "audit", "shadow_matches": count(&shadow, id)})
        }))
        .collect();
    let (reloads_succeeded, reloads_failed) = metrics.reload_counts();
    let tls = info.tls_state.as_ref().map(|tls| tls.status());
    let refused: serde_json::Map<String, Value> = metrics
        .refused_counts()
        .iter()
        .map(|(refusal, count)| (refusal.as_str().to_owned(), json!(count)))
        .collect();
    let uptime = SystemTime::now()
        .duration_since(info.started)
        .map_or(0, |d| d.as_secs());
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "started_at": rfc3339(info.started),
        "uptime_seconds": uptime,
        "ready": live.readiness().is_ok(),
        "policy": {
            "revision": &**policy.revision(),
            "loaded_at": rfc3339(status.loaded_at),
            "files": policy.files().len(),
            "rules": policy.rule_count(),
            "warnings": policy.warnings().len(),
            "last_reload_error": status.last_error.map(|(at, errors)| json!({"at": rfc3339(at), "errors": errors})),
            "reloads": {"success": reloads_succeeded, "failure": reloads_failed},
        },
        "trust": {
            "trust_domains": policy.trust().trust_domains(),
            "revoked_entries": policy.trust().revoked_entries(),
            "bundles_from_workload_api": policy.trust().workload_api(),
            "bundles_pending": policy.trust().pending_bundles(),
            "forwarders": policy.trust().forwarder_entries().collect::<Vec<_>>(),
            "workload_tokens": policy.trust().workload_tokens().map(|t| json!({
                "header": t.header,
                "audiences": t.audiences,
                "leeway_seconds": t.leeway.as_secs(),
                "required": t.required,
            })),
            "bundles": policy.trust().bundle_summaries().iter().map(|b| json!({
                "trust_domain": b.trust_domain,
                "x509_authorities": b.x509_authorities,
                "jwt_authorities": b.jwt_authorities,
                "intermediates": b.intermediates,
                "sequence": b.sequence,
                "refresh_hint_seconds": b.refresh_hint_secs,
                "ignored_keys": b.ignored_keys,
                "first_authority_expires_at": b.first_expiry
                    .and_then(|secs| u64::try_from(secs).ok())
                    .map(|secs| rfc3339(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs))),
            })).collect::<Vec<_>>(),
        },
        "rules": rules,
        "checks_refused": refused,
        "checks_in_flight": metrics.in_flight_count(),
        "audit": {
            "decision_log": {
                "to": info.decision_log,
                "queue_depth": metrics.queue_depth(Sink::DecisionLog),
                "dropped": metrics.dropped_count(Sink::DecisionLog),
                "reopen_failures": metrics.decision_log_reopen_failures(),
            },
            "otlp": {
                "endpoint": info.otlp,
                "queue_depth": metrics.queue_depth(Sink::Otlp),
                "dropped": metrics.dropped_count(Sink::Otlp),
            },
        },
        "listeners": {
            "grpc": {
                "address": info.grpc,
                "tls": info.tls,
                "allowed_callers": info.allowed_callers,
                "certificate_expires_at": tls.as_ref().and_then(|t| t.certificate_expires).map(rfc3339),
                "certificate_loaded_at": tls.as_ref().map(|t| rfc3339(t.certificate_loaded)),
                "last_tls_reload_error": tls.as_ref().and_then(|t| t.last_error.as_ref()).map(|(at, error)| json!({"at": rfc3339(*at), "error": error})),
            },
            "admin": info.admin,
        },
    })
}

/// Escapes text for HTML.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A JSON value as page text.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => escape(s),
        Value::Null => "—".to_owned(),
        other => escape(&other.to_string()),
    }
}

/// The status as an HTML page (no scripts; it refreshes itself every 10 s).
pub fn html(status: &Value) -> String {
    let row = |label: &str, value: &Value| {
        format!(
            "<tr><th>{}</th><td>{}</td></tr>",
            escape(label),
            text(value)
        )
    };
    let policy = &status["policy"];
    let audit = &status["audit"];
    let grpc = &status["listeners"]["grpc"];
    let mut page = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"10\">\
         <title>Warrant status</title><style>body{font-family:system-ui,sans-serif;margin:2em}\
         table{border-collapse:collapse;margin-bottom:1.5em}th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left}\
         th{background:#f4f4f4}.error{color:#a00;white-space:pre-wrap}</style></head><body>",
    );
    page.push_str("<h1>Warrant</h1><table id=\"server\">");
    for (label, key) in [
        ("version", "version"),
        ("started", "started_at"),
        ("uptime (s)", "uptime_seconds"),
        ("ready", "ready"),
    ] {
        page.push_str(&row(label, &status[key]));
    }
    page.push_str("</table><h2>Policy</h2><table id=\"policy\">");
    for (label, key) in [
        ("revision", "revision"),
        ("loaded", "loaded_at"),
        ("files", "files"),
        ("rules", "rules"),
        ("warnings", "warnings"),
    ] {
        page.push_str(&row(label, &policy[key]));
    }
    page.push_str(&row(
        "reloads ok / failed",
        &Value::String(format!(
            "{} / {}",
            policy["reloads"]["success"], policy["reloads"]["failure"]
        )),
    ));
    page.push_str("</table>");
    if let Some(error) = policy["last_reload_error"].as_object() {
        page.push_str(&format!(
            "<h3>Last reload failed at {}; the revision above keeps serving</h3><pre class=\"error\" id=\"reload-error\">{}</pre>",
            text(&error["at"]),
            text(&error["errors"])
        ));
    }
    page.push_str("<h2>Trust bundles</h2><table id=\"bundles\"><tr><th>trust domain</th><th>X.509 authorities</th><th>JWT authorities</th><th>intermediates</th><th>sequence</th><th>first authority expires</th></tr>");
    for bundle in status["trust"]["bundles"].as_array().into_iter().flatten() {
        page.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            text(&bundle["trust_domain"]),
            text(&bundle["x509_authorities"]),
            text(&bundle["jwt_authorities"]),
            text(&bundle["intermediates"]),
            text(&bundle["sequence"]),
            text(&bundle["first_authority_expires_at"])
        ));
    }
    page.push_str("</table>");
    if let Some(endpoint) = status["trust"]["bundles_from_workload_api"].as_str() {
        let pending: Vec<&str> = status["trust"]["bundles_pending"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|td| td.as_str())
            .collect();
        page.push_str(&format!(
            "<p id=\"workload-api\">Bundles from the Workload API at {}{}</p>",
            escape(endpoint),
            if pending.is_empty() {
                String::new()
            } else {
                format!(
                    "; still waiting for: {} (untrusted until they arrive)",
                    escape(&pending.join(", "))
                )
            }
        ));
    }
    page.push_str("<h2>Rules</h2><table id=\"rules\"><tr><th>rule</th><th>effect</th><th>mode</th><th>decided</th><th>shadow matches</th></tr>");
    for rule in status["rules"].as_array().into_iter().flatten() {
        page.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            text(&rule["id"]),
            text(&rule["effect"]),
            text(&rule["mode"]),
            text(&rule["decided"]),
            text(&rule["shadow_matches"])
        ));
    }
    page.push_str("</table><h2>Audit</h2><table id=\"audit\"><tr><th>sink</th><th>to</th><th>queue</th><th>dropped</th><th>reopen failures</th></tr>");
    for (sink, to) in [
        ("decision log", &audit["decision_log"]["to"]),
        ("spans (OTLP)", &audit["otlp"]["endpoint"]),
    ] {
        let key = if sink == "decision log" {
            "decision_log"
        } else {
            "otlp"
        };
        page.push_str(&format!(
            "<tr><td>{sink}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            text(to),
            text(&audit[key]["queue_depth"]),
            text(&audit[key]["dropped"]),
            text(&audit[key]["reopen_failures"])
        ));
    }
    page.push_str("</table><h2>Listeners</h2><table id=\"listeners\">");
    page.push_str(&row("gRPC ext_authz", &grpc["address"]));
    page.push_str(&row("TLS", &grpc["tls"]));
    page.push_str(&row("allowed caller patterns", &grpc["allowed_callers"]));
    if !grpc["certificate_expires_at"].is_null() {
        page.push_str(&row("certificate expires", &grpc["certificate_expires_at"]));
        page.push_str(&row("certificate loaded", &grpc["certificate_loaded_at"]));
    }
    if let Some(error) = grpc["last_tls_reload_error"].as_object() {
        page.push_str(&row(
            "last TLS reload error",
            &Value::String(format!(
                "{}: {}",
                error["at"].as_str().unwrap_or(""),
                error["error"].as_str().unwrap_or("")
            )),
        ));
    }
    page.push_str(&row("admin", &status["listeners"]["admin"]));
    page.push_str(&row(
        "Checks refused (overloaded / timeout / cancelled / too large)",
        &Value::String(format!(
            "{} / {} / {} / {}",
            status["checks_refused"]["overloaded"],
            status["checks_refused"]["timeout"],
            status["checks_refused"]["cancelled"],
            status["checks_refused"]["too_large"]
        )),
    ));
    page.push_str(&row("Checks in flight", &status["checks_in_flight"]));
    page.push_str("</table><p>JSON: <a href=\"/status\">/status</a> · metrics: <a href=\"/metrics\">/metrics</a></p></body></html>\n");
    page
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn endpoints_lose_credentials() {
        assert_eq!(
            redact_url("http://admin:s3cr3t@collector:4318/v1/traces?token=abc#x"),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(redact_url("http://127.0.0.1:4317"), "http://127.0.0.1:4317");
        assert_eq!(redact_url("collector:4317"), "collector:4317");
    }
}
