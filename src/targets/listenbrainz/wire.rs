//! The ListenBrainz wire format: listen payloads with `additional_info`,
//! batches bounded by the server's size rules, error bodies, and the
//! listens read back.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::json::{self, Maybe, Obj, Str};

use super::{Error, Flavor};
use crate::model::{Listen, Track};
use crate::targets::Heard;

/// Average bytes per listen the server accepts over a whole request
/// (`MAX_LISTEN_SIZE`), and the cap of a request body (`MAX_LISTEN_PAYLOAD_SIZE`).
const MAX_LISTEN_SIZE: usize = 10_240;
const MAX_PAYLOAD_SIZE: usize = 10_240_000;

/// A `/1/user/{user}/listens` reply, as far as checking deliveries needs it.
#[derive(Default, Deserialize)]
#[serde(default)]
struct ListensReply {
    payload: Obj<ListensPayload>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct ListensPayload {
    listens: Maybe<Vec<Obj<ListenRead>>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct ListenRead {
    listened_at: Maybe<u64>,
    track_metadata: Obj<MetadataRead>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct MetadataRead {
    artist_name: Str,
    track_name: Str,
}

/// The listens of a `/1/user/{user}/listens` reply.
pub(super) fn parse_listens(body: &[u8]) -> Result<Vec<Heard>, Error> {
    let reply: Obj<ListensReply> = serde_json::from_slice(body)
        .map_err(|e| Error::Malformed(format!("listens reply is not JSON: {e}")))?;
    let listens = reply
        .or_default()
        .payload
        .or_default()
        .listens
        .0
        .ok_or_else(|| Error::Malformed("listens reply has no payload.listens".into()))?;
    Ok(listens
        .into_iter()
        .filter_map(|l| {
            let l = l.0?;
            let meta = l.track_metadata.0?;
            Some(Heard {
                artist: meta.artist_name.0?,
                title: meta.track_name.0?,
                at: l.listened_at.0?,
            })
        })
        .collect())
}

/// An error body: `{"code": N, "error": ".."}`.
#[derive(Default, Deserialize)]
#[serde(default)]
struct ErrorBody {
    error: Str,
}

pub(super) fn http_error(status: u16, body: &[u8], reset_in: Option<Duration>) -> Error {
    let api_message = json::object::<ErrorBody>(body).and_then(|b| b.error.0);
    // A 400 or 409 judges the listens only when the API itself says why.
    if api_message.is_none() && matches!(status, 400 | 409) {
        return Error::NotJson { status };
    }
    let message = api_message.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        text.chars().take(200).collect()
    });
    Error::Http {
        status,
        message,
        reset_in,
    }
}

/// A request body: `{"listen_type": .., "payload": [..]}`.
#[derive(Serialize)]
struct Document<'a> {
    listen_type: &'a str,
    payload: &'a [ListenJson<'a>],
}

pub(super) fn document(listen_type: &str, payload: &[ListenJson<'_>]) -> String {
    serde_json::to_string(&Document {
        listen_type,
        payload,
    })
    .expect("a listen always serialises")
}

/// One listen as the server wants it; `playing_now` has no `listened_at`.
/// Fields are in the order of their names, as they have always been sent.
#[derive(Debug, Serialize)]
pub(crate) struct ListenJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    listened_at: Option<u64>,
    track_metadata: TrackMetadata<'a>,
}

/// `track_metadata`: keys without a value are left out, as the server asks.
#[derive(Debug, Serialize)]
struct TrackMetadata<'a> {
    additional_info: AdditionalInfo<'a>,
    artist_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    release_name: Option<String>,
    track_name: String,
}

#[derive(Debug, Serialize)]
struct AdditionalInfo<'a> {
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    artist_mbids: &'a [String],
    /// Maloja reads `duration` (seconds) and ignores duration_ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    duration: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_ms: Option<u64>,
    media_player: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    origin_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recording_mbid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    release_group_mbid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    release_mbid: Option<&'a str>,
    submission_client: &'static str,
    submission_client_version: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    track_mbid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tracknumber: Option<String>,
}

/// One listen as the server wants it.
pub(crate) fn listen_json(l: &Listen, flavor: Flavor) -> ListenJson<'_> {
    ListenJson {
        listened_at: Some(l.started_at),
        track_metadata: track_metadata(&l.track, flavor),
    }
}

/// The `playing_now` entry for `t`: its metadata without a time.
pub(crate) fn playing_now_json(t: &Track, flavor: Flavor) -> ListenJson<'_> {
    ListenJson {
        listened_at: None,
        track_metadata: track_metadata(t, flavor),
    }
}

/// `track_metadata` with `additional_info` filled from what MPD knows.
fn track_metadata(t: &Track, flavor: Flavor) -> TrackMetadata<'_> {
    let duration = t.duration_secs.filter(|d| *d > 0);
    TrackMetadata {
        additional_info: AdditionalInfo {
            artist_mbids: &t.artist_mbids,
            duration: duration.filter(|_| flavor == Flavor::Maloja),
            duration_ms: duration
                .filter(|_| flavor == Flavor::ListenBrainz)
                .map(|d| d.saturating_mul(1000)),
            media_player: "MPD",
            origin_url: t.stream_url.as_deref(),
            recording_mbid: t.recording_mbid.as_deref(),
            release_group_mbid: t.release_group_mbid.as_deref(),
            release_mbid: t.release_mbid.as_deref(),
            submission_client: "mpd-scrobbler",
            submission_client_version: env!("CARGO_PKG_VERSION"),
            track_mbid: t.track_mbid.as_deref(),
            tracknumber: t.track_number.map(|n| n.to_string()),
        },
        artist_name: clean(&t.artist),
        release_name: t
            .album
            .as_deref()
            .map(clean)
            .filter(|a| !a.trim().is_empty()),
        track_name: clean(&t.title),
    }
}

/// The server refuses any string holding NUL; a tag never needs one.
fn clean(s: &str) -> String {
    s.replace('\0', "")
}

/// Split `listens` into runs whose request bodies stay within the server's
/// size rules (on average at most 10 KiB per listen, at most ~10 MB per
/// request). Each run has at least one listen.
pub(crate) fn split_by_size(listens: &[Listen], flavor: Flavor) -> Vec<std::ops::Range<usize>> {
    let mut runs = Vec::new();
    let (mut start, mut bytes) = (0, 64);
    for (i, l) in listens.iter().enumerate() {
        let size = serde_json::to_string(&listen_json(l, flavor))
            .expect("a listen always serialises")
            .len()
            + 1;
        let n = i - start;
        if n > 0 && (bytes + size > (n + 1) * MAX_LISTEN_SIZE || bytes + size > MAX_PAYLOAD_SIZE) {
            runs.push(start..i);
            start = i;
            bytes = 64;
        }
        bytes += size;
    }
    if start < listens.len() {
        runs.push(start..listens.len());
    }
    runs
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn listen(title: &str) -> Listen {
        Listen {
            track: Track {
                artist: "Foo, Bar".into(),
                title: title.into(),
                album: Some("Takk...".into()),
                track_number: Some(3),
                duration_secs: Some(268),
                recording_mbid: Some("b8f4c4b6-2c3f-4a9e-9a5e-0123456789ab".into()),
                artist_mbids: vec![
                    "11111111-2222-3333-4444-555555555555".into(),
                    "66666666-7777-8888-9999-000000000000".into(),
                ],
                ..Track::default()
            },
            started_at: 1_700_000_000,
        }
    }

    #[test]
    fn listen_carries_additional_info() {
        let v =
            serde_json::to_value(listen_json(&listen("Hoppípolla"), Flavor::ListenBrainz)).unwrap();
        assert_eq!(v["listened_at"], 1_700_000_000);
        let m = &v["track_metadata"];
        assert_eq!(m["artist_name"], "Foo, Bar");
        assert_eq!(m["track_name"], "Hoppípolla");
        assert_eq!(m["release_name"], "Takk...");
        let info = &m["additional_info"];
        assert_eq!(info["media_player"], "MPD");
        assert_eq!(info["submission_client"], "mpd-scrobbler");
        assert_eq!(info["submission_client_version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(info["duration_ms"], 268_000);
        assert!(info.get("duration").is_none(), "never both");
        assert_eq!(info["tracknumber"], "3");
        assert_eq!(
            info["recording_mbid"],
            "b8f4c4b6-2c3f-4a9e-9a5e-0123456789ab"
        );
        assert_eq!(info["artist_mbids"].as_array().unwrap().len(), 2);
        assert!(
            info.get("release_mbid").is_none(),
            "unknown keys are left out"
        );
        assert_eq!(
            v.as_object().unwrap().len(),
            2,
            "only listened_at and track_metadata"
        );
    }

    #[test]
    fn a_stream_title_carries_its_origin_url() {
        let mut l = listen("Hoppípolla");
        l.track.stream_url = Some("http://radio.example/live".into());
        l.track.duration_secs = None;
        let v = serde_json::to_value(listen_json(&l, Flavor::ListenBrainz)).unwrap();
        let info = &v["track_metadata"]["additional_info"];
        assert_eq!(info["origin_url"], "http://radio.example/live");
        assert!(info.get("duration_ms").is_none());
        let v = serde_json::to_value(listen_json(&listen("x"), Flavor::ListenBrainz)).unwrap();
        let file = &v["track_metadata"]["additional_info"];
        assert!(file.get("origin_url").is_none(), "a local file has none");
    }

    #[test]
    fn maloja_gets_duration_in_seconds() {
        let v = serde_json::to_value(listen_json(&listen("x"), Flavor::Maloja)).unwrap();
        let info = &v["track_metadata"]["additional_info"];
        assert_eq!(info["duration"], 268);
        assert!(info.get("duration_ms").is_none());
    }

    #[test]
    fn playing_now_has_no_listened_at() {
        let track = listen("x").track;
        let body = document(
            "playing_now",
            &[playing_now_json(&track, Flavor::ListenBrainz)],
        );
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["listen_type"], "playing_now");
        assert!(v["payload"][0].get("listened_at").is_none());
    }

    #[test]
    fn batches_respect_the_size_rules() {
        let small: Vec<Listen> = (0..10).map(|i| listen(&format!("t{i}"))).collect();
        assert_eq!(split_by_size(&small, Flavor::ListenBrainz), vec![0..10]);
        // A listen far above the 10 KiB average gets a request of its own
        // when its neighbours cannot make up for it.
        let mut big = small.clone();
        big[3].track.title = "x".repeat(150_000);
        let runs = split_by_size(&big, Flavor::ListenBrainz);
        assert!(runs.len() >= 2, "{runs:?}");
        for r in &runs {
            let payload: Vec<_> = big[r.clone()]
                .iter()
                .map(|l| listen_json(l, Flavor::ListenBrainz))
                .collect();
            let body = document("import", &payload);
            assert!(
                r.len() == 1 || body.len() <= r.len() * MAX_LISTEN_SIZE,
                "{r:?}: {}",
                body.len()
            );
        }
        assert_eq!(runs.iter().map(|r| r.len()).sum::<usize>(), big.len());
    }

    #[test]
    fn absurd_durations_do_not_overflow() {
        let mut l = listen("x");
        l.track.duration_secs = Some(u64::MAX);
        let v = serde_json::to_value(listen_json(&l, Flavor::ListenBrainz)).unwrap();
        assert_eq!(
            v["track_metadata"]["additional_info"]["duration_ms"],
            u64::MAX
        );
    }

    #[test]
    fn listens_are_read_back() {
        let body = r#"{"payload":{"count":2,"user_id":"alice","listens":[
            {"listened_at":1700000300,"inserted_at":1700000301,"recording_msid":"x",
             "track_metadata":{"artist_name":"AC/DC","track_name":"T.N.T.","additional_info":{}}},
            {"listened_at":1700000000,"track_metadata":{"artist_name":"Sigur Rós","track_name":"Hoppípolla"}},
            {"listened_at":"garbled","track_metadata":{"artist_name":"X","track_name":"Y"}}]}}"#;
        let heard = parse_listens(body.as_bytes()).unwrap();
        assert_eq!(heard.len(), 2);
        assert_eq!(heard[0].at, 1_700_000_300);
        assert_eq!(heard[1].artist, "Sigur Rós");
        assert!(parse_listens(b"<html>").is_err());
        assert!(parse_listens(b"{}").is_err());
        assert_eq!(crate::http::percent_encode("a b/ü"), "a%20b%2F%C3%BC");
    }

    #[test]
    fn nul_characters_are_removed() {
        let mut l = listen("a\0b");
        l.track.artist = "\0Art".into();
        let v = serde_json::to_value(listen_json(&l, Flavor::ListenBrainz)).unwrap();
        assert_eq!(v["track_metadata"]["track_name"], "ab");
        assert_eq!(v["track_metadata"]["artist_name"], "Art");
    }

    #[test]
    fn the_request_body_is_byte_for_byte_what_it_was() {
        let mut l = listen("Hoppípolla");
        l.track.album_artist = Some("AA".into());
        l.track.release_mbid = Some("r".into());
        l.track.release_group_mbid = Some("g".into());
        l.track.track_mbid = Some("t".into());
        l.track.stream_url = Some("http://radio.example/live".into());
        // As the body was built before: a JSON value, whose keys serde_json
        // keeps sorted.
        let info = json!({
            "artist_mbids": l.track.artist_mbids, "duration_ms": 268_000,
            "media_player": "MPD", "origin_url": "http://radio.example/live",
            "recording_mbid": l.track.recording_mbid, "release_group_mbid": "g",
            "release_mbid": "r", "submission_client": "mpd-scrobbler",
            "submission_client_version": env!("CARGO_PKG_VERSION"), "track_mbid": "t",
            "tracknumber": "3"});
        let meta = json!({"additional_info": info, "artist_name": "Foo, Bar",
            "release_name": "Takk...", "track_name": "Hoppípolla"});
        let before = json!({"listen_type": "single",
            "payload": [{"listened_at": 1_700_000_000, "track_metadata": meta}]});
        let now = document("single", &[listen_json(&l, Flavor::ListenBrainz)]);
        assert_eq!(now, before.to_string());
        let bare = Track {
            artist: "A".into(),
            title: "T".into(),
            album: Some(" ".into()),
            ..Track::default()
        };
        let before = json!({"listen_type": "playing_now", "payload": [{"track_metadata": {
            "additional_info": {"media_player": "MPD", "submission_client": "mpd-scrobbler",
                "submission_client_version": env!("CARGO_PKG_VERSION")},
            "artist_name": "A", "track_name": "T"}}]});
        let now = document("playing_now", &[playing_now_json(&bare, Flavor::Maloja)]);
        assert_eq!(now, before.to_string());
    }
}
