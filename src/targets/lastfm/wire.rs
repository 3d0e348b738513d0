//! Wire format of the Audioscrobbler 2.0 API: request parameters for tracks
//! and lenient reading of the JSON replies (docs/protocols.md,
//! "Requests and replies", "Now playing and scrobbles").
//! Pure functions, no I/O.

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::sign::Params;
use super::{Error, Session};
use crate::json::{self, List, Number, Obj, Str, Text, present};
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

/// Checks an HTTP reply: `Ok` when its body is the JSON object of a
/// successful call, else the error it reports.
///
/// Order per docs/protocols.md, "Requests and replies": a JSON body with a
/// top-level `error` wins whatever the status (Last.fm sends them with 200, 4xx
/// and 5xx alike); then a non-2xx status; then a 2xx body that must be a JSON
/// object.
pub(crate) fn check_reply(status: u16, body: &[u8]) -> Result<(), Error> {
    let envelope = serde_json::from_slice::<Obj<Envelope>>(body).ok();
    if let Some(error) = envelope
        .as_ref()
        .and_then(|e| e.0.as_ref())
        .and_then(api_error)
    {
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
    match envelope {
        Some(Obj(Some(_))) => Ok(()),
        _ => Err(Error::NotJson { status }),
    }
}

/// Reads the body of a successful call (see [`check_reply`]) into `T`. Every field of a reply type
/// reads any value, so this fails only on a body that is not a JSON object
/// or one whose top level repeats a key.
pub(crate) fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    json::object(body).ok_or_else(|| Error::Malformed("unreadable reply".into()))
}

/// The `{"error": N, "message": ".."}` envelope of a failed call.
#[derive(Default, Deserialize)]
#[serde(default)]
struct Envelope {
    error: Option<Number>,
    message: Str,
}

fn api_error(envelope: &Envelope) -> Option<Error> {
    let code = envelope.error?.0?;
    Some(Error::Api {
        code: u32::try_from(code).ok()?,
        message: envelope.message.0.clone().unwrap_or_default(),
    })
}

/// A `track.scrobble` reply.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(crate) struct ScrobbleReply {
    scrobbles: Obj<Scrobbles>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Scrobbles {
    scrobble: List<Obj<Scrobbled>>,
    #[serde(rename = "@attr")]
    attr: Obj<ScrobblesAttr>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct ScrobblesAttr {
    ignored: Number,
}

/// One echoed scrobble.
#[derive(Default, Deserialize)]
#[serde(default)]
struct Scrobbled {
    #[serde(rename = "ignoredMessage")]
    ignored_message: Obj<IgnoredMessage>,
}

/// `{"code": "N", "#text": ".."}`.
#[derive(Default, Deserialize)]
#[serde(default)]
struct IgnoredMessage {
    /// `Some` when present, whatever its value: a garbled code is not
    /// something to guess about.
    #[serde(deserialize_with = "present")]
    code: Option<Number>,
    #[serde(rename = "#text", deserialize_with = "present")]
    text: Option<Str>,
    #[serde(deserialize_with = "present")]
    name: Option<Str>,
}

impl IgnoredMessage {
    fn text(self) -> String {
        Text::tagged(self.text, self.name).0
    }
}

/// Reads the per-listen outcomes of a `track.scrobble` reply for a batch of
/// `sent` listens.
///
/// Items are matched by position, as Last.fm echoes them in request order.
/// When the echo does not match the batch (Maloja sends none), the counts are
/// the only evidence left: zero ignored means all accepted, anything else
/// cannot be attributed to listens.
pub(crate) fn scrobble_outcomes(
    reply: ScrobbleReply,
    sent: usize,
) -> Result<Vec<ItemOutcome>, Error> {
    let scrobbles = reply
        .scrobbles
        .0
        .ok_or_else(|| Error::Malformed("no \"scrobbles\" object in reply".into()))?;
    let items = scrobbles.scrobble.0;
    if items.len() == sent {
        return items
            .into_iter()
            .map(|item| item_outcome(item.or_default()))
            .collect();
    }
    let ignored = scrobbles.attr.0.and_then(|attr| attr.ignored.0);
    if ignored == Some(0) {
        Ok(vec![ItemOutcome::Accepted; sent])
    } else {
        Err(Error::Malformed(format!(
            "reply echoes {} scrobbles for {sent} sent, ignored count {ignored:?}",
            items.len()
        )))
    }
}

fn item_outcome(item: Scrobbled) -> Result<ItemOutcome, Error> {
    let ignored = item.ignored_message.or_default();
    // A missing code means nothing was ignored; a present but garbled one is
    // not something to guess about.
    let code = match ignored.code {
        None => 0,
        Some(Number(code)) => {
            code.ok_or_else(|| Error::Malformed("ignoredMessage code is not a number".into()))?
        }
    };
    Ok(match code {
        0 | ALREADY_SCROBBLED => ItemOutcome::Accepted,
        DAILY_LIMIT_EXCEEDED => ItemOutcome::DailyLimitExceeded,
        code => ItemOutcome::Ignored {
            code: u32::try_from(code)
                .map_err(|_| Error::Malformed(format!("ignoredMessage code {code}")))?,
            message: ignored.text(),
        },
    })
}

/// A `track.updateNowPlaying` reply.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(crate) struct NowPlayingReply {
    nowplaying: Obj<NowPlaying>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct NowPlaying {
    #[serde(rename = "ignoredMessage")]
    ignored_message: Obj<IgnoredMessage>,
}

/// The `ignoredMessage` of a `track.updateNowPlaying` reply, if the server
/// reported one with a non-zero code.
pub(crate) fn now_playing_ignored(reply: NowPlayingReply) -> Option<(u64, String)> {
    let ignored = reply.nowplaying.0?.ignored_message.0?;
    let code = ignored.code?.0?;
    (code != 0).then(|| (code, ignored.text()))
}

/// An `auth.getToken` reply.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(crate) struct TokenReply {
    token: Str,
}

/// The token of an `auth.getToken` reply.
pub(crate) fn token(reply: TokenReply) -> Result<String, Error> {
    reply
        .token
        .0
        .filter(|token| !token.is_empty())
        .ok_or_else(|| Error::Malformed("no token in reply".into()))
}

/// An `auth.getSession` or `auth.getMobileSession` reply.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(crate) struct SessionReply {
    session: Obj<SessionFields>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct SessionFields {
    name: Str,
    key: Str,
}

/// The session of an `auth.getSession` or `auth.getMobileSession` reply.
/// Maloja leaves out `name`, so it defaults to empty.
pub(crate) fn session(reply: SessionReply) -> Result<Session, Error> {
    let session = reply.session.or_default();
    let key = session
        .key
        .0
        .filter(|key| !key.is_empty())
        .ok_or_else(|| Error::Malformed("no session key in reply".into()))?;
    Ok(Session {
        name: session.name.0.unwrap_or_default(),
        key,
    })
}

/// A `user.getRecentTracks` reply, as far as checking deliveries needs it.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(crate) struct RecentTracksReply {
    recenttracks: Obj<RecentTracks>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct RecentTracks {
    track: List<Obj<RecentTrack>>,
    #[serde(rename = "@attr")]
    attr: Obj<RecentTracksAttr>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct RecentTracksAttr {
    #[serde(rename = "totalPages")]
    total_pages: Number,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct RecentTrack {
    artist: Text,
    name: Text,
    /// Absent for the track playing now.
    date: Obj<Uts>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Uts {
    uts: Number,
}

/// The scrobbles on one page of a `user.getRecentTracks` reply and the number
/// of pages (docs/protocols.md, "Reading listens back"). The track playing now
/// carries no `date` and is left out; so is any item whose time cannot be read.
pub(crate) fn recent_tracks(reply: RecentTracksReply) -> Result<(Vec<Heard>, u64), Error> {
    let recent = reply
        .recenttracks
        .0
        .ok_or_else(|| Error::Malformed("no \"recenttracks\" object in reply".into()))?;
    let heard = recent
        .track
        .0
        .into_iter()
        .filter_map(|t| {
            let t = t.or_default();
            let at = t.date.0?.uts.0?;
            // With extended=1 the artist's name is under `name`, which
            // `Text` reads when there is no `#text`.
            Some(Heard {
                artist: t.artist.0,
                title: t.name.0,
                at,
            })
        })
        .collect();
    let pages = recent.attr.0.and_then(|a| a.total_pages.0).unwrap_or(1);
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

    /// A reply body read as `T`.
    fn reply<T: DeserializeOwned>(json: &str) -> T {
        parse(json.as_bytes()).unwrap()
    }

    #[test]
    fn recent_tracks_skip_now_playing_and_read_both_artist_shapes() {
        let page = reply(
            r##"{"recenttracks":{
              "@attr":{"user":"alice","page":"1","perPage":"200","totalPages":"3","total":"401"},
              "track":[
                {"@attr":{"nowplaying":"true"},"artist":{"#text":"Radiohead"},"name":"Karma Police"},
                {"artist":{"#text":"Portishead","mbid":""},"name":"Glory Box",
                 "date":{"uts":"1718150100","#text":"11 Jun 2024, 20:35"}},
                {"artist":{"name":"Sigur Rós","url":"…"},"name":"Hoppípolla","loved":"0",
                 "date":{"uts":"1718150000"}}]}}"##,
        );
        let (heard, pages) = recent_tracks(page).unwrap();
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
        let one = reply(
            r##"{"recenttracks":{"track":{"artist":{"#text":"A"},"name":"T","date":{"uts":"5"}}}}"##,
        );
        assert_eq!(recent_tracks(one).unwrap().0.len(), 1);
        let none = reply(r#"{"recenttracks":{"track":""}}"#);
        assert_eq!(recent_tracks(none).unwrap(), (Vec::new(), 1));
        assert!(recent_tracks(reply("{}")).is_err());
        assert!(recent_tracks(reply(r#"{"recenttracks":[]}"#)).is_err());
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
    fn section_1_7_reply() -> ScrobbleReply {
        reply(
            &json!({"scrobbles":{
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
            .to_string(),
        )
    }

    #[test]
    fn parses_the_section_1_7_example() {
        assert_eq!(
            scrobble_outcomes(section_1_7_reply(), 2).unwrap(),
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
        let body = json!({"scrobbles":{
            "scrobble":{"artist":{"corrected":"0","#text":"Cher"},
                        "album":{"corrected":"0"},
                        "track":{"corrected":"0","#text":"Believe"},
                        "timestamp":"1700000000",
                        "ignoredMessage":{"code":"0"}},
            "@attr":{"accepted":"1","ignored":"0"}}});
        assert_eq!(
            scrobble_outcomes(reply(&body.to_string()), 1).unwrap(),
            [ItemOutcome::Accepted]
        );
    }

    #[test]
    fn libre_fm_already_scrobbled_counts_as_accepted() {
        let body = json!({"scrobbles":{
            "scrobble":{"ignoredMessage":{"code":"91","#text":"Already scrobbled"}},
            "@attr":{"accepted":"0","ignored":"1"}}});
        assert_eq!(
            scrobble_outcomes(reply(&body.to_string()), 1).unwrap(),
            [ItemOutcome::Accepted]
        );
    }

    #[test]
    fn daily_limit_is_its_own_outcome_and_numeric_codes_work() {
        let body = json!({"scrobbles":{
            "scrobble":[{"ignoredMessage":{"code":5,"#text":"Daily scrobble limit exceeded"}},
                        {"ignoredMessage":{"code":"1"}}],
            "@attr":{"accepted":0,"ignored":2}}});
        assert_eq!(
            scrobble_outcomes(reply(&body.to_string()), 2).unwrap(),
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
        let body = json!({"scrobbles":{"@attr":{"ignored":0}}});
        assert_eq!(
            scrobble_outcomes(reply(&body.to_string()), 1).unwrap(),
            [ItemOutcome::Accepted]
        );
        let body = json!({"scrobbles":{"scrobble":"","@attr":{"ignored":"0"}}});
        assert_eq!(
            scrobble_outcomes(reply(&body.to_string()), 2).unwrap(),
            [ItemOutcome::Accepted, ItemOutcome::Accepted]
        );
    }

    #[test]
    fn echo_mismatch_with_ignored_items_is_malformed() {
        let body = json!({"scrobbles":{
            "scrobble":{"ignoredMessage":{"code":"3"}},
            "@attr":{"accepted":1,"ignored":1}}});
        assert!(matches!(
            scrobble_outcomes(reply(&body.to_string()), 2),
            Err(Error::Malformed(_))
        ));
        let body = json!({"scrobbles":{}});
        assert!(matches!(
            scrobble_outcomes(reply(&body.to_string()), 1),
            Err(Error::Malformed(_))
        ));
    }

    #[test]
    fn reply_without_scrobbles_is_malformed() {
        for body in [
            json!({}),
            json!({"scrobbles": ""}),
            json!({"scrobbles": [{}]}),
        ] {
            let err = scrobble_outcomes(reply(&body.to_string()), 1).unwrap_err();
            assert!(matches!(err, Error::Malformed(_)), "{err:?}");
            assert_eq!(err.kind(), ErrorKind::Transient);
        }
    }

    #[test]
    fn garbled_ignored_code_is_malformed() {
        let body = json!({"scrobbles":{"scrobble":{"ignoredMessage":{"code":"x"}}}});
        assert!(matches!(
            scrobble_outcomes(reply(&body.to_string()), 1),
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
            match check_reply(status, body) {
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
            check_reply(200, br#"{"error":8}"#),
            Err(Error::Api { code: 8, ref message }) if message.is_empty()
        ));
    }

    #[test]
    fn unparseable_non_2xx_keeps_status_and_a_short_body() {
        let html = format!("<html>{}</html>", "x".repeat(500));
        match check_reply(502, html.as_bytes()) {
            Err(Error::Http { status, body, .. }) => {
                assert_eq!(status, 502);
                assert_eq!(body.chars().count(), MAX_ERROR_BODY_CHARS + 1);
                assert!(body.starts_with("<html>xxx") && body.ends_with('…'));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            check_reply(429, b""),
            Err(Error::Http { status: 429, ref body, .. }) if body.is_empty()
        ));
        // A non-numeric `error` is not the 2.0 envelope.
        assert!(matches!(
            check_reply(401, br#"{"code":401,"error":"Incorrect Authorization"}"#),
            Err(Error::Http { status: 401, .. })
        ));
    }

    #[test]
    fn success_must_be_a_json_object() {
        assert!(check_reply(200, b"{}").is_ok());
        assert!(parse::<TokenReply>(br#"{"token":"t"}"#).is_ok());
        assert!(matches!(
            parse::<TokenReply>(br#"{"token":"t","token":"u"}"#),
            Err(Error::Malformed(_))
        ));
        for body in [
            &b"<lfm status=\"ok\"/>"[..],
            b"",
            b"[]",
            b"<html>Log in</html>",
        ] {
            let err = check_reply(200, body).unwrap_err();
            assert!(matches!(err, Error::NotJson { status: 200 }), "{err:?}");
            assert_eq!(err.kind(), ErrorKind::Config, "not the API: check the url");
        }
    }

    #[test]
    fn reads_token_and_session() {
        assert_eq!(token(reply(r#"{"token":"abc"}"#)).unwrap(), "abc");
        for bad in ["{}", r#"{"token":""}"#, r#"{"token":5}"#] {
            assert!(
                matches!(token(reply(bad)), Err(Error::Malformed(_))),
                "{bad}"
            );
        }
        let s = session(reply(
            r#"{"session":{"name":"alice","key":"k1","subscriber":0}}"#,
        ))
        .unwrap();
        assert_eq!((s.name.as_str(), s.key.as_str()), ("alice", "k1"));
        let maloja = session(reply(r#"{"session":{"key":"k2"}}"#)).unwrap();
        assert_eq!((maloja.name.as_str(), maloja.key.as_str()), ("", "k2"));
        assert!(matches!(
            session(reply(r#"{"session":{"name":"alice"}}"#)),
            Err(Error::Malformed(_))
        ));
    }

    #[test]
    fn now_playing_ignored_message_is_reported() {
        let ok = r##"{"nowplaying":{"ignoredMessage":{"code":"0","#text":""}}}"##;
        assert_eq!(now_playing_ignored(reply(ok)), None);
        let ignored =
            r##"{"nowplaying":{"ignoredMessage":{"code":"1","#text":"Artist was ignored"}}}"##;
        assert_eq!(
            now_playing_ignored(reply(ignored)),
            Some((1, "Artist was ignored".into()))
        );
        for odd in [
            "{}",
            r#"{"nowplaying":""}"#,
            r#"{"nowplaying":{"ignoredMessage":"x"}}"#,
            r#"{"nowplaying":{"ignoredMessage":{"code":"x"}}}"#,
        ] {
            assert_eq!(now_playing_ignored(reply(odd)), None, "{odd}");
        }
    }

    #[test]
    fn odd_shapes_are_read_as_before_and_hostile_bodies_are_typed_errors() {
        // A present but null code is garbled, not absent.
        let garbled = r#"{"scrobbles":{"scrobble":{"ignoredMessage":{"code":null}}}}"#;
        assert!(matches!(
            scrobble_outcomes(reply(garbled), 1),
            Err(Error::Malformed(_))
        ));
        // Echoed items that are not objects still count, as accepted.
        let odd = r#"{"scrobbles":{"scrobble":["", 3, {"ignoredMessage":"x"}]}}"#;
        assert_eq!(
            scrobble_outcomes(reply(odd), 3).unwrap(),
            vec![ItemOutcome::Accepted; 3]
        );
        // An ignored message's text may be under `name`, or not a string.
        let named = r##"{"scrobbles":{"scrobble":[{"ignoredMessage":{"code":2,"name":"n"}},
            {"ignoredMessage":{"code":"4","#text":null,"name":"n"}}]}}"##;
        assert_eq!(
            scrobble_outcomes(reply(named), 2).unwrap(),
            [
                ItemOutcome::Ignored {
                    code: 2,
                    message: "n".into()
                },
                ItemOutcome::Ignored {
                    code: 4,
                    message: String::new()
                }
            ]
        );
        // The playing track is skipped, and so is a date without a readable time.
        let recent = r#"{"recenttracks":{"@attr":{"totalPages":[2]},"track":[
            {"@attr":{"nowplaying":"true"},"artist":"A","name":"T"},
            {"artist":"A","name":"T","date":"yesterday"},
            {"artist":"A","name":"T","date":{"uts":-5}},
            [1, 2, 3],
            {"artist":["A"],"name":7,"date":{"uts":9}}]}}"#;
        let (heard, pages) = recent_tracks(reply(recent)).unwrap();
        assert_eq!(pages, 1);
        assert_eq!(
            heard,
            [Heard {
                artist: String::new(),
                title: "7".into(),
                at: 9
            }]
        );
        for body in [
            &b"\xff\xfe"[..],
            b"{",
            b"{\"scrobbles\":",
            b"null",
            b"\"str\"",
            b"[{\"error\":6}]",
        ] {
            let err = check_reply(200, body).unwrap_err();
            assert!(
                matches!(err, Error::NotJson { status: 200 }),
                "{}: {err:?}",
                String::from_utf8_lossy(body)
            );
            assert!(parse::<ScrobbleReply>(body).is_err());
        }
        // An error code that is no code is not the envelope.
        for body in [
            &br#"{"error":-1,"message":"x"}"#[..],
            br#"{"error":99999999999,"message":"x"}"#,
        ] {
            assert!(check_reply(200, body).is_ok());
            assert!(matches!(
                scrobble_outcomes(parse(body).unwrap(), 1),
                Err(Error::Malformed(_))
            ));
        }
    }
}
