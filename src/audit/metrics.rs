//! Prometheus metrics. Label values are bounded: decision, stage, rule id and sink name —
//! never paths or identities.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::policy::Decision;

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
struct SinkLabels {
    sink: &'static str,
}

/// Where audit records can be dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    DecisionLog,
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

/// All of Warrant's metrics and their registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    checks: Family<CheckLabels, Counter>,
    duration: Histogram,
    rules: Gauge<i64, AtomicI64>,
    dropped: Family<SinkLabels, Counter>,
    ready: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("warrant");
        let checks = Family::<CheckLabels, Counter>::default();
        registry.register("checks", "Check decisions", checks.clone());
        // 10 µs .. ~1.3 s
        let duration = Histogram::new(exponential_buckets(0.000_01, 2.0, 18));
        registry.register(
            "check_duration_seconds",
            "Time to decide one Check, from request to response",
            duration.clone(),
        );
        let rules = Gauge::<i64, AtomicI64>::default();
        registry.register("policy_rules", "Rules in the loaded policy", rules.clone());
        let dropped = Family::<SinkLabels, Counter>::default();
        registry.register(
            "audit_dropped",
            "Audit records (decision log lines, spans) dropped because a sink was full or failing",
            dropped.clone(),
        );
        // Make the dropped series visible at 0 before anything drops.
        for sink in [Sink::DecisionLog, Sink::Otlp] {
            let _ = dropped.get_or_create(&SinkLabels {
                sink: sink.as_str(),
            });
        }
        Self {
            registry,
            checks,
            duration,
            rules,
            dropped,
            ready: AtomicBool::new(false),
        }
    }
}

impl Metrics {
    /// Counts one decision and its duration.
    pub fn observe(&self, decision: &Decision, duration: Duration) {
        self.checks
            .get_or_create(&CheckLabels {
                decision: decision.verdict.as_str(),
                stage: decision.stage.as_str(),
                rule: RuleLabel(decision.rule.clone()),
            })
            .inc();
        self.duration.observe(duration.as_secs_f64());
    }

    /// Records that a policy with `rules` rules is loaded and the server is ready.
    pub fn policy_loaded(&self, rules: usize) {
        self.rules.set(i64::try_from(rules).unwrap_or(i64::MAX));
        self.ready.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Whether a policy is loaded.
    pub fn is_ready(&self) -> bool {
        self.ready.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Counts `n` records dropped at `sink`.
    pub fn dropped(&self, sink: Sink, n: u64) {
        self.dropped
            .get_or_create(&SinkLabels {
                sink: sink.as_str(),
            })
            .inc_by(n);
    }

    /// How many records `sink` dropped so far.
    pub fn dropped_count(&self, sink: Sink) -> u64 {
        self.dropped
            .get_or_create(&SinkLabels {
                sink: sink.as_str(),
            })
            .get()
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
