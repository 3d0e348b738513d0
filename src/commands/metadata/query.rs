//! The metadata and stats commands (`artist`, `album`, `search`, `top`,
//! `recent`): what to ask Last.fm, the cache in front of it (with the
//! offline fallback to an expired reply), and the output.

use std::time::Duration;

use serde::de::DeserializeOwned;

use super::cache::{self, Cache};
use super::info;
use crate::config::Config;
use crate::model::PlayState;
use crate::output::{errln, out};
use crate::targets::ErrorKind;
use crate::targets::lastfm;
use crate::{http, mpd, session};

/// A command.
#[derive(Debug, Clone)]
pub(crate) enum Query {
    /// `artist [NAME]`.
    Artist {
        /// Artist; the one MPD plays when `None`.
        name: Option<String>,
        /// The whole biography.
        full: bool,
        /// Language of the biography (ISO 639-1).
        lang: Option<String>,
    },
    /// `album [ARTIST ALBUM]`.
    Album {
        /// Artist and album; MPD's current ones when `None`.
        which: Option<(String, String)>,
    },
    /// `search QUERY`.
    Search {
        /// What to look for.
        query: String,
        /// How many results.
        limit: u32,
    },
    /// `top artists|tracks`.
    Top {
        /// "artist" or "track".
        kind: &'static str,
        /// overall, 7day, 1month, 3month, 6month or 12month.
        period: String,
        /// How many.
        limit: u32,
        /// Whose; the stored session's user when `None`.
        user: Option<String>,
    },
    /// `recent`.
    Recent {
        /// How many.
        limit: u32,
        /// Whose; the stored session's user when `None`.
        user: Option<String>,
    },
}

/// Output and cache options.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Options {
    /// JSON instead of text.
    pub json: bool,
    /// Skip the cache.
    pub refresh: bool,
}

/// Why a command failed; the binary turns it into an exit status.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Not found, refused by the service, or unreachable (exit 1).
    #[error("{0}")]
    Failed(String),
    /// Usage or configuration (exit 2).
    #[error("{0}")]
    Usage(String),
}

/// Run `query` and print its result.
pub(crate) async fn run(config: &Config, query: Query, opts: Options) -> Result<(), QueryError> {
    let target = config.lastfm.first().ok_or_else(|| {
        QueryError::Usage(format!(
            "{}: these commands read from Last.fm and need a [lastfm] section with api_key",
            config.path.display()
        ))
    })?;
    let timeout = config
        .delivery
        .request_timeout
        .min(http::INTERACTIVE_TIMEOUT);
    let http = http::interactive_client(config.delivery.request_timeout)
        .map_err(|e| QueryError::Failed(format!("cannot set up HTTP: {e}")))?;
    let client = lastfm::Client::new(
        http,
        &target.url,
        &target.api_key,
        target.api_secret.expose(),
    );
    let reader = Reader {
        client: &client,
        timeout,
    };
    let cache = Cache::open(
        &config.state_dir,
        config.cache.ttl,
        config.cache.max_entries,
    );
    let user = |given: Option<String>| -> Result<String, QueryError> {
        if let Some(u) = given {
            return Ok(u);
        }
        session::load(&config.state_dir, &target.name)
            .ok()
            .flatten()
            .map(|s| s.user)
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                QueryError::Usage(
                    "no user: give --user NAME, or run `mpd-scrobbler auth lastfm` first".into(),
                )
            })
    };
    let width = terminal_width();
    let out = match query {
        Query::Artist { name, full, lang } => {
            let name = match name {
                Some(n) => n,
                None => current(config).await?.0,
            };
            let mut params = vec![("artist", name.clone()), ("autocorrect", "1".into())];
            if let Some(l) = lang {
                params.push(("lang", l));
            }
            let reply = fetch(&reader, &cache, "artist.getInfo", &params, opts, &name).await?;
            let a = info::artist(reply, full).ok_or_else(|| {
                QueryError::Failed(format!("Last.fm sent no artist for {name:?}"))
            })?;
            render(opts, &a, || info::render_artist(&a, width))
        }
        Query::Album { which } => {
            let (artist, album) = match which {
                Some(w) => w,
                None => {
                    let (artist, album) = current(config).await?;
                    let album = album.ok_or_else(|| {
                        QueryError::Failed("the current song has no album tag".into())
                    })?;
                    (artist, album)
                }
            };
            let params = [
                ("artist", artist.clone()),
                ("album", album.clone()),
                ("autocorrect", "1".into()),
            ];
            let what = format!("{artist} – {album}");
            let reply = fetch(&reader, &cache, "album.getInfo", &params, opts, &what).await?;
            let a = info::album(reply)
                .ok_or_else(|| QueryError::Failed(format!("Last.fm sent no album for {what:?}")))?;
            render(opts, &a, || info::render_album(&a))
        }
        Query::Search { query, limit } => {
            let params = [("artist", query.clone()), ("limit", limit.to_string())];
            let reply = fetch(&reader, &cache, "artist.search", &params, opts, &query).await?;
            let rows = info::search(reply);
            render(opts, &rows, || info::render_rows(&rows, "listeners"))
        }
        Query::Top {
            kind,
            period,
            limit,
            user: who,
        } => {
            let who = user(who)?;
            let method = if kind == "artist" {
                "user.getTopArtists"
            } else {
                "user.getTopTracks"
            };
            let params = [
                ("user", who.clone()),
                ("period", period),
                ("limit", limit.to_string()),
            ];
            let reply = fetch(&reader, &cache, method, &params, opts, &who).await?;
            let rows = info::top(reply, kind);
            render(opts, &rows, || info::render_rows(&rows, "plays"))
        }
        Query::Recent { limit, user: who } => {
            let who = user(who)?;
            let params = [("user", who.clone()), ("limit", limit.to_string())];
            let reply = fetch(&reader, &cache, "user.getRecentTracks", &params, opts, &who).await?;
            let tracks = info::recent(reply);
            render(opts, &tracks, || {
                info::render_recent(&tracks, crate::time::local_time)
            })
        }
    };
    out!("{out}");
    Ok(())
}

fn render<T: serde::Serialize>(opts: Options, value: &T, text: impl FnOnce() -> String) -> String {
    if opts.json {
        serde_json::to_string_pretty(value).expect("serialisable") + "\n"
    } else {
        text()
    }
}

/// The client and how long it waits, for the message when it gave up.
struct Reader<'a> {
    client: &'a lastfm::Client,
    timeout: std::time::Duration,
}

/// Ask Last.fm through the cache, and read the reply as `T`. A fresh entry
/// answers without a request; when Last.fm cannot be reached, an expired one
/// is shown with its age.
async fn fetch<T: DeserializeOwned>(
    reader: &Reader<'_>,
    cache: &Cache,
    method: &str,
    params: &[(&str, String)],
    opts: Options,
    what: &str,
) -> Result<T, QueryError> {
    let key = cache::key(method, params);
    let cached = match cache.get::<T>(&key) {
        Some(hit) if !hit.expired && !opts.refresh => {
            tracing::debug!("{method}: from the cache ({} s old)", hit.age.as_secs());
            return Ok(hit.body);
        }
        cached => cached,
    };
    match reader.client.read(method, params).await {
        Ok(body) => {
            let reply = crate::json::object(&body).ok_or_else(|| {
                let e = lastfm::Error::Malformed(format!("unreadable {method} reply"));
                QueryError::Failed(explain(&e, what, reader.timeout))
            })?;
            cache.put(&key, &body);
            Ok(reply)
        }
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::Transient | ErrorKind::Unknown | ErrorKind::RateLimited
            ) && cached.is_some() =>
        {
            let hit = cached.expect("checked");
            errln!(
                "Note: Last.fm cannot be reached ({e}); showing what it said {} ago.",
                age(hit.age)
            );
            Ok(hit.body)
        }
        Err(e) => Err(QueryError::Failed(explain(&e, what, reader.timeout))),
    }
}

/// A clear message for each error a read can get (docs/protocols.md, "Error codes").
fn explain(e: &lastfm::Error, what: &str, timeout: std::time::Duration) -> String {
    match e {
        lastfm::Error::Transport(t) if t.is_timeout() => format!(
            "Last.fm did not answer within {} s; gave up (try again later)",
            timeout.as_secs()
        ),
        lastfm::Error::Api { code: 6, message } => {
            format!("Last.fm knows nothing of {what:?} ({message})")
        }
        lastfm::Error::Api { code: 17, .. } => {
            format!("{what}'s listening history is private on Last.fm")
        }
        lastfm::Error::Api { code, .. } => match lastfm::Error::meaning(*code) {
            Some(meaning) if matches!(code, 10 | 26) => {
                format!("Last.fm: {meaning}; check api_key in the config")
            }
            Some(meaning) => format!("Last.fm: {meaning}"),
            None => format!("Last.fm: {e}"),
        },
        e => format!("Last.fm: {e}"),
    }
}

fn age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..120 => format!("{s} seconds"),
        120..7200 => format!("{} minutes", s / 60),
        7200..172_800 => format!("{} hours", s / 3600),
        _ => format!("{} days", s / 86400),
    }
}

/// Artist and album of the song MPD is playing.
async fn current(config: &Config) -> Result<(String, Option<String>), QueryError> {
    let client = mpd::connect(&config.mpd)
        .await
        .map_err(|e| QueryError::Failed(e.to_string()))?;
    let snap = client
        .snapshot()
        .await
        .map_err(|e| QueryError::Failed(e.to_string()))?;
    // Like `mpc current`: a stopped player has no current song to speak of.
    let song = snap
        .song
        .filter(|_| snap.state != PlayState::Stopped)
        .ok_or_else(|| QueryError::Failed("MPD is not playing anything; name one".into()))?;
    if song.track.artist.is_empty() {
        return Err(QueryError::Failed(format!(
            "the current song ({}) has no artist tag; name one",
            song.uri
        )));
    }
    Ok((song.track.artist, song.track.album))
}

fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(80)
}
