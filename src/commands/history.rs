//! The commands over the local history: `history`, `history export`, `stats`
//! and `backfill`. They read the history database themselves (SQLite in WAL
//! mode: while the daemon writes), never through the daemon, and write each
//! play out as it is read, so neither they nor the daemon grow with the
//! history. Backfill sends what it selects to the daemon (or to a storage
//! thread of its own when none runs) in bounded batches.

use std::ops::ControlFlow;

use crate::config::Config;
use crate::control::{self, Reply};
use crate::history::charts::{self, Style};
use crate::history::stats;
use crate::history::{self, Filter, Record};
use crate::model::{Listen, unix_now};
use crate::output::{self, count, out, outln};
use crate::queue::{Imported, Queue};
use crate::store::HistorySummary;
use crate::store::Store;
use crate::store::history::HistoryDb;
use crate::time::local_time;

/// Last.fm ignores scrobbles older than this (docs/protocols.md, "Eligibility and age").
use crate::store::LASTFM_MAX_AGE;

/// Plays per batch sent to the daemon by `backfill` and `import`.
pub(crate) const BATCH: usize = 1000;

/// The export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// A JSON array of listens in ListenBrainz's import shape.
    ListenBrainz,
    /// CSV with a header line.
    Csv,
}

/// Whether some configured target takes a play that started at `started`
/// (Last.fm ignores plays older than 14 days).
pub(crate) fn some_target_takes(config: &Config, started: u64, now: u64) -> bool {
    let lastfm: Vec<&str> = config.lastfm.iter().map(|t| t.name.as_str()).collect();
    config
        .target_names()
        .iter()
        .any(|n| !lastfm.contains(n) || now.saturating_sub(started) <= LASTFM_MAX_AGE)
}

/// The history database for reading: `None` when nothing was recorded yet.
pub(crate) fn reader(config: &Config) -> anyhow::Result<Option<HistoryDb>> {
    if !config.history.enabled {
        anyhow::bail!("the history is switched off ([history] enabled = false)");
    }
    // With no daemon running, what it left in the queue database's outbox
    // (a cut between a play's two syncs), or a history an older release
    // kept there, goes in first. A running daemon does that itself.
    if config.state_dir.join("queue").exists() && !Queue::held_elsewhere(&config.state_dir) {
        if let Ok(Some(queue)) = super::existing_queue(config) {
            let mut db = HistoryDb::open_writer(&config.state_dir).map_err(anyhow::Error::from)?;
            crate::store::catch_up(&queue, &mut db).map_err(anyhow::Error::from)?;
        }
    }
    HistoryDb::open_reader(&config.state_dir).map_err(anyhow::Error::from)
}

/// The size of the history and its first play, for `status` without a
/// daemon.
pub(crate) fn summary(config: &Config) -> HistorySummary {
    if !config.history.enabled {
        return HistorySummary::Off { enabled: false };
    }
    let read = || -> anyhow::Result<HistorySummary> {
        Ok(match reader(config)? {
            None => HistorySummary::Plays {
                plays: 0,
                first_started: None,
            },
            Some(db) => HistorySummary::Plays {
                plays: db.len().map_err(anyhow::Error::from)?,
                first_started: db.first_started().map_err(anyhow::Error::from)?,
            },
        })
    };
    read().unwrap_or_else(|error| HistorySummary::Error {
        error: error.to_string(),
    })
}

/// The `status` line for [`summary`]'s answer.
pub(crate) fn render_summary(v: &HistorySummary) -> String {
    match v {
        HistorySummary::Off { .. } => "History: off\n".into(),
        HistorySummary::Error { error } => format!("History: cannot be read ({error})\n"),
        HistorySummary::Plays {
            plays,
            first_started: Some(first),
        } if *plays > 0 => format!(
            "History: {} since {}\n",
            count(*plays, "play", "plays"),
            local_time(*first)
        ),
        HistorySummary::Plays { .. } => "History: no plays yet\n".into(),
    }
}

/// Walk the plays `filter` selects, oldest first, until the reader of
/// stdout goes away; how many were read.
fn each_play(
    config: &Config,
    filter: &Filter,
    marks: bool,
    mut each: impl FnMut(&Record),
) -> anyhow::Result<u64> {
    let Some(db) = reader(config)? else {
        return Ok(0);
    };
    let mut n = 0;
    db.select(filter, marks, |row| {
        each(&row.record);
        n += 1;
        match output::is_closed() {
            true => ControlFlow::Break(()),
            false => ControlFlow::Continue(()),
        }
    })
    .map_err(anyhow::Error::from)?;
    Ok(n)
}

/// `history`: one line per play in local time, or a JSON array.
pub(crate) async fn show(config: &Config, filter: &Filter, json_out: bool) -> anyhow::Result<()> {
    if json_out {
        let mut first = true;
        out!("[");
        each_play(config, filter, true, |r| {
            let sep = if std::mem::take(&mut first) {
                "\n"
            } else {
                ",\n"
            };
            let entry = serde_json::to_string_pretty(&r.entry()).unwrap_or_default();
            out!("{sep}  {}", entry.replace('\n', "\n  "));
        })?;
        outln!("{}]", if first { "" } else { "\n" });
        return Ok(());
    }
    let n = each_play(config, filter, false, |r| {
        let t = &r.listen.track;
        let album = t
            .album
            .as_ref()
            .map(|a| format!(" ({a})"))
            .unwrap_or_default();
        outln!(
            "{}  {}{album}",
            local_time(r.listen.started_at),
            crate::model::describe_names(&t.artist, &t.title)
        );
    })?;
    if n == 0 {
        outln!(
            "No plays recorded{}",
            if *filter == Filter::default() {
                " yet."
            } else {
                " that match."
            }
        );
    }
    Ok(())
}

/// `history export`: every selected play to stdout, as it is read.
pub(crate) async fn export(config: &Config, filter: &Filter, format: Format) -> anyhow::Result<()> {
    match format {
        Format::ListenBrainz => {
            let mut first = true;
            out!("[");
            each_play(config, filter, false, |r| {
                let sep = if std::mem::take(&mut first) {
                    "\n"
                } else {
                    ",\n"
                };
                let v = serde_json::to_string_pretty(&history::listenbrainz_listen(&r.listen))
                    .unwrap_or_default();
                out!("{sep}  {}", v.replace('\n', "\n  "));
            })?;
            outln!("{}]", if first { "" } else { "\n" });
        }
        Format::Csv => {
            out!("{}\r\n", history::CSV_HEADER);
            each_play(config, filter, false, |r| {
                out!("{}\r\n", history::csv_line(r));
            })?;
        }
    }
    Ok(())
}

/// `stats`: figures and charts, or JSON.
pub(crate) async fn show_stats(
    config: &Config,
    period: &str,
    json_out: bool,
) -> anyhow::Result<()> {
    let since = history::period_start(period, unix_now()).map_err(anyhow::Error::from)?;
    let mut agg = stats::Aggregator::new(since, jiff::tz::TimeZone::system());
    if let Some(db) = reader(config)? {
        db.for_stats(since, |p| {
            agg.add(
                p.started_at,
                p.artist,
                p.title,
                p.album,
                p.album_artist,
                p.listened,
            );
        })
        .map_err(anyhow::Error::from)?;
    }
    let s = agg.finish(unix_now());
    if json_out {
        outln!("{}", serde_json::to_string_pretty(&s).expect("JSON"));
        return Ok(());
    }
    let env = |k: &str| std::env::var(k).ok();
    out!("{}", charts::render(&s, period, Style::for_stdout(&env)));
    Ok(())
}

/// Where batches of plays to queue go: the daemon, or, once it is found not
/// running, a storage thread of this process.
pub(crate) enum Sink {
    /// The daemon answers.
    Daemon,
    /// No daemon: this process owns the queue.
    Local(Store),
}

impl Sink {
    /// Send one batch (for every target, or `only` one); what it did, and
    /// whether a daemon took it.
    pub(crate) async fn send(
        &mut self,
        config: &Config,
        listens: Vec<Listen>,
        only: Option<&str>,
    ) -> anyhow::Result<Imported> {
        if let Sink::Daemon = self {
            let mut total = Imported::default();
            for request in control::import_requests(&listens, only) {
                match control::request(&config.state_dir, request).await {
                    Ok(Some(Reply::Imported {
                        added,
                        skipped,
                        recorded,
                        queued,
                        too_old,
                    })) => {
                        let n = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
                        total.added += n(added);
                        total.skipped += n(skipped);
                        total.recorded += n(recorded);
                        for (t, v) in queued {
                            *total.queued.entry(t).or_default() += n(v);
                        }
                        for (t, v) in too_old {
                            *total.too_old.entry(t).or_default() += n(v);
                        }
                    }
                    Ok(Some(other)) => return Err(super::unexpected(other)),
                    // The daemon went away: the rest goes in here.
                    Ok(None) => {
                        *self = Sink::local(config)?;
                        return Box::pin(self.send(config, listens, only)).await;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            return Ok(total);
        }
        let Sink::Local(store) = self else {
            unreachable!("handled above")
        };
        store
            .import(listens, only.map(str::to_owned))
            .await
            .map_err(anyhow::Error::from)
    }

    fn local(config: &Config) -> anyhow::Result<Sink> {
        let queue = super::open_queue(config)?;
        Store::start(queue, None)
            .map(Sink::Local)
            .map_err(|e| anyhow::anyhow!("cannot start the storage thread: {e}"))
    }
}

/// `backfill TARGET`: queue for TARGET what it has not received, read from
/// the history and sent in batches.
pub(crate) async fn backfill_cmd(
    config: &Config,
    target: &str,
    since: Option<u64>,
    json_out: bool,
) -> anyhow::Result<()> {
    if !config.target_names().contains(&target) {
        return Err(anyhow::anyhow!(
            "{}: no target named {target:?} (configured: {})",
            config.path.display(),
            match config.target_names() {
                n if n.is_empty() => "none".to_owned(),
                n => n.join(", "),
            }
        ));
    };
    let mut done = crate::queue::Backfill::default();
    let mut running = false;
    if let Some(db) = reader(config)? {
        // The daemon, until it is found not running.
        let mut sink = Sink::Daemon;
        done.already = usize::try_from(db.count_held(target, since).map_err(anyhow::Error::from)?)
            .unwrap_or(usize::MAX);
        let mut after = 0;
        loop {
            let (batch, last) = db
                .lacking(target, since, after, BATCH)
                .map_err(anyhow::Error::from)?;
            if batch.is_empty() {
                break;
            }
            after = last;
            let r = sink.send(config, batch, Some(target)).await?;
            done.queued += r.queued.get(target).copied().unwrap_or(0);
            done.too_old += r.too_old.get(target).copied().unwrap_or(0);
            done.already += r.skipped;
        }
        running = matches!(sink, Sink::Daemon);
        if let Sink::Local(store) = &sink {
            store.flush().await.map_err(anyhow::Error::from)?;
        }
    }
    if json_out {
        outln!("{}", serde_json::to_string_pretty(&done).expect("JSON"));
        return Ok(());
    }
    let mut text = format!(
        "{target}: queued {} plays ({} it has already).",
        done.queued, done.already
    );
    if done.too_old > 0 {
        text.push_str(&format!(
            " Skipped {} older than 14 days, which Last.fm would ignore.",
            done.too_old
        ));
    }
    if !running && done.queued > 0 {
        text.push_str(" They go out when the daemon starts.");
    }
    outln!("{text}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line() {
        assert_eq!(
            render_summary(&HistorySummary::Off { enabled: false }),
            "History: off\n"
        );
        let plays = |plays, first_started| HistorySummary::Plays {
            plays,
            first_started,
        };
        assert_eq!(render_summary(&plays(0, None)), "History: no plays yet\n");
        assert!(
            render_summary(&plays(12, Some(1_700_000_000)))
                .starts_with("History: 12 plays since 2023-11-")
        );
    }
}
