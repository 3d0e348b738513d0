//! `mpd-scrobbler check`: everything the daemon needs, tested without
//! changing anything — the config, MPD, the state directory and each
//! target's credentials — with one verdict per item and, for each failure,
//! what to do about it.
//!
//! The probes live in one file per checked thing; the verdicts are plain
//! data, so the rules that turn a file mode or a server error into advice
//! (`judge.rs`) are tested without sockets.

use std::fmt;
use std::path::Path;

use crate::config::Config;
use crate::http;

mod judge;
mod mpd;
mod state_dir;
mod targets;

use mpd::check_mpd;
use state_dir::check_state_dir;
use targets::{check_lastfm, check_listenbrainz};

/// How an item fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    /// Works.
    Ok,
    /// Works, but deserves attention.
    Warn,
    /// Will not work until fixed.
    Fail,
}

/// The verdict on one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// What was checked: `config`, `mpd`, `state dir`, or a target's name.
    pub item: String,
    /// How it fared.
    pub level: Level,
    /// What was found.
    pub detail: String,
    /// What to do, for a warning or a failure.
    pub fix: Option<String>,
}

impl Verdict {
    fn ok(item: &str, detail: String) -> Verdict {
        Verdict {
            item: item.to_owned(),
            level: Level::Ok,
            detail,
            fix: None,
        }
    }

    fn warn(item: &str, detail: String, fix: String) -> Verdict {
        Verdict {
            item: item.to_owned(),
            level: Level::Warn,
            detail,
            fix: Some(fix),
        }
    }

    fn fail(item: &str, detail: String, fix: String) -> Verdict {
        Verdict {
            item: item.to_owned(),
            level: Level::Fail,
            detail,
            fix: Some(fix),
        }
    }

    /// The verdict for a config that does not load: edit the file, or,
    /// when there is none at `path`, write one.
    pub(crate) fn bad_config(error: &crate::config::ConfigError, path: &Path) -> Verdict {
        let fix = match error {
            crate::config::ConfigError::Read { source, .. }
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                format!(
                    "give the right -c FILE, or write a commented default config there: \
                     `mpd-scrobbler -c {} config init`",
                    path.display()
                )
            }
            _ => format!(
                "edit {} (`mpd-scrobbler config show` prints every key, commented)",
                path.display()
            ),
        };
        Verdict::fail("config", error.to_string(), fix)
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        })
    }
}

/// The verdicts as aligned lines with the fixes under them, and a summary.
pub(crate) fn render(verdicts: &[Verdict]) -> String {
    let width = verdicts.iter().map(|v| v.item.len()).max().unwrap_or(0);
    let mut out = String::new();
    let indent = " ".repeat(4 + 2 + width + 2);
    for v in verdicts {
        // A parser's message spans lines; keep them in the detail column.
        let mut lines = v.detail.lines();
        out.push_str(&format!(
            "{:<4}  {:<width$}  {}\n",
            v.level.to_string(),
            v.item,
            lines.next().unwrap_or_default()
        ));
        for line in lines {
            out.push_str(&format!("{indent}{line}\n"));
        }
        if let Some(fix) = &v.fix {
            out.push_str(&format!("{indent}fix: {fix}\n"));
        }
    }
    let failed = verdicts.iter().filter(|v| v.level == Level::Fail).count();
    if failed == 0 {
        out.push_str(&format!("All {} checks passed.\n", verdicts.len()));
    } else {
        out.push_str(&format!("{failed} of {} checks failed.\n", verdicts.len()));
    }
    out
}

/// Run every check for a config that loaded. The servers are asked at the
/// same time, so a check of several targets takes as long as the slowest.
pub(crate) async fn run(config: &Config) -> Vec<Verdict> {
    let mut verdicts = vec![Verdict::ok(
        "config",
        format!(
            "{} is valid; targets: {}",
            config.path.display(),
            match config.target_names() {
                names if names.is_empty() => "none".to_owned(),
                names => names.join(", "),
            }
        ),
    )];
    if config.is_zero_config() {
        verdicts[0] = Verdict::warn(
            "config",
            format!(
                "no config file at {}: running with no online target, plays are kept in the \
                 local history only",
                config.path.display()
            ),
            "to scrobble, run `mpd-scrobbler config init`, fill in its [lastfm] or \
             [listenbrainz] section, run `mpd-scrobbler auth lastfm` or `auth listenbrainz`, \
             then `mpd-scrobbler backfill NAME`"
                .into(),
        );
    } else if config.target_names().is_empty() {
        verdicts[0] = Verdict::warn(
            "config",
            format!(
                "{} is valid but has no [lastfm] or [listenbrainz] section",
                config.path.display()
            ),
            "uncomment and fill in a [lastfm] or [listenbrainz] section (`mpd-scrobbler config \
             show` prints them); until then plays are kept in the local history only"
                .into(),
        );
    }

    verdicts.push(rules_verdict(config));

    let http = match http::interactive_client(config.delivery.request_timeout) {
        Ok(h) => Some(h),
        Err(e) => {
            verdicts.push(Verdict::fail(
                "http",
                format!("cannot set up HTTPS: {}", http::describe_error(&e)),
                "check the system's CA certificates (package ca-certificates)".into(),
            ));
            None
        }
    };
    let mut targets = tokio::task::JoinSet::new();
    if let Some(http) = http {
        for (i, t) in config.lastfm.iter().enumerate() {
            let (t, http, config) = (t.clone(), http.clone(), config.clone());
            targets.spawn(async move { (i, check_lastfm(&config, &t, http).await) });
        }
        let offset = config.lastfm.len();
        for (i, t) in config.listenbrainz.iter().enumerate() {
            let (t, http, config) = (t.clone(), http.clone(), config.clone());
            targets.spawn(async move { (offset + i, check_listenbrainz(&config, &t, http).await) });
        }
    }
    verdicts.push(check_mpd(config).await);
    verdicts.push(check_state_dir(config));
    let mut answers: Vec<(usize, Verdict)> = targets.join_all().await;
    answers.sort_by_key(|(i, _)| *i);
    verdicts.extend(answers.into_iter().map(|(_, v)| v));
    verdicts
}

/// The rules and stream settings compiled when the config loaded (a bad
/// one fails the config check); this says what is in force.
fn rules_verdict(config: &Config) -> Verdict {
    let (ignore, rewrite) = config.rule_set.counts();
    let streams = if config.streams.enabled {
        match config.streams.stations() {
            0 => "streams are scrobbled".to_owned(),
            n => format!("streams are scrobbled, {n} station settings"),
        }
    } else {
        "streams are not scrobbled".to_owned()
    };
    Verdict::ok(
        "rules",
        format!("{ignore} ignore and {rewrite} rewrite rules are valid; {streams}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_aligns_and_counts_failures() {
        let text = render(&[
            Verdict::ok("config", "fine".into()),
            Verdict::fail("listenbrainz", "refused\nfor good".into(), "run it".into()),
        ]);
        assert_eq!(
            text,
            concat!(
                "ok    config        fine\n",
                "FAIL  listenbrainz  refused\n",
                "                    for good\n",
                "                    fix: run it\n",
                "1 of 2 checks failed.\n",
            )
        );
    }
}
