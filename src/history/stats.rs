//! `stats`: listening figures from the local history, without the network.
//! [`Aggregator`] streams plays into maps whose size is bounded by the
//! distinct artists, albums, tracks and days (never by the number of plays);
//! [`charts`](super::charts) turns the result into text.

use std::collections::BTreeMap;

use jiff::civil::Date;
use rustc_hash::FxHashMap as HashMap;
use serde::{Deserialize, Serialize};

/// How many entries each top list shows.
pub const TOP: usize = 10;

/// Longest span (in days) drawn one bar per day; longer ones get a bar per month.
const MAX_DAY_BARS: i32 = 62;

/// The figures `stats` shows (also its `--json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Start of the period (Unix seconds), `None` for all time.
    pub since: Option<u64>,
    /// Number of plays.
    pub plays: u64,
    /// Listening time in seconds: each play's track length, or its real play
    /// time when the length is unknown.
    pub listening_secs: u64,
    /// Distinct artists.
    pub artists: u64,
    /// Most played artists: (artist, plays).
    pub top_artists: Vec<(String, u64)>,
    /// Most played albums: (album artist, album, plays).
    pub top_albums: Vec<(String, String, u64)>,
    /// Most played tracks: (artist, title, plays).
    pub top_tracks: Vec<(String, String, u64)>,
    /// "day" or "month": what each entry of `per_period` counts.
    pub bucket: String,
    /// Plays per local day ("2024-05-01") or month ("2024-05"), oldest
    /// first, empty ones included.
    pub per_period: Vec<(String, u64)>,
    /// Plays per local hour of the day, 0 to 23.
    pub per_hour: Vec<u64>,
}

/// Counts plays one at a time.
#[derive(Debug)]
pub struct Aggregator {
    tz: jiff::tz::TimeZone,
    since: Option<u64>,
    plays: u64,
    listening_secs: u64,
    artists: HashMap<String, u64>,
    albums: HashMap<String, u64>,
    tracks: HashMap<String, u64>,
    days: BTreeMap<Date, u64>,
    hours: [u64; 24],
    /// Reused to build the album and track keys without allocating.
    scratch: String,
    /// The local hour of the last play: plays come in time order, so most
    /// fall in the hour before them, and a time zone lookup per play was a
    /// tenth of `stats` at a million plays.
    hour: Option<LocalHour>,
    /// Plays on the last play's date, not yet in `days`.
    run: Option<(Date, u64)>,
}

/// Unix seconds `from..until` fall on `date` at local `hour`.
#[derive(Debug, Clone, Copy)]
struct LocalHour {
    from: i64,
    until: i64,
    date: Date,
    hour: usize,
}

/// Separates the parts of a composite key (a character no tag holds).
const SEP: char = '\u{1f}';

fn bump(map: &mut HashMap<String, u64>, key: &str) {
    match map.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            map.insert(key.to_owned(), 1);
        }
    }
}

impl Aggregator {
    /// An empty aggregate for the period starting at `since`, with days
    /// and hours in `tz`.
    pub fn new(since: Option<u64>, tz: jiff::tz::TimeZone) -> Aggregator {
        Aggregator {
            tz,
            since,
            plays: 0,
            listening_secs: 0,
            artists: HashMap::default(),
            albums: HashMap::default(),
            tracks: HashMap::default(),
            days: BTreeMap::new(),
            hours: [0; 24],
            scratch: String::new(),
            hour: None,
            run: None,
        }
    }

    /// The local date and hour of `ts`.
    fn local_hour(&mut self, ts: jiff::Timestamp) -> LocalHour {
        let secs = ts.as_second();
        if let Some(h) = self.hour.filter(|h| (h.from..h.until).contains(&secs)) {
            return h;
        }
        let local = self.tz.to_datetime(ts);
        let from = secs - i64::from(local.minute()) * 60 - i64::from(local.second());
        // The hour holds if the offset is the same at both of its ends as
        // at `ts` (a zone changes its offset at most once in an hour);
        // otherwise only this second is known.
        let offset = self.tz.to_offset(ts);
        let same =
            |s: i64| jiff::Timestamp::from_second(s).is_ok_and(|t| self.tz.to_offset(t) == offset);
        let until = if same(from) && same(from + 3599) {
            from + 3600
        } else {
            secs + 1
        };
        let h = LocalHour {
            from,
            until,
            date: local.date(),
            hour: usize::try_from(local.hour()).unwrap_or(0),
        };
        self.hour = Some(h);
        h
    }

    /// Count one play.
    pub fn add(
        &mut self,
        started_at: u64,
        artist: &str,
        title: &str,
        album: Option<&str>,
        album_artist: Option<&str>,
        listened_secs: u64,
    ) {
        self.plays += 1;
        self.listening_secs += listened_secs;
        bump(&mut self.artists, artist);
        if let Some(album) = album.filter(|a| !a.is_empty()) {
            self.scratch.clear();
            self.scratch.push_str(album_artist.unwrap_or(artist));
            self.scratch.push(SEP);
            self.scratch.push_str(album);
            bump(&mut self.albums, &self.scratch);
        }
        self.scratch.clear();
        self.scratch.push_str(artist);
        self.scratch.push(SEP);
        self.scratch.push_str(title);
        bump(&mut self.tracks, &self.scratch);
        if let Some(ts) = timestamp(started_at) {
            let local = self.local_hour(ts);
            match &mut self.run {
                Some((date, n)) if *date == local.date => *n += 1,
                run => {
                    if let Some((date, n)) = run.replace((local.date, 1)) {
                        *self.days.entry(date).or_default() += n;
                    }
                }
            }
            if let Some(hour) = self.hours.get_mut(local.hour) {
                *hour += 1;
            }
        }
    }

    /// The figures, with the chart of days running up to `now`.
    pub fn finish(mut self, now: u64) -> Stats {
        if let Some((date, n)) = self.run.take() {
            *self.days.entry(date).or_default() += n;
        }
        fn top(map: HashMap<String, u64>) -> Vec<(String, u64)> {
            let mut v: Vec<(String, u64)> = map.into_iter().collect();
            // Most plays first; ties in name order so the output is stable.
            v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            v.truncate(TOP);
            v
        }
        let split = |k: String| -> (String, String) {
            match k.split_once(SEP) {
                Some((a, b)) => (a.to_owned(), b.to_owned()),
                None => (k, String::new()),
            }
        };
        let today = timestamp(now)
            .map(|ts| self.tz.to_datetime(ts).date())
            .unwrap_or_default();
        let first = self
            .since
            .and_then(timestamp)
            .map(|ts| self.tz.to_datetime(ts).date())
            .or_else(|| self.days.keys().next().copied())
            .unwrap_or(today);
        let last = self
            .days
            .keys()
            .next_back()
            .copied()
            .unwrap_or(today)
            .max(today);
        let span = (last - first).get_days();
        let (bucket, per_period) = if span < MAX_DAY_BARS {
            let mut v = Vec::new();
            let mut d = first;
            while d <= last {
                v.push((d.to_string(), self.days.get(&d).copied().unwrap_or(0)));
                match d.tomorrow() {
                    Ok(next) => d = next,
                    Err(_) => break,
                }
            }
            ("day", v)
        } else {
            let mut months: BTreeMap<(i16, i8), u64> = BTreeMap::new();
            let (mut y, mut m) = (first.year(), first.month());
            while (y, m) <= (last.year(), last.month()) {
                months.insert((y, m), 0);
                (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            }
            for (d, n) in &self.days {
                *months.entry((d.year(), d.month())).or_default() += n;
            }
            let v = months
                .into_iter()
                .map(|((y, m), n)| (format!("{y:04}-{m:02}"), n))
                .collect();
            ("month", v)
        };
        Stats {
            since: self.since,
            plays: self.plays,
            listening_secs: self.listening_secs,
            artists: self.artists.len() as u64,
            top_artists: top(self.artists),
            top_albums: top(self.albums)
                .into_iter()
                .map(|(k, n)| {
                    let (a, b) = split(k);
                    (a, b, n)
                })
                .collect(),
            top_tracks: top(self.tracks)
                .into_iter()
                .map(|(k, n)| {
                    let (a, b) = split(k);
                    (a, b, n)
                })
                .collect(),
            bucket: bucket.to_owned(),
            per_period,
            per_hour: self.hours.to_vec(),
        }
    }
}

/// A Unix time as a timestamp; `None` when it is out of jiff's range.
fn timestamp(secs: u64) -> Option<jiff::Timestamp> {
    jiff::Timestamp::from_second(i64::try_from(secs).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc() -> jiff::tz::TimeZone {
        jiff::tz::TimeZone::UTC
    }

    /// 2024-05-01 00:00:00 UTC.
    const MAY1: u64 = 1_714_521_600;

    #[test]
    fn aggregates_counts_tops_days_and_hours() {
        let mut a = Aggregator::new(Some(MAY1), utc());
        // Three plays of one track on May 1st at 09:xx, one on May 3rd at 21:00.
        for i in 0..3 {
            a.add(
                MAY1 + 9 * 3600 + i * 300,
                "Sigur Rós",
                "Hoppípolla",
                Some("Takk..."),
                None,
                268,
            );
        }
        a.add(
            MAY1 + 2 * 86400 + 21 * 3600,
            "AC/DC",
            "T.N.T.",
            Some("High Voltage"),
            Some("AC/DC"),
            214,
        );
        let s = a.finish(MAY1 + 3 * 86400 + 10);
        assert_eq!(s.plays, 4);
        assert_eq!(s.listening_secs, 3 * 268 + 214);
        assert_eq!(s.artists, 2);
        assert_eq!(
            s.top_artists,
            [("Sigur Rós".into(), 3), ("AC/DC".into(), 1)]
        );
        assert_eq!(s.top_albums[0], ("Sigur Rós".into(), "Takk...".into(), 3));
        assert_eq!(s.top_tracks[1], ("AC/DC".into(), "T.N.T.".into(), 1));
        assert_eq!(s.bucket, "day");
        assert_eq!(
            s.per_period,
            [
                ("2024-05-01".into(), 3),
                ("2024-05-02".into(), 0),
                ("2024-05-03".into(), 1),
                ("2024-05-04".into(), 0)
            ]
        );
        assert_eq!(s.per_hour[9], 3);
        assert_eq!(s.per_hour[21], 1);
        assert_eq!(s.per_hour.iter().sum::<u64>(), 4);
    }

    /// The cached local hour gives what a time zone lookup per play gives,
    /// across both changes of a daylight saving year, for plays in order and
    /// out of it.
    #[test]
    fn days_and_hours_match_a_lookup_per_play_across_daylight_saving() {
        // Central Europe, and a zone that changes at 02:20 and 03:40 local
        // time, inside an hour.
        for zone in [
            "CET-1CEST,M3.5.0,M10.5.0/3",
            "XST-1XDT,M3.5.0/2:20,M10.5.0/3:40",
        ] {
            let tz = jiff::tz::TimeZone::posix(zone).expect("a POSIX zone");
            local_hours_match(&tz);
        }
    }

    fn local_hours_match(tz: &jiff::tz::TimeZone) {
        // 2024-01-01 to 2024-12-31 every 7 minutes, then 500 plays
        // scattered over the same year.
        let start = 1_704_067_200;
        let mut times: Vec<u64> = (0..75_000).map(|i| start + i * 420).collect();
        times.extend((0..500u64).map(|i| start + (i * 7_919_993) % 31_622_400));
        let mut a = Aggregator::new(None, tz.clone());
        let mut days: BTreeMap<Date, u64> = BTreeMap::new();
        let mut hours = [0u64; 24];
        for &t in &times {
            a.add(t, "A", "T", None, None, 0);
            let local = tz.to_datetime(timestamp(t).expect("in range"));
            *days.entry(local.date()).or_default() += 1;
            hours[usize::try_from(local.hour()).expect("an hour")] += 1;
        }
        let s = a.finish(start + 366 * 86400 - 7200);
        assert_eq!(s.per_hour, hours);
        // Charted by month: sum the lookup's days the same way.
        let mut months: BTreeMap<String, u64> = BTreeMap::new();
        for (d, n) in days {
            *months
                .entry(format!("{:04}-{:02}", d.year(), d.month()))
                .or_default() += n;
        }
        assert_eq!(s.per_period, months.into_iter().collect::<Vec<_>>());
        assert_eq!(s.plays, 75_500);
    }

    #[test]
    fn long_spans_chart_by_month() {
        let mut a = Aggregator::new(None, utc());
        a.add(MAY1, "A", "T", None, None, 0);
        a.add(MAY1 + 100 * 86400, "A", "T", None, None, 0);
        let s = a.finish(MAY1 + 100 * 86400);
        assert_eq!(s.bucket, "month");
        assert_eq!(
            s.per_period
                .iter()
                .map(|(m, _)| m.as_str())
                .collect::<Vec<_>>(),
            ["2024-05", "2024-06", "2024-07", "2024-08"]
        );
        assert_eq!(s.per_period[0].1 + s.per_period[3].1, 2);
        assert!(s.top_albums.is_empty());
    }
}
