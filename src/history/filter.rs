//! Which plays the history commands show: the `--since`/`--until` time
//! arguments, `stats --period`, and the [`Filter`] over the history.

use serde::{Deserialize, Serialize};

/// Which plays `history` and `history export` show.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    /// Plays that started at or after this (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<u64>,
    /// Plays that started before this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<u64>,
    /// Only the last N of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Only plays whose artist contains this (case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artist: Option<String>,
}

/// Why a `--since`/`--until` value was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WhenError {
    /// Neither a duration nor a date.
    #[error(
        "{0:?} is neither a duration (\"7d\", \"12h\") nor a date (\"2024-05-01\", \"2024-05-01 18:30\")"
    )]
    Unknown(String),
    /// A time before the Unix epoch.
    #[error("{0:?} is before 1970")]
    Before1970(String),
    /// A local time the time zone does not have.
    #[error("{0:?}: {1}")]
    NoSuchTime(String, String),
}

/// A `stats --period` that is none of the periods.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a period: use 7d, 30d, year or all")]
pub struct PeriodError(String);

/// A `--since`/`--until` value: a duration back from `now` ("7d", "2h 30m")
/// or a local date or time ("2024-05-01", "2024-05-01 18:30"), or an RFC 3339
/// instant with its own offset. Returns Unix seconds.
pub fn parse_when(s: &str, now: u64, tz: &jiff::tz::TimeZone) -> Result<u64, WhenError> {
    let s = s.trim();
    if let Ok(d) = humantime::parse_duration(s) {
        return Ok(now.saturating_sub(d.as_secs()));
    }
    if let Ok(ts) = s.parse::<jiff::Timestamp>() {
        return u64::try_from(ts.as_second()).map_err(|_| WhenError::Before1970(s.to_owned()));
    }
    let civil = if let Ok(dt) = s.parse::<jiff::civil::DateTime>() {
        dt
    } else if let Ok(d) = s.parse::<jiff::civil::Date>() {
        d.to_datetime(jiff::civil::Time::midnight())
    } else {
        return Err(WhenError::Unknown(s.to_owned()));
    };
    let zoned = civil
        .to_zoned(tz.clone())
        .map_err(|e| WhenError::NoSuchTime(s.to_owned(), e.to_string()))?;
    u64::try_from(zoned.timestamp().as_second()).map_err(|_| WhenError::Before1970(s.to_owned()))
}

/// The start of a `stats --period`: `7d`, `30d`, `year` (the last 365 days)
/// or `all` (`None`).
pub fn period_start(period: &str, now: u64) -> Result<Option<u64>, PeriodError> {
    let days = match period {
        "7d" => 7,
        "30d" => 30,
        "year" => 365,
        "all" => return Ok(None),
        other => return Err(PeriodError(other.to_owned())),
    };
    Ok(Some(now.saturating_sub(days * 86_400)))
}
