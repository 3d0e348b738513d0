//! `mpd-scrobbler queue`: listing, dropping and retrying queued items. The
//! same operations run inside the daemon (reached through the control
//! socket, since sled lets only one process open the queue) and directly on
//! the database when no daemon runs.

use std::path::Path;

use serde_json::{Value, json};

use crate::config::Config;
use crate::control::{self, Request};
use crate::delivery::TargetState;
use crate::history::{self, commands as history_cmd, journal};
use crate::metadata::info::local_time;
use crate::queue::{Item, Queue};
use crate::scrobble::Listen;
use crate::session;

/// A queue operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueCmd {
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

impl QueueCmd {
    /// The control-socket line for this operation.
    pub fn to_line(&self) -> String {
        match self {
            QueueCmd::List { rejected: false } => "queue list".into(),
            QueueCmd::List { rejected: true } => "queue list rejected".into(),
            QueueCmd::Flush => "queue flush".into(),
            QueueCmd::Drop { id, target: None } => format!("queue drop {id}"),
            QueueCmd::Drop {
                id,
                target: Some(t),
            } => format!("queue drop {id} {t}"),
            QueueCmd::Retry => "queue retry".into(),
        }
    }

    /// Parse a control-socket line (without the leading `queue`).
    pub fn parse(words: &[&str]) -> Option<QueueCmd> {
        match words {
            ["list"] => Some(QueueCmd::List { rejected: false }),
            ["list", "rejected"] => Some(QueueCmd::List { rejected: true }),
            ["flush"] => Some(QueueCmd::Flush),
            ["retry"] => Some(QueueCmd::Retry),
            ["drop", id] => Some(QueueCmd::Drop {
                id: id.parse().ok()?,
                target: None,
            }),
            ["drop", id, t] => Some(QueueCmd::Drop {
                id: id.parse().ok()?,
                target: Some((*t).to_owned()),
            }),
            _ => None,
        }
    }
}

/// Run a list, drop or retry on `queue`; the answer is JSON
/// (`{"error": ..}` on failure). Flush needs the daemon and is answered there.
pub fn execute(queue: &Queue, cmd: &QueueCmd) -> Value {
    let names: Vec<String> = queue.names().to_vec();
    let result = (|| -> Result<Value, String> {
        match cmd {
            QueueCmd::List { rejected } => {
                let mut targets = serde_json::Map::new();
                for name in &names {
                    let t = queue.target(name);
                    let items = if *rejected {
                        t.list_rejected()
                    } else {
                        t.list()
                    }
                    .map_err(|e| e.to_string())?;
                    targets.insert(name.clone(), json!(items));
                }
                Ok(json!({ "targets": targets }))
            }
            QueueCmd::Drop { id, target } => {
                if let Some(t) = target.as_ref().filter(|t| !names.contains(t)) {
                    return Err(format!(
                        "no target named {t:?} (configured: {})",
                        names.join(", ")
                    ));
                }
                let mut dropped = Vec::new();
                for name in names
                    .iter()
                    .filter(|n| target.as_ref().is_none_or(|t| t == *n))
                {
                    if queue
                        .target(name)
                        .drop_item(*id)
                        .map_err(|e| e.to_string())?
                    {
                        dropped.push(name.clone());
                    }
                }
                if dropped.is_empty() {
                    return Err(format!("no queued item {id}"));
                }
                Ok(json!({ "dropped": dropped }))
            }
            QueueCmd::Retry => {
                let mut moved = serde_json::Map::new();
                for name in &names {
                    let n = queue
                        .target(name)
                        .retry_rejected()
                        .map_err(|e| e.to_string())?;
                    moved.insert(name.clone(), json!(n));
                }
                Ok(json!({ "retried": moved }))
            }
            QueueCmd::Flush => Err("flushing needs the running daemon".into()),
        }
    })();
    result.unwrap_or_else(|e| json!({ "error": e }))
}

/// Add journal listens to every queue; the answer is JSON.
pub fn import(queue: &Queue, listens: &[Listen]) -> Value {
    match queue.import(listens) {
        Ok((added, skipped)) => json!({ "added": added, "skipped": skipped }),
        Err(e) => json!({ "error": e.to_string() }),
    }
}

/// `import mpdscribble JOURNAL`: read the journal, report malformed records
/// by line, and queue the rest through the daemon or directly.
pub async fn import_journal(config: &Config, path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let (listens, malformed) = journal::parse(&text);
    for m in &malformed {
        eprintln!("{}:{}: skipped: {}", path.display(), m.line, m.problem);
    }
    import_listens(config, path, listens, malformed.len()).await
}

/// `import listenbrainz FILE`: read a ListenBrainz export (JSON array or
/// JSON Lines), report unreadable listens by position, and import the rest.
pub async fn import_listenbrainz(config: &Config, path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let (listens, bad) = history::parse_listenbrainz_export(&text)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    for b in &bad {
        eprintln!(
            "{}: listen {}: skipped: {}",
            path.display(),
            b.index,
            b.problem
        );
    }
    import_listens(config, path, listens, bad.len()).await
}

/// Add imported listens to the history and the queues, through the daemon
/// when it runs.
async fn import_listens(
    config: &Config,
    path: &Path,
    listens: Vec<Listen>,
    malformed: usize,
) -> Result<(), String> {
    let (mut added, mut skipped) = (0, 0);
    // A large journal goes in several requests, each within the socket's
    // line limit. Without a daemon, all of it goes in at once; listens a
    // vanished daemon already took count as already queued.
    for request in control::import_requests(&listens) {
        let (answer, direct) = match control::request(&config.state_dir, request).await {
            Ok(Some(line)) => (
                serde_json::from_str::<Value>(&line)
                    .map_err(|e| format!("the daemon answered something unreadable ({e})"))?,
                false,
            ),
            Ok(None) => (import(&open_queue(config)?, &listens), true),
            Err(e) => return Err(format!("cannot reach the daemon: {e}")),
        };
        if let Some(e) = answer.get("error").and_then(Value::as_str) {
            return Err(e.to_owned());
        }
        added += answer["added"].as_u64().unwrap_or(0);
        skipped += answer["skipped"].as_u64().unwrap_or(0);
        if direct {
            break;
        }
    }
    println!(
        "Imported {added} scrobbles from {} ({skipped} already queued or delivered, {malformed} malformed records skipped).",
        path.display(),
    );
    Ok(())
}

/// Open the queue directly (no daemon runs), creating the state directory
/// private to the user.
/// Open the queue database (creating the state directory), with the history
/// and the targets' age limits as configured.
pub fn open_queue(config: &Config) -> Result<Queue, String> {
    session::ensure_state_dir(&config.state_dir).map_err(|e| {
        format!(
            "cannot create the state directory {}: {e}",
            config.state_dir.display()
        )
    })?;
    Queue::open(&config.state_dir, &config.target_names())
        .map(|q| history_cmd::configure(q, config))
        .map_err(|e| e.to_string())
}

/// Run `cmd` for the command line: through the daemon when it runs, on the
/// database otherwise; print the answer as text or JSON.
pub async fn command(config: &Config, cmd: QueueCmd, json_out: bool) -> Result<(), String> {
    let answer = match control::request(&config.state_dir, Request::Queue(cmd.clone())).await {
        Ok(Some(line)) => serde_json::from_str::<Value>(&line)
            .map_err(|e| format!("the daemon answered something unreadable ({e})"))?,
        Ok(None) if cmd == QueueCmd::Flush => {
            return Err("no daemon is running; queued scrobbles go out when it starts".into());
        }
        Ok(None) => {
            let queue = open_queue(config)?;
            execute(&queue, &cmd)
        }
        Err(e) => return Err(format!("cannot reach the daemon: {e}")),
    };
    if let Some(e) = answer.get("error").and_then(Value::as_str) {
        return Err(e.to_owned());
    }
    if json_out {
        println!("{}", serde_json::to_string_pretty(&answer).expect("JSON"));
    } else {
        print!("{}", render(&cmd, &answer));
    }
    Ok(())
}

fn render(cmd: &QueueCmd, answer: &Value) -> String {
    let mut out = String::new();
    match cmd {
        QueueCmd::List { rejected } => {
            let what = if *rejected { "rejected" } else { "queued" };
            for (name, items) in answer["targets"].as_object().into_iter().flatten() {
                let items: Vec<Item> = serde_json::from_value(items.clone()).unwrap_or_default();
                out.push_str(&format!("{name}: {} {what}\n", items.len()));
                for i in items {
                    let reason = i.reason.map(|r| format!("  ({r})")).unwrap_or_default();
                    out.push_str(&format!(
                        "  {:>20}  {}  {} – {}{reason}\n",
                        i.id,
                        local_time(i.listen.started_at),
                        i.listen.track.artist,
                        i.listen.track.title
                    ));
                }
            }
        }
        QueueCmd::Flush => out.push_str("The daemon is delivering now.\n"),
        QueueCmd::Drop { id, .. } => {
            let from: Vec<&str> = answer["dropped"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            out.push_str(&format!("Dropped {id} from {}.\n", from.join(", ")));
        }
        QueueCmd::Retry => {
            for (name, n) in answer["retried"].as_object().into_iter().flatten() {
                out.push_str(&format!("{name}: {n} put back in the queue\n"));
            }
        }
    }
    out
}

/// `mpd-scrobbler status`: the daemon's view, or the queue's when it is not
/// running (then the result is an error, for scripts).
pub async fn status(config: &Config, json_out: bool) -> Result<(), String> {
    match control::request(&config.state_dir, Request::Status).await {
        Ok(Some(line)) => {
            let v: Value = serde_json::from_str(&line)
                .map_err(|e| format!("the daemon answered something unreadable ({e})"))?;
            if let Some(e) = v.get("error").and_then(Value::as_str) {
                return Err(e.to_owned());
            }
            if json_out {
                println!("{}", serde_json::to_string_pretty(&v).expect("JSON"));
            } else {
                print!("{}", render_status(&v));
            }
            Ok(())
        }
        Ok(None) => {
            let queue = open_queue(config)?;
            let mut text = String::from("The daemon is not running.\n");
            for name in queue.names() {
                let t = queue.target(name);
                text.push_str(&format!(
                    "{name}: {} queued, {} rejected\n",
                    t.len(),
                    t.rejected_len()
                ));
            }
            text.push_str(&history_cmd::render_summary(&history_cmd::summary(&queue)));
            Err(text.trim_end().to_owned())
        }
        Err(e) => Err(format!("cannot reach the daemon: {e}")),
    }
}

fn clock(secs: u64) -> String {
    format!("{}:{:02}", secs / 60, secs % 60)
}

fn ago(secs: u64) -> String {
    match secs {
        0..120 => format!("{secs} s"),
        120..7200 => format!("{} min", secs / 60),
        7200..172_800 => format!("{} h", secs / 3600),
        _ => format!("{} days", secs / 86400),
    }
}

fn render_status(v: &Value) -> String {
    let mut out = String::new();
    let mpd = &v["mpd"];
    let address = mpd["address"].as_str().unwrap_or_default();
    if mpd["connected"].as_bool() == Some(true) {
        out.push_str(&format!("MPD: connected to {address}\n"));
    } else {
        out.push_str(&format!("MPD: not connected ({address}); retrying\n"));
    }
    let p = &v["playing"];
    if p.is_object() {
        let played = p["played_secs"].as_u64().unwrap_or(0);
        let progress = match (p["qualified"].as_bool(), p["needed_secs"].as_u64()) {
            (Some(true), _) => "scrobbled".to_owned(),
            (_, Some(needed)) => format!("played {} of {} needed", clock(played), clock(needed)),
            (_, None) => "will not be scrobbled".to_owned(),
        };
        out.push_str(&format!(
            "Current: {} – {}, {progress}\n",
            p["artist"].as_str().unwrap_or_default(),
            p["title"].as_str().unwrap_or_default()
        ));
    } else {
        out.push_str("Current: nothing playing\n");
    }
    let storage = &v["storage"];
    let held = storage["held"].as_u64().unwrap_or(0);
    match storage["state"].as_str() {
        Some("ok") | None if held == 0 => {}
        state => {
            let state = match state.unwrap_or("ok") {
                "full" => "the state directory is FULL".to_owned(),
                "unwritable" => "the state directory is NOT WRITABLE".to_owned(),
                "ok" => "ok".to_owned(),
                other => format!("queue writes {other}"),
            };
            let dropped = match storage["dropped"].as_u64().unwrap_or(0) {
                0 => String::new(),
                n => format!(" ({n} oldest dropped)"),
            };
            out.push_str(&format!(
                "Storage: {state}; {held} plays held in memory{dropped}\n"
            ));
            if let Some(why) = storage["why"].as_str() {
                out.push_str(&format!("  error: {why}\n"));
            }
            if let Some(fix) = storage["fix"].as_str() {
                out.push_str(&format!("  fix: {fix}\n"));
            }
        }
    }
    for t in v["targets"].as_array().into_iter().flatten() {
        let state = serde_json::from_value::<TargetState>(t.clone()).map_or_else(
            |_| t["state"].as_str().unwrap_or_default().to_owned(),
            |state| state.to_string(),
        );
        let oldest = t["oldest_secs"]
            .as_u64()
            .map(|s| format!(", oldest {} old", ago(s)))
            .unwrap_or_default();
        let last = t["last_success"]
            .as_u64()
            .map(local_time)
            .unwrap_or_else(|| "never".into());
        out.push_str(&format!(
            "{}: {state}; {} queued{oldest}; last delivery {last}\n",
            t["name"].as_str().unwrap_or_default(),
            t["queued"]
        ));
    }
    out.push_str(&history_cmd::render_summary(&v["history"]));
    out
}

/// `mpd-scrobbler love|unlove`: the running daemon knows what is playing and
/// queues it durably for every target.
pub async fn love(config: &Config, love: bool) -> Result<(), String> {
    let verb = if love { "love" } else { "unlove" };
    let line = control::request(&config.state_dir, Request::Love(love))
        .await
        .map_err(|e| format!("cannot reach the daemon: {e}"))?
        .ok_or_else(|| format!("the daemon is not running; start it to {verb} what MPD plays"))?;
    let v: Value = serde_json::from_str(&line)
        .map_err(|e| format!("the daemon answered something unreadable ({e})"))?;
    if let Some(e) = v.get("error").and_then(Value::as_str) {
        return Err(e.to_owned());
    }
    println!(
        "Queued {verb} of {} – {}.",
        v["artist"].as_str().unwrap_or_default(),
        v["title"].as_str().unwrap_or_default()
    );
    Ok(())
}
