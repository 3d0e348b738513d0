//! ListenBrainz API v1 client (ListenBrainz itself and compatible servers
//! such as Maloja): building listens from MPD's metadata, submitting them
//! within the server's limits, and classifying failures (protocols.md §3–4).

use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::scrobble::{Listen, Track};
use crate::targets::{ErrorKind, Heard};

/// Default API root.
pub const DEFAULT_URL: &str = "https://api.listenbrainz.org";

/// Listens per `import` request. The server takes up to 1000; smaller
/// batches keep each request quick and a rejected batch cheap to bisect.
pub const MAX_BATCH: usize = 100;

/// Listens asked for per page when reading listens back; the server caps
/// `count` silently at 1000 (100 before 2023), never lower.
const LISTENS_PAGE: u64 = 1000;
const MIN_PAGE_CAP: usize = 100;

/// Pages read at most when checking what arrived; an item not seen is resent.
pub const MAX_LISTEN_PAGES: usize = 20;

/// Average bytes per listen the server accepts over a whole request
/// (`MAX_LISTEN_SIZE`), and the cap of a request body (`MAX_LISTEN_PAYLOAD_SIZE`).
const MAX_LISTEN_SIZE: usize = 10_240;
const MAX_PAYLOAD_SIZE: usize = 10_240_000;

/// Which server speaks the protocol; Maloja differs in ways that matter (§4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// listenbrainz-server.
    ListenBrainz,
    /// Maloja's `/apis/listenbrainz` endpoint: duration in seconds, one listen
    /// per request (a duplicate inside an import silently ends it), no
    /// now-playing.
    Maloja,
}

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error status.
    #[error("HTTP {status}: {message}")]
    Http {
        /// Status code.
        status: u16,
        /// The server's `error` text, or the start of the body.
        message: String,
        /// For 429: the server's X-RateLimit-Reset-In.
        reset_in: Option<Duration>,
    },
    /// Whatever answered is not the API: a reply that is not its JSON, with
    /// a status that is no verdict on the listens (a wrong url, a proxy, a
    /// captive portal).
    #[error("HTTP {status}, and the reply is not the API's JSON")]
    NotJson {
        /// Status code.
        status: u16,
    },
    /// The server said its rate-limit window is used up; nothing was sent.
    #[error("waiting for the server's rate-limit window ({} s left)", .0.as_secs())]
    Quiet(Duration),
    /// The request did not reach the server (no connection).
    #[error("request failed: {0}")]
    Transport(String),
    /// The request went out but no answer came back (timeout, connection
    /// reset, unreadable body): the server may have acted on it.
    #[error("request failed: {0}")]
    Unsure(String),
    /// A 2xx reply that is not what the protocol promises.
    #[error("unexpected reply: {0}")]
    Malformed(String),
}

impl Error {
    /// What the caller should do (protocols.md §3.5). Only 400 (and
    /// Maloja's 409 for a taken timestamp) judges the listens sent; any other
    /// refusal means the url or the server is wrong, not the listens.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Http { status, .. } => match status {
                429 => ErrorKind::RateLimited,
                401 => ErrorKind::Auth,
                400 | 409 => ErrorKind::Rejected,
                408 | 500.. => ErrorKind::Transient,
                _ => ErrorKind::Config,
            },
            Error::NotJson { .. } => ErrorKind::Config,
            Error::Quiet(_) => ErrorKind::RateLimited,
            Error::Transport(_) | Error::Malformed(_) => ErrorKind::Transient,
            Error::Unsure(_) => ErrorKind::Unknown,
        }
    }

    /// How long the server asked us to wait, if it did; uncapped.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Http { reset_in, .. } => *reset_in,
            Error::Quiet(left) => Some(*left),
            _ => None,
        }
    }
}

/// A client for one server.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    root: String,
    flavor: Flavor,
    /// Set when the server said the rate-limit window is used up
    /// (X-RateLimit-Remaining: 0): no request goes out before then.
    quiet_until: std::sync::Arc<std::sync::Mutex<Option<tokio::time::Instant>>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("root", &self.root)
            .field("flavor", &self.flavor)
            .finish()
    }
}

impl Client {
    /// A client for the API rooted at `url` (the part before `/1/`).
    pub fn new(http: reqwest::Client, url: &str, flavor: Flavor) -> Client {
        Client {
            http,
            root: url.trim_end_matches('/').to_owned(),
            flavor,
            quiet_until: Default::default(),
        }
    }

    /// The API root.
    pub fn url(&self) -> &str {
        &self.root
    }

    /// Which server this is.
    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// Listens per request for this server.
    pub fn max_batch(&self) -> usize {
        match self.flavor {
            Flavor::ListenBrainz => MAX_BATCH,
            Flavor::Maloja => 1,
        }
    }

    /// Send `playing_now` (nothing for Maloja, which discards it).
    pub async fn now_playing(&self, token: &str, track: &Track) -> Result<(), Error> {
        if self.flavor == Flavor::Maloja {
            return Ok(());
        }
        let body = document(
            "playing_now",
            [track_metadata(track, self.flavor)]
                .into_iter()
                .map(|m| json!({"track_metadata": m})),
        );
        self.submit_raw(token, body).await
    }

    /// Submit listens: one as `single`, several as one `import`. The caller
    /// keeps batches within [`Client::max_batch`] and [`split_by_size`].
    pub async fn submit(&self, token: &str, listens: &[Listen]) -> Result<(), Error> {
        if listens.is_empty() {
            return Ok(());
        }
        let kind = if listens.len() == 1 {
            "single"
        } else {
            "import"
        };
        let body = document(kind, listens.iter().map(|l| listen_json(l, self.flavor)));
        self.submit_raw(token, body).await
    }

    /// Recording feedback: score 1 loves, 0 clears (`/1/feedback/recording-feedback`).
    pub async fn feedback(
        &self,
        token: &str,
        recording_mbid: &str,
        score: i8,
    ) -> Result<(), Error> {
        let resp = self
            .http
            .post(format!("{}/1/feedback/recording-feedback", self.root))
            .header("Authorization", format!("Token {token}"))
            .json(&json!({"recording_mbid": recording_mbid, "score": score}))
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status().as_u16();
        let reset_in = wait_asked(resp.headers());
        let body = read_body(resp).await?;
        accepted(status, &body, reset_in)
    }

    /// Check a token; `Ok(Some(user))` when valid, `Ok(None)` when not.
    pub async fn validate_token(&self, token: &str) -> Result<Option<String>, Error> {
        let resp = self
            .http
            .get(format!("{}/1/validate-token", self.root))
            .header("Authorization", format!("Token {token}"))
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status().as_u16();
        let body = read_body(resp).await?;
        // Maloja answers an unknown token with 401 where ListenBrainz says valid:false.
        if status == 401 {
            return Ok(None);
        }
        if !(200..300).contains(&status) {
            return Err(http_error(status, &body, None));
        }
        let v: Value = serde_json::from_slice(&body).map_err(|_| Error::NotJson { status })?;
        match v.get("valid").and_then(Value::as_bool) {
            Some(true) => Ok(Some(
                v.get("user_name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            )),
            Some(false) => Ok(None),
            None => Err(Error::Malformed(
                "validate-token reply has no `valid`".into(),
            )),
        }
    }

    /// The listens of `user` that started from `first` to `last` (Unix
    /// seconds, both included), newest first (`GET /1/user/{user}/listens`,
    /// protocols.md §3.8), paging back with `max_ts` at most
    /// [`MAX_LISTEN_PAGES`] times.
    pub async fn listens(
        &self,
        token: &str,
        user: &str,
        first: u64,
        last: u64,
    ) -> Result<Vec<Heard>, Error> {
        let url = format!(
            "{}/1/user/{}/listens",
            self.root,
            crate::http::percent_encode(user)
        );
        let mut heard: Vec<Heard> = Vec::new();
        // Both bounds are exclusive.
        let mut before = last.saturating_add(1);
        for _ in 0..MAX_LISTEN_PAGES {
            let resp = self
                .http
                .get(format!(
                    "{url}?min_ts={}&max_ts={before}&count={LISTENS_PAGE}",
                    first.saturating_sub(1)
                ))
                .header("Authorization", format!("Token {token}"))
                .send()
                .await
                .map_err(transport)?;
            let status = resp.status().as_u16();
            let body = read_body(resp).await?;
            if !(200..300).contains(&status) {
                return Err(http_error(status, &body, None));
            }
            let page = parse_listens(&body)?;
            let oldest = page.iter().map(|h| h.at).min();
            let full = page.len() >= MIN_PAGE_CAP;
            heard.extend(page);
            match oldest {
                // A listen at `oldest` that did not fit on this page is not
                // read; it is then resent, never lost.
                Some(oldest) if full && oldest > first => before = oldest,
                _ => break,
            }
        }
        Ok(heard)
    }

    async fn submit_raw(&self, token: &str, body: String) -> Result<(), Error> {
        // Waiting is the flusher's job: it can be cut short by a flush request
        // or shutdown, a sleep in here could not.
        let quiet_until = *self.quiet_until.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(left) = quiet_until.and_then(|t| t.checked_duration_since(Instant::now())) {
            if !left.is_zero() {
                return Err(Error::Quiet(left));
            }
        }
        tracing::debug!(bytes = body.len(), "ListenBrainz submit-listens");
        let resp = self
            .http
            .post(format!("{}/1/submit-listens", self.root))
            .header("Authorization", format!("Token {token}"))
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status().as_u16();
        let reset_in = wait_asked(resp.headers());
        let quiet = match (
            crate::http::header_u64(resp.headers(), "X-RateLimit-Remaining"),
            crate::http::header_u64(resp.headers(), "X-RateLimit-Reset-In"),
        ) {
            (Some(0), Some(secs)) => {
                let (wait, capped) = crate::http::cap_wait(Duration::from_secs(secs));
                if capped {
                    tracing::warn!(
                        "{}: the server asks for a pause of {secs} s (X-RateLimit-Reset-In); \
                         waiting {} s, the most a server can ask",
                        self.root,
                        wait.as_secs()
                    );
                }
                Instant::now().checked_add(wait)
            }
            _ => None,
        };
        *self.quiet_until.lock().unwrap_or_else(|e| e.into_inner()) = quiet;
        let body = read_body(resp).await?;
        accepted(status, &body, reset_in)
    }
}

/// The wait a reply asks for: X-RateLimit-Reset-In, else Retry-After (a
/// proxy's). Uncapped: the flusher caps it and says so.
fn wait_asked(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    crate::http::header_u64(headers, "X-RateLimit-Reset-In")
        .map(Duration::from_secs)
        .or_else(|| crate::http::retry_after(headers, std::time::SystemTime::now()))
}

async fn read_body(resp: reqwest::Response) -> Result<Vec<u8>, Error> {
    crate::http::read_body(resp).await.map_err(|e| match e {
        crate::http::BodyError::Transport(e) => transport(e),
        too_large => Error::Malformed(too_large.to_string()),
    })
}

/// Whether a reply to a write means the server took it: a 2xx status with
/// the API's JSON and no `error` in it (Maloja answers an unknown method
/// with 200 and an error).
fn accepted(status: u16, body: &[u8], reset_in: Option<Duration>) -> Result<(), Error> {
    if !(200..300).contains(&status) {
        return Err(http_error(status, body, reset_in));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v) if v.is_object() && v.get("error").is_none() => Ok(()),
        Ok(v) if v.is_object() => Err(http_error(status, body, reset_in)),
        _ => Err(Error::NotJson { status }),
    }
}

fn transport(e: reqwest::Error) -> Error {
    let message = crate::http::describe_error(&e);
    if crate::http::outcome_unknown(&e) {
        Error::Unsure(message)
    } else {
        Error::Transport(message)
    }
}

/// The listens of a `/1/user/{user}/listens` reply.
fn parse_listens(body: &[u8]) -> Result<Vec<Heard>, Error> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| Error::Malformed(format!("listens reply is not JSON: {e}")))?;
    let listens = v
        .get("payload")
        .and_then(|p| p.get("listens"))
        .and_then(Value::as_array)
        .ok_or_else(|| Error::Malformed("listens reply has no payload.listens".into()))?;
    Ok(listens
        .iter()
        .filter_map(|l| {
            let meta = l.get("track_metadata")?;
            let name = |key: &str| meta.get(key).and_then(Value::as_str).map(str::to_owned);
            Some(Heard {
                artist: name("artist_name")?,
                title: name("track_name")?,
                at: l.get("listened_at")?.as_u64()?,
            })
        })
        .collect())
}

fn http_error(status: u16, body: &[u8], reset_in: Option<Duration>) -> Error {
    let api_message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned));
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

fn document(listen_type: &str, payload: impl Iterator<Item = Value>) -> String {
    json!({"listen_type": listen_type, "payload": payload.collect::<Vec<_>>()}).to_string()
}

/// One listen as the server wants it.
pub fn listen_json(l: &Listen, flavor: Flavor) -> Value {
    json!({"listened_at": l.started_at, "track_metadata": track_metadata(&l.track, flavor)})
}

/// `track_metadata` with `additional_info` filled from what MPD knows; keys
/// without a value are left out, as the server asks.
pub fn track_metadata(t: &Track, flavor: Flavor) -> Value {
    let mut info = Map::new();
    let mut put = |k: &str, v: Value| {
        info.insert(k.to_owned(), v);
    };
    put("media_player", json!("MPD"));
    put("submission_client", json!("mpd-scrobbler"));
    put(
        "submission_client_version",
        json!(env!("CARGO_PKG_VERSION")),
    );
    if let Some(d) = t.duration_secs.filter(|d| *d > 0) {
        match flavor {
            // Maloja reads `duration` (seconds) and ignores duration_ms.
            Flavor::Maloja => put("duration", json!(d)),
            Flavor::ListenBrainz => put("duration_ms", json!(d.saturating_mul(1000))),
        }
    }
    if let Some(n) = t.track_number {
        put("tracknumber", json!(n.to_string()));
    }
    for (key, value) in [
        ("recording_mbid", &t.recording_mbid),
        ("release_mbid", &t.release_mbid),
        ("release_group_mbid", &t.release_group_mbid),
        ("track_mbid", &t.track_mbid),
    ] {
        if let Some(v) = value {
            put(key, json!(v));
        }
    }
    if !t.artist_mbids.is_empty() {
        put("artist_mbids", json!(t.artist_mbids));
    }
    let mut meta = Map::new();
    meta.insert("artist_name".into(), json!(clean(&t.artist)));
    meta.insert("track_name".into(), json!(clean(&t.title)));
    if let Some(album) = t
        .album
        .as_deref()
        .map(clean)
        .filter(|a| !a.trim().is_empty())
    {
        meta.insert("release_name".into(), json!(album));
    }
    meta.insert("additional_info".into(), Value::Object(info));
    Value::Object(meta)
}

/// The server refuses any string holding NUL; a tag never needs one.
fn clean(s: &str) -> String {
    s.replace('\0', "")
}

/// Split `listens` into runs whose request bodies stay within the server's
/// size rules (on average at most 10 KiB per listen, at most ~10 MB per
/// request). Each run has at least one listen.
pub fn split_by_size(listens: &[Listen], flavor: Flavor) -> Vec<std::ops::Range<usize>> {
    let mut runs = Vec::new();
    let (mut start, mut bytes) = (0, 64);
    for (i, l) in listens.iter().enumerate() {
        let size = listen_json(l, flavor).to_string().len() + 1;
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
        let v = listen_json(&listen("Hoppípolla"), Flavor::ListenBrainz);
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
    fn maloja_gets_duration_in_seconds() {
        let v = listen_json(&listen("x"), Flavor::Maloja);
        let info = &v["track_metadata"]["additional_info"];
        assert_eq!(info["duration"], 268);
        assert!(info.get("duration_ms").is_none());
    }

    #[test]
    fn playing_now_has_no_listened_at() {
        let body = document(
            "playing_now",
            [json!({"track_metadata": track_metadata(&listen("x").track, Flavor::ListenBrainz)})]
                .into_iter(),
        );
        let v: Value = serde_json::from_str(&body).unwrap();
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
            let body = document(
                "import",
                big[r.clone()]
                    .iter()
                    .map(|l| listen_json(l, Flavor::ListenBrainz)),
            );
            assert!(
                r.len() == 1 || body.len() <= r.len() * MAX_LISTEN_SIZE,
                "{r:?}: {}",
                body.len()
            );
        }
        assert_eq!(runs.iter().map(|r| r.len()).sum::<usize>(), big.len());
    }

    #[test]
    fn errors_are_classified() {
        let e = |status| Error::Http {
            status,
            message: String::new(),
            reset_in: None,
        };
        assert_eq!(e(400).kind(), ErrorKind::Rejected);
        assert_eq!(e(409).kind(), ErrorKind::Rejected);
        assert_eq!(e(401).kind(), ErrorKind::Auth);
        for status in [301, 303, 403, 404, 405, 407, 410, 413] {
            assert_eq!(e(status).kind(), ErrorKind::Config, "{status}");
        }
        // Only the API's own 400 judges the listens; a proxy's is config.
        assert_eq!(
            http_error(400, b"<html>Bad Request</html>", None).kind(),
            ErrorKind::Config
        );
        assert_eq!(
            http_error(400, br#"{"code":400,"error":"bad listen"}"#, None).kind(),
            ErrorKind::Rejected
        );
        assert_eq!(
            Error::Quiet(Duration::from_secs(5)).kind(),
            ErrorKind::RateLimited
        );
        assert_eq!(
            Error::Quiet(Duration::from_secs(5)).retry_after(),
            Some(Duration::from_secs(5))
        );
        assert_eq!(e(429).kind(), ErrorKind::RateLimited);
        assert_eq!(e(503).kind(), ErrorKind::Transient);
        assert_eq!(
            Error::Transport("refused".into()).kind(),
            ErrorKind::Transient
        );
        assert_eq!(Error::Unsure("timed out".into()).kind(), ErrorKind::Unknown);
        let parsed = http_error(
            429,
            br#"{"code":429,"error":"slow down"}"#,
            Some(Duration::from_secs(7)),
        );
        assert_eq!(parsed.retry_after(), Some(Duration::from_secs(7)));
        assert!(parsed.to_string().contains("slow down"));
    }

    fn lb_client(url: &str) -> Client {
        let http = crate::http::client(Duration::from_secs(5)).unwrap();
        // serve_raw's URL ends in /2.0/; the path does not matter here.
        Client::new(http, url, Flavor::ListenBrainz)
    }

    async fn answer(head_and_body: String) -> Result<(), Error> {
        let (url, _server) = crate::http::test_server::serve_raw(|_| head_and_body).await;
        lb_client(&url).submit("token", &[listen("x")]).await
    }

    #[tokio::test]
    async fn an_endless_rate_limit_window_waits_an_hour_at_most() {
        // The answer that used to abort the process with "overflow when
        // adding duration to instant".
        let (url, _server) = crate::http::test_server::serve_raw(|_| {
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
             X-RateLimit-Remaining: 0\r\nX-RateLimit-Reset-In: 18446744073709551615\r\n\
             Content-Length: 15\r\nConnection: close\r\n\r\n{\"status\":\"ok\"}"
                .to_owned()
        })
        .await;
        let client = lb_client(&url);
        client.submit("token", &[listen("x")]).await.unwrap();
        // Nothing is sent until the window ends; the flusher does the waiting.
        let err = client.submit("token", &[listen("y")]).await.unwrap_err();
        let left = err.retry_after().unwrap();
        assert!(matches!(err, Error::Quiet(_)), "{err:?}");
        assert!(
            left <= crate::http::MAX_SERVER_WAIT && left > Duration::from_secs(3500),
            "{left:?}"
        );
    }

    #[tokio::test]
    async fn huge_negative_and_garbage_rate_limit_headers_are_survived() {
        for (reset_in, retry_after, expected) in [
            (
                "18446744073709551615",
                "",
                Some(Duration::from_secs(u64::MAX)),
            ),
            ("99999999999999999999999", "-5", None),
            (
                "-1",
                "18446744073709551615",
                Some(Duration::from_secs(u64::MAX)),
            ),
            ("soon", "Wed, 01 Jan 3000 00:00:00 GMT", None),
        ] {
            let body = r#"{"code":429,"error":"slow down"}"#;
            let err = answer(format!(
                "HTTP/1.1 429 Too Many Requests\r\nX-RateLimit-Remaining: 0\r\n\
                 X-RateLimit-Reset-In: {reset_in}\r\nRetry-After: {retry_after}\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ))
            .await
            .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::RateLimited, "{reset_in}");
            match expected {
                Some(d) => assert_eq!(err.retry_after(), Some(d), "{reset_in}"),
                // The far date: some wait, capped later by the flusher.
                None if retry_after.contains("3000") => {
                    assert!(err.retry_after().unwrap() > crate::http::MAX_SERVER_WAIT)
                }
                None => assert_eq!(err.retry_after(), None, "{reset_in} / {retry_after}"),
            }
        }
    }

    #[tokio::test]
    async fn a_reply_that_is_not_the_apis_json_is_no_delivery() {
        for (status, body) in [
            (200, "<html>Sign in to the hotel Wi-Fi</html>"),
            (200, ""),
            (404, "Not Found"),
            (405, "<html>Method Not Allowed</html>"),
            (400, "<html>Bad Request</html>"),
        ] {
            let err = answer(format!(
                "HTTP/1.1 {status} X\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            ))
            .await
            .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Config, "{status} {body:?}: {err}");
            assert!(err.to_string().contains(&status.to_string()), "{err}");
        }
        // Maloja's answer to an unknown method.
        let body = r#"{"code":200,"error":"Invalid Method"}"#;
        let err = answer(format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ))
        .await
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    }

    #[test]
    fn absurd_durations_do_not_overflow() {
        let mut l = listen("x");
        l.track.duration_secs = Some(u64::MAX);
        let v = listen_json(&l, Flavor::ListenBrainz);
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
        let v = listen_json(&l, Flavor::ListenBrainz);
        assert_eq!(v["track_metadata"]["track_name"], "ab");
        assert_eq!(v["track_metadata"]["artist_name"], "Art");
    }
}
