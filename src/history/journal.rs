//! Reading mpdscribble's journal (its `key = value` record format, see
//! mpdscribble's src/Journal.cxx): `a` artist (starts a record), `t` title,
//! `b` album, `n` track number, `m` MusicBrainz id, `i` start time, `l`
//! length in seconds, `o` source, `r` love. Blank lines and `#` comments are
//! ignored, as mpdscribble does.

use crate::model::is_uuid;
use crate::model::{Listen, Track};

/// A record that could not be read, by the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// 1-based line of the record's `a =` line.
    pub line: usize,
    /// What is wrong.
    pub problem: String,
}

#[derive(Default)]
struct Record {
    line: usize,
    artist: String,
    title: String,
    album: String,
    number: String,
    mbid: String,
    time: String,
    length: String,
}

impl Record {
    fn finish(self) -> Result<Listen, Malformed> {
        let bad = |problem: String| Malformed {
            line: self.line,
            problem,
        };
        if self.title.is_empty() {
            return Err(bad("no title (t)".into()));
        }
        if self.time.is_empty() {
            return Err(bad("no time (i)".into()));
        }
        let started_at = parse_time(&self.time)
            .ok_or_else(|| bad(format!("unreadable time {:?}", self.time)))?;
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        Ok(Listen {
            track: Track {
                artist: self.artist.clone(),
                title: self.title.clone(),
                album: non_empty(&self.album),
                track_number: self
                    .number
                    .split('/')
                    .next()
                    .and_then(|n| n.trim().parse().ok())
                    .filter(|n| *n > 0),
                duration_secs: self.length.parse().ok().filter(|l| *l > 0),
                recording_mbid: non_empty(&self.mbid).filter(|m| is_uuid(m)),
                ..Track::default()
            },
            started_at,
        })
    }
}

/// mpdscribble wrote Unix seconds in recent versions and an ISO 8601 UTC
/// time ("2008-07-14T18:53:11", with or without "Z") in older ones.
fn parse_time(s: &str) -> Option<u64> {
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok();
    }
    let s = s.trim_end_matches('Z').replace(' ', "T");
    let dt: jiff::civil::DateTime = s.parse().ok()?;
    let ts = dt.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp();
    u64::try_from(ts.as_second()).ok()
}

/// The keys of a journal record.
const KEYS: [&str; 9] = ["a", "t", "b", "n", "m", "i", "l", "o", "r"];

/// Whether `text` is a journal at all: empty (mpdscribble empties it once
/// everything is submitted), or most of its lines are `key = value` with a
/// journal key and at least one record starts. Anything else (a wrong
/// file, random text) is refused whole rather than read as a pile of
/// malformed records.
pub fn is_journal(text: &str) -> bool {
    let (mut lines, mut known, mut records) = (0usize, 0usize, 0usize);
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        lines += 1;
        if let Some((key, _)) = line.split_once('=') {
            let key = key.trim();
            if KEYS.contains(&key) {
                known += 1;
                records += usize::from(key == "a");
            }
        }
    }
    lines == 0 || (records > 0 && known * 10 >= lines * 9)
}

/// Read a journal: the listens it holds, and the records that are malformed.
pub fn parse(text: &str) -> (Vec<Listen>, Vec<Malformed>) {
    let mut listens = Vec::new();
    let mut malformed = Vec::new();
    let mut reader = Reader::default();
    let mut keep = |r: Result<Listen, Malformed>| match r {
        Ok(l) => listens.push(l),
        Err(m) => malformed.push(m),
    };
    for (i, line) in text.lines().enumerate() {
        if let Some(r) = reader.line(i + 1, line) {
            keep(r);
        }
    }
    if let Some(r) = reader.end() {
        keep(r);
    }
    (listens, malformed)
}

/// Reads a journal line by line: a record is complete when the next one
/// starts, or at the end.
#[derive(Default)]
pub struct Reader {
    current: Option<Record>,
}

impl Reader {
    /// Take line `n` (1-based); the record it completed, if any.
    pub fn line(&mut self, n: usize, line: &str) -> Option<Result<Listen, Malformed>> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let (key, value) = line.split_once('=')?;
        let (key, value) = (key.trim(), value.trim().to_owned());
        if key == "a" {
            let done = self.current.take().map(Record::finish);
            self.current = Some(Record {
                line: n,
                artist: value,
                ..Record::default()
            });
            return done;
        }
        let r = self.current.as_mut()?;
        match key {
            "t" => r.title = value,
            "b" => r.album = value,
            "n" => r.number = value,
            "m" => r.mbid = value,
            "i" => r.time = value,
            "l" => r.length = value,
            _ => {}
        }
        None
    }

    /// The last record, at the end of the journal.
    pub fn end(mut self) -> Option<Result<Listen, Malformed>> {
        self.current.take().map(Record::finish)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_records_old_and_new_times_and_reports_bad_ones() {
        let text = "\
# written by mpdscribble
a = Sigur Rós
t = Hoppípolla
b = Takk...
n = 3/11
m = b8f4c4b6-2c3f-4a9e-9a5e-0123456789ab
i = 1700000000
l = 268
o = P

a = AC/DC
t = T.N.T.
i = 2008-07-14T18:53:11
l = 214
o = P

a = Broken
i = yesterday
l = 100
o = P

a = No Title
i = 1700000300
o = P
";
        let (listens, bad) = parse(text);
        assert_eq!(listens.len(), 2);
        assert_eq!(listens[0].track.title, "Hoppípolla");
        assert_eq!(listens[0].track.track_number, Some(3));
        assert_eq!(listens[0].track.duration_secs, Some(268));
        assert!(listens[0].track.recording_mbid.is_some());
        assert_eq!(listens[0].started_at, 1_700_000_000);
        assert_eq!(listens[1].started_at, 1_216_061_591);
        assert_eq!(
            bad,
            [
                Malformed {
                    line: 17,
                    problem: "no title (t)".into()
                },
                Malformed {
                    line: 22,
                    problem: "no title (t)".into()
                },
            ]
        );
    }

    #[test]
    fn unreadable_time_is_reported() {
        let (listens, bad) = parse("a = X\nt = Y\ni = yesterday\n");
        assert!(listens.is_empty());
        assert_eq!(bad[0].line, 1);
        assert!(bad[0].problem.contains("yesterday"));
    }

    /// Issue 23, item 5: a file that is not a journal is refused whole.
    #[test]
    fn only_journals_are_journals() {
        assert!(is_journal(""));
        assert!(is_journal("# nothing left to submit\n"));
        assert!(is_journal("a = A\nt = T\ni = 1700000000\no = P\n"));
        assert!(!is_journal("[mpd]\nhost = \"localhost\"\n"));
        assert!(!is_journal("random text\nwith a = sign\nand more\n"));
        // Random text that happens to hold a few journal-like lines.
        let mut text = "a = x\nt = y\n".to_owned();
        for i in 0..100 {
            text.push_str(&format!("qwe{i} rty uiop\n"));
        }
        assert!(!is_journal(&text));
    }
}
