//! The daemon's control socket (`control.sock` in the state directory): a
//! line-based request/response channel through which commands reach the
//! running daemon, since sled lets only the daemon open the queue.
//!
//! Requests: `reload` (re-read credentials; answers `ok`) and `queue ...`
//! (see [`QueueCmd`]) and `import <JSON listens>`, and the history's
//! `history <JSON filter>`, `stats <JSON since>` and `backfill <JSON
//! request>`, each answered with one line of JSON.

use std::path::{Path, PathBuf};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::admin::QueueCmd;
use crate::history::Filter;
use crate::history_cmd::BackfillRequest;
use crate::scrobble::Listen;

/// Where the socket lives.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join("control.sock")
}

/// A request the daemon understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Re-read session keys and resume paused targets.
    Reload,
    /// A queue operation.
    Queue(QueueCmd),
    /// Add listens from an mpdscribble journal to every queue.
    Import(Vec<Listen>),
    /// The daemon's state, as JSON.
    Status,
    /// Love (`true`) or unlove the playing track.
    Love(bool),
    /// Plays from the history.
    History(Filter),
    /// Stats of the plays since this time (all when `None`).
    Stats(Option<u64>),
    /// Queue for a target the plays it has not received.
    Backfill(BackfillRequest),
}

impl Request {
    fn parse(line: &str) -> Option<Request> {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["reload"] => Some(Request::Reload),
            ["status"] => Some(Request::Status),
            ["love"] => Some(Request::Love(true)),
            ["unlove"] => Some(Request::Love(false)),
            ["queue", rest @ ..] => QueueCmd::parse(rest).map(Request::Queue),
            ["import", ..] => json_after(line, "import").map(Request::Import),
            ["history", ..] => json_after(line, "history").map(Request::History),
            ["stats", ..] => json_after(line, "stats").map(Request::Stats),
            ["backfill", ..] => json_after(line, "backfill").map(Request::Backfill),
            _ => None,
        }
    }

    fn to_line(&self) -> String {
        match self {
            Request::Reload => "reload".into(),
            Request::Status => "status".into(),
            Request::Love(true) => "love".into(),
            Request::Love(false) => "unlove".into(),
            Request::Queue(cmd) => cmd.to_line(),
            Request::Import(listens) => {
                format!("import {}", serde_json::to_string(listens).expect("JSON"))
            }
            Request::History(f) => format!("history {}", serde_json::to_string(f).expect("JSON")),
            Request::Stats(since) => {
                format!("stats {}", serde_json::to_string(since).expect("JSON"))
            }
            Request::Backfill(b) => format!("backfill {}", serde_json::to_string(b).expect("JSON")),
        }
    }
}

/// The JSON argument of a request line starting with `word`.
fn json_after<T: serde::de::DeserializeOwned>(line: &str, word: &str) -> Option<T> {
    let json = line.trim_start().strip_prefix(word)?;
    serde_json::from_str(json).ok()
}

/// Bind the socket. Only call this while holding the queue lock: a socket
/// file left by a crashed daemon is then known to be stale.
pub fn bind(state_dir: &Path) -> std::io::Result<UnixListener> {
    let path = socket_path(state_dir);
    let _ = std::fs::remove_file(&path);
    UnixListener::bind(&path)
}

/// Serve one connection: read requests line by line, answer each with the
/// handler's reply.
pub async fn serve(stream: UnixStream, mut handler: impl FnMut(Request) -> String) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let reply = match Request::parse(&line) {
            Some(req) => handler(req),
            None => format!("error unknown request {:?}", line.trim()),
        };
        if write
            .write_all(format!("{reply}\n").as_bytes())
            .await
            .is_err()
        {
            break;
        }
    }
}

/// Send a request to the running daemon. `Ok(None)` when no daemon listens.
pub async fn request(state_dir: &Path, req: Request) -> std::io::Result<Option<String>> {
    let mut stream = match UnixStream::connect(socket_path(state_dir)).await {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    stream
        .write_all(format!("{}\n", req.to_line()).as_bytes())
        .await?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply).await?;
    Ok(Some(reply.trim().to_owned()))
}
