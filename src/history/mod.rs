//! The local listening history: every qualifying play, kept for good in
//! `history.sqlite` (`crate::store::history`), whether or not any target
//! is configured. The queues are what is still owed to each target; the history
//! is the record of what was played, and of which target accepted which
//! play and when.
//!
//! Releases before the SQLite history kept it in the queue's sled database
//! (tree [`TREE`]), keyed by the play's start time (big-endian Unix
//! seconds) followed by the id its queue entries carry; the storage thread
//! moves such a history at the first start ([`key`], [`split_key`] and
//! [`Record`] read it).
//!
//! Around it, in this folder: the time arguments and filters ([`filter`]),
//! the formats plays go out and come in ([`formats`]: ListenBrainz's import
//! shape, CSV, ListenBrainz exports; [`journal`]: mpdscribble's journal), the
//! figures of `stats` ([`stats`], drawn by [`charts`]) and the commands over
//! it ([`commands`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::Listen;

pub mod charts;
pub mod filter;
pub mod formats;
pub mod journal;
pub mod stats;

pub use filter::{Filter, PeriodError, WhenError, parse_when, period_start};
pub use formats::{
    CSV_HEADER, ExportReader, ListenProblem, NotListens, Unreadable, csv_line, listenbrainz_listen,
};

/// The sled tree holding the history.
pub const TREE: &str = "history";

/// Version of the stored record, so a later release can read old histories.
const FORMAT_VERSION: u32 = 1;

/// A history key: start time, then the play's id (its queue key).
pub type HistoryKey = [u8; 16];

/// The key of the play with this start time and id.
pub fn key(started_at: u64, id: u64) -> HistoryKey {
    let mut k = [0; 16];
    k[..8].copy_from_slice(&started_at.to_be_bytes());
    k[8..].copy_from_slice(&id.to_be_bytes());
    k
}

/// The start time and id of a key; `None` for a key of another shape.
pub fn split_key(k: &[u8]) -> Option<(u64, u64)> {
    let start: [u8; 8] = k.get(..8)?.try_into().ok()?;
    let id: [u8; 8] = k.get(8..16)?.try_into().ok()?;
    (k.len() == 16).then(|| (u64::from_be_bytes(start), u64::from_be_bytes(id)))
}

/// What the daemon knows of a play beyond the listen itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlayInfo {
    /// The song's file (relative to MPD's music directory) or stream URL.
    pub uri: Option<String>,
    /// Real play time, in seconds, when the play was recorded.
    pub played_secs: Option<u64>,
    /// The play has ended and `played_secs` is its whole play time: only
    /// its history record changes, nothing is queued.
    pub ended: bool,
}

/// One play in the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Format version.
    pub v: u32,
    /// Everything a target needs: the track's tags and the start time.
    pub listen: Listen,
    /// File or stream URL, when it came from MPD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Real play time in seconds: when the play ended, or, until then (or
    /// after a crash), when it qualified; `None` for imported plays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub played_secs: Option<u64>,
    /// The targets the play was queued for (delivered, waiting or refused).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queued: Vec<String>,
    /// Target name → when it accepted the play (Unix seconds).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub delivered: BTreeMap<String, u64>,
}

impl Record {
    /// A new record of `listen`, queued for `targets`.
    pub fn new(listen: &Listen, info: &PlayInfo, targets: &[String]) -> Record {
        Record {
            v: FORMAT_VERSION,
            listen: listen.clone(),
            uri: info.uri.clone(),
            played_secs: info.played_secs,
            queued: targets.to_vec(),
            delivered: BTreeMap::new(),
        }
    }

    /// The stored bytes.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a record always serialises")
    }

    /// Read stored bytes.
    pub fn decode(bytes: &[u8]) -> Option<Record> {
        serde_json::from_slice(bytes).ok()
    }

    /// Whether `target` has the play already: it accepted it, or it was
    /// queued for it (still waiting, or refused for good).
    pub fn has(&self, target: &str) -> bool {
        self.delivered.contains_key(target) || self.queued.iter().any(|t| t == target)
    }

    /// The entry `history --json` prints.
    pub fn entry(&self) -> Entry {
        let t = &self.listen.track;
        Entry {
            started_at: self.listen.started_at,
            artist: t.artist.clone(),
            title: t.title.clone(),
            album: t.album.clone(),
            duration: t.duration_secs,
            played_secs: self.played_secs,
            delivered: self.delivered.clone(),
        }
    }
}

/// One play as `history --json` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Start (Unix seconds, UTC).
    pub started_at: u64,
    /// Artist.
    pub artist: String,
    /// Title.
    pub title: String,
    /// Album, if tagged.
    pub album: Option<String>,
    /// Track length in seconds, if known.
    pub duration: Option<u64>,
    /// Real play time when recorded, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub played_secs: Option<u64>,
    /// Target → when it accepted the play.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub delivered: BTreeMap<String, u64>,
}

/// A change to the history, as the queue's outbox holds it until the
/// history database has it on disk (`crate::store`'s module doc). Applying
/// one twice changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// A play recorded, with the targets it was queued for.
    Play {
        /// The key its queue entries carry.
        key: u64,
        /// The play.
        record: Box<Record>,
    },
    /// The play with this queue key was queued for `target` (backfill).
    Queued {
        /// Its queue key.
        key: u64,
        /// The target.
        target: String,
    },
    /// `target` accepted the play with this queue key at `at`.
    Delivered {
        /// Its queue key.
        key: u64,
        /// The target.
        target: String,
        /// When (Unix seconds).
        at: u64,
    },
    /// The play so identified ended after `secs` of real play time.
    Played {
        /// Its start.
        started_at: u64,
        /// Its artist.
        artist: String,
        /// Its title.
        title: String,
        /// Real play time.
        secs: u64,
    },
}

/// Whether `a` and `b` are the same play: same start, artist and title
/// (what import and backfill match on; servers key listens the same way).
pub fn same_play(a: &Listen, b: &Listen) -> bool {
    a.started_at == b.started_at
        && a.track.artist == b.track.artist
        && a.track.title == b.track.title
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Track;
    use serde_json::Value;

    fn listen(t: u64, artist: &str, title: &str) -> Listen {
        Listen {
            track: Track {
                artist: artist.into(),
                title: title.into(),
                album: Some("Takk...".into()),
                duration_secs: Some(268),
                track_number: Some(3),
                recording_mbid: Some("a3e4a7b4-9f6b-4b8e-9d43-3f0e0bde0c51".into()),
                ..Track::default()
            },
            started_at: t,
        }
    }

    #[test]
    fn keys_sort_by_time_then_id() {
        assert!(key(1, 900) < key(2, 1));
        assert!(key(2, 1) < key(2, 2));
        assert_eq!(
            split_key(&key(1_700_000_000, 42)),
            Some((1_700_000_000, 42))
        );
        assert_eq!(split_key(b"short"), None);
    }

    #[test]
    fn when_takes_durations_dates_and_instants() {
        let tz = jiff::tz::TimeZone::fixed(jiff::tz::offset(2));
        let now = 1_700_000_000;
        assert_eq!(parse_when("7d", now, &tz), Ok(now - 7 * 86400));
        assert_eq!(parse_when("2h 30m", now, &tz), Ok(now - 9000));
        // 2023-11-14 00:00 at UTC+2 is 2023-11-13 22:00 UTC.
        assert_eq!(parse_when("2023-11-14", now, &tz), Ok(1_699_912_800));
        assert_eq!(parse_when("2023-11-14 01:30", now, &tz), Ok(1_699_918_200));
        assert_eq!(
            parse_when("2023-11-14T00:00:00Z", now, &tz),
            Ok(1_699_920_000)
        );
        let err = parse_when("last tuesday", now, &tz).unwrap_err();
        assert!(err.to_string().contains("\"last tuesday\""), "{err}");
        assert_eq!(period_start("30d", now), Ok(Some(now - 30 * 86400)));
        assert_eq!(period_start("year", now), Ok(Some(now - 365 * 86400)));
        assert_eq!(period_start("all", now), Ok(None));
        assert!(period_start("week", now).is_err());
    }

    /// An export read a listen at a time.
    fn parse_listenbrainz_export(text: &str) -> Result<(Vec<Listen>, Vec<Unreadable>), NotListens> {
        let mut listens = Vec::new();
        let mut bad = Vec::new();
        // A tiny buffer: listens cut across reads.
        let reader = std::io::BufReader::with_capacity(7, text.as_bytes());
        for item in ExportReader::new(reader) {
            match item? {
                Ok(l) => listens.push(l),
                Err(u) => bad.push(u),
            }
        }
        Ok((listens, bad))
    }

    #[test]
    fn listenbrainz_export_reads_back_the_same_listens() {
        let mut l = listen(1_700_000_000, "Sigur Rós", "Hoppípolla");
        l.track.album_artist = Some("Sigur Rós".into());
        l.track.artist_mbids = vec!["f6f2a5f8-3e2a-4a0e-8bfb-5f5f5f5f5f5f".into()];
        let plain = Listen {
            track: Track {
                artist: "AC/DC".into(),
                title: "T.N.T. \"live\" ],[ {\\} ,".into(),
                ..Track::default()
            },
            started_at: 1_700_000_300,
        };
        let file =
            serde_json::to_string(&vec![listenbrainz_listen(&l), listenbrainz_listen(&plain)])
                .unwrap();
        let v: Value = serde_json::from_str(&file).unwrap();
        assert_eq!(v[0]["listened_at"], 1_700_000_000);
        assert_eq!(v[0]["track_metadata"]["release_name"], "Takk...");
        assert_eq!(
            v[0]["track_metadata"]["additional_info"]["duration_ms"],
            268_000
        );
        let (back, bad) = parse_listenbrainz_export(&file).unwrap();
        assert!(bad.is_empty());
        assert_eq!(back, [l.clone(), plain.clone()]);
        // JSON Lines, as ListenBrainz's newer exports, with a broken listen.
        let lines = format!(
            "{}\n{{\"listened_at\": 5, \"track_metadata\": {{}}}}\n",
            serde_json::to_string(&listenbrainz_listen(&plain)).unwrap()
        );
        let (back, bad) = parse_listenbrainz_export(&lines).unwrap();
        assert_eq!(back, [plain]);
        assert_eq!(bad[0].index, 2);
        assert!(bad[0].problem.to_string().contains("artist_name"));
        assert!(parse_listenbrainz_export("[{").is_err());
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        let mut r = Record::new(
            &listen(1_700_000_000, "Rock, \"Roll\"", "Line\nbreak"),
            &PlayInfo {
                ended: false,
                uri: Some("a/b.flac".into()),
                played_secs: Some(134),
            },
            &[],
        );
        r.listen.track.album = None;
        assert_eq!(
            csv_line(&r),
            "1700000000,\"Rock, \"\"Roll\"\"\",\"Line\nbreak\",,,3,268,\
             a3e4a7b4-9f6b-4b8e-9d43-3f0e0bde0c51,,134,a/b.flac"
        );
        assert_eq!(CSV_HEADER.split(',').count(), 11);
    }
}
