//! The calls of the ListenBrainz client, and the reading of their replies
//! into [`Error`]s; the server's rate-limit window is kept here.

use std::time::Duration;

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use crate::json::{self, Maybe, Str, present};
use tokio::time::Instant;

use super::page::{ListensPage, MAX_PAGE_BYTES, PAGE_SIZE, listens_page};
use super::wire::{document, http_error, listen_json, parse_listens, playing_now_json};
use super::{Error, Flavor, MAX_BATCH, MAX_LISTEN_PAGES};
use crate::model::{Listen, Track};
use crate::targets::Heard;

/// Listens asked for per page when reading listens back; the server caps
/// `count` silently at 1000 (100 before 2023), never lower.
const LISTENS_PAGE: u64 = 1000;
const MIN_PAGE_CAP: usize = 100;

/// A client for one server.
#[derive(Clone)]
pub(crate) struct Client {
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
    pub(crate) fn new(http: reqwest::Client, url: &str, flavor: Flavor) -> Client {
        Client {
            http,
            root: url.trim_end_matches('/').to_owned(),
            flavor,
            quiet_until: Default::default(),
        }
    }

    /// The API root.
    pub(crate) fn url(&self) -> &str {
        &self.root
    }

    /// Which server this is.
    pub(crate) fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// Listens per request for this server.
    pub(crate) fn max_batch(&self) -> usize {
        match self.flavor {
            Flavor::ListenBrainz => MAX_BATCH,
            Flavor::Maloja => 1,
        }
    }

    /// Send `playing_now` (nothing for Maloja, which discards it).
    pub(crate) async fn now_playing(&self, token: &str, track: &Track) -> Result<(), Error> {
        if self.flavor == Flavor::Maloja {
            return Ok(());
        }
        let body = document("playing_now", &[playing_now_json(track, self.flavor)]);
        self.submit_raw(token, body).await
    }

    /// Submit listens: one as `single`, several as one `import`. The caller
    /// keeps batches within [`Client::max_batch`] and [`split_by_size`].
    pub(crate) async fn submit(&self, token: &str, listens: &[Listen]) -> Result<(), Error> {
        if listens.is_empty() {
            return Ok(());
        }
        let kind = if listens.len() == 1 {
            "single"
        } else {
            "import"
        };
        let payload: Vec<_> = listens
            .iter()
            .map(|l| listen_json(l, self.flavor))
            .collect();
        let body = document(kind, &payload);
        self.submit_raw(token, body).await
    }

    /// Recording feedback: score 1 loves, 0 clears (`/1/feedback/recording-feedback`).
    pub(crate) async fn feedback(
        &self,
        token: &str,
        recording_mbid: &str,
        score: i8,
    ) -> Result<(), Error> {
        #[derive(Serialize)]
        struct Feedback<'a> {
            recording_mbid: &'a str,
            score: i8,
        }
        let resp = self
            .http
            .post(format!("{}/1/feedback/recording-feedback", self.root))
            .header("Authorization", format!("Token {token}"))
            .json(&Feedback {
                recording_mbid,
                score,
            })
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status().as_u16();
        let reset_in = wait_asked(resp.headers());
        let body = read_body(resp).await?;
        accepted(status, &body, reset_in)
    }

    /// Check a token; `Ok(Some(user))` when valid, `Ok(None)` when not.
    pub(crate) async fn validate_token(&self, token: &str) -> Result<Option<String>, Error> {
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
        #[derive(Default, Deserialize)]
        #[serde(default)]
        struct Validity {
            valid: Maybe<bool>,
            user_name: Str,
        }
        serde_json::from_slice::<IgnoredAny>(&body).map_err(|_| Error::NotJson { status })?;
        let v = json::object::<Validity>(&body).unwrap_or_default();
        match v.valid.0 {
            Some(true) => Ok(Some(v.user_name.0.unwrap_or_default())),
            Some(false) => Ok(None),
            None => Err(Error::Malformed(
                "validate-token reply has no `valid`".into(),
            )),
        }
    }

    /// The listens of `user` that started from `first` to `last` (Unix
    /// seconds, both included), newest first (`GET /1/user/{user}/listens`,
    /// docs/protocols.md, "Reading listens back"), paging back with `max_ts` at most
    /// [`MAX_LISTEN_PAGES`] times.
    pub(crate) async fn listens(
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

    /// One page of the listens of `user` that started before `before` (Unix
    /// seconds, excluded), newest first: up to [`PAGE_SIZE`], fewer where
    /// the server caps `count`. Only `max_ts` is sent: with `min_ts` the
    /// server may answer the oldest listens of the range instead of the
    /// newest, so the caller stops where a page reaches its lower bound.
    /// The token, when given, only counts the calls against its own rate
    /// limit; public profiles need none.
    ///
    /// # Errors
    ///
    /// Any failure of the call; see [`Error::kind`]. An unknown user is a 404.
    pub(crate) async fn listens_page(
        &self,
        token: Option<&str>,
        user: &str,
        before: u64,
    ) -> Result<ListensPage, Error> {
        let url = format!(
            "{}/1/user/{}/listens?max_ts={before}&count={PAGE_SIZE}",
            self.root,
            crate::http::percent_encode(user)
        );
        let mut request = self.http.get(url);
        if let Some(token) = token {
            request = request.header("Authorization", format!("Token {token}"));
        }
        let resp = request.send().await.map_err(transport)?;
        let status = resp.status().as_u16();
        let reset_in = wait_asked(resp.headers());
        let body = crate::http::read_body_limited(resp, MAX_PAGE_BYTES)
            .await
            .map_err(|e| match e {
                crate::http::BodyError::Transport(e) => transport(e),
                too_large @ crate::http::BodyError::TooLarge => {
                    Error::Malformed(too_large.to_string())
                }
            })?;
        if !(200..300).contains(&status) {
            return Err(http_error(status, &body, reset_in));
        }
        if serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_err() {
            return Err(Error::NotJson { status });
        }
        listens_page(&body)
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
        too_large @ crate::http::BodyError::TooLarge => Error::Malformed(too_large.to_string()),
    })
}

/// Whether a reply to a write means the server took it: a 2xx status with
/// the API's JSON and no `error` in it (Maloja answers an unknown method
/// with 200 and an error).
fn accepted(status: u16, body: &[u8], reset_in: Option<Duration>) -> Result<(), Error> {
    if !(200..300).contains(&status) {
        return Err(http_error(status, body, reset_in));
    }
    /// Whether the reply has an `error`, whatever its value.
    #[derive(Default, Deserialize)]
    #[serde(default)]
    struct ErrorKey {
        #[serde(deserialize_with = "present")]
        error: Option<IgnoredAny>,
    }
    match json::object::<ErrorKey>(body) {
        Some(ErrorKey { error: None }) => Ok(()),
        Some(ErrorKey { error: Some(_) }) => Err(http_error(status, body, reset_in)),
        None => Err(Error::NotJson { status }),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::ErrorKind;

    fn listen(title: &str) -> Listen {
        Listen {
            track: Track {
                artist: "Foo".into(),
                title: title.into(),
                ..Track::default()
            },
            started_at: 1_700_000_000,
        }
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
                    assert!(err.retry_after().unwrap() > crate::http::MAX_SERVER_WAIT);
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
}
