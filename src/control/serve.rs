//! The daemon's side of a control connection: check the peer, then read
//! request lines within their limits and answer each with one reply line.
//! A request is one line of at most [`LINE_LIMIT`] bytes
//! ([`IMPORT_LINE_LIMIT`] for `import`), and a connection that sends no
//! complete line for [`IDLE_TIMEOUT`] is closed.

use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::protocol::{IMPORT_LINE_LIMIT, IMPORT_PREFIX, Reply, Request};
use super::socket::peer_allowed;

/// Longest request line, newline excluded.
pub(crate) const LINE_LIMIT: usize = 4 << 10;
/// A connection that sends no complete line for this long is closed.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Bounds on a connection; [`Limits::default`] is what the daemon uses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Longest request line.
    pub line: usize,
    /// Longest `import` line.
    pub import_line: usize,
    /// Longest wait for a complete line, or for the peer to take a reply.
    pub idle: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            line: LINE_LIMIT,
            import_line: IMPORT_LINE_LIMIT,
            idle: IDLE_TIMEOUT,
        }
    }
}

/// What reading one request line gave.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// A line, without its newline (the last one may lack it).
    Complete(Vec<u8>),
    /// More than this many bytes without a newline.
    TooLong(usize),
    /// The peer closed the connection.
    End,
}

async fn read_line(
    reader: &mut (impl AsyncBufRead + Unpin),
    limits: &Limits,
) -> std::io::Result<Line> {
    let mut buf = Vec::new();
    let mut limit = limits.line;
    loop {
        // One byte over the limit tells a line of exactly `limit` bytes
        // awaiting its newline from one that is too long.
        let room = (limit + 1).saturating_sub(buf.len()) as u64;
        (&mut *reader)
            .take(room)
            .read_until(b'\n', &mut buf)
            .await?;
        if buf.last() == Some(&b'\n') {
            buf.pop();
            return Ok(Line::Complete(buf));
        }
        if buf.len() <= limit {
            return Ok(if buf.is_empty() {
                Line::End
            } else {
                Line::Complete(buf)
            });
        }
        if limit < limits.import_line && buf.starts_with(IMPORT_PREFIX) {
            limit = limits.import_line;
            continue;
        }
        return Ok(Line::TooLong(limit));
    }
}

/// Serve one connection: check the peer, then read requests line by line
/// and answer each with the handler's reply, within `limits`.
pub(crate) async fn serve<F, Fut>(stream: UnixStream, limits: Limits, mut handler: F)
where
    F: FnMut(Request) -> Fut,
    Fut: Future<Output = Reply>,
{
    let me = rustix::process::geteuid().as_raw();
    match stream.peer_cred() {
        Ok(peer) if peer_allowed(peer.uid(), me) => {}
        Ok(peer) => {
            tracing::warn!(
                "control socket: refused a connection from uid {} (pid {})",
                peer.uid(),
                peer.pid()
                    .map_or_else(|| "unknown".into(), |p| p.to_string())
            );
            let refusal = Reply::Error(format!(
                "only uid {me} (and root) may use this daemon's control socket"
            ))
            .to_line();
            let mut stream = stream;
            let _ = tokio::time::timeout(limits.idle, stream.write_all(refusal.as_bytes())).await;
            return;
        }
        Err(e) => {
            tracing::warn!("control socket: cannot tell who connected ({e}); closing");
            return;
        }
    }
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let line = match tokio::time::timeout(limits.idle, read_line(&mut reader, &limits)).await {
            Ok(Ok(Line::Complete(line))) => line,
            Ok(Ok(Line::TooLong(limit))) => {
                tracing::warn!(
                    "control socket: closing a connection whose request is over {limit} bytes"
                );
                let reply = Reply::Error(format!("request longer than {limit} bytes")).to_line();
                let _ = tokio::time::timeout(limits.idle, write.write_all(reply.as_bytes())).await;
                return;
            }
            Ok(Ok(Line::End) | Err(_)) => return,
            Err(_) => {
                tracing::debug!(
                    "control socket: closing a connection idle for {} s",
                    limits.idle.as_secs()
                );
                return;
            }
        };
        let line = String::from_utf8_lossy(&line);
        let reply = match Request::parse(&line) {
            Ok(req) => handler(req).await,
            Err(e) => Reply::Error(format!(
                "unknown request {:?} ({e})",
                truncate(line.trim(), 80)
            )),
        };
        let written =
            tokio::time::timeout(limits.idle, write.write_all(reply.to_line().as_bytes())).await;
        if !matches!(written, Ok(Ok(()))) {
            return;
        }
    }
}

/// At most `max` characters of `s`.
fn truncate(s: &str, max: usize) -> &str {
    s.char_indices().nth(max).map_or(s, |(i, _)| &s[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Limits {
        Limits {
            line: 16,
            import_line: 64,
            idle: Duration::from_secs(10),
        }
    }

    async fn lines(input: &[u8]) -> Vec<Line> {
        let mut reader = BufReader::with_capacity(4, input);
        let mut out = Vec::new();
        loop {
            let line = read_line(&mut reader, &small()).await.unwrap();
            let stop = matches!(line, Line::End | Line::TooLong(_));
            out.push(line);
            if stop {
                return out;
            }
        }
    }

    #[tokio::test]
    async fn request_lines_are_bounded() {
        let complete = |s: &str| Line::Complete(s.as_bytes().to_vec());
        assert_eq!(
            lines(b"status\nqueue list\n").await,
            [complete("status"), complete("queue list"), Line::End]
        );
        // Exactly the limit is fine; one byte more is not.
        let at = "x".repeat(16);
        assert_eq!(
            lines(format!("{at}\n").as_bytes()).await,
            [complete(&at), Line::End]
        );
        assert_eq!(
            lines(format!("{at}y\nstatus\n").as_bytes()).await,
            [Line::TooLong(16)]
        );
        // `import` may be longer, up to its own limit.
        let import = format!("{{\"import\":{}", "x".repeat(54));
        assert_eq!(
            lines(format!("{import}\n").as_bytes()).await,
            [complete(&import), Line::End]
        );
        assert_eq!(
            lines(format!("{import}y\n").as_bytes()).await,
            [Line::TooLong(64)]
        );
        // A last line without its newline still counts.
        assert_eq!(lines(b"status").await, [complete("status"), Line::End]);
    }

    async fn connected(limits: Limits) -> (UnixStream, tokio::task::JoinHandle<()>) {
        let (client, server) = UnixStream::pair().unwrap();
        let task = tokio::spawn(serve(server, limits, |req| async move {
            Reply::Error(format!("{req:?}"))
        }));
        (client, task)
    }

    #[tokio::test]
    async fn an_over_long_line_is_refused_and_the_connection_closed() {
        let (client, task) = connected(small()).await;
        let (read, mut write) = client.into_split();
        write.write_all(b"\"status\"\n").await.unwrap();
        let mut reader = BufReader::new(read);
        let mut reply = String::new();
        reader.read_line(&mut reply).await.unwrap();
        assert_eq!(Reply::parse(&reply).unwrap(), Reply::Error("Status".into()));
        write.write_all(b"shutdown\n").await.unwrap();
        reply.clear();
        reader.read_line(&mut reply).await.unwrap();
        let Reply::Error(e) = Reply::parse(&reply).unwrap() else {
            panic!("{reply}");
        };
        assert!(e.starts_with("unknown request \"shutdown\""), "{e}");
        write.write_all(&[b'x'; 100]).await.unwrap();
        reply.clear();
        reader.read_line(&mut reply).await.unwrap();
        assert_eq!(
            Reply::parse(&reply).unwrap(),
            Reply::Error("request longer than 16 bytes".into())
        );
        reply.clear();
        assert_eq!(reader.read_line(&mut reply).await.unwrap(), 0, "closed");
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_is_closed() {
        let (client, task) = connected(small()).await;
        let started = tokio::time::Instant::now();
        let (read, mut write) = client.into_split();
        // Half a line does not count as activity.
        write.write_all(b"sta").await.unwrap();
        let mut rest = Vec::new();
        BufReader::new(read).read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        assert!(started.elapsed() >= Duration::from_secs(10));
        task.await.unwrap();
    }
}
