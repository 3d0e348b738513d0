//! The formats plays leave and enter the history in: ListenBrainz's import
//! shape, CSV (RFC 4180), and ListenBrainz export files (a JSON array or
//! JSON Lines).

use std::borrow::Cow;

use serde_json::{Value, json};

use super::Record;
use crate::model::is_uuid;
use crate::model::{Listen, Track};

/// A play in ListenBrainz's import shape (what `submit-listens` takes and
/// ListenBrainz's export writes).
pub fn listenbrainz_listen(listen: &Listen) -> Value {
    let t = &listen.track;
    let mut info = serde_json::Map::new();
    let mut put = |k: &str, v: Value| {
        info.insert(k.to_owned(), v);
    };
    if let Some(d) = t.duration_secs {
        put("duration_ms", json!(d * 1000));
    }
    if let Some(n) = t.track_number {
        put("tracknumber", json!(n));
    }
    if let Some(a) = &t.album_artist {
        put("albumartist", json!(a));
    }
    for (k, v) in [
        ("recording_mbid", &t.recording_mbid),
        ("release_mbid", &t.release_mbid),
        ("release_group_mbid", &t.release_group_mbid),
        ("track_mbid", &t.track_mbid),
    ] {
        if let Some(v) = v {
            put(k, json!(v));
        }
    }
    if !t.artist_mbids.is_empty() {
        put("artist_mbids", json!(t.artist_mbids));
    }
    put("media_player", json!("MPD"));
    put("submission_client", json!("mpd-scrobbler"));
    let mut meta = json!({"artist_name": t.artist, "track_name": t.title});
    if let Some(album) = &t.album {
        meta["release_name"] = json!(album);
    }
    meta["additional_info"] = Value::Object(info);
    json!({"listened_at": listen.started_at, "track_metadata": meta})
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

fn listen_from_json(v: &Value) -> Result<Listen, ListenProblem> {
    let started_at = match &v["listened_at"] {
        Value::Null => return Err(ListenProblem::NoTime),
        at => at
            .as_u64()
            .or_else(|| at.as_str().and_then(|s| s.trim().parse().ok()))
            .ok_or_else(|| ListenProblem::NotATime(at.to_string()))?,
    };
    let meta = &v["track_metadata"];
    let text = |k: &str| {
        meta[k]
            .as_str()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let artist = text("artist_name").ok_or(ListenProblem::NoArtist)?;
    let title = text("track_name").ok_or(ListenProblem::NoTitle)?;
    let info = &meta["additional_info"];
    let number = |k: &str| {
        info[k]
            .as_u64()
            .or_else(|| info[k].as_str().and_then(|s| s.parse().ok()))
    };
    let mbid = |k: &str| info[k].as_str().filter(|m| is_uuid(m)).map(str::to_owned);
    let duration_secs = number("duration_ms")
        .map(|ms| ms / 1000)
        .or_else(|| number("duration"))
        .filter(|d| *d > 0);
    Ok(Listen {
        track: Track {
            artist,
            title,
            album: text("release_name"),
            album_artist: info["albumartist"].as_str().map(str::to_owned),
            track_number: number("tracknumber")
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| *n > 0),
            duration_secs,
            recording_mbid: mbid("recording_mbid"),
            release_mbid: mbid("release_mbid"),
            release_group_mbid: mbid("release_group_mbid"),
            track_mbid: mbid("track_mbid"),
            artist_mbids: info["artist_mbids"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .filter(|m| is_uuid(m))
                .map(str::to_owned)
                .collect(),
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
    values: serde_json::StreamDeserializer<'static, serde_json::de::IoRead<Flatten<R>>, Value>,
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
        Some(Ok(listen_from_json(&v).map_err(|problem| Unreadable {
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
