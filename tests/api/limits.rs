//! One client cannot take the service down: silent and half-sent
//! connections are cut off, the connection limit answers 503 instead of
//! starving everyone, and the server's own refusals (too many headers, a
//! body that never arrives, bad bytes in a header) are problem+json.
//!
//! These run on real time (the connection layer's timers), with limits of a
//! second or two; nothing here measures speed.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Backend, TestApp};

async fn app() -> TestApp {
    TestApp::spawn_with(Backend::Sqlite, |c| {
        c.header_timeout_secs = 1;
        c.request_timeout_secs = 1;
        c.max_connections = 4;
    })
    .await
}

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection (or 10 s pass: a failure).
async fn read_to_close(stream: &mut TcpStream) -> Option<String> {
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    read.ok()
        .map(|_| String::from_utf8_lossy(&out).into_owned())
}

/// Sends `request` as raw bytes on a new connection and returns the status,
/// the problem body and the whole raw answer.
async fn raw_exchange(app: &TestApp, request: &[u8]) -> (u16, Value, String) {
    let mut stream = TcpStream::connect(addr(app)).await.unwrap();
    stream.write_all(request).await.unwrap();
    let raw = read_to_close(&mut stream).await.expect("answered");
    let (status, body) = problem(&raw);
    (status, body, raw)
}

/// The status and problem body of a raw HTTP/1.1 response.
fn problem(raw: &str) -> (u16, Value) {
    let status = raw
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/problem+json"),
        "{raw}"
    );
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

async fn healthy(app: &TestApp) -> bool {
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        app.client.get(format!("{}/healthz", app.base)).send(),
    )
    .await;
    matches!(r, Ok(Ok(r)) if r.status().is_success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_while_others_are_served() {
    let app = app().await;
    // A silent connection and one that stops half-way through its headers.
    let mut silent = TcpStream::connect(addr(&app)).await.unwrap();
    let mut half = TcpStream::connect(addr(&app)).await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: kring\r\n")
        .await
        .unwrap();
    assert!(healthy(&app).await, "others are served meanwhile");
    // A kept-alive connection that goes quiet after its first request.
    let mut idle = TcpStream::connect(addr(&app)).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: kring\r\n\r\n")
        .await
        .unwrap();
    // All three are closed by the server after the header timeout.
    assert!(read_to_close(&mut silent).await.is_some(), "silent");
    assert!(read_to_close(&mut half).await.is_some(), "half-sent");
    let served = read_to_close(&mut idle)
        .await
        .expect("idle after a response");
    assert!(served.starts_with("HTTP/1.1 200"), "{served}");
    // A body that never arrives: 408 problem+json.
    let mut slow = TcpStream::connect(addr(&app)).await.unwrap();
    slow.write_all(
        b"POST /v1/auth/login HTTP/1.1\r\nHost: kring\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"login\"",
    )
    .await
    .unwrap();
    let raw = read_to_close(&mut slow).await.expect("answered");
    let (status, body) = problem(&raw);
    assert_eq!(status, 408, "{raw}");
    assert_eq!(body["code"], "request_timeout");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_limit_refuses_with_a_problem_and_recovers() {
    let app = app().await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(addr(&app)).await.unwrap());
    }
    // Let the server accept them all.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = TcpStream::connect(addr(&app)).await.unwrap();
    let raw = read_to_close(&mut extra).await.expect("answered");
    let (status, body) = problem(&raw);
    assert_eq!(status, 503, "{raw}");
    assert_eq!(body["code"], "too_many_connections");
    assert!(raw.to_ascii_lowercase().contains("retry-after: 1"), "{raw}");
    // The silent ones are cut off; then everyone is served again.
    for stream in &mut held {
        assert!(read_to_close(stream).await.is_some());
    }
    assert!(healthy(&app).await);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_own_refusals_are_problems() {
    let app = app().await;
    // 150 header fields: 431 problem+json.
    let mut request = String::from("GET /healthz HTTP/1.1\r\nHost: kring\r\nconnection: close\r\n");
    for i in 0..150 {
        request.push_str(&format!("x-filler-{i}: {i}\r\n"));
    }
    request.push_str("\r\n");
    let (status, body, raw) = raw_exchange(&app, request.as_bytes()).await;
    assert_eq!(status, 431, "{raw}");
    assert_eq!(body["code"], "headers_too_large");

    // Bytes that are not text in the bearer token: 401 problem+json.
    let (status, body, raw) = raw_exchange(&app, b"GET /v1/me HTTP/1.1\r\nHost: kring\r\nconnection: close\r\nAuthorization: Bearer \xff\xfe\x80\r\n\r\n").await;
    assert_eq!(status, 401, "{raw}");
    assert_eq!(body["code"], "unauthenticated");

    // A control byte in a header is not HTTP at all: hyper refuses it, and
    // its bare 400 goes out as problem+json.
    let (status, body, raw) = raw_exchange(
        &app,
        b"GET /v1/me HTTP/1.1\r\nHost: kring\r\nAuthorization: Bearer a\x01b\r\n\r\n",
    )
    .await;
    assert_eq!(status, 400, "{raw}");
    assert_eq!(body["code"], "malformed_request");
    // More fields than even hyper parses: 431 problem+json all the same.
    let mut request = String::from("GET /healthz HTTP/1.1\r\nHost: kring\r\n");
    for i in 0..500 {
        request.push_str(&format!("x-filler-{i}: {i}\r\n"));
    }
    request.push_str("\r\n");
    let (status, body, raw) = raw_exchange(&app, request.as_bytes()).await;
    assert_eq!(status, 431, "{raw}");
    assert_eq!(body["code"], "headers_too_large");
    app.stop().await;
}
