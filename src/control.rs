//! The daemon's control socket: a line-based request/response channel
//! through which commands reach the running daemon, since sled lets only the
//! daemon open the queue.
//!
//! Where it lives: in the runtime directory (`$RUNTIME_DIRECTORY`, which
//! systemd's `RuntimeDirectory=` sets, else `$XDG_RUNTIME_DIR/mpd-scrobbler/`)
//! as `control-<hash>.sock`, the hash being of the canonical state directory
//! so that daemons with different state directories do not collide; and
//! `control.sock` in the state directory, a symlink to it, for clients whose
//! environment names no runtime directory (`sudo`). Without a usable runtime
//! directory the socket itself is `control.sock` in the state directory. A
//! daemon that can make neither keeps scrobbling without one.
//!
//! Only the daemon's own user and root may talk to it: the socket is mode
//! 0600 and the peer's uid is checked. A request is one line of at most
//! [`LINE_LIMIT`] bytes ([`IMPORT_LINE_LIMIT`] for `import`), and a
//! connection that sends no complete line for [`IDLE_TIMEOUT`] is closed.
//!
//! Requests: `reload` (re-read credentials; answers `ok`), `status`, `love`,
//! `unlove`, `queue ...` (see [`QueueCmd`]) and `import <JSON listens>`, and
//! the history's `history <JSON filter>`, `stats <JSON since>` and
//! `backfill <JSON request>`, each answered with one line of JSON.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use md5::{Digest, Md5};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::admin::QueueCmd;
use crate::history::Filter;
use crate::history::commands::BackfillRequest;
use crate::scrobble::Listen;

/// Longest request line, newline excluded.
pub const LINE_LIMIT: usize = 4 << 10;
/// Longest `import` line: about 60,000 listens. `import` sends a larger
/// journal in several requests.
pub const IMPORT_LINE_LIMIT: usize = 16 << 20;
/// A connection that sends no complete line for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// `sun_path` holds 108 bytes, the terminating NUL included.
const SUN_PATH_MAX: usize = 107;
/// The socket, or a symlink to it, in the state directory.
const IN_STATE_DIR: &str = "control.sock";
/// The runtime directory's subdirectory under `$XDG_RUNTIME_DIR`.
const APP_DIR: &str = "mpd-scrobbler";

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
            Request::Backfill(b) => {
                format!("backfill {}", serde_json::to_string(b).expect("JSON"))
            }
        }
    }
}

/// The JSON argument of a request line starting with `word`.
fn json_after<T: serde::de::DeserializeOwned>(line: &str, word: &str) -> Option<T> {
    let json = line.trim_start().strip_prefix(word)?;
    serde_json::from_str(json).ok()
}

/// `listens` as `import` requests, each within [`IMPORT_LINE_LIMIT`].
pub fn import_requests(listens: &[Listen]) -> Vec<Request> {
    split_import(listens, IMPORT_LINE_LIMIT)
}

/// `listens` as `import` requests whose lines are at most `limit` bytes
/// (but at least one listen each).
fn split_import(listens: &[Listen], limit: usize) -> Vec<Request> {
    let mut requests = Vec::new();
    let mut chunk: Vec<Listen> = Vec::new();
    // "import [" and "]", then each listen and its comma.
    let mut size = 9;
    for listen in listens {
        let len = serde_json::to_string(listen).map_or(0, |s| s.len()) + 1;
        if !chunk.is_empty() && size + len > limit {
            requests.push(Request::Import(std::mem::take(&mut chunk)));
            size = 9;
        }
        size += len;
        chunk.push(listen.clone());
    }
    if !chunk.is_empty() || requests.is_empty() {
        requests.push(Request::Import(chunk));
    }
    requests
}

/// The runtime directory the environment names for this program: systemd's
/// `$RUNTIME_DIRECTORY` as it is, or `$XDG_RUNTIME_DIR/mpd-scrobbler`.
/// Relative paths are ignored, as the XDG spec asks.
pub fn runtime_dir(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let absolute = |v: Option<String>| v.map(PathBuf::from).filter(|p| p.is_absolute());
    // systemd joins several RuntimeDirectory= entries with ':'.
    let systemd = env("RUNTIME_DIRECTORY")
        .and_then(|v| v.split(':').next().map(str::to_owned))
        .filter(|v| !v.is_empty());
    absolute(systemd).or_else(|| absolute(env("XDG_RUNTIME_DIR")).map(|d| d.join(APP_DIR)))
}

/// The socket's name in the runtime directory for the state directory
/// `canonical` (already canonical: two spellings of one directory share a
/// daemon, since they share the queue's lock).
fn socket_name(canonical: &Path) -> String {
    let digest = hex::encode(Md5::digest(canonical.as_os_str().as_bytes()));
    format!("control-{}.sock", &digest[..12])
}

/// [`socket_name`] for `state_dir`, canonicalised when it exists.
fn socket_name_for(state_dir: &Path) -> String {
    let canonical = std::fs::canonicalize(state_dir)
        .or_else(|_| std::path::absolute(state_dir))
        .unwrap_or_else(|_| state_dir.to_owned());
    socket_name(&canonical)
}

/// Where a client looks for the daemon of `state_dir`, in order: the
/// runtime directory its environment names, then the state directory's
/// entry (the socket, or a symlink the daemon left to it).
fn client_paths(state_dir: &Path, env: &dyn Fn(&str) -> Option<String>) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some(dir) = runtime_dir(env) {
        paths.push(dir.join(socket_name_for(state_dir)));
    }
    let entry = state_dir.join(IN_STATE_DIR);
    // Followed here rather than by connect(): the link's own path may be too
    // long for a socket address when its target is not.
    let target = match std::fs::read_link(&entry) {
        Ok(t) => state_dir.join(t),
        Err(_) => entry,
    };
    if !paths.contains(&target) {
        paths.push(target);
    }
    paths
}

/// The daemon's socket, bound and listening.
#[derive(Debug)]
pub struct Bound {
    /// The listener.
    pub listener: UnixListener,
    /// The socket file.
    pub path: PathBuf,
    /// The symlink to it in the state directory, if there is one.
    link: Option<PathBuf>,
}

impl Bound {
    /// Remove the socket file and its symlink (at shutdown).
    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
        if let Some(link) = &self.link {
            let _ = std::fs::remove_file(link);
        }
    }
}

/// Bind the socket: in the runtime directory when the environment names a
/// usable one, else in the state directory. A runtime directory that cannot
/// be used is logged and passed over; the error says why neither worked.
/// Only call this while holding the queue lock: a socket file left by a
/// crashed daemon with this state directory is then known to be stale.
pub fn bind(state_dir: &Path, env: &dyn Fn(&str) -> Option<String>) -> std::io::Result<Bound> {
    let entry = state_dir.join(IN_STATE_DIR);
    if let Some(dir) = runtime_dir(env) {
        let path = dir.join(socket_name_for(state_dir));
        match private_dir(&dir).and_then(|()| bind_at(&path)) {
            Ok(listener) => {
                let _ = std::fs::remove_file(&entry);
                let link = match std::os::unix::fs::symlink(&path, &entry) {
                    Ok(()) => Some(entry),
                    Err(e) => {
                        tracing::warn!(
                            "cannot link {} to the control socket: {e}; commands run \
                             without {} in their environment will not find the daemon",
                            entry.display(),
                            if env("RUNTIME_DIRECTORY").is_some() {
                                "RUNTIME_DIRECTORY"
                            } else {
                                "XDG_RUNTIME_DIR"
                            }
                        );
                        None
                    }
                };
                return Ok(Bound {
                    listener,
                    path,
                    link,
                });
            }
            Err(e) => tracing::warn!(
                "cannot create the control socket {}: {e}; trying the state directory",
                path.display()
            ),
        }
    }
    bind_at(&entry)
        .map(|listener| Bound {
            listener,
            path: entry.clone(),
            link: None,
        })
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", entry.display())))
}

/// Make sure `dir` exists, is a directory and is ours; create it 0700.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    // Not recursive: $XDG_RUNTIME_DIR is the session's to create.
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = std::fs::symlink_metadata(dir)?;
    let me = rustix::process::geteuid().as_raw();
    if !meta.is_dir() {
        Err(std::io::Error::other(format!(
            "{} is not a directory",
            dir.display()
        )))
    } else if meta.uid() != me {
        Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("{} belongs to uid {}, not {me}", dir.display(), meta.uid()),
        ))
    } else {
        Ok(())
    }
}

/// Bind and listen at `path`, replacing what is there, mode 0600.
fn bind_at(path: &Path) -> std::io::Result<UnixListener> {
    use socket2::{Domain, SockAddr, Socket, Type};
    let len = path.as_os_str().len();
    if len > SUN_PATH_MAX {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "the path is {len} bytes long, and a socket's may be at most {SUN_PATH_MAX}: \
                 set XDG_RUNTIME_DIR or choose a shorter state_dir"
            ),
        ));
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.bind(&SockAddr::unix(path)?)?;
    // bind() made the file with the umask's mode. No one can connect until
    // listen(), so narrowing it first leaves no moment in which another
    // user could (and the directory is private besides).
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    socket.listen(16)?;
    socket.set_nonblocking(true)?;
    UnixListener::from_std(socket.into())
}

/// Whether a peer running as `peer` may use the socket of a daemon running
/// as `me`: the same user, or root.
fn peer_allowed(peer: u32, me: u32) -> bool {
    peer == me || peer == 0
}

/// Bounds on a connection; [`Limits::default`] is what the daemon uses.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
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
        if limit < limits.import_line && buf.starts_with(b"import ") {
            limit = limits.import_line;
            continue;
        }
        return Ok(Line::TooLong(limit));
    }
}

/// Serve one connection: check the peer, then read requests line by line
/// and answer each with the handler's reply, within `limits`.
pub async fn serve<F, Fut>(stream: UnixStream, limits: Limits, mut handler: F)
where
    F: FnMut(Request) -> Fut,
    Fut: Future<Output = String>,
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
            let refusal = serde_json::json!({
                "error": format!("only uid {me} (and root) may use this daemon's control socket")
            });
            let mut stream = stream;
            let _ = tokio::time::timeout(
                limits.idle,
                stream.write_all(format!("{refusal}\n").as_bytes()),
            )
            .await;
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
                let reply =
                    serde_json::json!({"error": format!("request longer than {limit} bytes")});
                let _ = tokio::time::timeout(
                    limits.idle,
                    write.write_all(format!("{reply}\n").as_bytes()),
                )
                .await;
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
            Some(req) => handler(req).await,
            None => format!("error unknown request {:?}", truncate(line.trim(), 80)),
        };
        let written = tokio::time::timeout(
            limits.idle,
            write.write_all(format!("{reply}\n").as_bytes()),
        )
        .await;
        if !matches!(written, Ok(Ok(()))) {
            return;
        }
    }
}

/// At most `max` characters of `s`.
fn truncate(s: &str, max: usize) -> &str {
    s.char_indices().nth(max).map_or(s, |(i, _)| &s[..i])
}

/// Send a request to the running daemon of `state_dir`. `Ok(None)` when no
/// daemon listens.
pub async fn request(state_dir: &Path, req: Request) -> std::io::Result<Option<String>> {
    let env = |k: &str| std::env::var(k).ok();
    let mut failed = None;
    for path in client_paths(state_dir, &env) {
        // No daemon can listen where no socket can be bound.
        if path.as_os_str().len() > SUN_PATH_MAX {
            continue;
        }
        match UnixStream::connect(&path).await {
            Ok(stream) => return exchange(stream, &req).await.map(Some),
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
    failed.map_or(Ok(None), Err)
}

async fn exchange(mut stream: UnixStream, req: &Request) -> std::io::Result<String> {
    let sent = stream
        .write_all(format!("{}\n", req.to_line()).as_bytes())
        .await;
    // A daemon that refuses this peer answers why and closes without
    // reading, which can fail the write: its answer still says more.
    let mut reply = String::new();
    let read = BufReader::new(stream).read_line(&mut reply).await;
    match (sent, read) {
        (_, Ok(n)) if n > 0 => Ok(reply.trim().to_owned()),
        (Err(e), _) | (Ok(()), Err(e)) => Err(e),
        (Ok(()), Ok(_)) => Ok(String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn runtime_dir_prefers_systemds_then_xdg_and_ignores_relative_paths() {
        assert_eq!(
            runtime_dir(&env(&[
                ("RUNTIME_DIRECTORY", "/run/mpd-scrobbler:/run/other"),
                ("XDG_RUNTIME_DIR", "/run/user/1000"),
            ])),
            Some(PathBuf::from("/run/mpd-scrobbler"))
        );
        assert_eq!(
            runtime_dir(&env(&[("XDG_RUNTIME_DIR", "/run/user/1000")])),
            Some(PathBuf::from("/run/user/1000/mpd-scrobbler"))
        );
        assert_eq!(
            runtime_dir(&env(&[
                ("RUNTIME_DIRECTORY", ""),
                ("XDG_RUNTIME_DIR", "/run/user/7")
            ])),
            Some(PathBuf::from("/run/user/7/mpd-scrobbler"))
        );
        assert_eq!(runtime_dir(&env(&[("XDG_RUNTIME_DIR", "run/user")])), None);
        assert_eq!(runtime_dir(&env(&[("XDG_RUNTIME_DIR", "")])), None);
        assert_eq!(runtime_dir(&env(&[])), None);
    }

    #[test]
    fn socket_names_differ_per_state_dir_and_stay_short() {
        let a = socket_name(Path::new("/home/a/.local/state/mpd-scrobbler"));
        let b = socket_name(Path::new("/home/b/.local/state/mpd-scrobbler"));
        assert_ne!(a, b);
        assert_eq!(
            a,
            socket_name(Path::new("/home/a/.local/state/mpd-scrobbler"))
        );
        let long = socket_name(&Path::new("/").join("x".repeat(300)));
        assert_eq!(long.len(), "control-0123456789ab.sock".len());
        assert!(
            long.starts_with("control-") && long.ends_with(".sock"),
            "{long}"
        );
    }

    #[test]
    fn clients_look_in_the_runtime_dir_then_the_state_dir() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        let e = env(&[("XDG_RUNTIME_DIR", "/run/user/1000")]);
        let paths = client_paths(&state, &e);
        let name = socket_name(&std::fs::canonicalize(&state).unwrap());
        assert_eq!(
            paths,
            [
                PathBuf::from("/run/user/1000/mpd-scrobbler").join(&name),
                state.join("control.sock")
            ]
        );
        // The daemon's symlink is followed, and not tried twice.
        let target = PathBuf::from("/run/user/1000/mpd-scrobbler").join(&name);
        std::os::unix::fs::symlink(&target, state.join("control.sock")).unwrap();
        assert_eq!(client_paths(&state, &e), std::slice::from_ref(&target));
        assert_eq!(client_paths(&state, &env(&[])), [target]);
    }

    #[tokio::test]
    async fn binds_in_the_runtime_dir_mode_0600_with_a_link_in_the_state_dir() {
        let dir = tempfile::tempdir().unwrap();
        let (state, runtime) = (dir.path().join("state"), dir.path().join("run"));
        std::fs::create_dir(&state).unwrap();
        std::fs::create_dir(&runtime).unwrap();
        let runtime_str = runtime.to_str().unwrap().to_owned();
        let e = move |k: &str| (k == "XDG_RUNTIME_DIR").then(|| runtime_str.clone());
        let bound = bind(&state, &e).unwrap();
        assert_eq!(bound.path.parent().unwrap(), runtime.join("mpd-scrobbler"));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&bound.path), 0o600);
        assert_eq!(mode(&runtime.join("mpd-scrobbler")), 0o700);
        assert_eq!(
            std::fs::read_link(state.join("control.sock")).unwrap(),
            bound.path
        );
        bound.remove();
        assert!(!bound.path.exists());
        assert!(std::fs::symlink_metadata(state.join("control.sock")).is_err());
    }

    #[tokio::test]
    async fn a_path_too_long_for_a_socket_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("s".repeat(120));
        std::fs::create_dir(&state).unwrap();
        let err = bind(&state, &env(&[])).unwrap_err().to_string();
        assert!(err.contains("at most 107"), "{err}");
        assert!(err.contains(&state.display().to_string()), "{err}");
    }

    #[test]
    fn only_the_same_user_or_root_may_connect() {
        assert!(peer_allowed(1000, 1000));
        assert!(peer_allowed(0, 1000));
        assert!(peer_allowed(0, 0));
        assert!(!peer_allowed(65534, 1000));
        assert!(!peer_allowed(1000, 0));
    }

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
        let import = format!("import {}", "x".repeat(57));
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

    #[test]
    fn requests_parse() {
        assert_eq!(Request::parse("status"), Some(Request::Status));
        assert_eq!(Request::parse(" love "), Some(Request::Love(true)));
        assert_eq!(
            Request::parse("queue drop 7 lastfm"),
            Some(Request::Queue(QueueCmd::Drop {
                id: 7,
                target: Some("lastfm".into())
            }))
        );
        assert_eq!(Request::parse("import []"), Some(Request::Import(vec![])));
        assert_eq!(Request::parse("import {"), None);
        assert_eq!(Request::parse("shutdown"), None);
        assert_eq!(Request::parse(""), None);
    }

    #[test]
    fn a_large_import_is_split_into_requests_within_the_limit() {
        let listen = |i: u64| Listen {
            track: crate::scrobble::Track {
                artist: "a".repeat(100),
                title: format!("t{i}"),
                ..Default::default()
            },
            started_at: 1_700_000_000 + i,
        };
        let listens: Vec<Listen> = (0..200).map(listen).collect();
        let limit = 4096;
        let requests = split_import(&listens, limit);
        assert!(requests.len() > 5, "{}", requests.len());
        let mut back = Vec::new();
        for r in &requests {
            let line = r.to_line();
            assert!(line.len() <= limit, "{}", line.len());
            let Some(Request::Import(chunk)) = Request::parse(&line) else {
                panic!("not an import: {line}");
            };
            back.extend(chunk);
        }
        assert_eq!(back, listens);
        assert_eq!(import_requests(&[]), [Request::Import(vec![])]);
        assert_eq!(import_requests(&listens), [Request::Import(listens)]);
    }

    async fn connected(limits: Limits) -> (UnixStream, tokio::task::JoinHandle<()>) {
        let (client, server) = UnixStream::pair().unwrap();
        let task = tokio::spawn(serve(
            server,
            limits,
            |req| async move { format!("{req:?}") },
        ));
        (client, task)
    }

    #[tokio::test]
    async fn an_over_long_line_is_refused_and_the_connection_closed() {
        let (client, task) = connected(small()).await;
        let (read, mut write) = client.into_split();
        write.write_all(b"status\n").await.unwrap();
        let mut reader = BufReader::new(read);
        let mut reply = String::new();
        reader.read_line(&mut reply).await.unwrap();
        assert_eq!(reply, "Status\n");
        write.write_all(&[b'x'; 100]).await.unwrap();
        reply.clear();
        reader.read_line(&mut reply).await.unwrap();
        assert!(reply.contains("longer than 16 bytes"), "{reply}");
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
