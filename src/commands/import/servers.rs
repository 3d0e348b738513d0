//! The two servers an import reads, and the command that runs one: the
//! target and user resolved from the config, the history opened for
//! writing (beside a running daemon: SQLite takes turns), and Ctrl-C
//! ending it between two pages.

use std::path::Path;

use super::{Fetched, ImportError, PageError, Pages, Seen, Window, pull, report};
use crate::commands::import::pacing::Trouble;
use crate::commands::import::progress::Progress;
use crate::config::Config;
use crate::output::out;
use crate::session;
use crate::store::history::HistoryDb;
use crate::targets::listenbrainz::{self, Flavor};
use crate::targets::{ErrorKind, lastfm};

/// Which kind of server to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// A `[lastfm]` target: Last.fm, Libre.fm, another Audioscrobbler 2.0 server.
    LastFm,
    /// A `[listenbrainz]` target, or listenbrainz.org when none is configured.
    ListenBrainz,
}

/// What to import.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub source: Source,
    /// The configured target's name (needed when there are several).
    pub target: Option<String>,
    /// Whose record (default: the user of the target's session).
    pub user: Option<String>,
    /// Only plays since then (Unix seconds).
    pub since: Option<u64>,
}

/// Runs an import to its end, or until Ctrl-C / SIGTERM.
///
/// # Errors
///
/// [`ImportError`]; whatever was stored stays, and the next run continues.
pub(crate) async fn run(config: &Config, request: Request) -> Result<(), ImportError> {
    let http = crate::http::interactive_client(config.delivery.request_timeout)
        .map_err(|e| ImportError::Refused(format!("cannot set up HTTP: {e}")))?;
    match request.source {
        Source::LastFm => {
            let t = config
                .lastfm_target(request.target.as_deref())
                .map_err(|e| ImportError::Usage(e.to_string()))?;
            let client = lastfm::Client::new(http, &t.url, &t.api_key, t.api_secret.expose());
            let user = match request.user {
                Some(u) => u,
                None => lastfm_user(config, t, &client).await?,
            };
            let key = format!("import lastfm {} {}", t.name, user.to_lowercase());
            let pages = LastFm {
                client,
                user,
                name: t.name.clone(),
                config: &config.path,
            };
            import(config, &pages, &key, Some(&t.name), request.since, &t.name).await
        }
        Source::ListenBrainz => {
            let user = request.user.ok_or_else(|| {
                ImportError::Usage("import listenbrainz from the API needs --user NAME".into())
            })?;
            // Reading listens needs no account: without a configured target
            // the import reads listenbrainz.org and marks no target.
            let (url, name, token) = if config.listenbrainz.is_empty() && request.target.is_none() {
                (listenbrainz::DEFAULT_URL.to_owned(), None, None)
            } else {
                let t = config
                    .listenbrainz_target(request.target.as_deref())
                    .map_err(|e| ImportError::Usage(e.to_string()))?;
                if t.flavor == Flavor::Maloja {
                    return Err(ImportError::Usage(format!(
                        "{}: target {:?} is a Maloja server, which has no listens to read back",
                        config.path.display(),
                        t.name
                    )));
                }
                let token = session::credential(&config.state_dir, &t.name, t.token.as_ref())
                    .ok()
                    .flatten();
                (t.url.clone(), Some(t.name.clone()), token)
            };
            let server = name.clone().unwrap_or_else(|| "listenbrainz.org".into());
            let key = format!(
                "import listenbrainz {} {user}",
                name.as_deref().unwrap_or(&url)
            );
            let pages = ListenBrainz {
                client: listenbrainz::Client::new(http, &url, Flavor::ListenBrainz),
                token: token.map(|t| t.expose().to_owned()),
                user,
                name: server.clone(),
            };
            import(
                config,
                &pages,
                &key,
                name.as_deref(),
                request.since,
                &server,
            )
            .await
        }
    }
}

async fn import<P: Pages>(
    config: &Config,
    pages: &P,
    key: &str,
    target: Option<&str>,
    since: Option<u64>,
    server: &str,
) -> Result<(), ImportError> {
    let mut db = HistoryDb::open_writer(&config.state_dir)?;
    let mut progress = Progress::new();
    let now = crate::model::unix_now();
    let summary = tokio::select! {
        r = pull(pages, &mut db, key, target, since, now, &mut progress) => r?,
        () = interrupted() => {
            progress.clear();
            return Err(ImportError::Interrupted);
        }
    };
    report(&summary, server, target);
    if summary.now_playing > 0 {
        out!("the track playing now is not a scrobble yet: skipped\n");
    }
    Ok(())
}

/// SIGINT or SIGTERM. Stores are synchronous, so a signal can only end the
/// import between two of them.
async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        // Without handlers the default action ends the process, which a
        // resumable import survives as well.
        _ => std::future::pending().await,
    }
}

/// The user of the target's stored session, else the one its session key
/// belongs to.
async fn lastfm_user(
    config: &Config,
    t: &crate::config::LastFmTarget,
    client: &lastfm::Client,
) -> Result<String, ImportError> {
    if let Ok(Some(s)) = session::load(&config.state_dir, &t.name)
        && !s.user.is_empty()
    {
        return Ok(s.user);
    }
    let no_user = || {
        ImportError::Usage(format!(
            "no user for {}: give --user NAME, or run `{}` first",
            t.name,
            config.auth_command(&t.name)
        ))
    };
    let key = session::credential(&config.state_dir, &t.name, t.session_key.as_ref())
        .ok()
        .flatten()
        .ok_or_else(no_user)?;
    client
        .session_user(key.expose())
        .await
        .map_err(|e| ImportError::Refused(format!("{}: cannot tell whose session: {e}", t.name)))
}

struct LastFm<'a> {
    client: lastfm::Client,
    user: String,
    name: String,
    config: &'a Path,
}

impl Pages for LastFm<'_> {
    async fn page(&self, w: Window) -> Result<Fetched, PageError> {
        // `from` excludes its second, so one before the window's start.
        let after = w.from.checked_sub(1);
        let page = w.page.unwrap_or(1);
        let p = self
            .client
            .recent_page(&self.user, after, w.before, page)
            .await
            .map_err(|e| self.error(e))?;
        let on_page = (p.plays.len() + p.unreadable) as u64;
        let short = on_page < u64::from(lastfm::PAGE_SIZE);
        let (last, left) = match w.page {
            // `totalPages` counts the window; a full page goes on whatever
            // it says.
            None => (
                p.total_pages <= 1 && short,
                p.total.map(|t| t.saturating_sub(on_page)),
            ),
            // Paging by number, `totalPages` counts the whole record.
            Some(page) => (
                short || u64::from(page) >= p.total_pages,
                p.total
                    .map(|t| t.saturating_sub(u64::from(page) * u64::from(lastfm::PAGE_SIZE))),
            ),
        };
        Ok(Fetched {
            seen: Seen {
                oldest: p.oldest,
                last,
            },
            left,
            unreadable: p.unreadable,
            now_playing: p.now_playing,
            user_oldest: None,
            plays: p.plays,
        })
    }

    fn by_number(&self) -> bool {
        true
    }
}

/// A refusal the import waits out and tries again, of either server;
/// `None` for one that ends it.
fn retry(
    name: &str,
    kind: ErrorKind,
    retry_after: Option<std::time::Duration>,
    e: &dyn std::fmt::Display,
) -> Option<PageError> {
    let trouble = match kind {
        ErrorKind::RateLimited => Trouble::RateLimited(retry_after),
        ErrorKind::Transient | ErrorKind::Unknown => Trouble::Transient(retry_after),
        _ => return None,
    };
    Some(PageError::Retry(trouble, format!("{name}: {e}")))
}

impl LastFm<'_> {
    fn error(&self, e: lastfm::Error) -> PageError {
        let (name, user) = (&self.name, &self.user);
        if let Some(retry) = retry(name, e.kind(), e.retry_after(), &e) {
            return retry;
        }
        match (e.kind(), &e) {
            (_, lastfm::Error::Api { code: 6, message }) => PageError::Fatal(ImportError::Refused(
                format!("{name}: no user {user:?} ({message})"),
            )),
            (_, lastfm::Error::Api { code: 17, .. }) => PageError::Fatal(ImportError::Refused(
                format!("{name}: the listening history of {user:?} is private"),
            )),
            (ErrorKind::Config, _) => PageError::Fatal(ImportError::Refused(format!(
                "{name}: {e}{}; check `{}` in {}",
                meaning(&e),
                e.setting(),
                self.config.display()
            ))),
            _ => PageError::Fatal(ImportError::Refused(format!("{name}: {e}{}", meaning(&e)))),
        }
    }
}

fn meaning(e: &lastfm::Error) -> String {
    match e {
        lastfm::Error::Api { code, .. } => lastfm::Error::meaning(*code)
            .map(|m| format!(" ({m})"))
            .unwrap_or_default(),
        _ => String::new(),
    }
}

struct ListenBrainz {
    client: listenbrainz::Client,
    token: Option<String>,
    user: String,
    name: String,
}

impl Pages for ListenBrainz {
    async fn page(&self, w: Window) -> Result<Fetched, PageError> {
        let p = self
            .client
            .listens_page(self.token.as_deref(), &self.user, w.before)
            .await
            .map_err(|e| self.error(e))?;
        Ok(Fetched {
            seen: Seen {
                oldest: p.oldest,
                last: p.count < listenbrainz::MIN_FULL_PAGE,
            },
            left: None,
            unreadable: p.unreadable,
            now_playing: false,
            user_oldest: p.user_oldest,
            plays: p.plays,
        })
    }

    fn by_number(&self) -> bool {
        false
    }
}

impl ListenBrainz {
    fn error(&self, e: listenbrainz::Error) -> PageError {
        let (name, user) = (&self.name, &self.user);
        if let Some(retry) = retry(name, e.kind(), e.retry_after(), &e) {
            return retry;
        }
        match (e.kind(), &e) {
            (_, listenbrainz::Error::Http { status: 404, .. }) => PageError::Fatal(
                ImportError::Refused(format!("{name}: no user {user:?} ({e})")),
            ),
            (ErrorKind::Auth, _) => PageError::Fatal(ImportError::Refused(format!(
                "{name}: the token was refused ({e}); run `mpd-scrobbler auth listenbrainz`"
            ))),
            _ => PageError::Fatal(ImportError::Refused(format!("{name}: {e}"))),
        }
    }
}
