//! `mpd-scrobbler queue`: listing, dropping and retrying queued items. The
//! same operations run inside the daemon (reached through the control
//! socket, since sled lets only one process open the queue) and directly on
//! the database when no daemon runs.

use super::{existing_queue, to_json, unexpected};
use crate::config::Config;
use crate::control::{self, Reply, Request};
use crate::output::{out, outln};
use crate::store::QueueReply;
use crate::time::local_time;

pub(crate) use crate::store::QueueCmd;

/// Run `cmd` for the command line: through the daemon when it runs, on the
/// database otherwise; print the answer as text or JSON.
pub(crate) async fn command(config: &Config, cmd: QueueCmd, json_out: bool) -> anyhow::Result<()> {
    // With no target there is no queue, whatever the daemon would say.
    if config.target_names().is_empty() && !json_out {
        outln!(
            "No target is configured, so nothing is queued: plays are kept in the local history \
             only (`mpd-scrobbler history`). `mpd-scrobbler config show` prints the [lastfm] and \
             [listenbrainz] sections that add one."
        );
        return Ok(());
    }
    let answer = match control::request(&config.state_dir, Request::Queue(cmd.clone())).await {
        Ok(Some(reply)) => reply,
        Ok(None) if cmd == QueueCmd::Flush => {
            anyhow::bail!("no daemon is running; queued scrobbles go out when it starts");
        }
        Ok(None) => match existing_queue(config)? {
            Some(queue) => crate::store::execute(&queue, &cmd)
                .map_or_else(|e| Reply::Error(e.to_string()), Reply::Queue),
            None => nothing_queued(config, &cmd),
        },
        Err(e) => return Err(e.into()),
    };
    let Reply::Queue(answer) = answer else {
        return Err(unexpected(answer));
    };
    if json_out {
        outln!("{}", to_json(&answer));
    } else {
        out!("{}", render(&cmd, &answer));
    }
    Ok(())
}

/// The answer to `cmd` when no queue database exists: nothing is queued.
fn nothing_queued(config: &Config, cmd: &QueueCmd) -> Reply {
    let names = config.target_names().into_iter().map(str::to_owned);
    match cmd {
        QueueCmd::List { .. } => {
            Reply::Queue(QueueReply::Listed(names.map(|n| (n, Vec::new())).collect()))
        }
        QueueCmd::Retry => Reply::Queue(QueueReply::Retried(names.map(|n| (n, 0)).collect())),
        QueueCmd::Drop { id, .. } => Reply::Error(format!("no queued item {id}")),
        QueueCmd::Flush => Reply::Error("flushing needs the running daemon".into()),
    }
}

fn render(cmd: &QueueCmd, answer: &QueueReply) -> String {
    let mut out = String::new();
    match (cmd, answer) {
        (QueueCmd::List { rejected }, QueueReply::Listed(targets)) => {
            let what = if *rejected { "rejected" } else { "queued" };
            // Ids as wide as the widest, so they line up on the left edge.
            let w = targets
                .values()
                .flatten()
                .map(|i| i.id.to_string().len())
                .max()
                .unwrap_or(1);
            for (name, items) in targets {
                out.push_str(&format!("{name}: {} {what}\n", items.len()));
                for i in items {
                    let reason = i
                        .reason
                        .as_ref()
                        .map(|r| format!("  ({r})"))
                        .unwrap_or_default();
                    out.push_str(&format!(
                        "  {:>w$}  {}  {}{reason}\n",
                        i.id,
                        local_time(i.listen.started_at),
                        crate::model::describe_names(&i.listen.track.artist, &i.listen.track.title)
                    ));
                }
            }
        }
        (_, QueueReply::Flushed(_)) => out.push_str("The daemon is delivering now.\n"),
        (QueueCmd::Drop { id, .. }, QueueReply::Dropped(from)) => {
            out.push_str(&format!("Dropped {id} from {}.\n", from.join(", ")));
        }
        (_, QueueReply::Retried(moved)) => {
            for (name, n) in moved {
                out.push_str(&format!("{name}: {n} put back in the queue\n"));
            }
        }
        (_, other) => out.push_str(&format!("{}\n", to_json(other))),
    }
    out
}
