//! Stages 2–4 of a decision for a trusted caller: deny rules, allow rules, default; and the
//! shadow rules, which are recorded but never decide.

use std::sync::Arc;

use super::cel::Activation;
use super::rule::Rule;
use super::{Policy, RuleFailure, ShadowResult, Stage, Verdict};

impl Policy {
    /// Every shadow rule, in order: what it would have done.
    pub(super) fn evaluate_shadow(&self, activation: &Activation<'_, '_>) -> Vec<ShadowResult> {
        self.shadow_rules
            .iter()
            .map(|(effect, rule)| {
                let (matched, error) = match self.cel.eval(&rule.expression, activation) {
                    Ok(matched) => (matched, None),
                    Err(error) => (false, Some(error)),
                };
                ShadowResult {
                    rule: Arc::clone(&rule.id),
                    effect: *effect,
                    matched,
                    detail: error.as_ref().map(|e| e.detail()),
                    error: error.map(|e| e.to_string()),
                }
            })
            .collect()
    }

    /// Stages 2–4 for a trusted caller: deny rules, allow rules, default.
    pub(super) fn evaluate_rules(&self, activation: &Activation<'_, '_>) -> RulesOutcome<'_> {
        for rule in &self.deny_rules {
            let (reason, failures) = match self.cel.eval(&rule.expression, activation) {
                Ok(false) => continue,
                Ok(true) => (rule.matched.clone(), Vec::new()),
                Err(error) => (
                    format!("deny rule '{}' failed to evaluate: {error}", rule.id),
                    vec![RuleFailure {
                        rule: Arc::clone(&rule.id),
                        error: error.to_string(),
                        detail: error.detail(),
                    }],
                ),
            };
            return RulesOutcome {
                verdict: Verdict::Deny,
                stage: Stage::Rules,
                rule: Some(rule),
                reason,
                failures,
            };
        }
        let mut failures = Vec::new();
        for rule in &self.allow_rules {
            match self.cel.eval(&rule.expression, activation) {
                Ok(false) => {}
                Ok(true) => {
                    return RulesOutcome {
                        verdict: Verdict::Allow,
                        stage: Stage::Rules,
                        rule: Some(rule),
                        reason: rule.matched.clone(),
                        failures,
                    };
                }
                Err(error) => failures.push(RuleFailure {
                    rule: Arc::clone(&rule.id),
                    error: error.to_string(),
                    detail: error.detail(),
                }),
            }
        }
        let reason = if self.allow_rules.is_empty() && self.deny_rules.is_empty() {
            if self.shadow_rules.is_empty() {
                "the policy has no rules: everything is denied".to_owned()
            } else {
                "the policy has only shadow rules, which never decide: everything is denied"
                    .to_owned()
            }
        } else if failures.is_empty() {
            "no allow rule matched".to_owned()
        } else {
            let failed: Vec<String> = failures
                .iter()
                .map(|f| format!("'{}': {}", f.rule, f.error))
                .collect();
            format!(
                "no allow rule matched ({} failed to evaluate: {})",
                failures.len(),
                failed.join("; ")
            )
        };
        RulesOutcome {
            verdict: Verdict::Deny,
            stage: Stage::Default,
            rule: None,
            reason,
            failures,
        }
    }
}

/// What a stage concluded, before it becomes a [`Decision`]: the status and headers follow
/// from the verdict and the deciding rule.
pub(super) struct RulesOutcome<'p> {
    pub verdict: Verdict,
    pub stage: Stage,
    pub rule: Option<&'p Rule>,
    pub reason: String,
    pub failures: Vec<RuleFailure>,
}

impl RulesOutcome<'_> {
    pub(super) fn untrusted(reason: String) -> Self {
        Self {
            verdict: Verdict::Deny,
            stage: Stage::Trust,
            rule: None,
            reason,
            failures: Vec::new(),
        }
    }
}

/// How one rule fared in an explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleResult {
    /// Its expression was true for the request.
    Matched,
    /// Its expression was false for the request.
    NotMatched,
    /// It failed to evaluate (the engine's full message).
    Error(String),
    /// The trust stage failed, so no rule ran.
    NotEvaluated,
}

/// One rule in an explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleExplanation {
    /// The rule's id.
    pub id: Arc<str>,
    /// What the rule gives when it matches.
    pub effect: Verdict,
    /// Whether it is a shadow rule (`mode: audit`).
    pub shadow: bool,
    /// How the rule fared on this request.
    pub result: RuleResult,
}

/// How a decision was reached: the decision, the trust stage's checks, and every rule.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// The decision, made exactly as a Check makes it.
    pub decision: super::Decision,
    /// The trust stage's checks, in the order it runs them.
    pub trust: Vec<crate::trust::TrustCheck>,
    /// Every rule in evaluation order (deny rules, allow rules, then shadow rules), each
    /// evaluated even after the one that decided.
    pub rules: Vec<RuleExplanation>,
}

impl Policy {
    /// Decides `request` and explains the decision, evaluating every rule.
    pub fn explain(
        &self,
        request: &crate::request::AuthzRequest,
        now: std::time::SystemTime,
    ) -> Explanation {
        let decision = self.decide(request, now);
        let trust = self.trust.explain(request, now);
        let rules = self
            .deny_rules
            .iter()
            .map(|rule| (Verdict::Deny, false, rule))
            .chain(
                self.allow_rules
                    .iter()
                    .map(|rule| (Verdict::Allow, false, rule)),
            )
            .chain(
                self.shadow_rules
                    .iter()
                    .map(|(effect, rule)| (*effect, true, rule)),
            );
        let results: Vec<(Verdict, bool, &Rule, RuleResult)> =
            match self.trust.establish(request, now) {
                Ok((identities, Ok(()))) => {
                    let variables =
                        super::RequestVariables::new(&identities, request, now, &self.headers_read);
                    let activation = self.cel.activation(&variables);
                    super::with_evaluation_stack(|| {
                        rules
                            .map(|(effect, shadow, rule)| {
                                let result = match self.cel.eval(&rule.expression, &activation) {
                                    Ok(true) => RuleResult::Matched,
                                    Ok(false) => RuleResult::NotMatched,
                                    Err(error) => RuleResult::Error(error.detail()),
                                };
                                (effect, shadow, rule, result)
                            })
                            .collect()
                    })
                }
                _ => rules
                    .map(|(effect, shadow, rule)| (effect, shadow, rule, RuleResult::NotEvaluated))
                    .collect(),
            };
        Explanation {
            decision,
            trust,
            rules: results
                .into_iter()
                .map(|(effect, shadow, rule, result)| RuleExplanation {
                    id: Arc::clone(&rule.id),
                    effect,
                    shadow,
                    result,
                })
                .collect(),
        }
    }
}
