//! The formats plays leave and enter the history in: ListenBrainz's import
//! shape, CSV (RFC 4180), and ListenBrainz export files (a JSON array or
//! JSON Lines).

use std::borrow::Cow;

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::Record;
use crate::json::{Maybe, Obj, Str};
use crate::model::is_uuid;
use crate::model::{Listen, Track};

/// A play in ListenBrainz's import shape (what `submit-listens` takes and
/// ListenBrainz's export writes). Fields are in the order of their names,
/// as the export has always written them.
#[derive(Debug, Serialize)]
pub struct ListenBrainzListen<'a> {
    listened_at: u64,
    track_metadata: ExportMetadata<'a>,
}

#[derive(Debug, Serialize)]
struct ExportMetadata<'a> {
    additional_info: ExportInfo<'a>,
    artist_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    release_name: Option<&'a str>,
    track_name: &'a str,
}

#[derive(Debug, Serialize)]
struct ExportInfo<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    albumartist: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    artist_mbids: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_ms: Option<u64>,
    media_player: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    recording_mbid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    release_group_mbid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    release_mbid: Option<&'a str>,
    submission_client: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    track_mbid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tracknumber: Option<u32>,
}

/// `listen` in ListenBrainz's import shape, to serialise.
pub fn listenbrainz_listen(listen: &Listen) -> ListenBrainzListen<'_> {
    let t = &listen.track;
    ListenBrainzListen {
        listened_at: listen.started_at,
        track_metadata: ExportMetadata {
            additional_info: ExportInfo {
                albumartist: t.album_artist.as_deref(),
                artist_mbids: &t.artist_mbids,
                duration_ms: t.duration_secs.map(|d| d.saturating_mul(1000)),
                media_player: "MPD",
                recording_mbid: t.recording_mbid.as_deref(),
                release_group_mbid: t.release_group_mbid.as_deref(),
                release_mbid: t.release_mbid.as_deref(),
                submission_client: "mpd-scrobbler",
                track_mbid: t.track_mbid.as_deref(),
                tracknumber: t.track_number,
            },
            artist_name: &t.artist,
            release_name: t.album.as_deref(),
            track_name: &t.title,
        },
    }
}

/// The header of the CSV export.
pub const CSV_HEADER: &str = "started_at,artist,title,album,album_artist,track_number,duration,recording_mbid,release_mbid,played_secs,uri";

/// One CSV line (RFC 4180 quoting), without the line end.
pub fn csv_line(r: &Record) -> String {
    let t = &r.listen.track;
    let num = |n: Option<u64>| n.map(|n| n.to_string()).unwrap_or_default();
    let fields: [Cow<'_, str>; 11] = [
        r.listen.started_at.to_string().into(),
        csv_field(&t.artist),
        csv_field(&t.title),
        csv_field(t.album.as_deref().unwrap_or_default()),
        csv_field(t.album_artist.as_deref().unwrap_or_default()),
        num(t.track_number.map(u64::from)).into(),
        num(t.duration_secs).into(),
        csv_field(t.recording_mbid.as_deref().unwrap_or_default()),
        csv_field(t.release_mbid.as_deref().unwrap_or_default()),
        num(r.played_secs).into(),
        csv_field(r.uri.as_deref().unwrap_or_default()),
    ];
    fields.join(",")
}

fn csv_field(s: &str) -> Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\"")).into()
    } else {
        s.into()
    }
}

/// A listen of an export file that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// 1-based position of the listen in the file.
    pub index: usize,
    /// What is wrong.
    pub problem: ListenProblem,
}

/// What keeps one listen of an export from being read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListenProblem {
    /// No `listened_at`.
    #[error("no listened_at")]
    NoTime,
    /// A `listened_at` that is not Unix seconds (the value as JSON).
    #[error("listened_at {0} is not a time (Unix seconds, as in ListenBrainz's exports)")]
    NotATime(String),
    /// No artist.
    #[error("no track_metadata.artist_name")]
    NoArtist,
    /// No title.
    #[error("no track_metadata.track_name")]
    NoTitle,
}

/// A file that is not JSON listens, which ends the reading.
#[derive(Debug, thiserror::Error)]
#[error("after listen {after}: not JSON listens: {cause}")]
pub struct NotListens {
    /// Listens read before it.
    pub after: usize,
    /// The parser's complaint.
    pub cause: serde_json::Error,
}

/// One listen of an export file as read, each field as lenient as the
/// formats ListenBrainz has written over the years.
#[derive(Default, Deserialize)]
#[serde(default)]
struct ImportListen {
    listened_at: Time,
    track_metadata: Obj<ImportMetadata>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct ImportMetadata {
    artist_name: Str,
    track_name: Str,
    release_name: Str,
    additional_info: Obj<ImportInfo>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct ImportInfo {
    duration_ms: Maybe<Count>,
    duration: Maybe<Count>,
    tracknumber: Maybe<Count>,
    albumartist: Str,
    recording_mbid: Str,
    release_mbid: Str,
    release_group_mbid: Str,
    track_mbid: Str,
    /// The strings of an array; none for anything else.
    artist_mbids: Maybe<Vec<Str>>,
}

/// A count: a number, or a string of digits (untrimmed, unlike Last.fm's
/// [`crate::json::Number`]).
#[derive(Deserialize)]
#[serde(untagged)]
enum Count {
    Number(u64),
    Text(String),
}

fn count(c: &Maybe<Count>) -> Option<u64> {
    match c.0.as_ref()? {
        Count::Number(n) => Some(*n),
        Count::Text(s) => s.parse().ok(),
    }
}

/// `listened_at`: absent (or `null`), Unix seconds (a number or a string of
/// digits), or something else, kept as JSON for the message.
#[derive(Debug, Default)]
enum Time {
    #[default]
    Absent,
    At(u64),
    Not(String),
}

struct TimeVisitor;

impl<'de> Visitor<'de> for TimeVisitor {
    type Value = Time;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_u64<E>(self, n: u64) -> Result<Time, E> {
        Ok(Time::At(n))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Time, E> {
        Ok(Time::Not(n.to_string()))
    }
    fn visit_f64<E>(self, f: f64) -> Result<Time, E> {
        Ok(Time::Not(
            serde_json::Number::from_f64(f).map_or_else(|| f.to_string(), |n| n.to_string()),
        ))
    }
    fn visit_str<E>(self, s: &str) -> Result<Time, E> {
        Ok(match s.trim().parse() {
            Ok(at) => Time::At(at),
            Err(_) => Time::Not(serde_json::to_string(s).unwrap_or_default()),
        })
    }
    fn visit_bool<E>(self, b: bool) -> Result<Time, E> {
        Ok(Time::Not(b.to_string()))
    }
    fn visit_unit<E>(self) -> Result<Time, E> {
        Ok(Time::Absent)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Time, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Time::Not("[…]".into()))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Time, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Time::Not("{…}".into()))
    }
}

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TimeVisitor)
    }
}

fn listen_from_json(listen: Obj<ImportListen>) -> Result<Listen, ListenProblem> {
    // What is not an object has no `listened_at`.
    let listen = listen.or_default();
    let started_at = match listen.listened_at {
        Time::Absent => return Err(ListenProblem::NoTime),
        Time::At(at) => at,
        Time::Not(json) => return Err(ListenProblem::NotATime(json)),
    };
    let meta = listen.track_metadata.or_default();
    let text = |s: Str| s.0.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let artist = text(meta.artist_name).ok_or(ListenProblem::NoArtist)?;
    let title = text(meta.track_name).ok_or(ListenProblem::NoTitle)?;
    let info = meta.additional_info.or_default();
    let mbid = |s: Str| s.0.filter(|m| is_uuid(m));
    let duration_secs = count(&info.duration_ms)
        .map(|ms| ms / 1000)
        .or_else(|| count(&info.duration))
        .filter(|d| *d > 0);
    let artist_mbids = info
        .artist_mbids
        .0
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.0)
        .filter(|m| is_uuid(m))
        .collect();
    Ok(Listen {
        track: Track {
            artist,
            title,
            album: text(meta.release_name),
            album_artist: info.albumartist.0,
            track_number: count(&info.tracknumber)
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| *n > 0),
            duration_secs,
            recording_mbid: mbid(info.recording_mbid),
            release_mbid: mbid(info.release_mbid),
            release_group_mbid: mbid(info.release_group_mbid),
            track_mbid: mbid(info.track_mbid),
            artist_mbids,
            ..Track::default()
        },
        started_at,
    })
}

/// Reads a ListenBrainz export (a JSON array of listens, the format of
/// `history export --format listenbrainz` and of ListenBrainz's older
/// exports, or one listen per line, its newer JSON Lines exports) one listen
/// at a time, never holding more than one in memory: the array's brackets and
/// the commas between its elements are read as spaces, so both shapes
/// become a stream of JSON values.
pub struct ExportReader<R: std::io::Read> {
    values: serde_json::StreamDeserializer<
        'static,
        serde_json::de::IoRead<Flatten<R>>,
        Obj<ImportListen>,
    >,
    index: usize,
}

impl<R: std::io::Read> ExportReader<R> {
    /// Read from `r` (buffer it: it is read a byte at a time).
    pub fn new(r: R) -> ExportReader<R> {
        let flat = Flatten {
            inner: r,
            depth: 0,
            started: false,
            in_string: false,
            escaped: false,
        };
        ExportReader {
            values: serde_json::Deserializer::from_reader(flat).into_iter(),
            index: 0,
        }
    }
}

impl<R: std::io::Read> Iterator for ExportReader<R> {
    /// A listen, or the listen that is unreadable (by its position); the
    /// outer error is a file that is not JSON, which ends the reading.
    type Item = Result<Result<Listen, Unreadable>, NotListens>;

    fn next(&mut self) -> Option<Self::Item> {
        let v = match self.values.next()? {
            Ok(v) => v,
            Err(e) => {
                return Some(Err(NotListens {
                    after: self.index,
                    cause: e,
                }));
            }
        };
        self.index += 1;
        Some(Ok(listen_from_json(v).map_err(|problem| Unreadable {
            index: self.index,
            problem,
        })))
    }
}

/// The bytes of a JSON array with its outer brackets and top-level commas
/// turned into spaces (see [`ExportReader`]).
pub struct Flatten<R> {
    inner: R,
    depth: u32,
    started: bool,
    in_string: bool,
    escaped: bool,
}

impl<R: std::io::Read> std::io::Read for Flatten<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for b in &mut buf[..n] {
            if self.in_string {
                self.started = true;
                match (*b, self.escaped) {
                    (_, true) => self.escaped = false,
                    (b'\\', false) => self.escaped = true,
                    (b'"', false) => self.in_string = false,
                    _ => {}
                }
                continue;
            }
            let byte = *b;
            match byte {
                b'"' => self.in_string = true,
                // The outer array's bracket: the first byte that is not
                // white space.
                b'[' if !self.started && self.depth == 0 => *b = b' ',
                b']' | b',' if self.depth == 0 => *b = b' ',
                b'[' | b'{' => self.depth += 1,
                b']' | b'}' => self.depth = self.depth.saturating_sub(1),
                _ => {}
            }
            if !byte.is_ascii_whitespace() {
                self.started = true;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read(file: &str) -> Vec<Result<Listen, ListenProblem>> {
        ExportReader::new(file.as_bytes())
            .map(|r| r.unwrap().map_err(|u| u.problem))
            .collect()
    }

    #[test]
    fn the_export_is_byte_for_byte_what_it_was() {
        let listen = Listen {
            track: Track {
                artist: "Sigur Rós".into(),
                title: "Hoppípolla".into(),
                album: Some("Takk...".into()),
                album_artist: Some("Sigur Rós".into()),
                track_number: Some(2),
                duration_secs: Some(268),
                recording_mbid: Some("rec".into()),
                release_mbid: Some("rel".into()),
                release_group_mbid: Some("grp".into()),
                track_mbid: Some("trk".into()),
                artist_mbids: vec!["a1".into(), "a2".into()],
                ..Track::default()
            },
            started_at: 1_700_000_000,
        };
        // As it was built before: a JSON value, whose keys serde_json keeps
        // sorted.
        let before = json!({"listened_at": 1_700_000_000, "track_metadata": {
            "additional_info": {"albumartist": "Sigur Rós", "artist_mbids": ["a1", "a2"],
                "duration_ms": 268_000, "media_player": "MPD", "recording_mbid": "rec",
                "release_group_mbid": "grp", "release_mbid": "rel",
                "submission_client": "mpd-scrobbler", "track_mbid": "trk", "tracknumber": 2},
            "artist_name": "Sigur Rós", "release_name": "Takk...", "track_name": "Hoppípolla"}});
        let now = listenbrainz_listen(&listen);
        assert_eq!(serde_json::to_string(&now).unwrap(), before.to_string());
        assert_eq!(
            serde_json::to_string_pretty(&now).unwrap(),
            serde_json::to_string_pretty(&before).unwrap()
        );
        let bare = Listen {
            track: Track {
                artist: "A".into(),
                title: "T".into(),
                ..Track::default()
            },
            started_at: 5,
        };
        let before = json!({"listened_at": 5, "track_metadata": {"additional_info":
            {"media_player": "MPD", "submission_client": "mpd-scrobbler"},
            "artist_name": "A", "track_name": "T"}});
        assert_eq!(
            serde_json::to_string(&listenbrainz_listen(&bare)).unwrap(),
            before.to_string()
        );
    }

    #[test]
    fn each_listen_is_read_as_leniently_as_before() {
        let uuid = "0a0b0c0d-0000-4000-8000-000000000000";
        let file = format!(
            r#"[
            {{"listened_at": " 7 ", "track_metadata": {{"artist_name": " A ", "track_name": "T",
              "release_name": "", "additional_info": {{"duration_ms": "999", "duration": 30,
              "tracknumber": "3", "albumartist": "", "recording_mbid": "{uuid}",
              "release_mbid": "not a uuid", "artist_mbids": ["{uuid}", 5, "x"]}}}}}},
            {{"listened_at": 8, "track_metadata": {{"artist_name": "A", "track_name": "T",
              "additional_info": {{"duration_ms": 1500, "tracknumber": " 4",
              "artist_mbids": "{uuid}"}}}}}},
            {{"listened_at": 9, "track_metadata": {{"artist_name": "A", "track_name": "T",
              "additional_info": {{"duration": "60", "tracknumber": 0}}}}}},
            5, "x", null, [1, 2],
            {{"listened_at": null}},
            {{"listened_at": "bad"}},
            {{"listened_at": -1}},
            {{"listened_at": 1.5}},
            {{"listened_at": [1]}},
            {{"listened_at": 1, "track_metadata": "x"}},
            {{"listened_at": 1, "track_metadata": {{"artist_name": "A", "track_name": 5}}}}
            ]"#
        );
        let got = read(&file);
        let first = got[0].as_ref().unwrap();
        assert_eq!(first.started_at, 7);
        assert_eq!(first.track.artist, "A");
        assert_eq!(first.track.album, None);
        assert_eq!(first.track.album_artist.as_deref(), Some(""));
        // 999 ms is under a second: not a duration, and `duration` is not
        // looked at when `duration_ms` was there.
        assert_eq!(first.track.duration_secs, None);
        assert_eq!(first.track.track_number, Some(3));
        assert_eq!(first.track.recording_mbid.as_deref(), Some(uuid));
        assert_eq!(first.track.release_mbid, None);
        assert_eq!(first.track.artist_mbids, [uuid]);
        let second = got[1].as_ref().unwrap();
        assert_eq!(second.track.duration_secs, Some(1));
        assert_eq!(second.track.track_number, None, "digits only, untrimmed");
        assert!(second.track.artist_mbids.is_empty(), "an array only");
        let third = got[2].as_ref().unwrap();
        assert_eq!(third.track.duration_secs, Some(60));
        assert_eq!(third.track.track_number, None);
        let problems: Vec<ListenProblem> =
            got[3..].iter().map(|r| r.clone().unwrap_err()).collect();
        assert_eq!(
            problems,
            [
                ListenProblem::NoTime,
                ListenProblem::NoTime,
                ListenProblem::NoTime,
                ListenProblem::NoTime,
                ListenProblem::NoTime,
                ListenProblem::NotATime("\"bad\"".into()),
                ListenProblem::NotATime("-1".into()),
                ListenProblem::NotATime("1.5".into()),
                ListenProblem::NotATime("[…]".into()),
                ListenProblem::NoArtist,
                ListenProblem::NoTitle,
            ]
        );
    }
}
