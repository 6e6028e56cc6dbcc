//! Audit: every decision becomes a metric sample, a decision-log line and an OpenTelemetry
//! span, all derived from the one [`Decision`]. Audit observes decisions; it never makes them.
//!
//! The Check path only counts metrics (atomics) and hands a record to each enabled sink with a
//! non-blocking `try_send` into a bounded queue. Each sink drains its queue on its own thread,
//! so a slow disk or a dead collector cannot slow Checks down: when a queue is full, or an
//! export fails, the records are dropped and counted in `warrant_audit_dropped_total{sink}`.
//! Spans are exported in batches with the OTLP exporter directly rather than through the
//! SDK's batch processor, because that processor does not expose how many spans it dropped.

pub mod metrics;
pub mod record;
pub mod redact;
pub mod trace_context;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, sync_channel};
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, SpanExporter as _};

pub use metrics::{Metrics, Sink};
pub use record::DecisionRecord;
pub use redact::Redactor;
pub use trace_context::TraceParent;

use crate::policy::Decision;
use crate::request::AuthzRequest;

/// Records queued per sink before new ones are dropped.
const QUEUE_CAPACITY: usize = 16_384;
/// Spans per OTLP export request.
const EXPORT_BATCH: usize = 512;
/// How long a span may wait for its batch to fill.
const EXPORT_DELAY: Duration = Duration::from_secs(1);
/// Upper bound for one OTLP export call.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where decision-log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecisionLogTarget {
    Stdout,
    Stderr,
    File(PathBuf),
    Off,
}

/// What to audit, resolved from the config file and the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditSettings {
    pub service_name: String,
    /// OTLP/gRPC collector endpoint, e.g. `http://127.0.0.1:4317`; `None` disables spans.
    pub otlp_endpoint: Option<String>,
    /// Head sampling for checks whose caller sent no trace context (0.0–1.0). A caller's
    /// sampled flag is always honoured.
    pub sample_ratio: f64,
    pub decision_log: DecisionLogTarget,
    /// Headers whose values never reach a sink, beyond [`redact::ALWAYS_SENSITIVE`].
    pub sensitive_headers: Vec<String>,
}

/// Why audit could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    #[error("cannot open decision log {path}: {source}")]
    DecisionLog {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot build the OTLP exporter for {endpoint}: {reason}")]
    Exporter { endpoint: String, reason: String },
    #[error("cannot start audit thread: {0}")]
    Thread(std::io::Error),
}

enum Message {
    Record(Arc<DecisionRecord>),
    /// Drain, flush and acknowledge.
    Flush(SyncSender<()>),
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

    /// Starts the enabled sinks. Must run inside a tokio runtime (the OTLP exporter uses it).
    pub fn start(settings: &AuditSettings, metrics: Arc<Metrics>) -> Result<Self, AuditError> {
        let decision_log = match &settings.decision_log {
            DecisionLogTarget::Off => None,
            target => {
                let writer: Box<dyn Write + Send> = match target {
                    DecisionLogTarget::Stdout => Box::new(std::io::stdout()),
                    DecisionLogTarget::Stderr => Box::new(std::io::stderr()),
                    DecisionLogTarget::File(path) => Box::new(
                        std::fs::OpenOptions::new()
                            .create(true)
                            .append(true)
                            .open(path)
                            .map_err(|source| AuditError::DecisionLog {
                                path: path.clone(),
                                source,
                            })?,
                    ),
                    DecisionLogTarget::Off => Box::new(std::io::sink()),
                };
                let (tx, rx) = sync_channel(QUEUE_CAPACITY);
                let metrics = Arc::clone(&metrics);
                std::thread::Builder::new()
                    .name("warrant-decision-log".into())
                    .spawn(move || write_decision_log(rx, writer, &metrics))
                    .map_err(AuditError::Thread)?;
                Some(tx)
            }
        };
        let otlp = match &settings.otlp_endpoint {
            None => None,
            Some(endpoint) => {
                use opentelemetry_otlp::WithExportConfig as _;
                let mut exporter = opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_endpoint(endpoint.clone())
                    .with_timeout(EXPORT_TIMEOUT)
                    .build()
                    .map_err(|e| AuditError::Exporter {
                        endpoint: endpoint.clone(),
                        reason: e.to_string(),
                    })?;
                exporter.set_resource(
                    &Resource::builder_empty()
                        .with_service_name(settings.service_name.clone())
                        .build(),
                );
                let scope = InstrumentationScope::builder("warrant")
                    .with_version(env!("CARGO_PKG_VERSION"))
                    .build();
                let runtime = tokio::runtime::Handle::current();
                let (tx, rx) = sync_channel(QUEUE_CAPACITY);
                let metrics = Arc::clone(&metrics);
                let endpoint = endpoint.clone();
                std::thread::Builder::new()
                    .name("warrant-otlp".into())
                    .spawn(move || {
                        export_spans(rx, &exporter, &scope, &runtime, &metrics, &endpoint);
                        let _ = exporter.shutdown();
                    })
                    .map_err(AuditError::Thread)?;
                Some(tx)
            }
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

    /// Audits one decision. `parent` is the caller's trace context, if any. Never blocks.
    pub fn record(
        &self,
        decision: &Decision,
        request: &AuthzRequest,
        malformed: bool,
        start: SystemTime,
        duration: Duration,
        parent: Option<TraceParent>,
    ) {
        self.metrics.observe(decision, duration);
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
                .map_or_else(|| self.ratio_samples(&trace_id), |p| p.sampled);
        let record = Arc::new(DecisionRecord::new(
            decision,
            request,
            &self.redactor,
            malformed,
            (start, duration),
            parent,
            (trace_id, span_id, sampled),
        ));
        if let Some(tx) = &self.decision_log
            && tx.try_send(Message::Record(Arc::clone(&record))).is_err()
        {
            self.metrics.dropped(Sink::DecisionLog, 1);
        }
        if sampled
            && let Some(tx) = &self.otlp
            && tx.try_send(Message::Record(record)).is_err()
        {
            self.metrics.dropped(Sink::Otlp, 1);
        }
    }

    /// Writes out everything queued so far (decision log flushed, spans exported), waiting
    /// at most `timeout` per sink. Used at shutdown and by tests.
    pub fn flush(&self, timeout: Duration) {
        for tx in [&self.decision_log, &self.otlp].into_iter().flatten() {
            let (ack_tx, ack_rx) = sync_channel(1);
            if tx.send(Message::Flush(ack_tx)).is_ok() {
                let _ = ack_rx.recv_timeout(timeout);
            }
        }
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

fn write_decision_log(rx: Receiver<Message>, writer: Box<dyn Write + Send>, metrics: &Metrics) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, writer);
    while let Ok(mut message) = rx.recv() {
        loop {
            match message {
                Message::Record(record) => {
                    let mut line = record.to_json_line();
                    line.push('\n');
                    if out.write_all(line.as_bytes()).is_err() {
                        metrics.dropped(Sink::DecisionLog, 1);
                    }
                }
                Message::Flush(ack) => {
                    let _ = out.flush();
                    let _ = ack.try_send(());
                }
            }
            // Drain what is queued, then flush once: one write syscall per burst.
            match rx.try_recv() {
                Ok(next) => message = next,
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        let _ = out.flush();
    }
    let _ = out.flush();
}

fn export_spans(
    rx: Receiver<Message>,
    exporter: &opentelemetry_otlp::SpanExporter,
    scope: &InstrumentationScope,
    runtime: &tokio::runtime::Handle,
    metrics: &Metrics,
    endpoint: &str,
) {
    let mut batch = Vec::with_capacity(EXPORT_BATCH);
    let mut healthy = true;
    let mut export = |batch: &mut Vec<_>| {
        if batch.is_empty() {
            return;
        }
        let spans = std::mem::replace(batch, Vec::with_capacity(EXPORT_BATCH));
        let n = spans.len() as u64;
        match runtime.block_on(exporter.export(spans)) {
            Ok(()) => {
                if !healthy {
                    tracing::info!(endpoint, "OTLP export recovered");
                }
                healthy = true;
            }
            Err(error) => {
                metrics.dropped(Sink::Otlp, n);
                if healthy {
                    tracing::warn!(endpoint, %error, "OTLP export failed; spans are dropped and counted in warrant_audit_dropped_total{{sink=\"otlp\"}}");
                }
                healthy = false;
            }
        }
    };
    let mut deadline: Option<Instant> = None;
    loop {
        let message = match deadline {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
        };
        match message {
            Ok(Message::Record(record)) => {
                batch.push(record.to_span(scope));
                deadline.get_or_insert_with(|| Instant::now() + EXPORT_DELAY);
                if batch.len() >= EXPORT_BATCH {
                    export(&mut batch);
                    deadline = None;
                }
            }
            Ok(Message::Flush(ack)) => {
                export(&mut batch);
                deadline = None;
                let _ = ack.try_send(());
            }
            Err(RecvTimeoutError::Timeout) => {
                export(&mut batch);
                deadline = None;
            }
            Err(RecvTimeoutError::Disconnected) => {
                export(&mut batch);
                return;
            }
        }
    }
}
