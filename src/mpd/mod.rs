//! The MPD edge: connecting over TCP, Unix or abstract sockets with an
//! optional password, and reading `status` + `currentsong` into the
//! tracker's [`Snapshot`].
//!
//! Responses are parsed from raw fields rather than mpd_client's typed
//! `Status`, which rejects MPD 0.24's `consume: oneshot` (crates.md). Every
//! idle wake-up is treated as "something changed" because mpd_client reports
//! only the first subsystem of a wake-up.

use std::time::Duration;

use mpd_client::client::{ConnectWithPasswordError, ConnectionEvents};
use mpd_client::protocol::{Command, CommandList};
use mpd_client::{Client, client::CommandError};

use crate::config::{MpdAddress, MpdConfig};
use crate::scrobble::Track;
use crate::tracker::{PlayState, Snapshot, Song};

/// Deadline for connecting and for each command, so a half-dead link is
/// noticed instead of hanging the watcher.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a connection attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// MPD is not reachable (yet).
    #[error("cannot connect to MPD at {address}: {source}")]
    Io {
        /// Where.
        address: String,
        /// Cause.
        source: std::io::Error,
    },
    /// MPD answered but refused the password.
    #[error("MPD at {0} rejected the password")]
    BadPassword(String),
    /// MPD did not greet properly or in time.
    #[error("MPD at {address} did not answer properly: {message}")]
    Protocol {
        /// Where.
        address: String,
        /// What went wrong.
        message: String,
    },
}

/// Connect and authenticate.
pub async fn connect(cfg: &MpdConfig) -> Result<(Client, ConnectionEvents), ConnectError> {
    let address = cfg.address.to_string();
    let io_err = |source| ConnectError::Io {
        address: address.clone(),
        source,
    };
    let password = cfg.password.as_ref().map(|p| p.expose());
    let connected = tokio::time::timeout(COMMAND_TIMEOUT, async {
        match &cfg.address {
            MpdAddress::Tcp(host, port) => {
                let stream = tokio::net::TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(io_err)?;
                // A dead remote MPD would otherwise go unnoticed until the next
                // command; the kernel's keepalive costs the daemon no wake-ups.
                let _ = socket2::SockRef::from(&stream).set_keepalive(true);
                // mpd_client writes `noidle` right after `idle`; with Nagle's
                // algorithm that small write waits for the delayed ACK of the
                // first, so every read after a wake-up took 40 ms more.
                let _ = stream.set_nodelay(true);
                Ok(Client::connect_with_password_opt(stream, password).await)
            }
            MpdAddress::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(io_err)?;
                Ok(Client::connect_with_password_opt(stream, password).await)
            }
            MpdAddress::Abstract(name) => {
                let stream = connect_abstract(name).map_err(io_err)?;
                Ok(Client::connect_with_password_opt(stream, password).await)
            }
        }
    })
    .await
    .map_err(|_| ConnectError::Protocol {
        address: address.clone(),
        message: "timed out".into(),
    })??;
    connected.map_err(|e| match e {
        ConnectWithPasswordError::IncorrectPassword => ConnectError::BadPassword(address),
        ConnectWithPasswordError::ProtocolError(e) => ConnectError::Protocol {
            address,
            message: e.to_string(),
        },
    })
}

#[cfg(target_os = "linux")]
fn connect_abstract(name: &str) -> std::io::Result<tokio::net::UnixStream> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
    let stream = std::os::unix::net::UnixStream::connect_addr(&addr)?;
    stream.set_nonblocking(true)?;
    tokio::net::UnixStream::from_std(stream)
}

#[cfg(not(target_os = "linux"))]
fn connect_abstract(_name: &str) -> std::io::Result<tokio::net::UnixStream> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "abstract sockets exist only on Linux",
    ))
}

/// What a closed connection means for the user. mpd_client closes the
/// connection when MPD answers `idle` with an error, which in practice is
/// MPD refusing a client without the "read" permission.
pub fn describe_closed(e: &mpd_client::client::ConnectionError) -> String {
    match e {
        mpd_client::client::ConnectionError::InvalidResponse => {
            "MPD refused to report changes (idle): the password is missing or lacks the \"read\" permission".into()
        }
        mpd_client::client::ConnectionError::Protocol(e) => format!("protocol error: {e}"),
    }
}

/// Why reading the player state failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The command failed or the connection closed.
    #[error("MPD command failed: {0}")]
    Command(#[from] CommandError),
    /// MPD did not answer in time.
    #[error("MPD did not answer within {} s", COMMAND_TIMEOUT.as_secs())]
    Timeout,
}

/// Read `status` and `currentsong` in one round trip.
pub async fn snapshot(client: &Client) -> Result<Snapshot, ReadError> {
    let list = CommandList::new(Command::new("status")).command(Command::new("currentsong"));
    let frames = tokio::time::timeout(COMMAND_TIMEOUT, client.raw_command_list(list))
        .await
        .map_err(|_| ReadError::Timeout)??;
    let fields = |i: usize| -> Vec<(&str, &str)> {
        frames
            .get(i)
            .map(|f| f.fields().collect())
            .unwrap_or_default()
    };
    let snapshot = parse_snapshot(&fields(0), &fields(1));
    tracing::debug!(
        state = ?snapshot.state,
        song = snapshot.song.as_ref().map(|s| s.id),
        elapsed = ?snapshot.elapsed,
        "MPD status"
    );
    Ok(snapshot)
}

/// Channels whose messages the daemon acts on: mpdscribble's (so existing
/// key bindings keep working) and its own.
pub const CHANNELS: [&str; 2] = ["mpdscribble", "mpd-scrobbler"];

/// Subscribe to [`CHANNELS`].
pub async fn subscribe(client: &Client) -> Result<(), ReadError> {
    for channel in CHANNELS {
        let cmd = Command::new("subscribe").argument(channel);
        match tokio::time::timeout(COMMAND_TIMEOUT, client.raw_command(cmd)).await {
            Ok(Ok(_)) => {}
            // Already subscribed (code 56) is fine: a channel per connection.
            Ok(Err(CommandError::ErrorResponse { error, .. })) if error.code == 56 => {}
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => return Err(ReadError::Timeout),
        }
    }
    Ok(())
}

/// Messages sent to the subscribed channels since the last call, as
/// (channel, message).
pub async fn messages(client: &Client) -> Result<Vec<(String, String)>, ReadError> {
    let frame = tokio::time::timeout(
        COMMAND_TIMEOUT,
        client.raw_command(Command::new("readmessages")),
    )
    .await
    .map_err(|_| ReadError::Timeout)??;
    let mut out = Vec::new();
    let mut channel = None;
    for (k, v) in frame.fields() {
        match k {
            "channel" => channel = Some(v.to_owned()),
            "message" => {
                if let Some(c) = &channel {
                    out.push((c.clone(), v.to_owned()));
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Build a snapshot from the fields of `status` and `currentsong`.
pub fn parse_snapshot(status: &[(&str, &str)], song: &[(&str, &str)]) -> Snapshot {
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
            let album_artist = first("AlbumArtist").filter(|a| *a != artist);
            let track = Track {
                artist,
                title: all("Title").join(" / "),
                album: first("Album"),
                album_artist,
                track_number: first("Track")
                    .and_then(|t| t.split('/').next()?.trim().parse::<u32>().ok())
                    .filter(|n| *n > 0),
                duration_secs: duration.map(|d| d.as_secs_f64().round() as u64),
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
            };
            Some(Song {
                id,
                uri: uri.to_owned(),
                track,
                duration,
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

/// Whether `s` is a canonical UUID (8-4-4-4-12 hex), as MusicBrainz ids are.
pub fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
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
        assert_eq!(song.track.album_artist, None, "same as artist");
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
