//! The subcommands, on top of the library: nothing below `cli` and
//! `commands` uses them (docs/design.md, "Layers"). Each module is one
//! subcommand or family: `queue`, `import` (files and servers), `love`,
//! `status`, `history` (show, export, stats, backfill), `notify`, `rules`,
//! `auth`, `check`, `metadata`. What they
//! share, opening the queue and reading the daemon's answers, is here.

pub(crate) mod auth;
pub(crate) mod check;
pub(crate) mod history;
pub(crate) mod import;
pub(crate) mod love;
pub(crate) mod metadata;
pub(crate) mod notify;
pub(crate) mod queue;
pub(crate) mod rules;
pub(crate) mod status;

use crate::config::Config;
use crate::control::Reply;
use crate::queue::Queue;
use crate::session;

/// [`open_queue`] for a command that only reads: `None`, creating nothing,
/// when no queue database was ever made in the state directory (nothing
/// has been played or queued yet).
pub(crate) fn existing_queue(config: &Config) -> anyhow::Result<Option<Queue>> {
    // A database set aside as damaged, or one being rebuilt, counts: opening
    // it finishes what the last start began.
    let made = std::fs::read_dir(&config.state_dir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name == "queue" || name.starts_with("queue.")
        })
    });
    if made {
        open_queue(config).map(Some)
    } else {
        Ok(None)
    }
}

/// Open the queue database (creating the state directory), with the history
/// and the targets' age limits as configured.
pub(crate) fn open_queue(config: &Config) -> anyhow::Result<Queue> {
    session::ensure_state_dir(&config.state_dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot create the state directory {}: {e}",
            config.state_dir.display()
        )
    })?;
    Queue::open(&config.state_dir, &config.target_names())
        .map(|q| crate::store::configure(q, config))
        .map_err(anyhow::Error::from)
}

/// The error a reply of the wrong kind makes: the daemon's own error, or
/// a daemon that speaks another version of the protocol.
pub(crate) fn unexpected(reply: Reply) -> anyhow::Error {
    match reply {
        Reply::Error(e) => anyhow::Error::msg(e),
        other => anyhow::anyhow!("the daemon answered something unexpected: {other:?}"),
    }
}

/// Pretty JSON, for `--json`.
pub(crate) fn to_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
