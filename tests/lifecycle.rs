//! The server's life: gRPC health checking, opt-in reflection, and a SIGTERM-style shutdown
//! that turns health and readiness first, drains Checks in flight, and is bounded by
//! `shutdown_grace`.

// Test code: a failed unwrap, expect or assertion is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const FRONTEND: &str = "spiffe://prod.example.org/ns/shop/sa/frontend";

use common::fixtures::slow_policy_config as config;

async fn health(addr: std::net::SocketAddr, service: &str) -> Result<i32, tonic::Status> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(channel);
    client
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .map(|r| r.into_inner().status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_serves_and_reflection_is_opt_in() {
    let dir = common::fixtures::temp_dir("life", "health");
    let bound = warrant::server::bind(config(&dir, "")).await.unwrap();
    let addr = bound.grpc_addr().unwrap();
    tokio::spawn(async move { bound.serve(std::future::pending()).await.unwrap() });
    for service in ["", "envoy.service.auth.v3.Authorization"] {
        assert_eq!(
            health(addr, service).await.unwrap(),
            ServingStatus::Serving as i32,
            "{service:?}"
        );
    }
    let unknown = health(addr, "nope.Service").await.unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    // Reflection is off: its service is unimplemented.
    assert_eq!(reflection(addr).await, Some(tonic::Code::Unimplemented));
    let dir = common::fixtures::temp_dir("life", "reflection");
    let bound = warrant::server::bind(config(&dir, "grpc_reflection: true\n"))
        .await
        .unwrap();
    let addr = bound.grpc_addr().unwrap();
    tokio::spawn(async move { bound.serve(std::future::pending()).await.unwrap() });
    assert_eq!(reflection(addr).await, None, "served when asked for");
}

/// Field 1 of a CheckRequest (`attributes`) is a message; sent as a varint, the call cannot be
/// decoded. Returns the error code Warrant answers with.
async fn not_a_check_request(addr: std::net::SocketAddr) -> tonic::Code {
    #[derive(Clone, PartialEq, prost::Message)]
    struct Bogus {
        #[prost(uint64, tag = "1")]
        attributes: u64,
    }
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static("/envoy.service.auth.v3.Authorization/Check");
    grpc.unary::<_, Bogus, _>(
        tonic::Request::new(Bogus { attributes: 7 }),
        path,
        tonic_prost::ProstCodec::default(),
    )
    .await
    .map(|_| tonic::Code::Ok)
    .unwrap_or_else(|status| status.code())
}

/// Calls gRPC reflection with no request: `None` when the service answers, else the error.
async fn reflection(addr: std::net::SocketAddr) -> Option<tonic::Code> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    );
    grpc.streaming::<_, (), (), _>(
        tonic::Request::new(tokio_stream::empty()),
        path,
        tonic_prost::ProstCodec::default(),
    )
    .await
    .err()
    .map(|s| s.code())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_turns_health_first_and_drains_checks_in_flight() {
    let dir = common::fixtures::temp_dir("life", "drain");
    // The slow rule must finish, however loaded the machine: a deadline far above it.
    let bound = warrant::server::bind(config(
        &dir,
        "shutdown_grace: 30s\nlimits: {check_timeout: 20s}\n",
    ))
    .await
    .unwrap();
    let addr = bound.grpc_addr().unwrap();
    let live = std::sync::Arc::clone(bound.policy());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        bound
            .serve(async {
                let _ = stop_rx.await;
            })
            .await
    });
    let mut client = AuthorizationClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    // A health watcher (as a load balancer might keep) sees SERVING, then NOT_SERVING.
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut watch = HealthClient::new(channel)
        .watch(HealthCheckRequest {
            service: "envoy.service.auth.v3.Authorization".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap().status;
    assert_eq!(first, ServingStatus::Serving as i32);
    let started = Instant::now();
    let slow =
        tokio::spawn(async move { client.check(common::fixtures::get(FRONTEND, "/slow")).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!slow.is_finished(), "the slow Check is in flight");
    let _ = stop_tx.send(());
    let turned = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .expect("health turns before the drain ends")
        .unwrap()
        .unwrap()
        .status;
    assert_eq!(turned, ServingStatus::NotServing as i32);
    assert_eq!(live.readiness().unwrap_err(), "shutting down");
    let response = slow
        .await
        .unwrap()
        .expect("the Check in flight finishes")
        .into_inner();
    assert_eq!(response.status.map(|s| s.code), Some(0), "and is allowed");
    server.await.unwrap().expect("a clean shutdown");
    // The health watch, still open, did not hold the exit for the whole grace (30 s): once
    // no Check was in flight, the drain ended.
    assert!(started.elapsed() < Duration::from_secs(20));
    drop(watch);
    // The listener is closed.
    assert!(
        AuthorizationClient::connect(format!("http://{addr}"))
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_grace_bounds_the_drain() {
    let dir = common::fixtures::temp_dir("life", "grace");
    let bound = warrant::server::bind(config(&dir, "shutdown_grace: 200ms\n"))
        .await
        .unwrap();
    let addr = bound.grpc_addr().unwrap();
    let live = std::sync::Arc::clone(bound.policy());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        bound
            .serve(async {
                let _ = stop_rx.await;
            })
            .await
    });
    let mut client = AuthorizationClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    // Three slow Checks in a row on one connection: far longer than the grace.
    let slow = tokio::spawn(async move {
        for _ in 0..3 {
            let _ = client.check(common::fixtures::get(FRONTEND, "/slow")).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopping = Instant::now();
    let _ = stop_tx.send(());
    server.await.unwrap().expect("shutdown returns");
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "{:?}",
        stopping.elapsed()
    );
    slow.abort();
    // The Check cut off is counted: Envoy got no decision for it.
    let metrics = live.metrics().encode();
    assert!(
        metrics.contains("warrant_checks_refused_total{reason=\"shutdown\"} 1"),
        "{metrics}"
    );
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unix_socket_listener_for_sidecars() {
    use std::os::unix::fs::PermissionsExt;
    let dir = common::fixtures::temp_dir("life", "uds");
    let socket = dir.join("authz.sock");
    // A stale socket from an earlier run is replaced.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let mut config = config(&dir, "");
    config.listen = format!("unix:{}", socket.display()).parse().unwrap();
    let bound = warrant::server::bind(config.clone()).await.unwrap();
    assert_eq!(bound.grpc_addr(), None);
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    // A live socket is not taken over.
    let refused = warrant::server::bind(config.clone()).await.unwrap_err();
    assert!(
        refused.to_string().contains("another process is listening"),
        "{refused}"
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        bound
            .serve(async {
                let _ = stop_rx.await;
            })
            .await
    });
    let path = socket.clone();
    let channel = tonic::transport::Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: http::Uri| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::connect(path).await?,
                ))
            }
        }))
        .await
        .unwrap();
    let response = AuthorizationClient::new(channel)
        .check(common::fixtures::get(FRONTEND, "/fast"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.status.map(|s| s.code), Some(0));
    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
    assert!(!socket.exists(), "the socket is removed at shutdown");
    // A path that is not a socket is never replaced.
    std::fs::write(&socket, "not a socket").unwrap();
    let refused = warrant::server::bind(config).await.unwrap_err();
    assert!(refused.to_string().contains("is not a socket"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_limit_answers_with_an_error_not_a_decision() {
    let dir = common::fixtures::temp_dir("life", "limits");
    let bound = warrant::server::bind(config(
        &dir,
        "limits: {max_request_bytes: 2000, max_concurrent_checks: 1, check_timeout: 50ms}\n",
    ))
    .await
    .unwrap();
    let addr = bound.grpc_addr().unwrap();
    let live = std::sync::Arc::clone(bound.policy());
    tokio::spawn(async move { bound.serve(std::future::pending()).await.unwrap() });
    let connect = || AuthorizationClient::connect(format!("http://{addr}"));
    let mut client = connect().await.unwrap();
    // Within the limits.
    let ok = client
        .check(common::fixtures::get(FRONTEND, "/fast"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.status.map(|s| s.code), Some(0));
    // Too large.
    let mut large = common::fixtures::get(FRONTEND, "/fast");
    if let Some(http) = large
        .attributes
        .as_mut()
        .and_then(|a| a.request.as_mut())
        .and_then(|r| r.http.as_mut())
    {
        http.headers.insert("x-padding".into(), "x".repeat(4000));
    }
    let too_large = client.check(large).await.unwrap_err();
    assert!(
        matches!(
            too_large.code(),
            tonic::Code::ResourceExhausted | tonic::Code::OutOfRange
        ),
        "{too_large:?}"
    );
    let metrics = live.metrics().encode();
    assert!(
        metrics.contains("warrant_checks_refused_total{reason=\"too_large\"} 1"),
        "{metrics}"
    );
    // Not a CheckRequest: refused before the handler, and counted too.
    let malformed = not_a_check_request(addr).await;
    assert_eq!(malformed, tonic::Code::Internal);
    let metrics = live.metrics().encode();
    assert!(
        metrics.contains("warrant_checks_refused_total{reason=\"malformed\"} 1"),
        "{metrics}"
    );
    // Past check_timeout: the slow rule takes longer than 50 ms.
    let late = client
        .check(common::fixtures::get(FRONTEND, "/slow"))
        .await
        .unwrap_err();
    assert_eq!(late.code(), tonic::Code::DeadlineExceeded, "{late:?}");
    // Its evaluation still holds the one slot until it ends.
    while in_flight(&live) > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // One Check at a time: a second one while the first is decided is refused at once.
    let mut other = connect().await.unwrap();
    let slow =
        tokio::spawn(async move { client.check(common::fixtures::get(FRONTEND, "/slow")).await });
    tokio::time::sleep(Duration::from_millis(30)).await;
    let refused = other
        .check(common::fixtures::get(FRONTEND, "/fast"))
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    let _ = slow.await;
    let metrics = live.metrics().encode();
    assert!(
        metrics.contains("warrant_checks_refused_total{reason=\"overloaded\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("warrant_checks_refused_total{reason=\"timeout\"} 2"),
        "{metrics}"
    );
    // Late Checks are not counted as decisions: Envoy never got them.
    assert!(
        metrics
            .contains("warrant_checks_total{decision=\"allow\",stage=\"rules\",rule=\"slow\"} 0"),
        "{metrics}"
    );
    // A refusal is not a decision: the one allowed /fast Check is the only one counted.
    assert!(
        metrics
            .contains("warrant_checks_total{decision=\"allow\",stage=\"rules\",rule=\"fast\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_delay_keeps_serving_while_health_says_not_serving() {
    let dir = common::fixtures::temp_dir("life", "delay");
    let bound = warrant::server::bind(config(&dir, "shutdown_delay: 500ms\n"))
        .await
        .unwrap();
    let addr = bound.grpc_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        bound
            .serve(async {
                let _ = stop_rx.await;
            })
            .await
    });
    assert_eq!(
        health(addr, "").await.unwrap(),
        ServingStatus::Serving as i32
    );
    let stopping = Instant::now();
    let _ = stop_tx.send(());
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Within the delay: health says NOT_SERVING on a new connection, and Checks are still
    // answered, so a load balancer has time to move away.
    assert_eq!(
        health(addr, "envoy.service.auth.v3.Authorization")
            .await
            .unwrap(),
        ServingStatus::NotServing as i32
    );
    let mut client = AuthorizationClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let response = client
        .check(common::fixtures::get(FRONTEND, "/fast"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.status.map(|s| s.code), Some(0));
    drop(client);
    server.await.unwrap().unwrap();
    assert!(stopping.elapsed() >= Duration::from_millis(500));
}

/// `warrant_checks_in_flight` now.
fn in_flight(live: &warrant::server::live::LivePolicy) -> i64 {
    let metrics = live.metrics().encode();
    common::fixtures::metric(&metrics, "warrant_checks_in_flight ")
        .unwrap_or_else(|| panic!("no warrant_checks_in_flight in {metrics}")) as i64
}

/// Rules are decided on the decider threads, not the async workers: while slow rules keep
/// every decider busy, the deadline still answers on time, gRPC health and `/readyz` answer, a
/// Check queued behind them is refused at its deadline and never decided, and shutdown is
/// bounded by `shutdown_grace`. Each "on time" is an order, not a timing: it happens while
/// the slow rules are still running (their slots still taken).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_rules_starve_neither_health_nor_the_limits() {
    let dir = common::fixtures::temp_dir("life", "starve");
    let bound = warrant::server::bind(config(
        &dir,
        "limits: {check_timeout: 100ms}\nshutdown_grace: 100ms\nadmin: {listen: 127.0.0.1:0}\n",
    ))
    .await
    .unwrap();
    let (addr, admin) = (bound.grpc_addr().unwrap(), bound.admin_addr().unwrap());
    let live = std::sync::Arc::clone(bound.policy());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        bound
            .serve(async {
                let _ = stop_rx.await;
            })
            .await
    });
    // One more slow Check than there are deciders (one per CPU): one of them waits in line.
    let deciders = std::thread::available_parallelism().map_or(1, usize::from);
    let mut slow = Vec::new();
    for _ in 0..=deciders {
        let mut client = AuthorizationClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        slow.push(tokio::spawn(async move {
            client.check(common::fixtures::get(FRONTEND, "/slow")).await
        }));
    }
    for check in slow {
        let late = check.await.unwrap().unwrap_err();
        assert_eq!(late.code(), tonic::Code::DeadlineExceeded, "{late:?}");
    }
    // Every one was answered at its deadline, while the deciders still evaluate; the one
    // still queued freed its slot then.
    assert_eq!(
        in_flight(&live),
        deciders as i64,
        "answered only after deciding, or a queued Check kept its slot"
    );
    assert_eq!(
        health(addr, "").await.unwrap(),
        ServingStatus::Serving as i32
    );
    assert_eq!(common::fixtures::http_get(admin, "/readyz").0, 200);
    let mut client = AuthorizationClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let queued = client
        .check(common::fixtures::get(FRONTEND, "/fast"))
        .await
        .unwrap_err();
    assert_eq!(queued.code(), tonic::Code::DeadlineExceeded, "{queued:?}");
    assert!(in_flight(&live) >= 1, "the slow rules still run");
    // Shutdown waits for the slow rules (within the audit flush's 5 s) so that their
    // records, unanswered, are written: then every Check was refused at its deadline, and
    // none was counted as decided.
    let _ = stop_tx.send(());
    server.await.unwrap().expect("a clean shutdown");
    assert_eq!(in_flight(&live), 0, "shutdown waits for the deciders");
    let metrics = live.metrics().encode();
    let refused = format!(
        "warrant_checks_refused_total{{reason=\"timeout\"}} {}",
        deciders + 2
    );
    assert!(metrics.contains(&refused), "{refused} in {metrics}");
    for rule in ["slow", "fast"] {
        let decided =
            format!("warrant_checks_total{{decision=\"allow\",stage=\"rules\",rule=\"{rule}\"}} 0");
        assert!(metrics.contains(&decided), "{decided} in {metrics}");
    }
}

/// Opens a Check call on a fresh HTTP/2 connection and sends part of its body (a gRPC frame
/// announcing 1,000 bytes, then 10); `reset` then cancels the stream, else the connection is
/// dropped. The server never gets a CheckRequest.
async fn abandon_mid_body(addr: std::net::SocketAddr, reset: bool) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut client, connection) = h2::client::handshake(tcp).await.unwrap();
    let driver = tokio::spawn(connection);
    let request = http::Request::post(format!(
        "http://{addr}/envoy.service.auth.v3.Authorization/Check"
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .body(())
    .unwrap();
    let (_response, mut body) = client.send_request(request, false).unwrap();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&1000u32.to_be_bytes());
    frame.extend_from_slice(&[0x0a; 10]);
    body.send_data(bytes::Bytes::from(frame), false).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    if reset {
        body.send_reset(h2::Reason::CANCEL);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(body);
    drop(client);
    driver.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_abandoned_mid_body_is_counted_as_cancelled() {
    let dir = common::fixtures::temp_dir("life", "abandoned");
    let bound = warrant::server::bind(config(&dir, "")).await.unwrap();
    let addr = bound.grpc_addr().unwrap();
    let live = std::sync::Arc::clone(bound.policy());
    tokio::spawn(async move { bound.serve(std::future::pending()).await.unwrap() });
    for (reset, count) in [(true, 1), (false, 2)] {
        abandon_mid_body(addr, reset).await;
        let wanted = format!("warrant_checks_refused_total{{reason=\"cancelled\"}} {count}");
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut metrics = live.metrics().encode();
        while !metrics.contains(&wanted) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            metrics = live.metrics().encode();
        }
        assert!(metrics.contains(&wanted), "reset {reset}: {metrics}");
        assert!(
            metrics.contains("warrant_checks_refused_total{reason=\"malformed\"} 0"),
            "{metrics}"
        );
    }
}
