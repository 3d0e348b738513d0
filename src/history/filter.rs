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

/// A `--since`/`--until` value: a duration back from `now` ("7d", "2h 30m")
/// or a local date or time ("2024-05-01", "2024-05-01 18:30"), or an RFC 3339
/// instant with its own offset. Returns Unix seconds.
pub fn parse_when(s: &str, now: u64, tz: &jiff::tz::TimeZone) -> Result<u64, String> {
    let s = s.trim();
    if let Ok(d) = humantime::parse_duration(s) {
        return Ok(now.saturating_sub(d.as_secs()));
    }
    if let Ok(ts) = s.parse::<jiff::Timestamp>() {
        return u64::try_from(ts.as_second()).map_err(|_| format!("{s:?} is before 1970"));
    }
    let civil = if let Ok(dt) = s.parse::<jiff::civil::DateTime>() {
        dt
    } else if let Ok(d) = s.parse::<jiff::civil::Date>() {
        d.to_datetime(jiff::civil::Time::midnight())
    } else {
        return Err(format!(
            "{s:?} is neither a duration (\"7d\", \"12h\") nor a date (\"2024-05-01\", \"2024-05-01 18:30\")"
        ));
    };
    let zoned = civil
        .to_zoned(tz.clone())
        .map_err(|e| format!("{s:?}: {e}"))?;
    u64::try_from(zoned.timestamp().as_second()).map_err(|_| format!("{s:?} is before 1970"))
}

/// The start of a `stats --period`: `7d`, `30d`, `year` (the last 365 days)
/// or `all` (`None`).
pub fn period_start(period: &str, now: u64) -> Result<Option<u64>, String> {
    let days = match period {
        "7d" => 7,
        "30d" => 30,
        "year" => 365,
        "all" => return Ok(None),
        other => {
            return Err(format!(
                "{other:?} is not a period: use 7d, 30d, year or all"
            ));
        }
    };
    Ok(Some(now.saturating_sub(days * 86_400)))
}
