//! Sending an encoded `ExportTraceServiceRequest` to the collector: OTLP/gRPC (unary
//! `opentelemetry.proto.collector.trace.v1.TraceService/Export`) or OTLP/HTTP (`POST` of the
//! protobuf body, `application/x-protobuf`). Each attempt is bounded; a failure the OTLP
//! specification calls retryable is retried with exponential backoff and jitter (OTLP
//! 1.x "Failures", "Retryable response codes"; gRPC `CANCELLED`, `DEADLINE_EXCEEDED`,
//! `RESOURCE_EXHAUSTED`, `ABORTED`, `OUT_OF_RANGE`, `UNAVAILABLE`, `DATA_LOSS`; HTTP 429, 502,
//! 503, 504; a connection that failed), as OpenTelemetry's own exporter does.
//!
//! Headers from `OTEL_EXPORTER_OTLP_HEADERS` and `OTEL_EXPORTER_OTLP_TRACES_HEADERS`
//! (`key=value,key2=value2`, values percent-decoded) go with every export.

use std::time::{Duration, Instant, SystemTime};

use opentelemetry_http::HttpClient as _;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::bytes::Bytes;

use super::{OtlpProtocol, OtlpTarget};
use crate::protobuf::Encoded;

/// The gRPC path of `TraceService/Export` (trace_service.proto).
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
/// Retries after a first failed attempt.
const MAX_RETRIES: u32 = 3;
/// The first backoff; it doubles up to [`MAX_BACKOFF`], plus up to [`MAX_JITTER`].
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_millis(1600);
const MAX_JITTER: Duration = Duration::from_millis(100);

/// Where and how exports are sent.
pub(super) struct Transport {
    kind: Kind,
    /// Extra request headers (gRPC metadata), from the environment.
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

enum Kind {
    Grpc(tonic::client::Grpc<tonic::transport::Channel>),
    Http {
        client: Box<opentelemetry_http::hyper::HyperClient>,
        url: http::Uri,
    },
}

/// How one attempt failed.
enum Failure {
    /// Worth trying again.
    Retryable(String),
    /// Not: the collector refused the request as it is.
    Permanent(String),
}

impl Transport {
    /// A transport to `target`, each attempt bounded by `attempt_timeout`. gRPC connects
    /// lazily (at the first export), so it must be built within a Tokio runtime; an
    /// unreachable collector is not an error here.
    ///
    /// # Errors
    /// The endpoint is not a valid URI.
    pub(super) fn new(target: &OtlpTarget, attempt_timeout: Duration) -> Result<Self, String> {
        let kind = match target.protocol {
            OtlpProtocol::Grpc => {
                let endpoint = tonic::transport::Endpoint::from_shared(target.endpoint.clone())
                    .map_err(|e| format!("{e}"))?
                    .connect_timeout(attempt_timeout)
                    .timeout(attempt_timeout);
                Kind::Grpc(tonic::client::Grpc::new(endpoint.connect_lazy()))
            }
            OtlpProtocol::HttpProtobuf => Kind::Http {
                client: Box::new(
                    opentelemetry_http::hyper::HyperClient::with_default_connector(
                        attempt_timeout,
                        None,
                    ),
                ),
                url: target
                    .endpoint
                    .parse()
                    .map_err(|e: http::uri::InvalidUri| e.to_string())?,
            },
        };
        Ok(Self {
            kind,
            headers: headers_from_env(|name| std::env::var(name).ok()),
        })
    }

    /// Sends `request` (an encoded `ExportTraceServiceRequest`), retrying what may succeed
    /// later for at most `within`. `Ok` holds how many spans the collector rejected (OTLP
    /// partial success).
    ///
    /// # Errors
    /// Why the spans were not delivered (the last attempt's failure).
    pub(super) async fn export(&mut self, request: Bytes, within: Duration) -> Result<u64, String> {
        let started = Instant::now();
        let mut backoff = INITIAL_BACKOFF;
        let mut retries = 0;
        loop {
            let failure = match self.attempt(request.clone()).await {
                Ok(rejected) => return Ok(rejected),
                Err(Failure::Permanent(why)) => return Err(why),
                Err(Failure::Retryable(why)) => why,
            };
            let wait = backoff + jitter();
            if retries == MAX_RETRIES || started.elapsed() + wait >= within {
                return Err(failure);
            }
            tokio::time::sleep(wait).await;
            retries += 1;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn attempt(&mut self, body: Bytes) -> Result<u64, Failure> {
        match &mut self.kind {
            Kind::Grpc(grpc) => {
                grpc.ready().await.map_err(|e| {
                    Failure::Retryable(format!("the collector is unreachable: {e}"))
                })?;
                let mut request = tonic::Request::new(Encoded(body));
                for (name, value) in &self.headers {
                    if let (Ok(key), Ok(value)) = (
                        tonic::metadata::MetadataKey::from_bytes(name.as_str().as_bytes()),
                        tonic::metadata::MetadataValue::try_from(value.as_bytes()),
                    ) {
                        request.metadata_mut().insert(key, value);
                    }
                }
                let codec =
                    tonic_prost::ProstCodec::<Encoded, ExportTraceServiceResponse>::default();
                let path = http::uri::PathAndQuery::from_static(EXPORT_PATH);
                match grpc.unary(request, path, codec).await {
                    Ok(response) => Ok(rejected_spans(&response.into_inner())),
                    Err(status) => Err(grpc_failure(&status)),
                }
            }
            Kind::Http { client, url } => {
                let mut request = http::Request::post(url.clone())
                    .header(http::header::CONTENT_TYPE, "application/x-protobuf")
                    .body(body)
                    .map_err(|e| Failure::Permanent(e.to_string()))?;
                for (name, value) in &self.headers {
                    request.headers_mut().insert(name.clone(), value.clone());
                }
                let response = client.send_bytes(request).await.map_err(|e| {
                    Failure::Retryable(format!("the collector is unreachable: {e}"))
                })?;
                let status = response.status();
                if status.is_success() {
                    // An empty or unreadable body is a full success.
                    let body = response.into_body();
                    return Ok(prost::Message::decode(body)
                        .map_or(0, |r: ExportTraceServiceResponse| rejected_spans(&r)));
                }
                let why = format!("the collector answered HTTP {status}");
                Err(match status.as_u16() {
                    429 | 502 | 503 | 504 => Failure::Retryable(why),
                    _ => Failure::Permanent(why),
                })
            }
        }
    }
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport").finish_non_exhaustive()
    }
}

/// The spans a collector's answer says it rejected (`partial_success.rejected_spans`).
fn rejected_spans(response: &ExportTraceServiceResponse) -> u64 {
    response.partial_success.as_ref().map_or(0, |partial| {
        u64::try_from(partial.rejected_spans).unwrap_or(0)
    })
}

/// Whether a gRPC failure is worth retrying (OTLP/gRPC "Failures"). A status the client made
/// itself from a transport error (a connection the collector or a proxy cut, which the next
/// attempt reconnects) is retried too, whatever its code (tonic gives `UNKNOWN`).
fn grpc_failure(status: &tonic::Status) -> Failure {
    use tonic::Code;
    if std::error::Error::source(status).is_some() {
        return Failure::Retryable(format!(
            "the connection to the collector failed: {}",
            status.message()
        ));
    }
    let why = format!(
        "the collector answered {:?}: {}",
        status.code(),
        status.message()
    );
    match status.code() {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::ResourceExhausted
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => Failure::Retryable(why),
        _ => Failure::Permanent(why),
    }
}

/// Up to [`MAX_JITTER`], from the clock's nanoseconds (spreads retries of many Warrants).
fn jitter() -> Duration {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let max = u32::try_from(MAX_JITTER.as_nanos()).unwrap_or(u32::MAX);
    Duration::from_nanos(u64::from(nanos % max.max(1)))
}

/// `OTEL_EXPORTER_OTLP_HEADERS`, then `OTEL_EXPORTER_OTLP_TRACES_HEADERS` (whose keys win):
/// `key=value` pairs separated by `,`, values percent-decoded; a malformed pair is skipped.
fn headers_from_env(
    env: impl Fn(&str) -> Option<String>,
) -> Vec<(http::HeaderName, http::HeaderValue)> {
    let mut headers: Vec<(http::HeaderName, http::HeaderValue)> = Vec::new();
    for variable in [
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    ] {
        let Some(value) = env(variable) else {
            continue;
        };
        for pair in value.split(',').filter(|pair| !pair.trim().is_empty()) {
            let Some((key, value)) = pair.split_once('=') else {
                tracing::warn!(
                    variable,
                    "ignored an OTLP export header entry without `=` (expected key=value,key2=value2)"
                );
                continue;
            };
            let value = percent_encoding::percent_decode_str(value.trim()).decode_utf8_lossy();
            let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(key.trim().to_ascii_lowercase().as_bytes()),
                http::HeaderValue::from_str(&value),
            ) else {
                // The value may be a secret: only the name is logged.
                tracing::warn!(
                    variable,
                    header = key.trim(),
                    "ignored an OTLP export header that is not a valid HTTP header name and value"
                );
                continue;
            };
            headers.retain(|(existing, _)| *existing != name);
            headers.push((name, value));
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_come_from_both_variables_the_traces_one_winning() {
        let env = |name: &str| match name {
            "OTEL_EXPORTER_OTLP_HEADERS" => Some("api-key=a%20b, X-Tenant=one,broken".into()),
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS" => Some("x-tenant=two,bad name=x".into()),
            _ => None,
        };
        let headers: Vec<(String, String)> = headers_from_env(env)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        assert_eq!(
            headers,
            [
                ("api-key".to_owned(), "a b".to_owned()),
                ("x-tenant".to_owned(), "two".to_owned())
            ]
        );
        assert!(headers_from_env(|_| None).is_empty());
    }

    #[test]
    fn a_connection_the_client_lost_is_retried_whatever_its_code() {
        let cut = tonic::Status::from_error(Box::new(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection reset by peer",
        )));
        assert!(matches!(grpc_failure(&cut), Failure::Retryable(_)));
        let answered = tonic::Status::unknown("the collector's own UNKNOWN");
        assert!(matches!(grpc_failure(&answered), Failure::Permanent(_)));
    }

    #[test]
    fn only_transient_grpc_failures_are_retried() {
        for (code, retried) in [
            (tonic::Code::Unavailable, true),
            (tonic::Code::ResourceExhausted, true),
            (tonic::Code::DeadlineExceeded, true),
            (tonic::Code::InvalidArgument, false),
            (tonic::Code::Unauthenticated, false),
            (tonic::Code::Unimplemented, false),
        ] {
            let failure = grpc_failure(&tonic::Status::new(code, "x"));
            assert_eq!(
                matches!(failure, Failure::Retryable(_)),
                retried,
                "{code:?}"
            );
        }
    }
}
