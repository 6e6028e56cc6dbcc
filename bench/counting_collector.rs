//! An OTLP/gRPC trace collector that counts the spans it receives and discards them: the live
//! collector of `benches/check.rs` and of `bench/run` with `OTLP=1` (`bench/otlp_collector.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};

/// Counts spans; clones share the count.
#[derive(Clone, Default)]
pub(crate) struct CountingCollector(Arc<AtomicU64>);

impl CountingCollector {
    /// The spans received so far.
    pub(crate) fn spans(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Serves OTLP/gRPC on `listener` until the runtime ends.
    pub(crate) fn serve(&self, listener: tokio::net::TcpListener) {
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(self.clone()))
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
    }
}

#[tonic::async_trait]
impl TraceService for CountingCollector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans: usize = request
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .map(|ss| ss.spans.len())
            .sum();
        self.0.fetch_add(spans as u64, Ordering::Relaxed);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}
