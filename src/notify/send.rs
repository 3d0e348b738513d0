//! Sending one message through one sink: ntfy, Gotify, a webhook or a
//! command. Errors never carry a URL or a token: reqwest's errors are
//! described without their URL, and a command's only by its exit.

use std::process::Stdio;
use std::time::Duration;

use serde::Serialize;

use super::monitor::Notice;
use crate::config::SinkKind;
use crate::http;

/// Longest a command may run before it is killed.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a message did not go out.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    /// The request failed (connection, timeout); the text has no URL.
    #[error("{0}")]
    Request(String),
    /// The server answered with an error status.
    #[error("the server answered HTTP {0}")]
    Status(u16),
    /// The command could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// The command failed.
    #[error("{program} {how}")]
    Command {
        /// The program.
        program: String,
        /// "exited with status 3", "was killed after 30 s".
        how: String,
    },
}

/// A webhook's body.
#[derive(Debug, Serialize)]
struct WebhookBody<'a> {
    event: &'a str,
    /// The problem a "recovered" message is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<&'a str>,
    target: Option<&'a str>,
    message: &'a str,
    fix: Option<&'a str>,
    since: u64,
    host: &'a str,
}

/// A Gotify message.
#[derive(Debug, Serialize)]
struct GotifyBody<'a> {
    title: &'a str,
    message: &'a str,
    priority: u8,
}

/// The title of a message: "mpd-scrobbler on HOST: paused".
fn title(notice: &Notice, host: &str) -> String {
    format!("mpd-scrobbler on {host}: {}", notice.kind.event())
}

/// The message with its fix, for the sinks that take plain text.
fn text(notice: &Notice) -> String {
    match &notice.fix {
        Some(fix) => format!("{}\nFix: {fix}", notice.message),
        None => notice.message.clone(),
    }
}

/// Send `notice` through `kind`.
pub(crate) async fn send(
    kind: &SinkKind,
    notice: &Notice,
    host: &str,
    client: &reqwest::Client,
) -> Result<(), SendError> {
    let recovered = matches!(notice.kind, super::monitor::Kind::Recovered(_));
    let request = match kind {
        SinkKind::Ntfy { url, token } => {
            let mut r = client
                .post(url)
                .header("Title", title(notice, host))
                .header(
                    "Tags",
                    if recovered {
                        "white_check_mark"
                    } else {
                        "warning"
                    },
                )
                .body(text(notice));
            if let Some(t) = token {
                r = r.bearer_auth(t.expose());
            }
            r
        }
        SinkKind::Gotify { url, token } => client
            .post(format!("{}/message", url.trim_end_matches('/')))
            .header("X-Gotify-Key", token.expose())
            .json(&GotifyBody {
                title: &title(notice, host),
                message: &text(notice),
                priority: if recovered { 4 } else { 8 },
            }),
        SinkKind::Webhook { url } => client.post(url.expose()).json(&WebhookBody {
            event: notice.kind.event(),
            problem: match notice.kind {
                super::monitor::Kind::Recovered(p) => Some(p.name()),
                _ => None,
            },
            target: notice.target.as_deref(),
            message: &notice.message,
            fix: notice.fix.as_deref(),
            since: notice.since,
            host,
        }),
        SinkKind::Command { argv } => return run_command(argv, notice, host).await,
    };
    let response = request
        .send()
        .await
        .map_err(|e| SendError::Request(http::describe_error(&e)))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(SendError::Status(status.as_u16()))
    }
}

/// Run `argv` with the message in its environment (no shell), its output
/// discarded, killed after [`COMMAND_TIMEOUT`].
async fn run_command(argv: &[String], notice: &Notice, host: &str) -> Result<(), SendError> {
    let program = argv.first().cloned().unwrap_or_default();
    let problem = match notice.kind {
        super::monitor::Kind::Problem(p) | super::monitor::Kind::Recovered(p) => p.name(),
        super::monitor::Kind::Test => "test",
    };
    let mut child = tokio::process::Command::new(&program)
        .args(argv.iter().skip(1))
        .env("MPD_SCROBBLER_EVENT", notice.kind.event())
        .env("MPD_SCROBBLER_PROBLEM", problem)
        .env(
            "MPD_SCROBBLER_TARGET",
            notice.target.as_deref().unwrap_or(""),
        )
        .env("MPD_SCROBBLER_MESSAGE", &notice.message)
        .env("MPD_SCROBBLER_FIX", notice.fix.as_deref().unwrap_or(""))
        .env("MPD_SCROBBLER_SINCE", notice.since.to_string())
        .env("MPD_SCROBBLER_HOST", host)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| SendError::Spawn {
            program: program.clone(),
            source,
        })?;
    match tokio::time::timeout(COMMAND_TIMEOUT, child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(SendError::Command {
            program,
            how: match status.code() {
                Some(code) => format!("exited with status {code}"),
                None => "was killed by a signal".into(),
            },
        }),
        Ok(Err(source)) => Err(SendError::Spawn { program, source }),
        Err(_) => Err(SendError::Command {
            program,
            how: format!("was killed after {} s", COMMAND_TIMEOUT.as_secs()),
        }),
    }
}

/// This machine's name, for the messages.
pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
