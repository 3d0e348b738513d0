//! The commands over the local history: `history`, `history export`, `stats`
//! and `backfill`. sled lets one process open the database, so while the
//! daemon runs they go through its control socket (the daemon runs the same
//! functions on its open database and answers with one line of JSON); when
//! no daemon runs they open the database themselves.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::stats::{self, Stats, Style};
use crate::config::Config;
use crate::control::{self, Request};
use crate::history::{self, Filter, Record};
use crate::metadata::info::local_time;
use crate::output::{count, out, outln};
use crate::queue::Queue;
use crate::scrobble::unix_now;

/// Last.fm ignores scrobbles older than this (docs/protocols.md, "Eligibility and age").
const LASTFM_MAX_AGE: u64 = 14 * 86_400;

/// A `backfill` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackfillRequest {
    /// The target to catch up.
    pub target: String,
    /// Only plays since this (Unix seconds).
    pub since: Option<u64>,
}

/// The export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A JSON array of listens in ListenBrainz's import shape.
    ListenBrainz,
    /// CSV with a header line.
    Csv,
}

/// The history switch and the targets' age limits from `config`.
pub fn configure(queue: Queue, config: &Config) -> Queue {
    config
        .lastfm
        .iter()
        .fold(queue.record_history(config.history.enabled), |q, t| {
            q.with_max_age(&t.name, LASTFM_MAX_AGE)
        })
}

fn history_of(queue: &Queue) -> Result<history::History, String> {
    queue
        .history()
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "the history is switched off ([history] enabled = false)".to_owned())
}

fn answer(result: Result<Value, String>) -> Value {
    result.unwrap_or_else(|e| json!({ "error": e }))
}

/// The records `filter` selects, as `{"plays": [...]}`.
pub fn select(queue: &Queue, filter: &Filter) -> Value {
    answer((|| {
        let plays = filter
            .select(&history_of(queue)?)
            .map_err(|e| e.to_string())?;
        Ok(json!({ "plays": plays }))
    })())
}

/// The stats since `since`, as JSON.
pub fn compute_stats(queue: &Queue, since: Option<u64>) -> Value {
    answer((|| {
        let s =
            stats::compute(&history_of(queue)?, since, unix_now()).map_err(|e| e.to_string())?;
        Ok(json!(s))
    })())
}

/// Queue what `req.target` has not received; the counts as JSON.
pub fn backfill(queue: &Queue, req: &BackfillRequest) -> Value {
    answer((|| {
        if !queue.names().contains(&req.target) {
            return Err(format!(
                "no target named {:?} (configured: {})",
                req.target,
                queue.names().join(", ")
            ));
        }
        history_of(queue)?;
        let done = queue
            .backfill(&req.target, req.since, unix_now())
            .map_err(|e| e.to_string())?;
        Ok(json!(done))
    })())
}

/// The size of the history and its first play, for `status`.
pub fn summary(queue: &Queue) -> Value {
    match queue.history() {
        Ok(Some(h)) => json!({ "plays": h.len(), "first_started": h.first_started() }),
        Ok(None) => json!({ "enabled": false }),
        Err(e) => json!({ "error": e.to_string() }),
    }
}

/// The `status` line for [`summary`]'s answer.
pub fn render_summary(v: &Value) -> String {
    if v["enabled"] == json!(false) {
        return "History: off\n".into();
    }
    if let Some(e) = v["error"].as_str() {
        return format!("History: cannot be read ({e})\n");
    }
    match (v["plays"].as_u64(), v["first_started"].as_u64()) {
        (Some(n), Some(first)) if n > 0 => {
            format!(
                "History: {} since {}\n",
                count(n, "play", "plays"),
                local_time(first)
            )
        }
        _ => "History: no plays yet\n".into(),
    }
}

/// Whether a request only reads, and then its answer over no plays.
enum Kind {
    Read(Value),
    Write,
}

/// Ask the daemon, or run `direct` on the database when no daemon runs.
async fn ask(
    config: &Config,
    req: Request,
    direct: impl FnOnce(&Queue) -> Value,
) -> Result<Value, String> {
    ask_where(config, req, direct).await.map(|(v, _)| v)
}

/// [`ask`], also saying whether the daemon answered.
async fn ask_where(
    config: &Config,
    req: Request,
    direct: impl FnOnce(&Queue) -> Value,
) -> Result<(Value, bool), String> {
    let req_kind = match &req {
        Request::History(_) => Kind::Read(json!({ "plays": [] })),
        Request::Stats(since) => Kind::Read(json!(
            stats::Aggregator::new(*since, jiff::tz::TimeZone::system()).finish(unix_now())
        )),
        _ => Kind::Write,
    };
    let (v, daemon) = match control::request(&config.state_dir, req).await {
        Ok(Some(
            control::Reply::History(v) | control::Reply::Stats(v) | control::Reply::Backfill(v),
        )) => (v, true),
        Ok(Some(other)) => return Err(crate::admin::unexpected(other)),
        Ok(None) => match &req_kind {
            // Reading makes nothing: no database yet is an empty history.
            Kind::Read(empty) => match crate::admin::existing_queue(config)? {
                Some(q) => (direct(&q), false),
                None => (empty.clone(), false),
            },
            Kind::Write => (direct(&crate::admin::open_queue(config)?), false),
        },
        Err(e) => return Err(e.to_string()),
    };
    match v.get("error").and_then(Value::as_str) {
        Some(e) => Err(e.to_owned()),
        None => Ok((v, daemon)),
    }
}

async fn records(config: &Config, filter: &Filter) -> Result<Vec<Record>, String> {
    let v = ask(config, Request::History(filter.clone()), |q| {
        select(q, filter)
    })
    .await?;
    serde_json::from_value(v["plays"].clone())
        .map_err(|e| format!("the daemon answered something unreadable ({e})"))
}

/// `history`: one line per play in local time, or a JSON array.
pub async fn show(config: &Config, filter: &Filter, json_out: bool) -> Result<(), String> {
    let plays = records(config, filter).await?;
    if json_out {
        let entries: Vec<_> = plays.iter().map(Record::entry).collect();
        outln!("{}", serde_json::to_string_pretty(&entries).expect("JSON"));
        return Ok(());
    }
    let mut out = String::new();
    for r in &plays {
        let t = &r.listen.track;
        let album = t
            .album
            .as_ref()
            .map(|a| format!(" ({a})"))
            .unwrap_or_default();
        out.push_str(&format!(
            "{}  {}{album}\n",
            local_time(r.listen.started_at),
            crate::delivery::describe_names(&t.artist, &t.title)
        ));
    }
    if plays.is_empty() {
        out.push_str("No plays recorded");
        out.push_str(if *filter == Filter::default() {
            " yet.\n"
        } else {
            " that match.\n"
        });
    }
    out!("{out}");
    Ok(())
}

/// The text of an export.
pub fn export_text(plays: &[Record], format: Format) -> String {
    match format {
        Format::ListenBrainz => {
            let listens: Vec<Value> = plays
                .iter()
                .map(|r| history::listenbrainz_listen(&r.listen))
                .collect();
            serde_json::to_string_pretty(&listens).expect("JSON") + "\n"
        }
        Format::Csv => {
            let mut out = String::from(history::CSV_HEADER);
            out.push_str("\r\n");
            for r in plays {
                out.push_str(&history::csv_line(r));
                out.push_str("\r\n");
            }
            out
        }
    }
}

/// `history export`: every selected play to stdout.
pub async fn export(config: &Config, filter: &Filter, format: Format) -> Result<(), String> {
    let plays = records(config, filter).await?;
    out!("{}", export_text(&plays, format));
    Ok(())
}

/// `stats`: figures and charts, or JSON.
pub async fn show_stats(config: &Config, period: &str, json_out: bool) -> Result<(), String> {
    let since = history::period_start(period, unix_now())?;
    let v = ask(config, Request::Stats(since), |q| compute_stats(q, since)).await?;
    if json_out {
        outln!("{}", serde_json::to_string_pretty(&v).expect("JSON"));
        return Ok(());
    }
    let s: Stats = serde_json::from_value(v)
        .map_err(|e| format!("the daemon answered something unreadable ({e})"))?;
    let env = |k: &str| std::env::var(k).ok();
    out!("{}", stats::render(&s, period, Style::for_stdout(&env)));
    Ok(())
}

/// `backfill TARGET`: queue for TARGET what it has not received.
pub async fn backfill_cmd(
    config: &Config,
    target: &str,
    since: Option<u64>,
    json_out: bool,
) -> Result<(), String> {
    if !config.target_names().contains(&target) {
        return Err(format!(
            "{}: no target named {target:?} (configured: {})",
            config.path.display(),
            match config.target_names() {
                n if n.is_empty() => "none".to_owned(),
                n => n.join(", "),
            }
        ));
    };
    let req = BackfillRequest {
        target: target.to_owned(),
        since,
    };
    let (v, running) = ask_where(config, Request::Backfill(req.clone()), |q| {
        backfill(q, &req)
    })
    .await?;
    if json_out {
        outln!("{}", serde_json::to_string_pretty(&v).expect("JSON"));
        return Ok(());
    }
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    let mut text = format!(
        "{target}: queued {} plays ({} it has already).",
        n("queued"),
        n("already")
    );
    if n("too_old") > 0 {
        text.push_str(&format!(
            " Skipped {} older than 14 days, which Last.fm would ignore.",
            n("too_old")
        ));
    }
    if !running && n("queued") > 0 {
        text.push_str(" They go out when the daemon starts.");
    }
    outln!("{text}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::PlayInfo;
    use crate::scrobble::{Listen, Track};

    #[test]
    fn exports_have_a_line_or_object_per_play() {
        let plays: Vec<Record> = (0..3)
            .map(|i| {
                Record::new(
                    &Listen {
                        track: Track {
                            artist: "A".into(),
                            title: format!("T{i}"),
                            ..Track::default()
                        },
                        started_at: 1_700_000_000 + i,
                    },
                    &PlayInfo::default(),
                    &[],
                )
            })
            .collect();
        let csv = export_text(&plays, Format::Csv);
        assert_eq!(csv.lines().count(), 4);
        assert!(csv.starts_with("started_at,artist,title"));
        let lb: Vec<Value> =
            serde_json::from_str(&export_text(&plays, Format::ListenBrainz)).unwrap();
        assert_eq!(lb.len(), 3);
        assert_eq!(lb[2]["track_metadata"]["track_name"], "T2");
    }

    #[test]
    fn status_line() {
        assert_eq!(render_summary(&json!({"enabled": false})), "History: off\n");
        assert_eq!(
            render_summary(&json!({"plays": 0, "first_started": null})),
            "History: no plays yet\n"
        );
        assert!(
            render_summary(&json!({"plays": 12, "first_started": 1_700_000_000}))
                .starts_with("History: 12 plays since 2023-11-")
        );
    }
}
