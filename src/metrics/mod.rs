//! The metrics endpoint (`[metrics]`): a small HTTP/1.1 server that
//! answers `GET /metrics` (Prometheus text) and `GET /health` (200, or 503
//! with the reason), nothing else. Off by default.
//!
//! It is hardened against what the network may send: the request line and
//! headers are bounded ([`MAX_HEAD`]), a client has [`READ_TIMEOUT`] to send
//! them, at most [`MAX_CONNECTIONS`] are served at once (the others are
//! closed at once), and every connection is closed after its answer. Only
//! a connection wakes it: no timer runs while nobody scrapes.

mod render;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::control::Status;
pub(crate) use render::{health, metrics};

/// Most bytes of request line and headers read.
pub(crate) const MAX_HEAD: usize = 8 * 1024;
/// How long a client has to send its request.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once.
pub(crate) const MAX_CONNECTIONS: usize = 8;

/// What the endpoint reports: the daemon's status, as `status --json`.
pub(crate) trait Figures: Send + Sync + 'static {
    /// The status now.
    fn status(&self) -> impl Future<Output = Status> + Send;
}

/// Bind `addr`.
///
/// # Errors
///
/// The address cannot be bound.
pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serve `listener` until shutdown.
pub(crate) async fn serve(
    listener: TcpListener,
    figures: Arc<impl Figures>,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = shutdown.cancelled() => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: the next accept may
                // work; the daemon goes on either way.
                tracing::debug!("metrics: accept failed: {e}");
                continue;
            }
        };
        // Over the limit: closed unanswered, so a flood costs no memory.
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            continue;
        };
        let figures = Arc::clone(&figures);
        tokio::spawn(async move {
            let _slot = slot;
            answer(stream, &*figures).await;
        });
    }
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Asked {
    Metrics,
    Health,
    /// An answer without looking at the daemon: status and text.
    Refused(u16, &'static str),
}

/// Read one request's head and answer it.
async fn answer(mut stream: TcpStream, figures: &impl Figures) {
    let asked = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(Some(head)) => route(&head),
        Ok(None) => Asked::Refused(431, "Request Header Fields Too Large"),
        Err(_) => Asked::Refused(408, "Request Timeout"),
    };
    let (code, reason, content_type, body) = match asked {
        Asked::Metrics => (
            200,
            "OK",
            "text/plain; version=0.0.4; charset=utf-8",
            metrics(&figures.status().await),
        ),
        Asked::Health => match health(&figures.status().await) {
            Ok(()) => (200, "OK", "text/plain; charset=utf-8", "ok\n".to_owned()),
            Err(why) => (
                503,
                "Service Unavailable",
                "text/plain; charset=utf-8",
                format!("{why}\n"),
            ),
        },
        Asked::Refused(code, reason) => (
            code,
            reason,
            "text/plain; charset=utf-8",
            format!("{reason}\n"),
        ),
    };
    let mut response = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n",
        body.len()
    );
    if code == 405 {
        response.push_str("Allow: GET\r\n");
    }
    response.push_str("\r\n");
    response.push_str(&body);
    // A client that does not read its answer is cut off too.
    let _ = tokio::time::timeout(READ_TIMEOUT, stream.write_all(response.as_bytes())).await;
    let _ = stream.shutdown().await;
}

/// The request's head (up to the blank line), or `None` when it is longer
/// than [`MAX_HEAD`]. A connection closed early gives what came.
async fn read_head(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return Some(head);
        }
        if head.len() > MAX_HEAD {
            return None;
        }
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return Some(head),
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
}

/// What the request line asks for.
fn route(head: &[u8]) -> Asked {
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.trim_end().split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Asked::Refused(400, "Bad Request");
    };
    if !version.starts_with("HTTP/1.") {
        return Asked::Refused(400, "Bad Request");
    }
    let path = target.split('?').next().unwrap_or_default();
    match (method, path) {
        ("GET", "/metrics") => Asked::Metrics,
        ("GET", "/health") => Asked::Health,
        (_, "/metrics" | "/health") => Asked::Refused(405, "Method Not Allowed"),
        _ => Asked::Refused(404, "Not Found"),
    }
}

#[cfg(test)]
mod tests;
