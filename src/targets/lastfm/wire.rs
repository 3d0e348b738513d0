//! Wire format of the Audioscrobbler 2.0 API: request parameters for tracks
//! and lenient reading of the JSON replies (docs/protocols.md,
//! "Requests and replies", "Now playing and scrobbles").
//! Pure functions, no I/O.

use serde_json::Value;

use super::json::{items, number, text};
use super::sign::Params;
use super::{Error, Session};
use crate::model::{Listen, Track};
use crate::targets::{Heard, ItemOutcome};

/// Longest part of an unparseable error body kept in [`Error::Http`].
const MAX_ERROR_BODY_CHARS: usize = 200;

/// Libre.fm's ignored code for a duplicate (user, artist, track, time): the
/// listen is already there, so it counts as accepted (docs/protocols.md, "Libre.fm").
const ALREADY_SCROBBLED: u64 = 91;

/// Last.fm's ignored code for the daily scrobble cap (docs/protocols.md,
/// "Now playing and scrobbles").
const DAILY_LIMIT_EXCEEDED: u64 = 5;

/// Parameters of `track.updateNowPlaying`: the track fields, unindexed.
pub(crate) fn now_playing_params(track: &Track) -> Params {
    let mut params = Params::new();
    put_track(&mut params, track, str::to_owned);
    params
}

/// Parameters of one `track.scrobble` batch: the fields of each listen with
/// indices from 0, always indexed even for a single listen.
pub(crate) fn scrobble_params(listens: &[Listen]) -> Params {
    let mut params = Params::new();
    for (i, listen) in listens.iter().enumerate() {
        let name = |field: &str| format!("{field}[{i}]");
        put_track(&mut params, &listen.track, name);
        params.insert(name("timestamp"), listen.started_at.to_string());
        // A radio title is a broadcast, not the user's choice (docs/protocols.md,
        // "Internet radio and ICY").
        if listen.track.stream_url.is_some() {
            params.insert(name("chosenByUser"), "0".into());
        }
    }
    params
}

/// Adds the fields of `track` under the names `name` gives. Optional fields
/// that are absent or empty are left out entirely, as the API asks.
fn put_track(params: &mut Params, track: &Track, name: impl Fn(&str) -> String) {
    let mut put = |field: &str, value: Option<String>| {
        if let Some(value) = value.filter(|value| !value.is_empty()) {
            params.insert(name(field), value);
        }
    };
    put("artist", Some(track.artist.clone()));
    put("track", Some(track.title.clone()));
    put("album", track.album.clone());
    put(
        "albumArtist",
        track.album_artist.clone().filter(|aa| *aa != track.artist),
    );
    put("trackNumber", track.track_number.map(|n| n.to_string()));
    put("duration", track.duration_secs.map(|d| d.to_string()));
    put("mbid", track.recording_mbid.clone());
}

/// Turns an HTTP reply into the JSON document of a successful call, or the
/// error it reports.
///
/// Order per docs/protocols.md, "Requests and replies": a JSON body with a
/// top-level `error` wins whatever the status (Last.fm sends them with 200, 4xx
/// and 5xx alike); then a non-2xx status; then a 2xx body that must be a JSON
/// object.
pub(crate) fn read_reply(status: u16, body: &[u8]) -> Result<Value, Error> {
    let json = serde_json::from_slice::<Value>(body).ok();
    if let Some(error) = json.as_ref().and_then(api_error) {
        return Err(error);
    }
    if !(200..300).contains(&status) {
        return Err(Error::Http {
            status,
            body: truncate(&String::from_utf8_lossy(body)),
            retry_after: None,
        });
    }
    // The body is deliberately not quoted: a session reply carries the key.
    match json {
        Some(value @ Value::Object(_)) => Ok(value),
        _ => Err(Error::NotJson { status }),
    }
}

/// The `{"error": N, "message": ".."}` envelope, if `value` is one.
fn api_error(value: &Value) -> Option<Error> {
    let code = number(value.get("error"))?;
    let message = value
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Some(Error::Api {
        code: u32::try_from(code).ok()?,
        message: message.to_owned(),
    })
}

/// Reads the per-listen outcomes of a `track.scrobble` reply for a batch of
/// `sent` listens.
///
/// Items are matched by position, as Last.fm echoes them in request order.
/// When the echo does not match the batch (Maloja sends none), the counts are
/// the only evidence left: zero ignored means all accepted, anything else
/// cannot be attributed to listens.
pub(crate) fn scrobble_outcomes(reply: &Value, sent: usize) -> Result<Vec<ItemOutcome>, Error> {
    let scrobbles = reply
        .get("scrobbles")
        .filter(|s| s.is_object())
        .ok_or_else(|| Error::Malformed("no \"scrobbles\" object in reply".into()))?;
    let items = items(scrobbles.get("scrobble"));
    if items.len() == sent {
        return items.into_iter().map(item_outcome).collect();
    }
    let ignored = scrobbles
        .get("@attr")
        .and_then(|attr| attr.get("ignored"))
        .and_then(|v| number(Some(v)));
    if ignored == Some(0) {
        Ok(vec![ItemOutcome::Accepted; sent])
    } else {
        Err(Error::Malformed(format!(
            "reply echoes {} scrobbles for {sent} sent, ignored count {ignored:?}",
            items.len()
        )))
    }
}

fn item_outcome(item: &Value) -> Result<ItemOutcome, Error> {
    let ignored = item.get("ignoredMessage");
    // A missing code means nothing was ignored; a present but garbled one is
    // not something to guess about.
    let code = match ignored.and_then(|m| m.get("code")) {
        None => 0,
        Some(code) => number(Some(code))
            .ok_or_else(|| Error::Malformed(format!("ignoredMessage code {code}")))?,
    };
    Ok(match code {
        0 | ALREADY_SCROBBLED => ItemOutcome::Accepted,
        DAILY_LIMIT_EXCEEDED => ItemOutcome::DailyLimitExceeded,
        code => ItemOutcome::Ignored {
            code: u32::try_from(code)
                .map_err(|_| Error::Malformed(format!("ignoredMessage code {code}")))?,
            message: text(ignored),
        },
    })
}

/// The `ignoredMessage` of a `track.updateNowPlaying` reply, if the server
/// reported one with a non-zero code.
pub(crate) fn now_playing_ignored(reply: &Value) -> Option<(u64, String)> {
    let ignored = reply.get("nowplaying")?.get("ignoredMessage")?;
    let code = number(ignored.get("code"))?;
    (code != 0).then(|| (code, text(Some(ignored))))
}

/// The token of an `auth.getToken` reply.
pub(crate) fn token(reply: &Value) -> Result<String, Error> {
    reply
        .get("token")
        .and_then(Value::as_str)
        .filter(|token| !token.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| Error::Malformed("no token in reply".into()))
}

/// The session of an `auth.getSession` or `auth.getMobileSession` reply.
/// Maloja leaves out `name`, so it defaults to empty.
pub(crate) fn session(reply: &Value) -> Result<Session, Error> {
    let session = reply.get("session");
    let field = |name: &str| session.and_then(|s| s.get(name)).and_then(Value::as_str);
    let key = field("key")
        .filter(|key| !key.is_empty())
        .ok_or_else(|| Error::Malformed("no session key in reply".into()))?;
    Ok(Session {
        name: field("name").unwrap_or_default().to_owned(),
        key: key.to_owned(),
    })
}

/// The scrobbles on one page of a `user.getRecentTracks` reply and the number
/// of pages (docs/protocols.md, "Reading listens back"). The track playing now
/// carries no `date` and is left out; so is any item whose time cannot be read.
pub(crate) fn recent_tracks(reply: &Value) -> Result<(Vec<Heard>, u64), Error> {
    let recent = reply
        .get("recenttracks")
        .filter(|r| r.is_object())
        .ok_or_else(|| Error::Malformed("no \"recenttracks\" object in reply".into()))?;
    let heard = items(recent.get("track"))
        .into_iter()
        .filter_map(|t| {
            let at = number(t.get("date")?.get("uts"))?;
            // With extended=1 the artist's name is under `name`, which
            // `text` reads when there is no `#text`.
            let artist = text(t.get("artist"));
            let title = text(t.get("name"));
            Some(Heard { artist, title, at })
        })
        .collect();
    let pages = recent
        .get("@attr")
        .and_then(|a| a.get("totalPages"))
        .and_then(|v| number(Some(v)))
        .unwrap_or(1);
    Ok((heard, pages))
}

fn truncate(body: &str) -> String {
    let body = body.trim();
    match body.char_indices().nth(MAX_ERROR_BODY_CHARS) {
        Some((end, _)) => format!("{}…", &body[..end]),
        None => body.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn recent_tracks_skip_now_playing_and_read_both_artist_shapes() {
        let reply: Value = serde_json::from_str(
            r##"{"recenttracks":{
              "@attr":{"user":"alice","page":"1","perPage":"200","totalPages":"3","total":"401"},
              "track":[
                {"@attr":{"nowplaying":"true"},"artist":{"#text":"Radiohead"},"name":"Karma Police"},
                {"artist":{"#text":"Portishead","mbid":""},"name":"Glory Box",
                 "date":{"uts":"1718150100","#text":"11 Jun 2024, 20:35"}},
                {"artist":{"name":"Sigur Rós","url":"…"},"name":"Hoppípolla","loved":"0",
                 "date":{"uts":"1718150000"}}]}}"##,
        )
        .unwrap();
        let (heard, pages) = recent_tracks(&reply).unwrap();
        assert_eq!(pages, 3);
        assert_eq!(
            heard,
            vec![
                Heard {
                    artist: "Portishead".into(),
                    title: "Glory Box".into(),
                    at: 1_718_150_100
                },
                Heard {
                    artist: "Sigur Rós".into(),
                    title: "Hoppípolla".into(),
                    at: 1_718_150_000
                },
            ]
        );
        // A single result is a bare object; no results can be an empty string.
        let one: Value = serde_json::from_str(
            r##"{"recenttracks":{"track":{"artist":{"#text":"A"},"name":"T","date":{"uts":"5"}}}}"##,
        )
        .unwrap();
        assert_eq!(recent_tracks(&one).unwrap().0.len(), 1);
        let none: Value = serde_json::from_str(r#"{"recenttracks":{"track":""}}"#).unwrap();
        assert_eq!(recent_tracks(&none).unwrap(), (Vec::new(), 1));
        assert!(recent_tracks(&serde_json::json!({})).is_err());
    }
    use crate::targets::ErrorKind;

    fn track(artist: &str, title: &str) -> Track {
        Track {
            artist: artist.into(),
            title: title.into(),
            ..Track::default()
        }
    }

    fn names(params: &Params) -> Vec<&str> {
        params.keys().map(String::as_str).collect()
    }

    #[test]
    fn now_playing_uses_unindexed_names_and_every_field() {
        let t = Track {
            album: Some("Believe".into()),
            album_artist: Some("Various Artists".into()),
            track_number: Some(1),
            duration_secs: Some(239),
            recording_mbid: Some("0a0b0c0d-0000-4000-8000-000000000000".into()),
            ..track("Cher", "Believe")
        };
        let p = now_playing_params(&t);
        assert_eq!(
            names(&p),
            [
                "album",
                "albumArtist",
                "artist",
                "duration",
                "mbid",
                "track",
                "trackNumber"
            ]
        );
        assert_eq!(p["albumArtist"], "Various Artists");
        assert_eq!(p["duration"], "239");
        assert_eq!(p["mbid"], "0a0b0c0d-0000-4000-8000-000000000000");
        assert_eq!(p["trackNumber"], "1");
    }

    #[test]
    fn empty_optional_fields_and_same_album_artist_are_omitted() {
        let t = Track {
            album: Some(String::new()),
            album_artist: Some("Cher".into()),
            recording_mbid: Some(String::new()),
            ..track("Cher", "Believe")
        };
        assert_eq!(names(&now_playing_params(&t)), ["artist", "track"]);
    }

    #[test]
    fn a_single_scrobble_is_still_indexed() {
        let listen = Listen {
            track: track("Cher", "Believe"),
            started_at: 1_700_000_000,
        };
        let p = scrobble_params(&[listen]);
        assert_eq!(names(&p), ["artist[0]", "timestamp[0]", "track[0]"]);
        assert_eq!(p["timestamp[0]"], "1700000000");
    }

    #[test]
    fn a_stream_title_is_not_chosen_by_the_user_and_has_no_duration() {
        let radio = Listen {
            track: Track {
                stream_url: Some("http://radio.example/live".into()),
                ..track("Sigur Rós", "Hoppípolla")
            },
            started_at: 1_700_000_000,
        };
        let file = Listen {
            track: Track {
                duration_secs: Some(200),
                ..track("Cher", "Believe")
            },
            started_at: 1_700_000_300,
        };
        let p = scrobble_params(&[radio.clone(), file]);
        assert_eq!(p["chosenByUser[0]"], "0");
        assert!(!p.contains_key("duration[0]"));
        assert!(
            !p.contains_key("chosenByUser[1]"),
            "the default, 1, is left out"
        );
        assert_eq!(p["duration[1]"], "200");
        let np = now_playing_params(&radio.track);
        assert!(
            !np.contains_key("chosenByUser"),
            "not a now-playing parameter"
        );
    }

    /// A success reply as Last.fm sends it, verbatim.
    fn section_1_7_reply() -> Value {
        json!({"scrobbles":{
          "scrobble":[
            {"artist":{"corrected":"0","#text":"Sigur Rós"},
             "album":{"corrected":"0","#text":"Takk..."},
             "track":{"corrected":"0","#text":"Hoppípolla"},
             "albumArtist":{"corrected":"0","#text":""},
             "timestamp":"1700000000",
             "ignoredMessage":{"code":"0","#text":""}},
            {"artist":{"corrected":"0","#text":"AC/DC"},
             "album":{"corrected":"0"},
             "track":{"corrected":"0","#text":"T.N.T."},
             "albumArtist":{"corrected":"0","#text":"AC/DC"},
             "timestamp":"1700000300",
             "ignoredMessage":{"code":"3","#text":"Timestamp was too old"}}],
          "@attr":{"accepted":1,"ignored":1}}})
    }

    #[test]
    fn parses_the_section_1_7_example() {
        assert_eq!(
            scrobble_outcomes(&section_1_7_reply(), 2).unwrap(),
            [
                ItemOutcome::Accepted,
                ItemOutcome::Ignored {
                    code: 3,
                    message: "Timestamp was too old".into()
                }
            ]
        );
    }

    #[test]
    fn a_single_scrobble_comes_back_as_a_bare_object_with_string_counts() {
        let reply = json!({"scrobbles":{
            "scrobble":{"artist":{"corrected":"0","#text":"Cher"},
                        "album":{"corrected":"0"},
                        "track":{"corrected":"0","#text":"Believe"},
                        "timestamp":"1700000000",
                        "ignoredMessage":{"code":"0"}},
            "@attr":{"accepted":"1","ignored":"0"}}});
        assert_eq!(
            scrobble_outcomes(&reply, 1).unwrap(),
            [ItemOutcome::Accepted]
        );
    }

    #[test]
    fn libre_fm_already_scrobbled_counts_as_accepted() {
        let reply = json!({"scrobbles":{
            "scrobble":{"ignoredMessage":{"code":"91","#text":"Already scrobbled"}},
            "@attr":{"accepted":"0","ignored":"1"}}});
        assert_eq!(
            scrobble_outcomes(&reply, 1).unwrap(),
            [ItemOutcome::Accepted]
        );
    }

    #[test]
    fn daily_limit_is_its_own_outcome_and_numeric_codes_work() {
        let reply = json!({"scrobbles":{
            "scrobble":[{"ignoredMessage":{"code":5,"#text":"Daily scrobble limit exceeded"}},
                        {"ignoredMessage":{"code":"1"}}],
            "@attr":{"accepted":0,"ignored":2}}});
        assert_eq!(
            scrobble_outcomes(&reply, 2).unwrap(),
            [
                ItemOutcome::DailyLimitExceeded,
                ItemOutcome::Ignored {
                    code: 1,
                    message: String::new()
                }
            ]
        );
    }

    #[test]
    fn maloja_reply_without_items_and_nothing_ignored_is_all_accepted() {
        let reply = json!({"scrobbles":{"@attr":{"ignored":0}}});
        assert_eq!(
            scrobble_outcomes(&reply, 1).unwrap(),
            [ItemOutcome::Accepted]
        );
        let reply = json!({"scrobbles":{"scrobble":"","@attr":{"ignored":"0"}}});
        assert_eq!(
            scrobble_outcomes(&reply, 2).unwrap(),
            [ItemOutcome::Accepted, ItemOutcome::Accepted]
        );
    }

    #[test]
    fn echo_mismatch_with_ignored_items_is_malformed() {
        let reply = json!({"scrobbles":{
            "scrobble":{"ignoredMessage":{"code":"3"}},
            "@attr":{"accepted":1,"ignored":1}}});
        assert!(matches!(
            scrobble_outcomes(&reply, 2),
            Err(Error::Malformed(_))
        ));
        let reply = json!({"scrobbles":{}});
        assert!(matches!(
            scrobble_outcomes(&reply, 1),
            Err(Error::Malformed(_))
        ));
    }

    #[test]
    fn reply_without_scrobbles_is_malformed() {
        for reply in [json!({}), json!({"scrobbles": ""})] {
            let err = scrobble_outcomes(&reply, 1).unwrap_err();
            assert!(matches!(err, Error::Malformed(_)), "{err:?}");
            assert_eq!(err.kind(), ErrorKind::Transient);
        }
    }

    #[test]
    fn garbled_ignored_code_is_malformed() {
        let reply = json!({"scrobbles":{"scrobble":{"ignoredMessage":{"code":"x"}}}});
        assert!(matches!(
            scrobble_outcomes(&reply, 1),
            Err(Error::Malformed(_))
        ));
    }

    #[test]
    fn error_body_wins_whatever_the_status() {
        let cases: [(u16, &[u8], u32); 4] = [
            (400, br#"{"error":6,"message":"User not found"}"#, 6),
            (
                403,
                br#"{"error":26,"message":"Suspended API key","links":[]}"#,
                26,
            ),
            (200, br#"{"error":"9","message":"Invalid session key"}"#, 9),
            (503, br#"{"error":16,"message":"Temporary error"}"#, 16),
        ];
        for (status, body, expected) in cases {
            match read_reply(status, body) {
                Err(Error::Api { code, message }) => {
                    assert_eq!(code, expected);
                    assert!(!message.is_empty());
                }
                other => panic!("{status}: {other:?}"),
            }
        }
    }

    #[test]
    fn error_body_without_message_still_counts() {
        assert!(matches!(
            read_reply(200, br#"{"error":8}"#),
            Err(Error::Api { code: 8, ref message }) if message.is_empty()
        ));
    }

    #[test]
    fn unparseable_non_2xx_keeps_status_and_a_short_body() {
        let html = format!("<html>{}</html>", "x".repeat(500));
        match read_reply(502, html.as_bytes()) {
            Err(Error::Http { status, body, .. }) => {
                assert_eq!(status, 502);
                assert_eq!(body.chars().count(), MAX_ERROR_BODY_CHARS + 1);
                assert!(body.starts_with("<html>xxx") && body.ends_with('…'));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            read_reply(429, b""),
            Err(Error::Http { status: 429, ref body, .. }) if body.is_empty()
        ));
        // A non-numeric `error` is not the 2.0 envelope.
        assert!(matches!(
            read_reply(401, br#"{"code":401,"error":"Incorrect Authorization"}"#),
            Err(Error::Http { status: 401, .. })
        ));
    }

    #[test]
    fn success_must_be_a_json_object() {
        assert_eq!(read_reply(200, b"{}").unwrap(), json!({}));
        for body in [
            &b"<lfm status=\"ok\"/>"[..],
            b"",
            b"[]",
            b"<html>Log in</html>",
        ] {
            let err = read_reply(200, body).unwrap_err();
            assert!(matches!(err, Error::NotJson { status: 200 }), "{err:?}");
            assert_eq!(err.kind(), ErrorKind::Config, "not the API: check the url");
        }
    }

    #[test]
    fn reads_token_and_session() {
        assert_eq!(token(&json!({"token":"abc"})).unwrap(), "abc");
        assert!(matches!(token(&json!({})), Err(Error::Malformed(_))));
        let s = session(&json!({"session":{"name":"alice","key":"k1","subscriber":0}})).unwrap();
        assert_eq!((s.name.as_str(), s.key.as_str()), ("alice", "k1"));
        let maloja = session(&json!({"session":{"key":"k2"}})).unwrap();
        assert_eq!((maloja.name.as_str(), maloja.key.as_str()), ("", "k2"));
        assert!(matches!(
            session(&json!({"session":{"name":"alice"}})),
            Err(Error::Malformed(_))
        ));
    }

    #[test]
    fn now_playing_ignored_message_is_reported() {
        let ok = json!({"nowplaying":{"ignoredMessage":{"code":"0","#text":""}}});
        assert_eq!(now_playing_ignored(&ok), None);
        let ignored =
            json!({"nowplaying":{"ignoredMessage":{"code":"1","#text":"Artist was ignored"}}});
        assert_eq!(
            now_playing_ignored(&ignored),
            Some((1, "Artist was ignored".into()))
        );
    }
}
