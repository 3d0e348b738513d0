//! ListenBrainz API v1 client (ListenBrainz itself and compatible servers
//! such as Maloja): building listens from MPD's metadata, submitting them
//! within the server's limits, and classifying failures (docs/protocols.md,
//! "ListenBrainz" and "Maloja").
//! `client` makes the calls; `wire` builds the payloads, bounds
//! requests by size and reads listens back.

mod client;
mod page;
mod wire;

use std::time::Duration;

pub(crate) use client::Client;
pub(crate) use page::MIN_FULL_PAGE;
pub(crate) use wire::split_by_size;

use crate::model::{Listen, Track};
use crate::targets::{BoxFuture, ErrorKind, Failure, Heard, ItemOutcome, Target};

/// Default API root.
pub(crate) const DEFAULT_URL: &str = "https://api.listenbrainz.org";

/// Listens per `import` request. The server takes up to 1000; smaller
/// batches keep each request quick and a rejected batch cheap to bisect.
pub(crate) const MAX_BATCH: usize = 100;

/// Pages read at most when checking what arrived; an item not seen is resent.
pub(crate) const MAX_LISTEN_PAGES: usize = 20;

/// Which server speaks the protocol; Maloja differs in ways that matter
/// (docs/protocols.md, "Maloja").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// listenbrainz-server.
    ListenBrainz,
    /// Maloja's `/apis/listenbrainz` endpoint: duration in seconds, one listen
    /// per request (a duplicate inside an import silently ends it), no
    /// now-playing.
    Maloja,
}

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The server answered with an error status.
    #[error("HTTP {status}{}", crate::http::body_note(.message))]
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
    /// What the caller should do (docs/protocols.md,
    /// "Errors and rate limits"). Only 400 (and
    /// Maloja's 409 for a taken timestamp) judges the listens sent; any other
    /// refusal means the url or the server is wrong, not the listens.
    pub(crate) fn kind(&self) -> ErrorKind {
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
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Http { reset_in, .. } => *reset_in,
            Error::Quiet(left) => Some(*left),
            _ => None,
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure {
            kind: e.kind(),
            message: e.to_string(),
            retry_after: e.retry_after(),
            setting: "url",
        }
    }
}

impl Target for Client {
    fn url(&self) -> &str {
        self.url()
    }

    fn max_batch(&self) -> usize {
        self.max_batch()
    }

    fn requests(&self, listens: &[Listen]) -> Vec<std::ops::Range<usize>> {
        split_by_size(listens, self.flavor())
    }

    fn now_playing<'a>(
        &'a self,
        credential: &'a str,
        track: &'a Track,
    ) -> BoxFuture<'a, Result<(), Failure>> {
        Box::pin(async move { Ok(Client::now_playing(self, credential, track).await?) })
    }

    /// The server answers for the whole request: every listen of an
    /// accepted one is stored.
    fn submit<'a>(
        &'a self,
        credential: &'a str,
        listens: &'a [Listen],
    ) -> BoxFuture<'a, Result<Vec<ItemOutcome>, Failure>> {
        Box::pin(async move {
            Client::submit(self, credential, listens).await?;
            Ok(vec![ItemOutcome::Accepted; listens.len()])
        })
    }

    /// Feedback needs the recording's MBID; a track without one is refused
    /// here, for good.
    fn love<'a>(
        &'a self,
        credential: &'a str,
        track: &'a Track,
        love: bool,
    ) -> BoxFuture<'a, Result<(), Failure>> {
        Box::pin(async move {
            let Some(mbid) = &track.recording_mbid else {
                return Err(Failure {
                    kind: ErrorKind::Rejected,
                    message: "ListenBrainz feedback needs the recording's MusicBrainz id, \
                              and the file has no MUSICBRAINZ_TRACKID tag"
                        .into(),
                    retry_after: None,
                    setting: "url",
                });
            };
            Ok(self.feedback(credential, mbid, i8::from(love)).await?)
        })
    }

    fn account<'a>(
        &'a self,
        credential: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, Failure>> {
        Box::pin(async move {
            if self.flavor() == Flavor::Maloja {
                return Ok(None);
            }
            match self.validate_token(credential).await? {
                Some(user) if !user.is_empty() => Ok(Some(user)),
                Some(_) => Ok(None),
                None => Err(Failure {
                    kind: ErrorKind::Auth,
                    message: "the server says the token is not valid".into(),
                    retry_after: None,
                    setting: "token",
                }),
            }
        })
    }

    fn heard<'a>(
        &'a self,
        credential: &'a str,
        user: &'a str,
        first: u64,
        last: u64,
    ) -> BoxFuture<'a, Result<Vec<Heard>, Failure>> {
        Box::pin(async move { Ok(self.listens(credential, user, first, last).await?) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::http_error;

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
}
