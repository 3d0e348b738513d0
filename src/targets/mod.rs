//! A scrobbling target as delivery sees it: one interface over the
//! Last.fm-style and ListenBrainz-compatible clients, and the shared
//! vocabulary for what to do when a delivery fails.

pub mod lastfm;
pub mod listenbrainz;

use std::ops::Range;
use std::time::Duration;

use crate::queue::Love;
use crate::scrobble::{Listen, Track};
use lastfm::ItemOutcome;

/// What a caller should do about a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
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
pub struct Failure {
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

impl From<lastfm::Error> for Failure {
    fn from(e: lastfm::Error) -> Self {
        Failure {
            kind: e.kind(),
            message: e.to_string(),
            retry_after: e.retry_after(),
            setting: e.setting(),
        }
    }
}

impl From<listenbrainz::Error> for Failure {
    fn from(e: listenbrainz::Error) -> Self {
        Failure {
            kind: e.kind(),
            message: e.to_string(),
            retry_after: e.retry_after(),
            setting: "url",
        }
    }
}

/// One listen as the server reports it back when asked what it stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heard {
    /// Artist name, possibly corrected by the server.
    pub artist: String,
    /// Title, possibly corrected by the server.
    pub title: String,
    /// Start time (Unix seconds) as stored.
    pub at: u64,
}

/// The client of one target.
#[derive(Debug, Clone)]
pub enum Service {
    /// Last.fm, Libre.fm or another Audioscrobbler 2.0 server.
    LastFm(lastfm::Client),
    /// ListenBrainz or a compatible server.
    ListenBrainz(listenbrainz::Client),
}

/// Last.fm ignores scrobbles older than 14 days (protocols.md §1.8).
const LASTFM_MAX_AGE: Duration = Duration::from_secs(14 * 24 * 3600);

impl Service {
    /// The API URL requests go to.
    pub fn url(&self) -> &str {
        match self {
            Service::LastFm(c) => c.url(),
            Service::ListenBrainz(c) => c.url(),
        }
    }

    /// Most listens in one request.
    pub fn max_batch(&self) -> usize {
        match self {
            Service::LastFm(_) => lastfm::MAX_BATCH,
            Service::ListenBrainz(c) => c.max_batch(),
        }
    }

    /// Listens older than this are refused by the service anyway.
    pub fn max_age(&self) -> Option<Duration> {
        match self {
            Service::LastFm(_) => Some(LASTFM_MAX_AGE),
            Service::ListenBrainz(_) => None,
        }
    }

    /// Split a batch into requests the server accepts by size.
    pub fn requests(&self, listens: &[Listen]) -> Vec<Range<usize>> {
        match self {
            Service::LastFm(_) => std::iter::once(0..listens.len()).collect(),
            Service::ListenBrainz(c) => listenbrainz::split_by_size(listens, c.flavor()),
        }
    }

    /// Announce what is playing.
    pub async fn now_playing(&self, credential: &str, track: &Track) -> Result<(), Failure> {
        match self {
            Service::LastFm(c) => Ok(c.now_playing(credential, track).await?),
            Service::ListenBrainz(c) => Ok(c.now_playing(credential, track).await?),
        }
    }

    /// Love or unlove a track. ListenBrainz needs the recording's MBID; a
    /// track without one is refused here, for good.
    pub async fn love(&self, credential: &str, love: &Love) -> Result<(), Failure> {
        match self {
            Service::LastFm(c) => Ok(c.love(credential, &love.track, love.love).await?),
            Service::ListenBrainz(c) => {
                let Some(mbid) = &love.track.recording_mbid else {
                    return Err(Failure {
                        kind: ErrorKind::Rejected,
                        message: "ListenBrainz feedback needs the recording's MusicBrainz id, \
                                  and the file has no MUSICBRAINZ_TRACKID tag"
                            .into(),
                        retry_after: None,
                        setting: "url",
                    });
                };
                Ok(c.feedback(credential, mbid, i8::from(love.love)).await?)
            }
        }
    }

    /// The account a credential belongs to, for reading its listens back;
    /// `Ok(None)` when the server has no read method to ask (Maloja).
    pub async fn account(&self, credential: &str) -> Result<Option<String>, Failure> {
        match self {
            Service::LastFm(c) => Ok(Some(c.session_user(credential).await?)),
            Service::ListenBrainz(c) if c.flavor() == listenbrainz::Flavor::Maloja => Ok(None),
            Service::ListenBrainz(c) => match c.validate_token(credential).await? {
                Some(user) if !user.is_empty() => Ok(Some(user)),
                Some(_) => Ok(None),
                None => Err(Failure {
                    kind: ErrorKind::Auth,
                    message: "the server says the token is not valid".into(),
                    retry_after: None,
                    setting: "token",
                }),
            },
        }
    }

    /// What `user`'s profile holds with start times from `first` to `last`
    /// (both included), newest first.
    pub async fn heard(
        &self,
        credential: &str,
        user: &str,
        first: u64,
        last: u64,
    ) -> Result<Vec<Heard>, Failure> {
        match self {
            Service::LastFm(c) => Ok(c.recent_tracks(user, first, last).await?),
            Service::ListenBrainz(c) => Ok(c.listens(credential, user, first, last).await?),
        }
    }

    /// Submit one request's worth of listens; one outcome per listen.
    pub async fn submit(
        &self,
        credential: &str,
        listens: &[Listen],
    ) -> Result<Vec<ItemOutcome>, Failure> {
        match self {
            Service::LastFm(c) => Ok(c.scrobble(credential, listens).await?),
            Service::ListenBrainz(c) => {
                c.submit(credential, listens).await?;
                Ok(vec![ItemOutcome::Accepted; listens.len()])
            }
        }
    }
}
