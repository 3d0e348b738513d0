//! What a play of a song is once it leaves MPD: the track's metadata and the
//! listen that the queue stores and the targets deliver.

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
