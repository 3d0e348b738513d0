//! The answer to `status`: what the daemon sees of MPD, the current play,
//! the state directory, each target and the history. Fields are in
//! alphabetical order, the order `status --json` has always printed (a
//! target's state, flattened into it, excepted).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::store::HistorySummary;
use crate::target_state::{Deliveries, TargetState};

/// The daemon's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Status {
    /// The history's summary.
    pub history: HistorySummary,
    /// The link to MPD.
    pub mpd: MpdLink,
    /// The current play, if any.
    pub playing: Option<Playing>,
    /// Plays written to the queue and the history since the daemon started.
    #[serde(default)]
    pub plays_recorded: u64,
    /// Whether plays can be written.
    pub storage: Storage,
    /// Each target, in the config's order.
    pub targets: Vec<TargetStatus>,
}

impl Status {
    /// Plays in the history; `None` when it is off or unreadable. The
    /// database keeps the count, so a scrape never walks the history.
    pub(crate) fn history_len(&self) -> Option<u64> {
        match self.history {
            HistorySummary::Plays { plays, .. } => Some(plays),
            HistorySummary::Error { .. } | HistorySummary::Off { .. } => None,
        }
    }
}

/// The link to MPD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MpdLink {
    /// Where MPD is.
    pub address: String,
    /// Whether the daemon follows it now.
    pub connected: bool,
}

/// The current play.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Playing {
    /// The track's artist.
    pub artist: String,
    /// Seconds needed to scrobble it; `None` when it will not be.
    pub needed_secs: Option<u64>,
    /// Seconds played so far.
    pub played_secs: u64,
    /// Whether it has counted as a play.
    pub qualified: bool,
    /// The track's title.
    pub title: String,
    /// For a stream's title: the play time after which it counts when it
    /// ends (`needed_secs` is when it counts at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts_at_end_secs: Option<u64>,
    /// Once it counted: whether its history record is written.
    #[serde(default)]
    pub recorded: bool,
    /// Once it counted: the targets it waits in the queue for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queued_for: Vec<String>,
    /// Once it counted: the targets that accepted it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delivered_to: Vec<String>,
}

/// Whether the queue can be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum StorageState {
    /// Writing works.
    Ok,
    /// The database is being opened again after an error.
    Closed,
    /// The file system is full.
    Full,
    /// The state directory is not writable.
    Unwritable,
    /// Writing fails for another reason.
    Failing,
}

/// The state directory's part of `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Storage {
    /// The state directory.
    pub dir: PathBuf,
    /// Plays dropped because too many were held.
    pub dropped: u64,
    /// What to do, when writing does not work.
    pub fix: Option<String>,
    /// Plays held in memory, waiting to be written.
    pub held: u64,
    /// Whether writing works.
    pub state: StorageState,
    /// The last write error, while writing fails.
    pub why: Option<String>,
}

/// One target's part of `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TargetStatus {
    /// How deliveries ended since the daemon started.
    #[serde(default)]
    pub deliveries: Deliveries,
    /// Time of the last successful delivery (Unix seconds).
    pub last_success: Option<u64>,
    /// The target's name.
    pub name: String,
    /// When the oldest queued item started (Unix seconds).
    #[serde(default)]
    pub oldest_started: Option<u64>,
    /// Age of the oldest queued item, in seconds.
    pub oldest_secs: Option<u64>,
    /// Items waiting.
    pub queued: u64,
    /// Items the server refused for good.
    pub rejected: u64,
    /// What delivery is doing: `state`, and `retry_at`, `why` and `fix`
    /// as the state has them.
    #[serde(flatten)]
    pub state: TargetState,
}
