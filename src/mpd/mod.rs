//! The MPD edge: what the daemon consumes from MPD, as this project's own
//! types ([`Snapshot`], [`Event`], [`Message`]), behind the [`MpdSource`]
//! and [`MpdConnection`] interfaces, and their implementation for the real
//! MPD ([`Mpd`], [`Client`]). mpd_client's types stop at this folder.
//!
//! Every idle wake-up is reported as [`Event::Changed`], whatever changed:
//! mpd_client reports only the first subsystem of a wake-up, so the daemon
//! reads the whole state again each time.

mod connection;
mod snapshot;

use std::time::Duration;

pub(crate) use connection::{Mpd, connect};
pub(crate) use snapshot::parse_snapshot;

use crate::model::Snapshot;

/// Deadline for connecting and for each command, so a half-dead link is
/// noticed instead of hanging the watcher.
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// Log directives that keep the MPD client library's debug output out of
/// the daemon's log (only its warnings show).
pub(crate) const QUIET_LOG_TARGETS: &str = "mpd_client=warn,mpd_protocol=warn";

/// Channels whose messages the daemon acts on: mpdscribble's (so existing
/// key bindings keep working) and its own.
pub(crate) const CHANNELS: [&str; 2] = ["mpdscribble", "mpd-scrobbler"];

/// Where the daemon's MPD comes from: something it can connect to, again
/// after each loss.
pub(crate) trait MpdSource {
    /// One connection.
    type Connection: MpdConnection;

    /// The address, for the log and `status`.
    fn address(&self) -> String;

    /// Connect (and authenticate).
    fn connect(&self) -> impl Future<Output = Result<Self::Connection, ConnectError>> + Send;
}

/// One connection to MPD, as the daemon uses it.
pub(crate) trait MpdConnection: Send {
    /// Subscribe to [`CHANNELS`], for love messages.
    fn subscribe(&mut self) -> impl Future<Output = Result<(), ReadError>> + Send;

    /// The player's state now.
    fn snapshot(&mut self) -> impl Future<Output = Result<Snapshot, ReadError>> + Send;

    /// Messages sent to the subscribed channels since the last call.
    fn messages(&mut self) -> impl Future<Output = Result<Vec<Message>, ReadError>> + Send;

    /// Wait for the next change. Cancel-safe: nothing is lost when the
    /// future is dropped unfinished.
    fn next_event(&mut self) -> impl Future<Output = Event> + Send;
}

/// What MPD reports between reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// Something changed: read the state again.
    Changed,
    /// The connection is gone.
    Closed(Closed),
}

/// Why a connection closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Closed {
    /// MPD answered `idle` with an error, which in practice is MPD refusing
    /// a client without the "read" permission.
    #[error(
        "MPD refused to report changes (idle): the password is missing or lacks the \"read\" permission"
    )]
    NoReadPermission,
    /// The link failed.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// MPD hung up.
    #[error("MPD closed the connection")]
    Eof,
}

/// A message sent to one of the [`CHANNELS`] (`mpc sendmessage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    /// The channel.
    pub channel: String,
    /// What was sent.
    pub text: String,
}

/// Why a connection attempt failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    /// MPD is not reachable (yet).
    #[error("cannot connect to MPD at {address}: {source}")]
    Io {
        /// Where.
        address: String,
        /// Cause.
        source: std::io::Error,
    },
    /// MPD answered but refused the password.
    #[error("MPD at {0} rejected the password")]
    BadPassword(String),
    /// MPD did not greet properly or in time.
    #[error("MPD at {address} did not answer properly: {message}")]
    Protocol {
        /// Where.
        address: String,
        /// What went wrong.
        message: String,
    },
}

/// Why reading from MPD failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ReadError {
    /// MPD answered with an error (an `ACK`).
    #[error("MPD command failed: command returned an error [code {code}]: {message}")]
    Refused {
        /// MPD's error code (4: no permission).
        code: u64,
        /// MPD's message.
        message: String,
    },
    /// The connection is closed; why arrives as an [`Event::Closed`].
    #[error("MPD command failed: the connection is closed")]
    Closed,
    /// The answer could not be read.
    #[error("MPD command failed: {0}")]
    Protocol(String),
    /// MPD did not answer in time.
    #[error("MPD did not answer within {} s", COMMAND_TIMEOUT.as_secs())]
    Timeout,
}
