//! `warrant eval`: decide one CheckRequest given as proto3 JSON and print the decision.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context as _;
use envoy_types::ext_authz::v3::pb::CheckRequest;

use super::{DecisionInput, request_json};
use crate::loader::load_policy;
use crate::policy::{Decision, Policy};
use crate::request::AuthzRequest;
use crate::server::{convert, response};

/// Reads `--now`: an RFC 3339 time, or the clock.
fn parse_now(now: Option<&str>) -> anyhow::Result<SystemTime> {
    Ok(match now {
        Some(text) => chrono::DateTime::parse_from_rfc3339(text)
            .with_context(|| format!("--now {text:?} is not an RFC 3339 timestamp"))?
            .into(),
        None => SystemTime::now(),
    })
}

/// Reads a CheckRequest in JSON from `path` (`-`: standard input).
fn read_request(path: &Path) -> anyhow::Result<CheckRequest> {
    let json = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the request from standard input")?;
        text
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?
    };
    request_json::parse(&json)
        .with_context(|| format!("{} is not a CheckRequest in JSON", path.display()))
}

/// Loads the policy at `path`, every error listed.
fn load(path: &Path) -> anyhow::Result<Policy> {
    let (policy, _) = load_policy(&[path.to_path_buf()])
        .map_err(|errors| anyhow::anyhow!("invalid policy:\n{errors}"))?;
    Ok(policy)
}

/// The policy, the request and the clock of `input`.
pub(super) fn read_input(
    input: &DecisionInput,
) -> anyhow::Result<(Policy, AuthzRequest, SystemTime)> {
    let now = parse_now(input.now.as_deref())?;
    let check_request = read_request(&input.request)?;
    let policy = load(&input.policy)?;
    Ok((policy, convert::authz_request(check_request), now))
}

pub(super) fn eval(input: &DecisionInput, identity_header: &str) -> anyhow::Result<ExitCode> {
    let (policy, request, now) = read_input(input)?;
    let decision = policy.decide(&request, now);
    let identity_header = (!identity_header.is_empty()).then_some(identity_header);
    if let Some(name) = identity_header {
        crate::header::check_upstream(name, None).context("--identity-header")?;
    }
    println!("{}", decision_json(&decision, identity_header));
    Ok(ExitCode::SUCCESS)
}
/// The decision as `warrant eval` prints it.
pub(super) fn decision_json(
    decision: &Decision,
    identity_header: Option<&str>,
) -> serde_json::Value {
    let headers: serde_json::Map<String, serde_json::Value> =
        response::upstream_headers(decision, identity_header)
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect();
    let failures: Vec<serde_json::Value> = decision
        .failures
        .iter()
        // The operator's own tool: the engine's full message, request values included.
        .map(|f| serde_json::json!({"rule": &*f.rule, "error": f.detail}))
        .collect();
    serde_json::json!({
        "allowed": decision.is_allowed(),
        "http_status": decision.http_status,
        "stage": decision.stage.as_str(),
        "rule": decision.rule.as_deref(),
        "reason": decision.reason,
        "identity": decision.identity.as_ref().map(|id| serde_json::json!({
            "spiffe_id": id.transport.spiffe_id.as_str(),
            "trust_domain": id.transport.spiffe_id.trust_domain(),
            "origin": {"spiffe_id": id.origin().0.as_str(), "via": id.origin().1.as_str()},
            "proxy_chain": id.provenance.proxy_chain.iter().map(|hop| serde_json::json!({
                "by": hop.by, "uri": hop.uri, "trusted": hop.trusted(),
            })).collect::<Vec<_>>(),
            "xfcc_spoofed": id.provenance.xfcc_spoofed(),
            "xfcc_error": match &id.provenance.xfcc {
                crate::trust::Xfcc::Malformed(error) => Some(error.as_str()),
                _ => None,
            },
            "workload": match &id.workload {
                crate::trust::Workload::Unchecked => serde_json::Value::Null,
                workload => serde_json::json!({
                    "spiffe_id": workload.verified().map(|svid| svid.spiffe_id.as_str()),
                    "verified": workload.verified().is_some(),
                    "present": workload.present(),
                    "error": workload.error(),
                    "bound": id.bound(),
                }),
            },
        })),
        "headers": headers,
        "response_headers": decision
            .response_headers
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect::<serde_json::Map<_, _>>(),
        "remove_headers": response::removed_headers(decision, identity_header),
        "decision_id": decision.id,
        "policy_revision": &*decision.policy_revision,
        "failed_rules": failures,
        "shadow": decision.shadow.iter().map(|s| {
            let mut line = serde_json::json!({
                "rule": &*s.rule,
                "effect": s.effect.as_str(),
                "matched": s.matched,
            });
            if let Some(detail) = &s.detail {
                line["error"] = serde_json::Value::String(detail.clone());
            }
            line
        }).collect::<Vec<_>>(),
    })
}
