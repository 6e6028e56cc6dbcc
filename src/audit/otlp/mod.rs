//! The span sink: `authz.check` spans exported over OTLP in batches, on a thread with its own
//! single-threaded runtime, so exporting never competes with Checks for the server's workers
//! and a slow or dead collector only ever holds up this thread.
//!
//! Spans go to the OTLP exporter directly rather than through the SDK's batch processor,
//! because that processor does not expose how many spans it dropped, and every dropped span
//! must be counted.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::time::{Duration, Instant};

use opentelemetry::InstrumentationScope;
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkError;
use opentelemetry_sdk::trace::SpanExporter as _;

use super::metrics::{Metrics, Sink};
use super::{AuditError, Message, QUEUE_CAPACITY, SINK_POLL};

/// Spans per OTLP export request.
const EXPORT_BATCH: usize = 512;
/// How long a span may wait for its batch to fill.
const EXPORT_DELAY: Duration = Duration::from_secs(1);
/// Upper bound for one export, retries included (the exporter retries a failed attempt with
/// backoff, which also covers a pooled connection that went stale while idle).
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
            // The exporters spawn their connection tasks on the current runtime.
            let built = {
                let _entered = runtime.enter();
                build_exporter(&target)
            };
            let mut exporter = match built {
                Ok(exporter) => exporter,
                Err(reason) => {
                    let _ = ready_tx.send(Err(reason));
                    return;
                }
            };
            exporter.set_resource(&resource);
            let _ = ready_tx.send(Ok(()));
            let scope = InstrumentationScope::builder("warrant")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build();
            export_loop(&rx, &exporter, &scope, &runtime, &metrics, &target.endpoint);
            let _entered = runtime.enter();
            let _ = exporter.shutdown();
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

fn build_exporter(target: &OtlpTarget) -> Result<opentelemetry_otlp::SpanExporter, String> {
    let built = match target.protocol {
        OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(target.endpoint.clone())
            .with_timeout(EXPORT_ATTEMPT_TIMEOUT)
            .build(),
        OtlpProtocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(
                opentelemetry_http::hyper::HyperClient::with_default_connector(
                    EXPORT_ATTEMPT_TIMEOUT,
                    None,
                ),
            )
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(target.endpoint.clone())
            .with_timeout(EXPORT_ATTEMPT_TIMEOUT)
            .build(),
    };
    built.map_err(|e| e.to_string())
}

fn export_loop(
    rx: &Receiver<Message>,
    exporter: &opentelemetry_otlp::SpanExporter,
    scope: &InstrumentationScope,
    runtime: &tokio::runtime::Runtime,
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
        let exported = runtime
            .block_on(async { tokio::time::timeout(EXPORT_TIMEOUT, exporter.export(spans)).await });
        match exported.unwrap_or(Err(OTelSdkError::Timeout(EXPORT_TIMEOUT))) {
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
                        export(&mut batch);
                    } else {
                        std::thread::sleep(SINK_POLL.min(deadline - now));
                    }
                    continue;
                }
                Err(TryRecvError::Disconnected) => {
                    export(&mut batch);
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
                batch.push(record.to_span(scope));
                if batch.len() >= EXPORT_BATCH {
                    export(&mut batch);
                }
            }
            Message::Flush(ack) => {
                export(&mut batch);
                let _ = ack.try_send(());
            }
            Message::Reopen => {}
        }
    }
}
