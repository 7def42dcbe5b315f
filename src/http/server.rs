//! The connection layer: one client must not take the service down.
//!
//! - At most `KRING_MAX_CONNECTIONS` open connections; one more is answered
//!   503 problem+json and closed at once (it costs a file descriptor for
//!   microseconds, not for as long as the client likes).
//! - A client has `KRING_HEADER_TIMEOUT_SECS` to send a request's headers,
//!   counted from when the connection opens or its previous response went
//!   out: a silent, half-sent or idle kept-alive HTTP/1.1 connection is
//!   closed then (hyper's header read timeout, which needs a timer).
//! - A request has `KRING_REQUEST_TIMEOUT_SECS` from its headers to its
//!   response, body included: a slow body is cut off with 408 problem+json
//!   ([`request_timeout`]).
//! - More than [`MAX_HEADERS`] header fields: 431 problem+json
//!   ([`header_limit`]). hyper itself parses up to [`HYPER_MAX_HEADERS`], so
//!   that the answer comes from Kring.
//! - A request hyper cannot parse at all (control bytes in a header, more
//!   than [`HYPER_MAX_HEADERS`] fields, not HTTP) gets hyper's own error
//!   status, which has no body; [`ProblemIo`] rewrites that one response on
//!   its way out into the same status with a problem+json body.
//!
//! Shutdown stops accepting, lets requests in flight finish (bounded by the
//! caller's drain) and closes idle connections.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::config::Config;
use crate::error::{ApiError, Code};

/// Header fields a request may carry.
pub const MAX_HEADERS: usize = 100;
/// What hyper parses before giving up on its own.
pub const HYPER_MAX_HEADERS: usize = 400;

/// Serves `app` on `listener` until `shutdown` completes, then waits for the
/// connections' requests in flight to finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: &Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limit = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let header_timeout = Duration::from_secs(config.header_timeout_secs.max(1));
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_headers(HYPER_MAX_HEADERS);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(header_timeout);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // Out of file descriptors and the like: wait, don't spin.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            tokio::spawn(refuse(stream));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service =
            app.clone()
                .map_request(move |mut req: axum::http::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(remote));
                    req
                });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            // hyper's header timer starts only once the HTTP version is
            // known, which takes a first byte: a silent client gets the same
            // time for that byte.
            let mut first = [0u8; 1];
            match tokio::time::timeout(header_timeout, stream.peek(&mut first)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return,
            }
            let connection = builder.serve_connection_with_upgrades(
                TokioIo::new(ProblemIo::new(stream)),
                TowerToHyperService::new(service),
            );
            if let Err(err) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(error = %err, %remote, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Over the limit: a complete 503 problem+json, then close.
async fn refuse(mut stream: TcpStream) {
    let problem = ApiError::Unavailable {
        code: Code::TooManyConnections,
        detail: "The server has too many open connections; try again in a moment.".into(),
        retry_after_secs: 1,
    }
    .to_problem();
    let body = serde_json::to_string(&problem).unwrap_or_default();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// A connection's byte stream, passing everything through except hyper's
/// own error responses: a 4xx or 5xx head without a content type and with
/// an empty body is only ever hyper's answer to a request it could not
/// parse (every response of Kring's own carries one). That response is
/// replaced, once, by the same status with a problem+json body, and the
/// connection closes after it as hyper intended.
pub struct ProblemIo<T> {
    inner: T,
    /// A replacement being written, and how far.
    pending: Option<(Vec<u8>, usize)>,
}

impl<T> ProblemIo<T> {
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            pending: None,
        }
    }
}

/// The problem+json response for hyper's bodiless error head, if `buf` is one.
fn replacement(buf: &[u8]) -> Option<Vec<u8>> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    if head_end + 4 != buf.len()
        || !(buf.starts_with(b"HTTP/1.1 4") || buf.starts_with(b"HTTP/1.1 5"))
    {
        return None;
    }
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    if head.contains("\r\ncontent-type:") || !head.contains("\r\ncontent-length: 0") {
        return None;
    }
    let status: u16 = head.get(9..12)?.parse().ok()?;
    let status = axum::http::StatusCode::from_u16(status).ok()?;
    let (code, detail) = match status.as_u16() {
        431 => (
            Code::HeadersTooLarge,
            "The request's headers are too large.",
        ),
        408 => (Code::RequestTimeout, "The request took too long to arrive."),
        414 => (Code::UriTooLong, "The request's URI is too long."),
        _ => (
            Code::MalformedRequest,
            "The request is not valid HTTP (for example, control bytes in a header).",
        ),
    };
    let body = serde_json::json!({
        "type": format!("urn:kring:problem:{code}"),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "code": code.as_str(),
        "detail": detail,
    })
    .to_string();
    Some(
        format!(
            "HTTP/1.1 {} {}\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("Error"),
            body.len()
        )
        .into_bytes(),
    )
}

impl<T: AsyncRead + Unpin> AsyncRead for ProblemIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ProblemIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.pending.is_none() {
            match replacement(buf) {
                Some(bytes) => self.pending = Some((bytes, 0)),
                None => return Pin::new(&mut self.inner).poll_write(cx, buf),
            }
        }
        // hyper calls again with the same buffer until it is reported
        // written: the replacement goes out whole first.
        let this = &mut *self;
        if let Some((bytes, written)) = &mut this.pending {
            while *written < bytes.len() {
                let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &bytes[*written..]))?;
                if n == 0 {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                }
                *written += n;
            }
        }
        this.pending = None;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// 431 problem+json for more than [`MAX_HEADERS`] header fields.
pub async fn header_limit(req: Request, next: Next) -> Response {
    if req.headers().len() > MAX_HEADERS {
        return ApiError::HeadersTooLarge(MAX_HEADERS).into_response();
    }
    next.run(req).await
}

/// 408 problem+json when a request (its body included) is not answered in
/// time: a client that trickles its body does not hold a task forever.
pub async fn request_timeout(
    axum::extract::State(limit): axum::extract::State<Duration>,
    req: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::RequestTimeout.into_response(),
    }
}
