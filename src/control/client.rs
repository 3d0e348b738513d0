//! The commands' side of the control socket: find the daemon of a state
//! directory, send one request, read its reply.

use std::path::Path;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::protocol::{Reply, Request};
use super::socket::{SUN_PATH_MAX, client_paths};

/// Why a request got no reply.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RequestError {
    /// The socket is there but the exchange failed.
    #[error("cannot reach the daemon: {0}")]
    Io(#[from] std::io::Error),
    /// The daemon answered something that is not a reply.
    #[error("the daemon answered something unreadable ({0})")]
    Unreadable(serde_json::Error),
}

/// Send a request to the running daemon of `state_dir`. `Ok(None)` when no
/// daemon listens.
///
/// # Errors
///
/// A socket is there but the exchange failed, or the reply is unreadable.
pub(crate) async fn request(state_dir: &Path, req: Request) -> Result<Option<Reply>, RequestError> {
    let env = |k: &str| std::env::var(k).ok();
    let mut failed = None;
    for path in client_paths(state_dir, &env) {
        // No daemon can listen where no socket can be bound.
        if path.as_os_str().len() > SUN_PATH_MAX {
            continue;
        }
        match UnixStream::connect(&path).await {
            Ok(stream) => {
                let line = exchange(stream, &req).await?;
                return Reply::parse(&line)
                    .map(Some)
                    .map_err(RequestError::Unreadable);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) => {}
            Err(e) => {
                failed.get_or_insert(std::io::Error::new(
                    e.kind(),
                    format!("{}: {e}", path.display()),
                ));
            }
        }
    }
    failed.map_or(Ok(None), |e| Err(e.into()))
}

async fn exchange(mut stream: UnixStream, req: &Request) -> std::io::Result<String> {
    let sent = stream.write_all(req.to_line().as_bytes()).await;
    // A daemon that refuses this peer answers why and closes without
    // reading, which can fail the write: its answer still says more.
    let mut reply = String::new();
    let read = BufReader::new(stream).read_line(&mut reply).await;
    match (sent, read) {
        (_, Ok(n)) if n > 0 => Ok(reply),
        (Err(e), _) | (Ok(()), Err(e)) => Err(e),
        (Ok(()), Ok(_)) => Ok(String::new()),
    }
}
