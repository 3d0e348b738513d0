//! ListenBrainz API v1 client (ListenBrainz itself and compatible servers
//! such as Maloja): building listens from MPD's metadata, submitting them
//! within the server's limits, and classifying failures (protocols.md §3–4).

use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::scrobble::{Listen, Track};
use crate::target::ErrorKind;

/// Default API root.
pub const DEFAULT_URL: &str = "https://api.listenbrainz.org";

/// Listens per `import` request. The server takes up to 1000; smaller
/// batches keep each request quick and a rejected batch cheap to bisect.
pub const MAX_BATCH: usize = 100;

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
    /// The request did not complete.
    #[error("request failed: {0}")]
    Transport(String),
    /// A 2xx reply that is not what the protocol promises.
    #[error("unexpected reply: {0}")]
    Malformed(String),
}

impl Error {
    /// What the caller should do (protocols.md §3.5).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Http { status, .. } => match status {
                429 => ErrorKind::RateLimited,
                401 => ErrorKind::Auth,
                403 | 300..=399 | 404 | 405 => ErrorKind::Config,
                408 | 500.. => ErrorKind::Transient,
                _ => ErrorKind::Rejected,
            },
            Error::Transport(_) | Error::Malformed(_) => ErrorKind::Transient,
        }
    }

    /// How long the server asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Http { reset_in, .. } => *reset_in,
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
        let body = resp.bytes().await.map_err(transport)?;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(http_error(status, &body, None))
        }
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
        let body = resp.bytes().await.map_err(transport)?;
        // Maloja answers an unknown token with 401 where ListenBrainz says valid:false.
        if status == 401 {
            return Ok(None);
        }
        if !(200..300).contains(&status) {
            return Err(http_error(status, &body, None));
        }
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| Error::Malformed(format!("validate-token reply is not JSON: {e}")))?;
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

    async fn submit_raw(&self, token: &str, body: String) -> Result<(), Error> {
        let quiet_until = *self.quiet_until.lock().expect("not poisoned");
        if let Some(t) = quiet_until {
            tokio::time::sleep_until(t).await;
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
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let reset_in = header("X-RateLimit-Reset-In").map(Duration::from_secs);
        *self.quiet_until.lock().expect("not poisoned") =
            match (header("X-RateLimit-Remaining"), reset_in) {
                (Some(0), Some(wait)) => Some(tokio::time::Instant::now() + wait),
                _ => None,
            };
        let body = resp.bytes().await.map_err(transport)?;
        if (200..300).contains(&status) {
            return Ok(());
        }
        Err(http_error(status, &body, reset_in))
    }
}

fn transport(e: reqwest::Error) -> Error {
    Error::Transport(crate::http::describe_error(&e))
}

fn http_error(status: u16, body: &[u8], reset_in: Option<Duration>) -> Error {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| {
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
            Flavor::ListenBrainz => put("duration_ms", json!(d * 1000)),
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
    if let Some(url) = &t.stream_url {
        put("origin_url", json!(url));
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
    fn a_stream_title_carries_its_origin_url() {
        let mut l = listen("Hoppípolla");
        l.track.stream_url = Some("http://radio.example/live".into());
        l.track.duration_secs = None;
        let info = &listen_json(&l, Flavor::ListenBrainz)["track_metadata"]["additional_info"];
        assert_eq!(info["origin_url"], "http://radio.example/live");
        assert!(info.get("duration_ms").is_none());
        let file =
            &listen_json(&listen("x"), Flavor::ListenBrainz)["track_metadata"]["additional_info"];
        assert!(file.get("origin_url").is_none(), "a local file has none");
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
        assert_eq!(e(403).kind(), ErrorKind::Config);
        assert_eq!(e(429).kind(), ErrorKind::RateLimited);
        assert_eq!(e(503).kind(), ErrorKind::Transient);
        assert_eq!(
            Error::Transport("refused".into()).kind(),
            ErrorKind::Transient
        );
        let parsed = http_error(
            429,
            br#"{"code":429,"error":"slow down"}"#,
            Some(Duration::from_secs(7)),
        );
        assert_eq!(parsed.retry_after(), Some(Duration::from_secs(7)));
        assert!(parsed.to_string().contains("slow down"));
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
