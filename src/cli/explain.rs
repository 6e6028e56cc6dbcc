//! `warrant explain`: how the decision on one CheckRequest was reached — the trust stage's
//! checks, then every rule in evaluation order with its result and which one decided.

use std::fmt::Write as _;
use std::process::ExitCode;

use super::DecisionInput;
use super::eval::{decision_json, read_input};
use crate::config::DEFAULT_IDENTITY_HEADER;
use crate::policy::{Explanation, RuleExplanation, RuleResult};
use crate::trust::{TrustCheck, TrustCheckResult};

/// How `explain` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

pub(super) fn explain(input: &DecisionInput, format: Format) -> anyhow::Result<ExitCode> {
    let (policy, request, now) = read_input(input)?;
    let explanation = policy.explain(&request, now);
    match format {
        Format::Json => println!("{}", json(&explanation)),
        Format::Text => print!("{}", text(&explanation)),
    }
    Ok(ExitCode::SUCCESS)
}

fn trust_result(check: &TrustCheck) -> (&'static str, Option<String>) {
    match &check.result {
        TrustCheckResult::Passed => ("passed", None),
        TrustCheckResult::Failed(reason) => ("failed", Some(reason.clone())),
        TrustCheckResult::Skipped(why) => ("skipped", Some((*why).to_owned())),
        TrustCheckResult::NotEvaluated => ("not evaluated", None),
    }
}

fn rule_result(rule: &RuleExplanation) -> (&'static str, Option<&str>) {
    match &rule.result {
        RuleResult::Matched => ("matched", None),
        RuleResult::NotMatched => ("not matched", None),
        RuleResult::Error(error) => ("error", Some(error)),
        RuleResult::NotEvaluated => ("not evaluated", None),
    }
}

fn mode(rule: &RuleExplanation) -> &'static str {
    if rule.shadow { "audit" } else { "enforce" }
}

/// `{"decision": {…as eval…}, "trust": [...], "rules": [...]}`
pub(super) fn json(explanation: &Explanation) -> serde_json::Value {
    let trust: Vec<serde_json::Value> = explanation
        .trust
        .iter()
        .map(|check| {
            let (result, reason) = trust_result(check);
            let mut entry = serde_json::json!({"check": check.kind.as_str(), "result": result});
            if let Some(reason) = reason {
                entry["reason"] = reason.into();
            }
            entry
        })
        .collect();
    let decided = explanation.decision.rule.as_deref();
    let rules: Vec<serde_json::Value> = explanation
        .rules
        .iter()
        .map(|rule| {
            let (result, error) = rule_result(rule);
            let mut entry = serde_json::json!({
                "id": &*rule.id,
                "effect": rule.effect.as_str(),
                "mode": mode(rule),
                "result": result,
                "decided": !rule.shadow && Some(&*rule.id) == decided,
            });
            if let Some(error) = error {
                entry["error"] = error.into();
            }
            entry
        })
        .collect();
    serde_json::json!({
        "decision": decision_json(&explanation.decision, Some(DEFAULT_IDENTITY_HEADER)),
        "trust": trust,
        "rules": rules,
    })
}

/// A readable report: the decision, the trust checks, then the rules as a table.
pub(super) fn text(explanation: &Explanation) -> String {
    let decision = &explanation.decision;
    let mut out = String::new();
    let rule = decision
        .rule
        .as_deref()
        .map_or_else(String::new, |rule| format!(", rule '{rule}'"));
    let _ = writeln!(
        out,
        "decision: {} (stage {}{rule}, HTTP {})",
        decision.verdict, decision.stage, decision.http_status
    );
    let _ = writeln!(out, "reason:   {}", decision.reason);
    let _ = writeln!(out, "policy:   revision {}", decision.policy_revision);
    let _ = writeln!(out, "\ntrust");
    for check in &explanation.trust {
        let (result, reason) = trust_result(check);
        let reason = reason.map_or_else(String::new, |r| format!(": {r}"));
        let _ = writeln!(out, "  {:<14} {result}{reason}", check.kind.as_str());
    }
    if let Some(identities) = &decision.identity {
        identity_lines(&mut out, identities);
    }
    let _ = writeln!(out, "\nrules, in evaluation order");
    let width = explanation
        .rules
        .iter()
        .map(|rule| rule.id.chars().count())
        .max()
        .unwrap_or(0)
        .max(4);
    let _ = writeln!(out, "  {:<width$}  EFFECT  MODE     RESULT", "RULE");
    for rule in &explanation.rules {
        let (result, error) = rule_result(rule);
        let result = error.map_or_else(|| result.to_owned(), |e| format!("error: {e}"));
        let decided = if !rule.shadow && decision.rule.as_deref() == Some(&*rule.id) {
            "   <- decided"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  {:<width$}  {:<6}  {:<7}  {result}{decided}",
            &*rule.id,
            rule.effect.as_str(),
            mode(rule)
        );
    }
    if explanation.rules.is_empty() {
        let _ = writeln!(out, "  (the policy has no rules)");
    }
    out
}

/// What the rules saw beyond the transport identity, when there is something to tell: the
/// origin and its chain, a header not believed, the workload token.
fn identity_lines(out: &mut String, identities: &crate::policy::Identities) {
    let provenance = &identities.provenance;
    let (origin, via) = identities.origin();
    let mut lines = Vec::new();
    if via == crate::trust::Via::Xfcc || !provenance.proxy_chain.is_empty() {
        let chain: Vec<&str> = provenance
            .proxy_chain
            .iter()
            .map(|hop| {
                if hop.uri.is_empty() {
                    "(no URI)"
                } else {
                    hop.uri.as_str()
                }
            })
            .collect();
        lines.push(format!("origin         {origin} (via {})", via.as_str()));
        lines.push(format!("proxy_chain    {}", chain.join(" -> ")));
    }
    if provenance.ignored > 0 {
        lines.push(format!(
            "xfcc           {} older element(s) ignored: written by a client, not vouched for by a forwarder (source.xfcc_spoofed)",
            provenance.ignored
        ));
    } else if provenance.xfcc == crate::trust::Xfcc::Spoofed {
        lines.push(
            "xfcc           not believed: the peer is not in trust.forwarders (source.xfcc_spoofed)"
                .to_owned(),
        );
    }
    if let crate::trust::Xfcc::Malformed(error) = &provenance.xfcc {
        lines.push(format!("xfcc           ignored: {error}"));
    }
    match &identities.workload {
        crate::trust::Workload::Unchecked => {}
        crate::trust::Workload::Absent => lines.push("workload       no token".to_owned()),
        crate::trust::Workload::Verified(svid) => lines.push(format!(
            "workload       {} (verified{})",
            svid.spiffe_id,
            if identities.bound() {
                ", bound to the transport identity"
            } else {
                ", not the transport identity"
            }
        )),
        crate::trust::Workload::Invalid(error) => {
            lines.push(format!("workload       token rejected: {error}"));
        }
    }
    if !lines.is_empty() {
        let _ = writeln!(out, "\nidentities");
        for line in lines {
            let _ = writeln!(out, "  {line}");
        }
    }
}
