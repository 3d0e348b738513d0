//! MPD's answers to `status` and `currentsong`, read into the tracker's
//! [`Snapshot`]. Pure: fields in, snapshot out.
//!
//! Fields are read by name rather than through mpd_client's typed `Status`,
//! which rejects MPD 0.24's `consume: oneshot` (docs/protocols.md, "MPD").

use std::time::Duration;

use crate::model::{PlayState, Snapshot, Song, Track, is_uuid};

/// Build a snapshot from the fields of `status` and `currentsong`.
pub(crate) fn parse_snapshot(status: &[(&str, &str)], song: &[(&str, &str)]) -> Snapshot {
    fn get<'a>(fields: &[(&str, &'a str)], key: &str) -> Option<&'a str> {
        fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| *v)
    }
    let all = |key: &str| -> Vec<&str> {
        song.iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
            .collect()
    };

    let state = match get(status, "state") {
        Some("play") => PlayState::Playing,
        Some("pause") => PlayState::Paused,
        _ => PlayState::Stopped,
    };
    let elapsed = get(status, "elapsed")
        .and_then(secs)
        .or_else(|| {
            get(status, "time")
                .and_then(|t| t.split(':').next())
                .and_then(secs)
        })
        .unwrap_or(Duration::ZERO);
    let id = get(status, "songid").and_then(|v| v.parse::<u64>().ok());
    let uri = get(song, "file");

    let song = match (id, uri) {
        (Some(id), Some(uri)) => {
            let duration = get(song, "duration")
                .or_else(|| get(status, "duration"))
                .and_then(secs)
                .or_else(|| get(song, "Time").and_then(secs))
                .filter(|d| !d.is_zero());
            let first = |key: &str| all(key).first().map(|s| s.to_string());
            let mbid = |key: &str| first(key).filter(|m| is_uuid(m));
            let artist = all("Artist").join(", ");
            // Kept even when it equals the artist: rules and exports see the
            // tags as the file has them (Last.fm's wire leaves it out then).
            let album_artist = first("AlbumArtist");
            let track = Track {
                artist,
                title: all("Title").join(" / "),
                album: first("Album"),
                album_artist,
                track_number: first("Track")
                    .and_then(|t| t.split('/').next()?.trim().parse::<u32>().ok())
                    .filter(|n| *n > 0),
                duration_secs: duration.map(|d| d.as_secs() + u64::from(d.subsec_millis() >= 500)),
                recording_mbid: mbid("MUSICBRAINZ_TRACKID"),
                release_mbid: mbid("MUSICBRAINZ_ALBUMID"),
                release_group_mbid: mbid("MUSICBRAINZ_RELEASEGROUPID"),
                track_mbid: mbid("MUSICBRAINZ_RELEASETRACKID"),
                artist_mbids: all("MUSICBRAINZ_ARTISTID")
                    .into_iter()
                    // Picard may write several ids into one tag, separated by "; " or "/".
                    .flat_map(|v| v.split([';', '/']).map(str::trim))
                    .filter(|m| is_uuid(m))
                    .map(str::to_owned)
                    .collect(),
                stream_url: None,
                file: Some(uri.to_owned()),
                genre: Some(all("Genre").join(", ")).filter(|g| !g.is_empty()),
            };
            Some(Song {
                id,
                uri: uri.to_owned(),
                track,
                duration,
                // A stream's icy-name; a file's Name tag is rare and harmless.
                station: first("Name"),
            })
        }
        _ => None,
    };
    Snapshot {
        state,
        song,
        elapsed,
    }
}

/// Longest time MPD may report for a position or a length: a value beyond
/// it (1e300, say) is nonsense and counts as unknown.
const MAX_SECS: f64 = u32::MAX as f64;

/// A time in seconds as MPD writes it ("268.000"); `None` unless it is a
/// plain number from 0 to [`MAX_SECS`] (not NaN, negative, infinite or huge).
fn secs(v: &str) -> Option<Duration> {
    let s = v.trim().parse::<f64>().ok()?;
    if !(0.0..=MAX_SECS).contains(&s) {
        return None;
    }
    Duration::try_from_secs_f64(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn playing_song_with_all_tags() {
        let status = [
            ("volume", "100"),
            ("consume", "oneshot"),
            ("state", "play"),
            ("song", "0"),
            ("songid", "12"),
            ("elapsed", "3.512"),
            ("duration", "268.000"),
        ];
        let song = [
            ("file", "sigur/hoppipolla.flac"),
            ("Artist", "Sigur Rós"),
            ("Title", "Hoppípolla"),
            ("Album", "Takk..."),
            ("AlbumArtist", "Sigur Rós"),
            ("Track", "3/11"),
            (
                "MUSICBRAINZ_TRACKID",
                "b8f4c4b6-2c3f-4a9e-9a5e-0123456789ab",
            ),
            ("duration", "268.000"),
        ];
        let s = parse_snapshot(&status, &song);
        assert_eq!(s.state, PlayState::Playing);
        assert_eq!(s.elapsed, Duration::from_millis(3512));
        let song = s.song.unwrap();
        assert_eq!(song.id, 12);
        assert_eq!(song.duration, Some(Duration::from_secs(268)));
        assert_eq!(song.track.artist, "Sigur Rós");
        assert_eq!(
            song.track.album_artist.as_deref(),
            Some("Sigur Rós"),
            "kept although it equals the artist (issue 23, item 1)"
        );
        assert_eq!(song.track.track_number, Some(3));
        assert_eq!(song.track.duration_secs, Some(268));
        assert_eq!(
            song.track.recording_mbid.as_deref(),
            Some("b8f4c4b6-2c3f-4a9e-9a5e-0123456789ab")
        );
    }

    #[test]
    fn several_artists_are_joined_and_bad_mbids_dropped() {
        let status = [("state", "pause"), ("songid", "1"), ("elapsed", "1.0")];
        let song = [
            ("file", "x.flac"),
            ("Artist", "Foo"),
            ("Artist", "Bar"),
            ("Title", "Rock & Roll = Life"),
            ("MUSICBRAINZ_TRACKID", "not-a-uuid"),
            (
                "MUSICBRAINZ_ARTISTID",
                "11111111-2222-3333-4444-555555555555",
            ),
            ("MUSICBRAINZ_ARTISTID", "bogus"),
            (
                "MUSICBRAINZ_ARTISTID",
                "66666666-7777-8888-9999-000000000000",
            ),
            (
                "MUSICBRAINZ_ALBUMID",
                "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
            ),
            ("Time", "200"),
        ];
        let s = parse_snapshot(&status, &song);
        assert_eq!(s.state, PlayState::Paused);
        let song = s.song.unwrap();
        assert_eq!(song.track.artist, "Foo, Bar");
        assert_eq!(
            song.track.artist_mbids,
            [
                "11111111-2222-3333-4444-555555555555",
                "66666666-7777-8888-9999-000000000000"
            ]
        );
        assert_eq!(
            song.track.release_mbid.as_deref(),
            Some("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")
        );
        assert_eq!(song.track.title, "Rock & Roll = Life");
        assert_eq!(song.track.recording_mbid, None);
        assert_eq!(song.duration, Some(Duration::from_secs(200)));
    }

    #[test]
    fn stopped_or_empty() {
        let s = parse_snapshot(&[("state", "stop")], &[]);
        assert_eq!(s.state, PlayState::Stopped);
        assert!(s.song.is_none());
        let s = parse_snapshot(
            &[("state", "play"), ("songid", "3")],
            &[("file", "http://radio/stream")],
        );
        let song = s.song.unwrap();
        assert_eq!(song.duration, None);
        assert!(song.track.artist.is_empty());
        assert_eq!(song.station, None);
    }

    #[test]
    fn stream_with_station_name_and_title() {
        let s = parse_snapshot(
            &[("state", "play"), ("songid", "4"), ("time", "12:0")],
            &[
                ("file", "http://radio.example/live"),
                ("Title", "Sigur Rós - Hoppípolla"),
                ("Name", "Test FM"),
                ("Genre", "Post-rock"),
            ],
        );
        let song = s.song.unwrap();
        assert_eq!(song.duration, None, "status `time: 12:0` is no length");
        assert_eq!(song.station.as_deref(), Some("Test FM"));
        assert_eq!(song.track.title, "Sigur Rós - Hoppípolla");
        assert_eq!(
            song.track.file.as_deref(),
            Some("http://radio.example/live")
        );
        assert_eq!(song.track.genre.as_deref(), Some("Post-rock"));
        assert!(song.track.artist.is_empty(), "never the station name");
    }

    #[test]
    fn absurd_times_from_mpd_count_as_unknown() {
        for bad in [
            "NaN",
            "nan",
            "-1",
            "-0.5",
            "inf",
            "-inf",
            "1e300",
            "4294967296",
            "1e20",
            "x",
            "",
            "18446744073709551616",
        ] {
            let status = [("state", "play"), ("songid", "1"), ("elapsed", bad)];
            let song = [
                ("file", "x.flac"),
                ("Artist", "A"),
                ("Title", "T"),
                ("duration", bad),
            ];
            let s = parse_snapshot(&status, &song);
            assert_eq!(s.elapsed, Duration::ZERO, "elapsed {bad:?}");
            let song = s.song.unwrap();
            assert_eq!(song.duration, None, "duration {bad:?}");
            assert_eq!(song.track.duration_secs, None, "duration {bad:?}");
        }
        // The old `time` field and the largest plausible value still work.
        let s = parse_snapshot(
            &[("state", "play"), ("songid", "1"), ("time", "1e300:5")],
            &[("file", "x.flac"), ("Time", "4294967295")],
        );
        assert_eq!(s.elapsed, Duration::ZERO);
        assert_eq!(
            s.song.unwrap().duration,
            Some(Duration::from_secs(4_294_967_295))
        );
    }

    #[test]
    fn absurd_song_ids_and_track_numbers_are_ignored() {
        let s = parse_snapshot(
            &[("state", "play"), ("songid", "-3")],
            &[("file", "x.flac")],
        );
        assert!(s.song.is_none());
        let s = parse_snapshot(
            &[("state", "play"), ("songid", "99999999999999999999999")],
            &[("file", "x.flac")],
        );
        assert!(s.song.is_none());
        let s = parse_snapshot(
            &[("state", "play"), ("songid", "1")],
            &[("file", "x.flac"), ("Track", "99999999999/-1")],
        );
        assert_eq!(s.song.unwrap().track.track_number, None);
    }

    #[test]
    fn uuid_check() {
        assert!(is_uuid("b8f4c4b6-2c3f-4a9e-9a5e-0123456789ab"));
        assert!(!is_uuid("b8f4c4b6-2c3f-4a9e-9a5e-0123456789a"));
        assert!(!is_uuid("b8f4c4b6x2c3f-4a9e-9a5e-0123456789ab"));
        assert!(!is_uuid(""));
    }
}
