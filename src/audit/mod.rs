//! Audit: every decision becomes a metric sample, a decision-log line and an OpenTelemetry
//! span, all derived from the one [`Decision`]. Audit observes decisions; it never makes them.
//!
//! The Check path only counts metrics (atomics) and hands a record to each enabled sink with a
//! non-blocking `try_send` into a bounded queue. Each sink drains its queue on its own thread
//! (`decision_log`, `otlp`), so a slow disk or a dead collector cannot slow Checks down: when
//! a queue is full, a write fails or an export fails, the records are dropped and counted in
//! `warrant_audit_dropped_total{sink}`.

mod decision_log;
pub mod metrics;
mod otlp;
pub mod record;
pub mod redact;
mod refusal;
pub mod trace_context;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant, SystemTime};

use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};

pub use metrics::{InFlight, Metrics, Refusal, Sink};
pub use otlp::{OtlpProtocol, OtlpTarget};
pub use record::DecisionRecord;
pub use redact::Redactor;
pub use trace_context::TraceParent;

use crate::policy::Decision;
use crate::request::AuthzRequest;

/// Marks a record's problem when Envoy was answered with an error, not the decision.
pub const UNANSWERED: &str = "Envoy was answered";

/// Records queued per sink before new ones are dropped.
const QUEUE_CAPACITY: usize = 16_384;

/// While records keep coming, a sink sleeps this long between drains of its queue instead of
/// waiting on it: a Check that queues a record then finds no parked thread to wake, which
/// would cost it a futex syscall and a context switch (measured: the decision log cost the
/// Check path ~10 µs per record when its writer waited on the queue). At most this much
/// latency is added to a log line; an idle sink still waits on the queue and costs nothing.
const SINK_POLL: Duration = Duration::from_millis(2);

/// Where decision-log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecisionLogTarget {
    /// Standard output (the default).
    Stdout,
    /// Standard error.
    Stderr,
    /// A file, appended to and reopened on SIGHUP (after logrotate).
    File(PathBuf),
    /// No decision log.
    Off,
}

/// What to audit, resolved from the config file and the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditSettings {
    /// `service.name` of the spans: `telemetry.service_name`, else `OTEL_SERVICE_NAME`, else
    /// `warrant`.
    pub service_name: String,
    /// Where spans go; `None` disables spans.
    pub otlp: Option<OtlpTarget>,
    /// Head sampling (0.0–1.0) for checks whose caller sent no trace context or deferred the
    /// sampling decision. A caller's sampled flag is always honoured.
    pub sample_ratio: f64,
    /// Where decision-log lines go (`decision_log.to`).
    pub decision_log: DecisionLogTarget,
    /// Headers whose values never reach a sink, beyond [`redact::ALWAYS_SENSITIVE`].
    pub sensitive_headers: Vec<String>,
}

/// Why audit could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The decision-log file cannot be opened for appending.
    #[error("cannot open decision log {path}: {source}")]
    DecisionLog {
        /// The decision-log file.
        path: PathBuf,
        /// Why opening it failed.
        source: std::io::Error,
    },
    /// The OTLP exporter cannot be built, e.g. for a malformed endpoint (an unreachable
    /// collector is not an error: its spans are counted as dropped).
    #[error("cannot build the OTLP exporter for {endpoint}: {reason}")]
    Exporter {
        /// The collector endpoint, as resolved (for HTTP, the full traces URL).
        endpoint: String,
        /// Why the exporter could not be built.
        reason: String,
    },
    /// An audit sink's thread cannot be spawned.
    #[error("cannot start audit thread: {0}")]
    Thread(std::io::Error),
}

enum Message {
    Record(Arc<DecisionRecord>),
    /// Drain, flush and acknowledge.
    Flush(SyncSender<()>),
    /// Write what is queued, then reopen the decision-log file (SIGHUP, after logrotate).
    Reopen,
}

/// The audit front end the Check path calls.
#[derive(Debug)]
pub struct Auditor {
    metrics: Arc<Metrics>,
    decision_log: Option<SyncSender<Message>>,
    otlp: Option<SyncSender<Message>>,
    sample_ratio: f64,
    ids: RandomIdGenerator,
    redactor: Redactor,
}

impl Auditor {
    /// Metrics only: no decision log, no spans.
    pub fn metrics_only(metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            decision_log: None,
            otlp: None,
            sample_ratio: 0.0,
            ids: RandomIdGenerator::default(),
            redactor: Redactor::default(),
        }
    }

    /// Starts the enabled sinks, each on its own thread.
    pub fn start(settings: &AuditSettings, metrics: Arc<Metrics>) -> Result<Self, AuditError> {
        let decision_log = match &settings.decision_log {
            DecisionLogTarget::Off => None,
            target => Some(decision_log::start(target, Arc::clone(&metrics))?),
        };
        let otlp = match &settings.otlp {
            None => None,
            Some(target) => Some(otlp::start(
                target,
                &settings.service_name,
                Arc::clone(&metrics),
            )?),
        };
        Ok(Self {
            metrics,
            decision_log,
            otlp,
            sample_ratio: settings.sample_ratio.clamp(0.0, 1.0),
            ids: RandomIdGenerator::default(),
            redactor: Redactor::new(&settings.sensitive_headers),
        })
    }

    /// The metrics this auditor counts into.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Audits one decision. `parent` is the caller's trace context, if any. `problem`: why the
    /// record is an error (a malformed request; a Check answered with an error instead of this
    /// decision, which then is not counted as a decision in `warrant_checks_total`). Never
    /// blocks.
    pub fn record(
        &self,
        decision: &Decision,
        request: &AuthzRequest,
        problem: Option<&str>,
        start: SystemTime,
        duration: Duration,
        parent: Option<TraceParent>,
    ) {
        self.metrics
            .observe(decision, duration, !self.unanswered(problem));
        // Warrant's own log; the reason is only built when debug logging is on.
        tracing::debug!(
            decision_id = %decision.id,
            decision = %decision.verdict,
            stage = %decision.stage,
            rule = decision.rule.as_deref().unwrap_or(""),
            reason = %self.redactor.scrub(&decision.reason, request),
            "check"
        );
        if self.decision_log.is_none() && self.otlp.is_none() {
            return;
        }
        let trace_id = parent
            .as_ref()
            .map_or_else(|| self.ids.new_trace_id().to_bytes(), |p| p.trace_id);
        let span_id = self.ids.new_span_id().to_bytes();
        let sampled = self.otlp.is_some()
            && parent
                .as_ref()
                .and_then(|p| p.sampled)
                .unwrap_or_else(|| self.ratio_samples(&trace_id));
        let record = Arc::new(DecisionRecord::new(
            decision,
            request,
            &self.redactor,
            problem,
            (start, duration),
            parent,
            (trace_id, span_id, sampled),
        ));
        if let Some(tx) = &self.decision_log {
            match tx.try_send(Message::Record(Arc::clone(&record))) {
                Ok(()) => self.metrics.queued(Sink::DecisionLog, 1),
                Err(_) => self.metrics.dropped(Sink::DecisionLog, 1),
            }
        }
        if sampled && let Some(tx) = &self.otlp {
            match tx.try_send(Message::Record(record)) {
                Ok(()) => self.metrics.queued(Sink::Otlp, 1),
                Err(_) => self.metrics.dropped(Sink::Otlp, 1),
            }
        }
    }

    /// Whether `problem` says Envoy did not get this decision.
    fn unanswered(&self, problem: Option<&str>) -> bool {
        problem.is_some_and(|p| p.contains(UNANSWERED))
    }

    /// Has the decision log write what is queued and reopen its file (a no-op for stdout,
    /// stderr and off): what `logrotate` expects on SIGHUP. Blocks while the queue is full;
    /// call it off the async workers.
    pub fn reopen_decision_log(&self) {
        if let Some(tx) = &self.decision_log {
            let _ = tx.send(Message::Reopen);
        }
    }

    /// Writes out everything queued so far (decision log written, spans exported), waiting
    /// at most `timeout` in all. Used at shutdown and by tests. Returns whether every sink
    /// finished in time; what is still queued after that is lost at exit.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        // Ask every sink first, so that one stuck sink does not keep the others from flushing.
        let mut pending: Vec<_> = [&self.decision_log, &self.otlp]
            .into_iter()
            .flatten()
            .map(|tx| {
                let (ack_tx, ack_rx) = sync_channel(1);
                (tx, Some(Message::Flush(ack_tx)), ack_rx)
            })
            .collect();
        // Never a blocking send: a sink stuck on a dead collector keeps its queue full.
        loop {
            let mut waiting = false;
            for (tx, message, _) in &mut pending {
                if let Some(flush) = message.take() {
                    match tx.try_send(flush) {
                        Ok(()) => {}
                        Err(TrySendError::Full(back)) => {
                            *message = Some(back);
                            waiting = true;
                        }
                        Err(TrySendError::Disconnected(_)) => return false,
                    }
                }
            }
            if !waiting {
                break;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        pending.iter().all(|(_, _, ack)| {
            ack.recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .is_ok()
        })
    }

    /// Trace-id ratio sampling (as OpenTelemetry's TraceIdRatioBased: the low 8 bytes).
    fn ratio_samples(&self, trace_id: &[u8; 16]) -> bool {
        if self.sample_ratio >= 1.0 {
            return true;
        }
        let mut low = [0u8; 8];
        low.copy_from_slice(&trace_id[8..]);
        let bound = (self.sample_ratio * (1u64 << 63) as f64) as u64;
        (u64::from_be_bytes(low) >> 1) < bound
    }
}
