//! The span sink: `authz.check` spans exported over OTLP in batches, on a thread with its own
//! single-threaded runtime, so exporting never competes with Checks for the server's workers
//! and a slow or dead collector only ever holds up this thread.
//!
//! Spans are encoded as OTLP protobuf straight from the decision records ([`encoding`]) and
//! sent by Warrant's own OTLP client ([`transport`]), not through the OpenTelemetry SDK's
//! batch processor and exporter: that processor does not expose how many spans it dropped
//! (every dropped span must be counted), and building the SDK's span and then its proto
//! message, each with a copy of every string, cost more per Check than deciding it.

mod encoding;
mod transport;

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::time::{Duration, Instant};

use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::Resource;

use super::metrics::{Metrics, Sink};
use super::{AuditError, Message, QUEUE_CAPACITY, SINK_POLL};
use encoding::ExportBatch;
use transport::Transport;

/// Spans per OTLP export request.
const EXPORT_BATCH: usize = 512;
/// How long a span may wait for its batch to fill.
const EXPORT_DELAY: Duration = Duration::from_secs(1);
/// Upper bound for one export, retries included (a failed attempt is retried with backoff,
/// which also covers a pooled connection that went stale while idle).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// Upper bound for one attempt.
const EXPORT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// OTLP transport, as `telemetry.otlp.protocol` names it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
pub enum OtlpProtocol {
    /// OTLP/gRPC (port 4317 by convention).
    #[default]
    #[serde(rename = "grpc")]
    Grpc,
    /// OTLP/HTTP with protobuf bodies (port 4318, path `/v1/traces`); `http/protobuf` in
    /// OpenTelemetry's variables.
    #[serde(rename = "http", alias = "http/protobuf")]
    HttpProtobuf,
}

/// Where spans go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpTarget {
    /// For gRPC the collector's address (`http://host:4317`); for HTTP the full traces URL
    /// (`http://host:4318/v1/traces`).
    pub endpoint: String,
    /// How spans are sent: OTLP/gRPC, or OTLP/HTTP with protobuf bodies.
    pub protocol: OtlpProtocol,
}

/// Starts the exporter thread and returns its queue. Fails when the exporter cannot be built
/// (a malformed endpoint); an unreachable collector is not an error here: exports then fail
/// and their spans are counted as dropped.
pub(super) fn start(
    target: &OtlpTarget,
    service_name: &str,
    metrics: Arc<Metrics>,
) -> Result<SyncSender<Message>, AuditError> {
    let (tx, rx) = sync_channel(QUEUE_CAPACITY);
    let (ready_tx, ready_rx) = sync_channel(1);
    let endpoint = target.endpoint.clone();
    let target = target.clone();
    let resource = Resource::builder()
        .with_service_name(service_name.to_owned())
        .build();
    std::thread::Builder::new()
        .name("warrant-otlp".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    let _ = ready_tx.send(Err(error.to_string()));
                    return;
                }
            };
            // The gRPC channel spawns its connection task on the current runtime.
            let built = {
                let _entered = runtime.enter();
                Transport::new(&target, EXPORT_ATTEMPT_TIMEOUT)
            };
            let mut transport = match built {
                Ok(transport) => transport,
                Err(reason) => {
                    let _ = ready_tx.send(Err(reason));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            let scope = InstrumentationScope::builder("warrant")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build();
            let mut batch = ExportBatch::new(&resource, &scope);
            let mut sender = Sender {
                transport: &mut transport,
                runtime: &runtime,
                metrics: &metrics,
                endpoint: &target.endpoint,
                healthy: true,
                rejecting: false,
            };
            export_loop(&rx, &mut batch, &mut sender, &metrics);
        })
        .map_err(AuditError::Thread)?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(tx),
        Ok(Err(reason)) => Err(AuditError::Exporter { endpoint, reason }),
        Err(_) => Err(AuditError::Exporter {
            endpoint,
            reason: "the exporter thread stopped".to_owned(),
        }),
    }
}

/// Exports batches, counting what is lost and logging when exports start and stop failing.
struct Sender<'a> {
    transport: &'a mut Transport,
    runtime: &'a tokio::runtime::Runtime,
    metrics: &'a Metrics,
    endpoint: &'a str,
    healthy: bool,
    rejecting: bool,
}

impl Sender<'_> {
    /// Sends what `batch` holds (nothing when it is empty), leaving it empty.
    fn export(&mut self, batch: &mut ExportBatch) {
        if batch.is_empty() {
            return;
        }
        let n = batch.len() as u64;
        let request = batch.take_request();
        let transport = &mut *self.transport;
        let exported = self.runtime.block_on(async {
            tokio::time::timeout(EXPORT_TIMEOUT, transport.export(request, EXPORT_TIMEOUT)).await
        });
        let endpoint = self.endpoint;
        match exported.unwrap_or_else(|_| Err(format!("no answer within {EXPORT_TIMEOUT:?}"))) {
            Ok(rejected) => {
                // A collector cannot reject more spans than it was sent.
                let rejected = rejected.min(n);
                if !self.healthy {
                    tracing::info!(endpoint, "OTLP export recovered");
                }
                self.healthy = true;
                if rejected > 0 {
                    self.metrics.dropped(Sink::Otlp, rejected);
                    if !self.rejecting {
                        tracing::warn!(
                            endpoint,
                            rejected,
                            "the OTLP collector rejected spans (partial success); they are counted in warrant_audit_dropped_total{{sink=\"otlp\"}}"
                        );
                    }
                }
                self.rejecting = rejected > 0;
            }
            Err(error) => {
                self.metrics.dropped(Sink::Otlp, n);
                if self.healthy {
                    tracing::warn!(endpoint, %error, "OTLP export failed; spans are dropped and counted in warrant_audit_dropped_total{{sink=\"otlp\"}}");
                }
                self.healthy = false;
            }
        }
    }
}

fn export_loop(
    rx: &Receiver<Message>,
    batch: &mut ExportBatch,
    sender: &mut Sender<'_>,
    metrics: &Metrics,
) {
    let mut deadline = Instant::now();
    loop {
        // Wait on the queue only while nothing is pending; with a batch filling, poll (see
        // SINK_POLL) so that Checks queueing spans find nobody parked to wake.
        let message = if batch.is_empty() {
            match rx.recv() {
                Ok(message) => message,
                Err(_) => return,
            }
        } else {
            match rx.try_recv() {
                Ok(message) => message,
                Err(TryRecvError::Empty) => {
                    let now = Instant::now();
                    if now >= deadline {
                        sender.export(batch);
                    } else {
                        std::thread::sleep(SINK_POLL.min(deadline - now));
                    }
                    continue;
                }
                Err(TryRecvError::Disconnected) => {
                    sender.export(batch);
                    return;
                }
            }
        };
        match message {
            Message::Record(record) => {
                metrics.queued(Sink::Otlp, -1);
                if batch.is_empty() {
                    deadline = Instant::now() + EXPORT_DELAY;
                }
                batch.push(&record);
                if batch.len() >= EXPORT_BATCH {
                    sender.export(batch);
                }
            }
            Message::Flush(ack) => {
                sender.export(batch);
                let _ = ack.try_send(());
            }
            Message::Reopen => {}
        }
    }
}
