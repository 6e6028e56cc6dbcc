//! Checks at the edges of being answered: cancelled by the caller, decided after their
//! deadline, still uploading when shutdown begins. The audit never shows a decision Envoy did
//! not get as one it got, and a Check already received is answered.

// Test code: a failed unwrap, expect or assertion is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;

const FRONTEND: &str = "spiffe://prod.example.org/ns/shop/sa/frontend";

/// The decision-log lines written so far, once every queued one is.
fn log_lines(auditor: &warrant::audit::Auditor, path: &std::path::Path) -> Vec<serde_json::Value> {
    assert!(auditor.flush(Duration::from_secs(5)));
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_and_late_checks_are_logged_as_unanswered() {
    let dir = common::fixtures::temp_dir("unanswered", "cancel");
    let log = dir.join("decisions.jsonl");
    let bound = warrant::server::bind(common::fixtures::slow_policy_config(
        &dir,
        &format!(
            "decision_log: {{to: {}}}\nlimits: {{check_timeout: 5s}}\n",
            log.display()
        ),
    ))
    .await
    .unwrap();
    let addr = bound.grpc_addr().unwrap();
    let auditor = std::sync::Arc::clone(bound.auditor());
    let live = std::sync::Arc::clone(bound.policy());
    tokio::spawn(async move { bound.serve(std::future::pending()).await.unwrap() });
    let mut client = AuthorizationClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    // The caller gives up (as Envoy does at its own timeout): the stream is reset.
    let gave_up = tokio::time::timeout(
        Duration::from_millis(50),
        client.check(common::fixtures::get(FRONTEND, "/slow")),
    )
    .await;
    assert!(gave_up.is_err(), "the slow Check takes longer than 50 ms");
    // Its decision is made anyway, and logged as one Envoy never got.
    let mut lines = Vec::new();
    for _ in 0..200 {
        lines = log_lines(&auditor, &log);
        if !lines.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let [line] = lines.as_slice() else {
        panic!("one line: {lines:?}")
    };
    assert_eq!(line["decision"], "unanswered", "{line}");
    assert_eq!(line["would_decide"], "allow", "{line}");
    let error = line["error"].as_str().unwrap();
    assert!(error.contains("the caller cancelled the Check"), "{error}");
    // Not counted as an allow; counted as cancelled.
    let metrics = live.metrics().encode();
    assert!(
        metrics.contains("warrant_checks_refused_total{reason=\"cancelled\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics
            .contains("warrant_checks_total{decision=\"allow\",stage=\"rules\",rule=\"slow\"} 0"),
        "{metrics}"
    );
    // An answered Check's line has no would_decide.
    client
        .check(common::fixtures::get(FRONTEND, "/fast"))
        .await
        .unwrap();
    let lines = log_lines(&auditor, &log);
    assert_eq!(lines[1]["decision"], "allow");
    assert!(lines[1].get("would_decide").is_none(), "{}", lines[1]);
}

/// A CheckRequest as one gRPC message (5-byte prefix, then protobuf).
fn grpc_frame(request: &envoy_types::ext_authz::v3::pb::CheckRequest) -> Vec<u8> {
    let message = prost::Message::encode_to_vec(request);
    let mut frame = vec![0];
    frame.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(&message);
    frame
}

/// A free TCP port on loopback.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// SIGTERM arrives while a Check's body is still arriving: the drain waits for it (it is in
/// flight from its headers on), it is answered, and only then does `warrant serve` exit.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_still_uploading_at_sigterm_is_answered() {
    let dir = common::fixtures::temp_dir("unanswered", "upload");
    let port = free_port();
    std::fs::write(dir.join("policy.yaml"), common::fixtures::SLOW_POLICY).unwrap();
    std::fs::write(
        dir.join("warrant.yaml"),
        format!(
            "listen: 127.0.0.1:{port}\npolicy: {}\ndecision_log: {{to: off}}\nreload: {{watch: false}}\nshutdown_grace: 10s\n",
            dir.join("policy.yaml").display()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_warrant"))
        .args([
            "serve",
            "--config",
            dir.join("warrant.yaml").to_str().unwrap(),
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut tcp = None;
    for _ in 0..100 {
        if let Ok(stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            tcp = Some(stream);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (client, connection) = h2::client::handshake(tcp.expect("the server listens"))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let request = http::Request::builder()
        .method("POST")
        .uri(format!(
            "http://127.0.0.1:{port}/envoy.service.auth.v3.Authorization/Check"
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (response, mut body) = client.send_request(request, false).unwrap();
    let frame = grpc_frame(&common::fixtures::get(FRONTEND, "/fast"));
    let (first, rest) = frame.split_at(frame.len() / 2);
    body.send_data(bytes::Bytes::copy_from_slice(first), false)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Longer than the drain's idle polls (2 × 50 ms).
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "exited with a Check half received"
    );
    body.send_data(bytes::Bytes::copy_from_slice(rest), true)
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(5), response)
        .await
        .expect("answered")
        .expect("not reset");
    assert_eq!(response.status(), 200);
    let mut received = response.into_body();
    while let Some(chunk) = received.data().await {
        chunk.unwrap();
    }
    let trailers = received.trailers().await.unwrap().unwrap();
    assert_eq!(trailers["grpc-status"], "0", "{trailers:?}");
    let exited = child.wait().unwrap();
    assert!(exited.success(), "{exited:?}");
}
