//! The `queue` operations the storage thread runs on the database (list,
//! drop, retry), for the daemon's control socket and for the command when
//! no daemon runs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::queue::{Item, Queue, QueueError};

/// A queue operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum QueueCmd {
    /// List waiting (or rejected) items per target.
    List {
        /// The rejected list instead.
        rejected: bool,
    },
    /// Deliver now, skipping any backoff (needs the daemon).
    Flush,
    /// Drop one waiting item, from one target or from every target holding it.
    Drop {
        /// Item id, as `list` shows it.
        id: u64,
        /// Only this target.
        target: Option<String>,
    },
    /// Put every rejected item back in its queue.
    Retry,
}

/// The answer to a queue operation, as `queue --json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum QueueReply {
    /// Waiting (or rejected) items per target.
    #[serde(rename = "targets")]
    Listed(BTreeMap<String, Vec<Item>>),
    /// The targets the item was dropped from.
    Dropped(Vec<String>),
    /// Items put back, per target.
    Retried(BTreeMap<String, u64>),
    /// Targets asked to deliver now.
    Flushed(usize),
}

/// Why a queue operation failed; its text is what the user is told.
#[derive(Debug, thiserror::Error)]
pub(crate) enum QueueCmdError {
    /// The database refused.
    #[error("{0}")]
    Queue(#[from] QueueError),
    /// `--name` names no configured target.
    #[error("no target named {name:?} (configured: {configured})")]
    NoTarget {
        /// The name given.
        name: String,
        /// The configured names, joined.
        configured: String,
    },
    /// No item has this id.
    #[error("no queued item {0}")]
    NoItem(u64),
    /// `flush` without a daemon.
    #[error("flushing needs the running daemon")]
    NeedsDaemon,
}

/// Run a list, drop or retry on `queue`. Flush needs the daemon and is
/// answered there.
pub(crate) fn execute(queue: &Queue, cmd: &QueueCmd) -> Result<QueueReply, QueueCmdError> {
    let names: Vec<String> = queue.names().to_vec();
    match cmd {
        QueueCmd::List { rejected } => {
            let mut targets = BTreeMap::new();
            for name in &names {
                let t = queue.target(name);
                let items = if *rejected {
                    t.list_rejected()
                } else {
                    t.list()
                }?;
                targets.insert(name.clone(), items);
            }
            Ok(QueueReply::Listed(targets))
        }
        QueueCmd::Drop { id, target } => {
            if let Some(t) = target.as_ref().filter(|t| !names.contains(t)) {
                return Err(QueueCmdError::NoTarget {
                    name: t.clone(),
                    configured: names.join(", "),
                });
            }
            let mut dropped = Vec::new();
            for name in names
                .iter()
                .filter(|n| target.as_ref().is_none_or(|t| t == *n))
            {
                if queue.target(name).drop_item(*id)? {
                    dropped.push(name.clone());
                }
            }
            if dropped.is_empty() {
                return Err(QueueCmdError::NoItem(*id));
            }
            Ok(QueueReply::Dropped(dropped))
        }
        QueueCmd::Retry => {
            let mut moved = BTreeMap::new();
            for name in &names {
                let n = queue.target(name).retry_rejected()?;
                moved.insert(name.clone(), n as u64);
            }
            Ok(QueueReply::Retried(moved))
        }
        QueueCmd::Flush => Err(QueueCmdError::NeedsDaemon),
    }
}
