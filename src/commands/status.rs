//! `mpd-scrobbler status`: the daemon's view as text (or JSON), or the
//! queue's when no daemon runs.

use super::history as commands;
use super::{existing_queue, to_json, unexpected};
use crate::config::Config;
use crate::control::{self, Playing, Reply, Request, Status, StorageState};
use crate::output::{count, out, outln};
use crate::store::HistorySummary;
use crate::time::local_time;

/// `mpd-scrobbler status`: the daemon's view, or the queue's when it is not
/// running (then the result is an error, for scripts).
///
/// # Errors
///
/// No daemon runs (the error is the queue's view), or it cannot be reached.
pub(crate) async fn status(config: &Config, json_out: bool) -> anyhow::Result<()> {
    match control::request(&config.state_dir, Request::Status).await {
        Ok(Some(Reply::Status(status))) => {
            if json_out {
                outln!("{}", to_json(&status));
            } else {
                out!("{}", render(&status));
            }
            Ok(())
        }
        Ok(Some(other)) => Err(unexpected(other)),
        Ok(None) => {
            let mut text = String::from("The daemon is not running.\n");
            let Some(queue) = existing_queue(config)? else {
                for name in config.target_names() {
                    text.push_str(&format!("{name}: 0 queued, 0 rejected\n"));
                }
                text.push_str("History: no plays yet");
                return Err(anyhow::Error::msg(text));
            };
            for name in queue.names() {
                let t = queue.target(name);
                text.push_str(&format!(
                    "{name}: {} queued, {} rejected\n",
                    t.len(),
                    t.rejected_len()
                ));
            }
            text.push_str(&commands::render_summary(&commands::summary(config)));
            Err(anyhow::Error::msg(text.trim_end().to_owned()))
        }
        Err(e) => Err(e.into()),
    }
}

/// What became of a play that counted: only what is true now.
fn fate(p: &Playing, history_on: bool) -> String {
    let mut parts = Vec::new();
    if p.recorded {
        parts.push("recorded in the history".to_owned());
    } else if history_on {
        parts.push("being written to the history".to_owned());
    }
    if !p.queued_for.is_empty() {
        parts.push(format!("queued for {}", p.queued_for.join(", ")));
    }
    if !p.delivered_to.is_empty() {
        parts.push(format!("delivered to {}", p.delivered_to.join(", ")));
    }
    if parts.is_empty() {
        return "counted as a play".to_owned();
    }
    format!("counted: {}", parts.join("; "))
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

fn render(v: &Status) -> String {
    let mut out = String::new();
    let address = &v.mpd.address;
    if v.mpd.connected {
        out.push_str(&format!("MPD: connected to {address}\n"));
    } else {
        out.push_str(&format!("MPD: not connected ({address}); retrying\n"));
    }
    if let Some(p) = &v.playing {
        let progress = match (p.qualified, p.needed_secs, p.counts_at_end_secs) {
            (true, _, _) => fate(p, !matches!(v.history, HistorySummary::Off { .. })),
            (_, Some(needed), Some(at_end)) => format!(
                "played {}; counts when the title ends after {} (at once at {})",
                clock(p.played_secs),
                clock(at_end),
                clock(needed)
            ),
            (_, Some(needed), None) => format!(
                "played {} of {} needed",
                clock(p.played_secs),
                clock(needed)
            ),
            (_, None, _) => "will not count as a play".to_owned(),
        };
        out.push_str(&format!(
            "Current: {}, {progress}\n",
            crate::model::describe_names(&p.artist, &p.title)
        ));
    } else {
        out.push_str("Current: nothing playing\n");
    }
    let storage = &v.storage;
    if storage.state != StorageState::Ok || storage.held != 0 {
        let state = match storage.state {
            StorageState::Full => "the state directory is FULL",
            StorageState::Unwritable => "the state directory is NOT WRITABLE",
            StorageState::Ok => "ok",
            StorageState::Closed => "queue writes closed",
            StorageState::Failing => "queue writes failing",
        };
        let dropped = match storage.dropped {
            0 => String::new(),
            n => format!(" ({n} oldest dropped)"),
        };
        out.push_str(&format!(
            "Storage: {state}; {} in memory{dropped}\n",
            count(storage.held, "play held", "plays held")
        ));
        if let Some(why) = &storage.why {
            out.push_str(&format!("  error: {why}\n"));
        }
        if let Some(fix) = &storage.fix {
            out.push_str(&format!("  fix: {fix}\n"));
        }
    }
    for t in &v.targets {
        let state = &t.state;
        let oldest = t
            .oldest_secs
            .map(|s| format!(", oldest {} old", ago(s)))
            .unwrap_or_default();
        let last = t
            .last_success
            .map(local_time)
            .unwrap_or_else(|| "never".into());
        out.push_str(&format!(
            "{}: {state}; {} queued{oldest}; last delivery {last}\n",
            t.name, t.queued
        ));
    }
    out.push_str(&commands::render_summary(&v.history));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{MpdLink, Storage};

    fn status(playing: Playing, history_on: bool) -> Status {
        Status {
            history: if history_on {
                HistorySummary::Plays {
                    plays: 1,
                    first_started: None,
                }
            } else {
                HistorySummary::Off { enabled: false }
            },
            mpd: MpdLink {
                address: "localhost:6600".into(),
                connected: true,
            },
            playing: Some(playing),
            plays_recorded: 0,
            storage: Storage {
                dir: "/s".into(),
                dropped: 0,
                fix: None,
                held: 0,
                state: StorageState::Ok,
                why: None,
            },
            targets: Vec::new(),
        }
    }

    fn playing() -> Playing {
        Playing {
            artist: "A".into(),
            needed_secs: Some(240),
            played_secs: 7,
            qualified: false,
            title: "T".into(),
            counts_at_end_secs: None,
            recorded: false,
            queued_for: Vec::new(),
            delivered_to: Vec::new(),
        }
    }

    fn current(s: &Status) -> String {
        render(s)
            .lines()
            .find(|l| l.starts_with("Current: "))
            .unwrap()
            .to_owned()
    }

    /// Issue 23, item 3: what became of a play, and only what is true.
    #[test]
    fn a_counted_play_says_where_it_went() {
        let mut p = playing();
        p.qualified = true;
        p.recorded = true;
        assert_eq!(
            current(&status(p.clone(), true)),
            "Current: A – T, counted: recorded in the history"
        );
        p.queued_for = vec!["lastfm".into()];
        p.delivered_to = vec!["listenbrainz".into()];
        assert_eq!(
            current(&status(p.clone(), true)),
            "Current: A – T, counted: recorded in the history; queued for lastfm; \
             delivered to listenbrainz"
        );
        let mut p = playing();
        p.qualified = true;
        assert_eq!(
            current(&status(p.clone(), false)),
            "Current: A – T, counted as a play"
        );
        assert!(!render(&status(p, true)).contains("scrobbled"));
    }

    /// Issue 23, item 7: a stream's title counts when it ends after
    /// min_track_secs; 4:00 is when it counts at once. Item 15: no empty
    /// artist.
    #[test]
    fn a_stream_title_shows_its_real_threshold() {
        let mut p = playing();
        p.artist = String::new();
        p.counts_at_end_secs = Some(30);
        assert_eq!(
            current(&status(p, true)),
            "Current: T, played 0:07; counts when the title ends after 0:30 (at once at 4:00)"
        );
        assert_eq!(
            current(&status(playing(), true)),
            "Current: A – T, played 0:07 of 4:00 needed"
        );
    }
}
