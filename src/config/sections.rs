//! The plain sections: `[scrobble]`, `[delivery]`, `[cache]`, `[history]`
//! and `state_dir`, each checked into the value the program uses.

use std::path::PathBuf;
use std::time::Duration;

use super::raw::{RawCache, RawDelivery, RawHistory, RawScrobble};
use super::{ConfigError, Source, duration, home, non_empty};
use crate::model::Thresholds;

/// Retry timing for deliveries.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Delivery {
    /// First retry delay after a transient failure.
    pub retry_min: Duration,
    /// Cap of the exponential backoff.
    pub retry_max: Duration,
    /// Deadline of each HTTP request.
    pub request_timeout: Duration,
}

/// The local listening history (`[history]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HistoryConfig {
    /// Record plays (the default).
    pub enabled: bool,
    /// Forget plays older than this; `None` keeps them forever (the default).
    pub keep: Option<Duration>,
}

/// The metadata cache's limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CacheConfig {
    /// How long a reply is used without asking Last.fm again.
    pub ttl: Duration,
    /// Most replies kept; the oldest go first.
    pub max_entries: usize,
}

/// `[scrobble]`: when a play counts.
pub(super) fn scrobble(source: &Source<'_>, s: RawScrobble) -> Result<Thresholds, ConfigError> {
    let d = Thresholds::default();
    let percent = s.played_percent.unwrap_or(d.played_percent);
    if !(1..=100).contains(&percent) {
        return Err(source.invalid(
            "scrobble.played_percent",
            format!("must be between 1 and 100 (got {percent})"),
        ));
    }
    let max_required = s
        .max_required_secs
        .map_or(d.max_required, Duration::from_secs);
    if max_required.is_zero() {
        return Err(source.invalid("scrobble.max_required_secs", "must be at least 1".into()));
    }
    Ok(Thresholds {
        min_track: s.min_track_secs.map_or(d.min_track, Duration::from_secs),
        played_percent: percent,
        max_required,
    })
}

/// `[delivery]`: retry timing.
pub(super) fn delivery(source: &Source<'_>, raw: RawDelivery) -> Result<Delivery, ConfigError> {
    let delivery = Delivery {
        retry_min: duration(
            source,
            "delivery.retry_min",
            raw.retry_min,
            Duration::from_secs(30),
        )?,
        retry_max: duration(
            source,
            "delivery.retry_max",
            raw.retry_max,
            Duration::from_secs(30 * 60),
        )?,
        request_timeout: duration(
            source,
            "delivery.request_timeout",
            raw.request_timeout,
            Duration::from_secs(30),
        )?,
    };
    if delivery.retry_max < delivery.retry_min {
        return Err(source.invalid(
            "delivery.retry_max",
            "must not be shorter than delivery.retry_min".into(),
        ));
    }
    Ok(delivery)
}

/// `[cache]`: the metadata cache's limits.
pub(super) fn cache(source: &Source<'_>, raw: RawCache) -> Result<CacheConfig, ConfigError> {
    Ok(CacheConfig {
        ttl: duration(source, "cache.ttl", raw.ttl, Duration::from_secs(24 * 3600))?,
        max_entries: match raw.max_entries {
            Some(0) => return Err(source.invalid("cache.max_entries", "must be at least 1".into())),
            Some(n) => n,
            None => 5000,
        },
    })
}

/// `[history]`: on or off, and how long plays are kept.
pub(super) fn history(source: &Source<'_>, raw: RawHistory) -> Result<HistoryConfig, ConfigError> {
    Ok(HistoryConfig {
        enabled: raw.enabled.unwrap_or(true),
        keep: match raw.keep.as_deref() {
            None | Some("forever") => None,
            Some(v) => Some(
                duration(source, "history.keep", Some(v.to_owned()), Duration::ZERO).map_err(
                    |_| {
                        source.invalid(
                            "history.keep",
                            format!("{v:?} is neither \"forever\" nor a duration such as \"365d\""),
                        )
                    },
                )?,
            ),
        },
    })
}

/// `state_dir`, relative to the config file, else [`default_state_dir`].
pub(super) fn state_dir(
    source: &Source<'_>,
    raw: Option<PathBuf>,
    env: &dyn Fn(&str) -> Option<String>,
) -> PathBuf {
    match raw {
        Some(dir) => source.base.join(dir),
        None => default_state_dir(env),
    }
}

/// `$STATE_DIRECTORY` (set by systemd's StateDirectory=), else
/// `$XDG_STATE_HOME/mpd-scrobbler`, else `~/.local/state/mpd-scrobbler`.
fn default_state_dir(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    if let Some(dirs) = non_empty(env("STATE_DIRECTORY")) {
        // systemd joins several StateDirectory= entries with ':'.
        return PathBuf::from(dirs.split(':').next().unwrap_or(&dirs));
    }
    non_empty(env("XDG_STATE_HOME"))
        .map(PathBuf::from)
        .unwrap_or_else(|| home(env).join(".local").join("state"))
        .join("mpd-scrobbler")
}
