//! Last.fm 2.0 client, also used for Libre.fm and other Audioscrobbler 2.0
//! servers (selected by API URL): now playing, batch scrobbling, the desktop
//! and mobile authentication flows, and the classification of failures into
//! what a caller can act on. Protocol notes: docs/protocols.md, "Last.fm 2.0 and Libre.fm".
//!
//! The client is stateless: callers keep the session key and decide about
//! retries from [`Error::kind`] and the per-listen [`ItemOutcome`]s.
//! `client` makes the calls, `wire` builds their parameters and reads
//! the replies, `sign` signs them, and `read` holds the read methods.

mod client;
mod read;
mod recent;
mod sign;
mod wire;

use std::fmt;
use std::time::Duration;

pub(crate) use client::Client;
pub(crate) use recent::PAGE_SIZE;

use crate::model::{Listen, Track};
use crate::targets::{BoxFuture, ErrorKind, Failure, Heard, ItemOutcome, Target};

/// Last.fm's API root.
pub(crate) const LASTFM_API_URL: &str = "https://ws.audioscrobbler.com/2.0/";

/// Most listens one `track.scrobble` request may carry (indices 0 to 49).
pub(crate) const MAX_BATCH: usize = 50;

/// Pages of `user.getRecentTracks` read when checking what arrived: a batch
/// spans at most 50 scrobbles, so more pages only mean other scrobblers
/// filled the same minutes, and an item not seen is resent, never lost.
pub(crate) const MAX_RECENT_PAGES: u64 = 20;

/// Last.fm ignores scrobbles older than 14 days (docs/protocols.md, "Eligibility and age").
pub(crate) const MAX_AGE: Duration = Duration::from_secs(14 * 24 * 3600);

/// An authenticated session. The key does not expire unless the user revokes
/// the application, so it is stored (like a password) and reused.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Session {
    /// The account name as the server spells it; empty where the server does
    /// not say (Maloja).
    pub name: String,
    /// The session key (`sk`) that authorises write calls.
    pub key: String,
}
/// A failed call.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The server answered with an API error (`{"error": N, "message": ..}`),
    /// whatever the HTTP status.
    #[error("server error {code}: {message}")]
    Api {
        /// The API error code (docs/protocols.md, "Error codes"). In the auth flow, 14 means
        /// the token is not approved yet and 15 that it expired.
        code: u32,
        /// The server's message; may be empty.
        message: String,
    },
    /// A non-2xx reply without an API error in its body.
    #[error("HTTP {status}{}", crate::http::body_note(.body))]
    Http {
        /// The HTTP status code.
        status: u16,
        /// The start of the body, for the log.
        body: String,
        /// How long the server asked to wait (`Retry-After`), uncapped.
        retry_after: Option<Duration>,
    },
    /// A 2xx reply that is not a JSON object: whatever answered is not an
    /// Audioscrobbler 2.0 API (a wrong url, a proxy, a captive portal).
    #[error("HTTP {status}, and the reply is not the API's JSON")]
    NotJson {
        /// The HTTP status code.
        status: u16,
    },
    /// The request did not complete: connection refused, timeout, ...
    #[error("{}", crate::http::describe_error(.0))]
    Transport(reqwest::Error),
    /// A 2xx reply that is not in the expected shape.
    #[error("unexpected reply: {0}")]
    Malformed(String),
}

impl From<reqwest::Error> for Error {
    fn from(e: reqwest::Error) -> Self {
        Error::Transport(e)
    }
}

impl Error {
    /// Classifies the error for retry decisions (docs/protocols.md, "Error codes").
    ///
    /// Only error 6 is a verdict on the listens sent; every other refusal
    /// of a whole request says the request went to the wrong place or with
    /// the wrong keys, so it stops the target rather than condemning items.
    pub(crate) fn kind(&self) -> ErrorKind {
        match self {
            Error::Api { code, .. } => match code {
                29 => ErrorKind::RateLimited,
                4 | 9 => ErrorKind::Auth,
                // Invalid service, invalid format, invalid resource: not a
                // request this server's API understands.
                2 | 5 | 7 | 10 | 13 | 26 => ErrorKind::Config,
                3 | 27 => ErrorKind::Unsupported,
                6 => ErrorKind::Rejected,
                _ => ErrorKind::Transient,
            },
            Error::Http { status, .. } => match status {
                429 => ErrorKind::RateLimited,
                408 | 500.. => ErrorKind::Transient,
                // Anything else without the API's error document did not come
                // from the API: a redirect (not followed, see `crate::http`),
                // 401/403/404/405/407/410 from a wrong path, a proxy or a
                // captive portal.
                _ => ErrorKind::Config,
            },
            Error::NotJson { .. } => ErrorKind::Config,
            // A request that cannot even be built (an invalid URL) fails the
            // same way on every retry.
            Error::Transport(e) if e.is_builder() => ErrorKind::Config,
            Error::Transport(e) if crate::http::outcome_unknown(e) => ErrorKind::Unknown,
            Error::Transport(_) | Error::Malformed(_) => ErrorKind::Transient,
        }
    }

    /// What an API error code means, in words a user can act on
    /// (docs/protocols.md, "Error codes"); `None` for a code without a known meaning.
    pub(crate) fn meaning(code: u32) -> Option<&'static str> {
        Some(match code {
            2 => "the server does not offer this service",
            3 => "the server does not offer this method",
            4 => "authentication failed: the server no longer knows the token or session",
            5 => "the server refused the request's format",
            6 => "the server refused the request's parameters",
            7 => "the server does not know this resource",
            8 => "the server failed to answer; try again later",
            9 => "the session key is no longer valid (access was revoked?)",
            10 => "the API key is invalid",
            11 | 16 => "the service is temporarily unavailable; try again later",
            13 => "the signature is refused: api_secret does not belong to api_key",
            14 => "the token has not been authorised yet",
            15 => "the token has expired",
            17 => "the user's listening history is private",
            26 => "the API key is suspended",
            29 => "too many requests; wait a minute and try again",
            _ => return None,
        })
    }

    /// For an error of kind [`ErrorKind::Config`], the config key to fix.
    pub(crate) fn setting(&self) -> &'static str {
        match self {
            Error::Api { code: 10 | 26, .. } => "api_key",
            Error::Api { code: 13, .. } => "api_secret",
            _ => "url",
        }
    }

    /// How long the server asked to wait (`Retry-After`), uncapped.
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

impl From<crate::http::BodyError> for Error {
    fn from(e: crate::http::BodyError) -> Self {
        match e {
            crate::http::BodyError::Transport(e) => Error::Transport(e),
            too_large @ crate::http::BodyError::TooLarge => Error::Malformed(too_large.to_string()),
        }
    }
}
impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure {
            kind: e.kind(),
            message: e.to_string(),
            retry_after: e.retry_after(),
            setting: e.setting(),
        }
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
impl Target for Client {
    fn url(&self) -> &str {
        self.url()
    }

    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    fn max_age(&self) -> Option<Duration> {
        Some(MAX_AGE)
    }

    fn now_playing<'a>(
        &'a self,
        credential: &'a str,
        track: &'a Track,
    ) -> BoxFuture<'a, Result<(), Failure>> {
        Box::pin(async move { Ok(Client::now_playing(self, credential, track).await?) })
    }

    fn submit<'a>(
        &'a self,
        credential: &'a str,
        listens: &'a [Listen],
    ) -> BoxFuture<'a, Result<Vec<ItemOutcome>, Failure>> {
        Box::pin(async move { Ok(self.scrobble(credential, listens).await?) })
    }

    fn love<'a>(
        &'a self,
        credential: &'a str,
        track: &'a Track,
        love: bool,
    ) -> BoxFuture<'a, Result<(), Failure>> {
        Box::pin(async move { Ok(Client::love(self, credential, track, love).await?) })
    }

    fn account<'a>(
        &'a self,
        credential: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, Failure>> {
        Box::pin(async move { Ok(Some(self.session_user(credential).await?)) })
    }

    fn heard<'a>(
        &'a self,
        _credential: &'a str,
        user: &'a str,
        first: u64,
        last: u64,
    ) -> BoxFuture<'a, Result<Vec<Heard>, Failure>> {
        Box::pin(async move { Ok(self.recent_tracks(user, first, last).await?) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u32) -> Error {
        Error::Api {
            code,
            message: String::new(),
        }
    }

    fn http(status: u16) -> Error {
        Error::Http {
            status,
            body: String::new(),
            retry_after: None,
        }
    }

    #[test]
    fn api_error_codes_are_classified() {
        let cases = [
            (2, ErrorKind::Config),
            (3, ErrorKind::Unsupported),
            (4, ErrorKind::Auth),
            (5, ErrorKind::Config),
            (6, ErrorKind::Rejected),
            (7, ErrorKind::Config),
            (8, ErrorKind::Transient),
            (9, ErrorKind::Auth),
            (10, ErrorKind::Config),
            (11, ErrorKind::Transient),
            (13, ErrorKind::Config),
            (16, ErrorKind::Transient),
            (26, ErrorKind::Config),
            (27, ErrorKind::Unsupported),
            (28, ErrorKind::Transient),
            (29, ErrorKind::RateLimited),
            (1234, ErrorKind::Transient),
        ];
        for (code, kind) in cases {
            assert_eq!(api(code).kind(), kind, "code {code}");
        }
    }

    #[test]
    fn http_statuses_and_malformed_replies_are_classified() {
        let cases = [
            (301, ErrorKind::Config),
            (303, ErrorKind::Config),
            (308, ErrorKind::Config),
            // Without the API's error document, no status is a verdict on
            // the listens: a wrong url, a proxy, a captive portal.
            (400, ErrorKind::Config),
            (401, ErrorKind::Config),
            (403, ErrorKind::Config),
            (404, ErrorKind::Config),
            (405, ErrorKind::Config),
            (407, ErrorKind::Config),
            (410, ErrorKind::Config),
            (408, ErrorKind::Transient),
            (429, ErrorKind::RateLimited),
            (500, ErrorKind::Transient),
            (502, ErrorKind::Transient),
            (503, ErrorKind::Transient),
            (504, ErrorKind::Transient),
        ];
        for (status, kind) in cases {
            assert_eq!(http(status).kind(), kind, "status {status}");
        }
        assert_eq!(Error::Malformed(String::new()).kind(), ErrorKind::Transient);
        assert_eq!(Error::NotJson { status: 200 }.kind(), ErrorKind::Config);
        assert_eq!(http(404).setting(), "url");
        assert_eq!(api(10).setting(), "api_key");
        assert_eq!(api(13).setting(), "api_secret");
    }
}
