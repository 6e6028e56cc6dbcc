//! Prometheus metrics. Label values are bounded: decision, stage, rule id and sink name —
//! never paths or identities.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::{
    EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

use arc_swap::ArcSwap;

use crate::policy::{Decision, Policy, Stage, Verdict};

/// A rule id as a label value ("" when no rule decided).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RuleLabel(Option<Arc<str>>);

impl EncodeLabelValue for RuleLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.0.as_deref().unwrap_or(""))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CheckLabels {
    decision: &'static str,
    stage: &'static str,
    rule: RuleLabel,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ShadowLabels {
    rule: RuleLabel,
    effect: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SinkLabels {
    sink: &'static str,
}

/// Where audit records can be dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    /// The decision-log writer (`sink="decision_log"`).
    DecisionLog,
    /// The OTLP span exporter (`sink="otlp"`).
    Otlp,
}

impl Sink {
    fn as_str(self) -> &'static str {
        match self {
            Sink::DecisionLog => "decision_log",
            Sink::Otlp => "otlp",
        }
    }
}

/// Upper bounds of the duration histogram: 10 µs doubling up to ~1.3 s (18 buckets + +Inf).
const DURATION_BUCKETS_NS: [u64; 18] = {
    let mut bounds = [0u64; 18];
    let mut i = 0;
    while i < bounds.len() {
        bounds[i] = 10_000 << i;
        i += 1;
    }
    bounds
};

/// A lock-free latency histogram: one atomic per bucket. (prometheus-client's `Histogram`
/// takes a mutex on every observation, which would put a lock on the Check path.)
#[derive(Debug, Default, Clone)]
struct DurationHistogram(Arc<HistogramCells>);

#[derive(Debug, Default)]
struct HistogramCells {
    buckets: [AtomicU64; DURATION_BUCKETS_NS.len() + 1],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl DurationHistogram {
    fn observe(&self, duration: Duration) {
        let cells = &self.0;
        let ns = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        let bucket = DURATION_BUCKETS_NS
            .iter()
            .position(|&bound| ns <= bound)
            .unwrap_or(DURATION_BUCKETS_NS.len());
        cells.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        cells.sum_ns.fetch_add(ns, Ordering::Relaxed);
        cells.count.fetch_add(1, Ordering::Relaxed);
    }
}

impl TypedMetric for DurationHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for DurationHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        // Per-bucket (non-cumulative) counts, as prometheus-client's encoder expects.
        let buckets: Vec<(f64, u64)> = DURATION_BUCKETS_NS
            .iter()
            .map(|&ns| ns as f64 / 1e9)
            .chain(std::iter::once(f64::INFINITY))
            .zip(self.0.buckets.iter().map(|b| b.load(Ordering::Relaxed)))
            .collect();
        encoder.encode_histogram::<NoLabelSet>(
            self.0.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
            self.0.count.load(Ordering::Relaxed),
            &buckets,
            None,
        )
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// The counters of one policy's outcomes, resolved when it is loaded so that counting a
/// Check takes no lock (the families' maps do); replaced whole on a reload.
#[derive(Debug, Default)]
struct PolicyCounters {
    /// Every (decision, stage, rule) the policy can produce.
    checks: HashMap<(Verdict, Stage, Option<Arc<str>>), Counter>,
    /// `warrant_shadow_matches_total` per shadow rule.
    shadow: HashMap<Arc<str>, Counter>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RevisionLabels {
    revision: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReloadLabels {
    result: &'static str,
}

pub use super::refusal::Refusal;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// The results of `warrant_workload_tokens_total`: verified, absent, or why invalid.
pub const WORKLOAD_TOKEN_RESULTS: [&str; 12] = {
    let classes = crate::identity::JwtSvidError::CLASSES;
    let mut all = ["verified"; 12];
    all[1] = "absent";
    let mut i = 0;
    while i < classes.len() {
        all[i + 2] = classes[i];
        i += 1;
    }
    all
};

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RefusedLabels {
    reason: &'static str,
}

/// One Check counted in `warrant_checks_in_flight` while this lives.
#[derive(Debug)]
pub struct InFlight(Gauge<i64, AtomicI64>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// All of Warrant's metrics and their registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    checks: Family<CheckLabels, Counter>,
    counters: ArcSwap<PolicyCounters>,
    duration: DurationHistogram,
    shadow_family: Family<ShadowLabels, Counter>,
    rules: Gauge<i64, AtomicI64>,
    policy_info: Family<RevisionLabels, Gauge<i64, AtomicI64>>,
    reloads_succeeded: Counter,
    reloads_failed: Counter,
    /// `warrant_checks_refused_total`, by [`Refusal`] (indexed by its discriminant).
    refused: [Counter; Refusal::ALL.len()],
    in_flight: Gauge<i64, AtomicI64>,
    reopen_failures: Counter,
    tls_expiry: Gauge<i64, AtomicI64>,
    tls_refused: Family<RefusedLabels, Counter>,
    /// `warrant_workload_tokens_total`, by [`WORKLOAD_TOKEN_RESULTS`] (same order).
    workload_tokens: [Counter; WORKLOAD_TOKEN_RESULTS.len()],
    /// `warrant_audit_dropped_total` per sink, resolved once: drops happen under overload,
    /// exactly when a lock on the Check path would hurt most.
    dropped_decision_log: Counter,
    dropped_otlp: Counter,
    /// `warrant_audit_queue_depth` per sink: records queued and not yet written or exported.
    queued_decision_log: Gauge<i64, AtomicI64>,
    queued_otlp: Gauge<i64, AtomicI64>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("warrant");
        let checks = Family::<CheckLabels, Counter>::default();
        registry.register("checks", "Check decisions", checks.clone());
        let duration = DurationHistogram::default();
        registry.register(
            "check_duration_seconds",
            "Time to decide one Check, from request to response",
            duration.clone(),
        );
        let rules = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "policy_rules",
            "Rules in the serving policy (shadow rules included)",
            rules.clone(),
        );
        let policy_info = Family::<RevisionLabels, Gauge<i64, AtomicI64>>::default();
        registry.register(
            "policy_info",
            "The serving policy's revision (one series, value 1)",
            policy_info.clone(),
        );
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "policy_reloads",
            "Policy reloads: success (a new revision serves) or failure (the old one keeps serving)",
            reloads.clone(),
        );
        let reload = |result| reloads.get_or_create(&ReloadLabels { result }).clone();
        let refused_family = Family::<RefusedLabels, Counter>::default();
        registry.register(
            "checks_refused",
            "Checks Envoy got no decision for: overloaded (max_concurrent_checks), timeout (check_timeout, grpc-timeout), cancelled (by the caller first), too_large (max_request_bytes), malformed (not a readable CheckRequest), shutdown (cut off after shutdown_grace), error (Warrant failed)",
            refused_family.clone(),
        );
        let refused = Refusal::ALL.map(|refusal| {
            refused_family
                .get_or_create(&RefusedLabels {
                    reason: refusal.as_str(),
                })
                .clone()
        });
        let in_flight = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "checks_in_flight",
            "Checks admitted and not yet finished deciding: slots of limits.max_concurrent_checks in use",
            in_flight.clone(),
        );
        let reopen_failures = Counter::default();
        registry.register(
            "decision_log_reopen_failures",
            "Failed reopens of the decision-log file after a rotation or SIGHUP (lines go on to the rotated file)",
            reopen_failures.clone(),
        );
        let tls_expiry = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "tls_certificate_expiry_timestamp_seconds",
            "When the gRPC listener's TLS certificate expires (Unix time; 0: no TLS or unreadable): alert well before it",
            tls_expiry.clone(),
        );
        let tls_refused = Family::<RefusedLabels, Counter>::default();
        registry.register(
            "tls_refused",
            "Connections to the gRPC listener closed by TLS: handshake (failed or timed out) or caller (not in tls.allowed_callers)",
            tls_refused.clone(),
        );
        // Both series exist (at 0) before anything is refused.
        for reason in ["handshake", "caller"] {
            let _ = tls_refused.get_or_create(&RefusedLabels { reason });
        }
        let (reloads_succeeded, reloads_failed) = (reload("success"), reload("failure"));
        let tokens = Family::<ResultLabels, Counter>::default();
        registry.register(
            "workload_tokens",
            "Workload tokens (JWT-SVIDs, trust.workload_tokens) of decided Checks: verified, absent, or the class of why one was rejected",
            tokens.clone(),
        );
        let workload_tokens = WORKLOAD_TOKEN_RESULTS
            .map(|result| tokens.get_or_create(&ResultLabels { result }).clone());
        let dropped = Family::<SinkLabels, Counter>::default();
        registry.register(
            "audit_dropped",
            "Audit records (decision log lines, spans) dropped because a sink was full or failing",
            dropped.clone(),
        );
        // Both series exist (at 0) before anything drops.
        let dropped_counter = |sink: Sink| {
            dropped
                .get_or_create(&SinkLabels {
                    sink: sink.as_str(),
                })
                .clone()
        };
        let dropped_decision_log = dropped_counter(Sink::DecisionLog);
        let dropped_otlp = dropped_counter(Sink::Otlp);
        let queued = Family::<SinkLabels, Gauge<i64, AtomicI64>>::default();
        registry.register(
            "audit_queue_depth",
            "Audit records queued for a sink and not yet written or exported",
            queued.clone(),
        );
        let queued_gauge = |sink: Sink| {
            queued
                .get_or_create(&SinkLabels {
                    sink: sink.as_str(),
                })
                .clone()
        };
        let queued_decision_log = queued_gauge(Sink::DecisionLog);
        let queued_otlp = queued_gauge(Sink::Otlp);
        let shadow_family = Family::<ShadowLabels, Counter>::default();
        registry.register(
            "shadow_matches",
            "Matches of shadow rules (mode: audit), which never decide",
            shadow_family.clone(),
        );
        Self {
            registry,
            checks,
            counters: ArcSwap::default(),
            duration,
            shadow_family,
            rules,
            policy_info,
            reloads_succeeded,
            reloads_failed,
            refused,
            in_flight,
            reopen_failures,
            tls_expiry,
            tls_refused,
            workload_tokens,
            dropped_decision_log,
            dropped_otlp,
            queued_decision_log,
            queued_otlp,
        }
    }
}

impl Metrics {
    /// Metrics with `policy` serving.
    pub fn for_policy(policy: &Policy) -> Self {
        let metrics = Self::default();
        metrics.set_policy(policy);
        metrics
    }

    /// Makes `policy` the one counted: resolves its rules' counters (each series exists, at 0,
    /// before its rule first decides or matches), sets `warrant_policy_rules` and
    /// `warrant_policy_info{revision}`. Call it when a policy starts serving.
    pub fn set_policy(&self, policy: &Policy) {
        let outcomes = policy
            .rule_ids()
            .map(|(verdict, id)| (verdict, Stage::Rules, Some(Arc::clone(id))))
            .chain([
                (Verdict::Deny, Stage::Trust, None),
                (Verdict::Deny, Stage::Default, None),
            ]);
        let checks = outcomes
            .map(|(verdict, stage, rule)| {
                let counter = self
                    .checks
                    .get_or_create(&CheckLabels {
                        decision: verdict.as_str(),
                        stage: stage.as_str(),
                        rule: RuleLabel(rule.clone()),
                    })
                    .clone();
                ((verdict, stage, rule), counter)
            })
            .collect();
        let shadow = policy
            .shadow_rule_ids()
            .map(|(verdict, id)| {
                let counter = self
                    .shadow_family
                    .get_or_create(&ShadowLabels {
                        rule: RuleLabel(Some(Arc::clone(id))),
                        effect: verdict.as_str(),
                    })
                    .clone();
                (Arc::clone(id), counter)
            })
            .collect();
        let previous = self
            .counters
            .swap(Arc::new(PolicyCounters { checks, shadow }));
        // Series of rules the new policy no longer has go away.
        let current = self.counters.load();
        for (verdict, stage, rule) in previous.checks.keys() {
            if rule.is_some()
                && !current
                    .checks
                    .contains_key(&(*verdict, *stage, rule.clone()))
            {
                self.checks.remove(&CheckLabels {
                    decision: verdict.as_str(),
                    stage: stage.as_str(),
                    rule: RuleLabel(rule.clone()),
                });
            }
        }
        for rule in previous.shadow.keys() {
            if !current.shadow.contains_key(rule) {
                for effect in [Verdict::Allow, Verdict::Deny] {
                    self.shadow_family.remove(&ShadowLabels {
                        rule: RuleLabel(Some(Arc::clone(rule))),
                        effect: effect.as_str(),
                    });
                }
            }
        }
        self.rules
            .set(i64::try_from(policy.rule_count()).unwrap_or(i64::MAX));
        self.policy_info.clear();
        self.policy_info
            .get_or_create(&RevisionLabels {
                revision: policy.revision().to_string(),
            })
            .set(1);
    }

    /// Counts a reload attempt: `true` when a new policy now serves.
    pub fn reloaded(&self, success: bool) {
        if success {
            self.reloads_succeeded.inc();
        } else {
            self.reloads_failed.inc();
        }
    }

    /// Counts a Check refused at a limit: `overloaded` or `timeout`.
    /// Counts a Check refused; returns how many were refused so for that reason.
    pub fn refused(&self, refusal: Refusal) -> u64 {
        self.refused_many(refusal, 1)
    }

    /// Counts `n` Checks refused; returns how many were refused so for that reason.
    pub fn refused_many(&self, refusal: Refusal, n: u64) -> u64 {
        self.refused[refusal as usize].inc_by(n) + n
    }

    /// Counts a Check in flight until the returned guard is dropped.
    pub fn check_in_flight(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    /// Checks in flight now.
    pub fn in_flight_count(&self) -> i64 {
        self.in_flight.get()
    }

    /// Counts a failed reopen of the decision-log file.
    pub fn decision_log_reopen_failed(&self) {
        self.reopen_failures.inc();
    }

    /// Failed reopens of the decision-log file so far.
    pub fn decision_log_reopen_failures(&self) -> u64 {
        self.reopen_failures.get()
    }

    /// Sets when the listener's certificate expires.
    pub fn tls_certificate_expires(&self, expires: Option<std::time::SystemTime>) {
        let seconds = expires
            .and_then(|t| t.duration_since(std::time::SystemTime::UNIX_EPOCH).ok())
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        self.tls_expiry.set(seconds);
    }

    /// Counts a connection closed by TLS: `handshake` or `caller`.
    /// Returns how many were closed so for that reason.
    pub fn tls_refused(&self, reason: &'static str) -> u64 {
        self.tls_refused
            .get_or_create(&RefusedLabels { reason })
            .inc()
            + 1
    }

    /// Reload attempts so far: (succeeded, failed).
    pub fn reload_counts(&self) -> (u64, u64) {
        (self.reloads_succeeded.get(), self.reloads_failed.get())
    }

    /// Counts one decision (when `answered`: Envoy got it) and its duration.
    pub fn observe(&self, decision: &Decision, duration: Duration, answered: bool) {
        self.duration.observe(duration);
        if !answered {
            return;
        }
        if let Some(result) = decision
            .identity
            .as_ref()
            .and_then(|identity| identity.workload.result())
            && let Some(index) = WORKLOAD_TOKEN_RESULTS.iter().position(|r| *r == result)
        {
            self.workload_tokens[index].inc();
        }
        let counters = self.counters.load();
        let key = (decision.verdict, decision.stage, decision.rule.clone());
        match counters.checks.get(&key) {
            Some(counter) => {
                counter.inc();
            }
            None => {
                // A decision of a policy that no longer serves (a reload raced this Check).
                self.checks
                    .get_or_create(&CheckLabels {
                        decision: decision.verdict.as_str(),
                        stage: decision.stage.as_str(),
                        rule: RuleLabel(key.2),
                    })
                    .inc();
            }
        }
        for shadow in decision.shadow_matches() {
            match counters.shadow.get(&shadow.rule) {
                Some(counter) => {
                    counter.inc();
                }
                None => {
                    self.shadow_family
                        .get_or_create(&ShadowLabels {
                            rule: RuleLabel(Some(Arc::clone(&shadow.rule))),
                            effect: shadow.effect.as_str(),
                        })
                        .inc();
                }
            }
        }
    }

    fn dropped_counter(&self, sink: Sink) -> &Counter {
        match sink {
            Sink::DecisionLog => &self.dropped_decision_log,
            Sink::Otlp => &self.dropped_otlp,
        }
    }

    fn queue(&self, sink: Sink) -> &Gauge<i64, AtomicI64> {
        match sink {
            Sink::DecisionLog => &self.queued_decision_log,
            Sink::Otlp => &self.queued_otlp,
        }
    }

    /// `n` records were queued for `sink` (positive) or taken off its queue (negative).
    pub fn queued(&self, sink: Sink, n: i64) {
        self.queue(sink).inc_by(n);
    }

    /// Records queued for `sink` and not yet handled.
    pub fn queue_depth(&self, sink: Sink) -> i64 {
        self.queue(sink).get().max(0)
    }

    /// How often each rule of the serving policy decided, and each shadow rule matched,
    /// since the server started: (rule id → count).
    pub fn rule_counts(&self) -> (HashMap<Arc<str>, u64>, HashMap<Arc<str>, u64>) {
        let counters = self.counters.load();
        let decided = counters
            .checks
            .iter()
            .filter_map(|((_, _, rule), counter)| Some((Arc::clone(rule.as_ref()?), counter.get())))
            .collect();
        let shadow = counters
            .shadow
            .iter()
            .map(|(rule, counter)| (Arc::clone(rule), counter.get()))
            .collect();
        (decided, shadow)
    }

    /// Checks refused at a limit so far: (overloaded, timeout).
    pub fn refused_counts(&self) -> [(Refusal, u64); Refusal::ALL.len()] {
        Refusal::ALL.map(|refusal| (refusal, self.refused[refusal as usize].get()))
    }

    /// Counts `n` records dropped at `sink`.
    pub fn dropped(&self, sink: Sink, n: u64) {
        self.dropped_counter(sink).inc_by(n);
    }

    /// How many records `sink` dropped so far.
    pub fn dropped_count(&self, sink: Sink) -> u64 {
        self.dropped_counter(sink).get()
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
