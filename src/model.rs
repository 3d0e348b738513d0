//! What a play of a song is once it leaves MPD: the track's metadata and the
//! listen that the queue stores and the targets deliver.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The metadata of one song, as read from MPD's tags.
///
/// `artist` and `title` are never empty in a [`Listen`]; the tracker refuses
/// songs without them before anything is queued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Track {
    /// Display artist (several ARTIST tags joined).
    pub artist: String,
    /// Title.
    pub title: String,
    /// Album, when tagged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub album: Option<String>,
    /// Album artist, when tagged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub album_artist: Option<String>,
    /// Track number on the release, when tagged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track_number: Option<u32>,
    /// Length in whole seconds, when MPD knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<u64>,
    /// MusicBrainz recording id (MPD's MUSICBRAINZ_TRACKID), when it is a valid UUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_mbid: Option<String>,
    /// MusicBrainz release id (MUSICBRAINZ_ALBUMID), when valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_mbid: Option<String>,
    /// MusicBrainz release group id (MUSICBRAINZ_RELEASEGROUPID), when valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_group_mbid: Option<String>,
    /// MusicBrainz release track id (MUSICBRAINZ_RELEASETRACKID), when valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track_mbid: Option<String>,
    /// MusicBrainz artist ids (MUSICBRAINZ_ARTISTID, may repeat); only valid ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artist_mbids: Vec<String>,
    /// The stream's URL when this is a title played by an internet radio
    /// station: ListenBrainz gets it as `origin_url`, and Last.fm hears that
    /// the user did not choose the track.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_url: Option<String>,
    /// MPD's URI of the song (a path in the music directory, or a stream's
    /// URL), for the rules. Not stored: rules run before queueing.
    #[serde(skip)]
    pub file: Option<String>,
    /// The GENRE tags, joined; for the rules only, like `file`.
    #[serde(skip)]
    pub genre: Option<String>,
}

/// A qualified play: what a target receives as one scrobble.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listen {
    /// The song that was played.
    pub track: Track,
    /// UTC start of the play, in Unix seconds.
    pub started_at: u64,
}

/// The wall clock in Unix seconds (0 if the clock is before 1970).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The same clock in milliseconds, for records that must mean the same
/// after a restart (which a monotonic clock does not).
pub fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A plain listen for unit tests: artist "A", title "T`i`", started `i`
/// seconds after a fixed instant.
/// When a play counts as a listen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// The track must be strictly longer than this (Last.fm: 30 s).
    pub min_track: Duration,
    /// Share of the duration that must be played, in percent (Last.fm: 50).
    pub played_percent: u8,
    /// Play time that always suffices, whatever the length (Last.fm: 4 min).
    pub max_required: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            min_track: Duration::from_secs(30),
            played_percent: 50,
            max_required: Duration::from_secs(240),
        }
    }
}

impl Thresholds {
    /// Play time needed for a track of this length, or why it can never qualify.
    pub fn required(&self, duration: Option<Duration>) -> Result<Duration, Unscrobblable> {
        let duration = duration.ok_or(Unscrobblable::UnknownDuration)?;
        if duration <= self.min_track {
            return Err(Unscrobblable::TooShort(duration));
        }
        let share = f64::from(self.played_percent) / 100.0;
        Ok(Duration::try_from_secs_f64(duration.as_secs_f64() * share)
            .map_or(self.max_required, |d| d.min(self.max_required)))
    }
}

/// Playback state as MPD reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PlayState {
    /// Nothing is playing.
    Stopped,
    /// The current song is playing.
    Playing,
    /// The current song is paused.
    Paused,
}

/// The current song as MPD reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Song {
    /// MPD's song id: the same queue entry keeps it across repeats.
    pub id: u64,
    /// File or stream URI, to tell songs apart when ids are reused after a queue edit.
    pub uri: String,
    /// Tags. `artist` or `title` may be empty when the file lacks them.
    pub track: Track,
    /// Length, when known (streams have none).
    pub duration: Option<Duration>,
    /// A stream's station name (`Name`, from icy-name). Never an artist.
    pub station: Option<String>,
}

/// One reading of MPD's `status` and `currentsong`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Snapshot {
    /// Playback state.
    pub state: PlayState,
    /// The current song, if any.
    pub song: Option<Song>,
    /// Position in the current song.
    pub elapsed: Duration,
}

/// Why a play will never be scrobbled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unscrobblable {
    /// The song has no artist or no title tag.
    MissingTags,
    /// The track is not longer than the minimum length.
    TooShort(Duration),
    /// The length is unknown, and it is not a stream.
    UnknownDuration,
    /// A stream, and `[streams] enabled = false`.
    StreamsOff,
    /// A stream whose `[[streams.station]]` settings say `ignore`.
    StationIgnored,
    /// A stream title that is not "Artist - Title": a station ID, an ad, news.
    Unsplittable(String),
    /// A stream title that names the station as the artist or the title.
    StationName(String),
}

impl std::fmt::Display for Unscrobblable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unscrobblable::MissingTags => f.write_str("it has no artist or no title tag"),
            Unscrobblable::TooShort(d) => write!(f, "it is too short ({} s)", d.as_secs()),
            Unscrobblable::UnknownDuration => f.write_str("its length is unknown"),
            Unscrobblable::StreamsOff => {
                f.write_str("stream scrobbling is off ([streams] enabled = false)")
            }
            Unscrobblable::StationIgnored => {
                f.write_str("the station is ignored by a [[streams.station]] setting")
            }
            Unscrobblable::Unsplittable(t) => write!(
                f,
                "the title {t:?} is not \"Artist - Title\" (a station ID, an ad or the news?)"
            ),
            Unscrobblable::StationName(t) => {
                write!(f, "the title {t:?} names the station, not an artist")
            }
        }
    }
}

/// Whether `s` is a canonical UUID (8-4-4-4-12 hex), as MusicBrainz ids are.
pub(crate) fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// "Artist – Title" for log lines.
pub(crate) fn describe(t: &Track) -> String {
    format!("\"{}\"", describe_names(&t.artist, &t.title))
}

/// "Artist – Title", or the title alone when there is no artist (a
/// stream's title that did not split, a file without the tag).
pub(crate) fn describe_names(artist: &str, title: &str) -> String {
    if artist.trim().is_empty() {
        title.to_owned()
    } else {
        format!("{artist} – {title}")
    }
}

#[cfg(test)]
pub(crate) fn test_listen(i: u64) -> Listen {
    Listen {
        track: Track {
            artist: "A".into(),
            title: format!("T{i}"),
            ..Track::default()
        },
        started_at: 1_700_000_000 + i,
    }
}
