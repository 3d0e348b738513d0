//! A scrobbling target as delivery sees it: one interface over the
//! Last.fm-style and ListenBrainz-compatible clients, and the shared
//! vocabulary for what to do when a delivery fails.

#[cfg(test)]
pub(crate) mod fake;
pub(crate) mod lastfm;
pub(crate) mod listenbrainz;

use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::time::Duration;

use crate::model::{Listen, Track};

/// What a caller should do about a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// Retry later with backoff: connection failures (nothing was sent),
    /// HTTP 5xx, Last.fm errors 8, 11, 16 and unknown codes, malformed replies.
    Transient,
    /// The request may have reached the server and been stored: a timeout,
    /// a connection reset or closed after the request went out, or an answer
    /// whose body could not be read. Retry later like [`ErrorKind::Transient`],
    /// but a write must not simply be resent: ask the server what it stored
    /// first (see `crate::delivery::reconcile`).
    Unknown,
    /// Too many requests (Last.fm 29, HTTP 429): wait as the server asks,
    /// and at least a minute for Last.fm.
    RateLimited,
    /// The credentials were refused (Last.fm 4, 9; ListenBrainz 401): the
    /// user must run `mpd-scrobbler auth ...` again.
    Auth,
    /// The configuration is wrong: Last.fm's invalid API key (10), bad
    /// signature, i.e. a wrong secret (13), suspended key (26), or an unusable
    /// API URL (one that cannot be parsed, or answers with a redirect, an
    /// HTTP error without the API's error document, or something that is not
    /// JSON). Pause the target and keep its queue.
    Config,
    /// The server does not offer this method (Last.fm 3, 27; Maloja's
    /// Audioscrobbler endpoint answers 3 to `track.love`): skip what needs
    /// it; a server without `track.scrobble` is a configuration problem.
    Unsupported,
    /// The server refused the listens sent (Last.fm 6, ListenBrainz 400):
    /// resending them unchanged will not help, so isolate the bad item.
    Rejected,
}

/// A failed delivery, reduced to what the flusher acts on.
#[derive(Debug)]
pub(crate) struct Failure {
    /// What to do.
    pub kind: ErrorKind,
    /// For the log.
    pub message: String,
    /// How long the server asked us to wait, if it said; uncapped.
    pub retry_after: Option<Duration>,
    /// For [`ErrorKind::Config`]: the key of the target's config section
    /// to fix (`url`, `api_key`, `api_secret`).
    pub setting: &'static str,
}

/// One listen as the server reports it back when asked what it stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Heard {
    /// Artist name, possibly corrected by the server.
    pub artist: String,
    /// Title, possibly corrected by the server.
    pub title: String,
    /// Start time (Unix seconds) as stored.
    pub at: u64,
}

/// What the server did with one listen of an accepted request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ItemOutcome {
    /// Stored, or already stored before (Libre.fm's code 91, a duplicate).
    Accepted,
    /// Filtered out by the server (bad artist or title, timestamp out of
    /// range, ...). Resending it will not help. The codes differ between
    /// servers: Libre.fm swaps 3 and 4 relative to Last.fm.
    Ignored {
        /// The server's code for why.
        code: u32,
        /// The server's explanation; may be empty.
        message: String,
    },
    /// The server's daily cap was reached (Last.fm's code 5): keep the
    /// listen and resend it the next day.
    DailyLimitExceeded,
}

/// A boxed future, so that [`Target`] can be used as `dyn Target`.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One scrobbling server as delivery sees it. The Last.fm-style and
/// ListenBrainz-compatible clients implement it, and so can a stand-in in
/// unit tests. Every call takes the credential (session key or token),
/// which the caller keeps.
pub(crate) trait Target: fmt::Debug + Send + Sync {
    /// The API URL requests go to, for log lines.
    fn url(&self) -> &str;

    /// Most listens taken from the queue for one round of requests.
    fn max_batch(&self) -> usize;

    /// Listens older than this are refused by the service anyway, so they
    /// are set aside rather than sent; `None` when there is no such limit.
    fn max_age(&self) -> Option<Duration> {
        None
    }

    /// Split a batch into requests the server accepts by size; each range
    /// is one request, in order. By default, the whole batch in one.
    fn requests(&self, listens: &[Listen]) -> Vec<Range<usize>> {
        std::iter::once(0..listens.len()).collect()
    }

    /// Announce what is playing.
    fn now_playing<'a>(
        &'a self,
        credential: &'a str,
        track: &'a Track,
    ) -> BoxFuture<'a, Result<(), Failure>>;

    /// Submit one request's worth of listens; one outcome per listen, in
    /// order. On error no outcome is known for any of them.
    fn submit<'a>(
        &'a self,
        credential: &'a str,
        listens: &'a [Listen],
    ) -> BoxFuture<'a, Result<Vec<ItemOutcome>, Failure>>;

    /// Love (`love` true) or unlove a track. A refusal of this track for
    /// good is [`ErrorKind::Rejected`]; a server without the method
    /// answers [`ErrorKind::Unsupported`].
    fn love<'a>(
        &'a self,
        credential: &'a str,
        track: &'a Track,
        love: bool,
    ) -> BoxFuture<'a, Result<(), Failure>>;

    /// The account a credential belongs to, for reading its listens back;
    /// `Ok(None)` when the server has no read method to ask (Maloja).
    fn account<'a>(&'a self, credential: &'a str)
    -> BoxFuture<'a, Result<Option<String>, Failure>>;

    /// What `user`'s profile holds with start times from `first` to `last`
    /// (Unix seconds, both included), newest first.
    fn heard<'a>(
        &'a self,
        credential: &'a str,
        user: &'a str,
        first: u64,
        last: u64,
    ) -> BoxFuture<'a, Result<Vec<Heard>, Failure>>;
}
