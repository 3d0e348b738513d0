//! `import`. From a file: [`files`]. `import lastfm` and
//! `import listenbrainz --user`: a user's whole record
//! read back from the server's API, page by page, newest first, into the
//! local history as already delivered to that target (so it is never sent
//! there again, and not queued for any other target: that is `backfill`).
//!
//! [`cursor`] says where an import stands and is stored with each page's
//! plays in one transaction, so an import stopped at any moment resumes at
//! the page it had not stored; [`pacing`] keeps to 5 requests a second and
//! backs off after refusals; [`progress`] shows how far it got.

mod cursor;
mod files;
mod pacing;
mod progress;
mod servers;

use std::time::Instant;

use crate::history::same_play;
use crate::model::Listen;
use crate::output::{count, out};
use crate::store::history::{HistoryDb, HistoryError, ImportCount};
use cursor::{BadCursor, Cursor, Seen, Window};
pub(crate) use files::{import_journal, import_listenbrainz};
use pacing::{Pacing, Trouble};
use progress::Progress;
pub(crate) use servers::{Request, Source, run};

/// Why an import stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ImportError {
    /// The command line or the config does not say what to import.
    #[error("{0}")]
    Usage(String),
    /// The server refused in a way waiting does not fix.
    #[error("{0}")]
    Refused(String),
    /// The server kept failing; the import stopped where it was.
    #[error("{0}; stopped after repeated failures: run the same command again later to continue")]
    GaveUp(String),
    /// The history could not be read or written.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// The stored cursor is damaged.
    #[error("the history's import cursor {key:?}: {source}")]
    Cursor { key: String, source: BadCursor },
    /// Ctrl-C or SIGTERM.
    #[error("interrupted: run the same command again to continue where it stopped")]
    Interrupted,
}

/// Where the plays go: the history, through its writer.
pub(crate) trait Sink {
    /// The stored value of an import cursor.
    fn cursor(&self, key: &str) -> Result<Option<String>, HistoryError>;
    /// Stores `plays` as delivered to `target`, duplicates recognised,
    /// and the cursor (key, value) in the same synced transaction.
    fn store(
        &mut self,
        plays: &[Listen],
        target: Option<&str>,
        cursor: (&str, &str),
    ) -> Result<ImportCount, HistoryError>;
}

impl Sink for HistoryDb {
    fn cursor(&self, key: &str) -> Result<Option<String>, HistoryError> {
        HistoryDb::cursor(self, key)
    }

    fn store(
        &mut self,
        plays: &[Listen],
        target: Option<&str>,
        cursor: (&str, &str),
    ) -> Result<ImportCount, HistoryError> {
        self.import_delivered(plays, target, Some(cursor))
    }
}

/// One page as the import loop sees it.
#[derive(Debug, Default)]
pub(crate) struct Fetched {
    /// The plays on the page (any start time; the loop keeps the window's).
    pub plays: Vec<Listen>,
    /// What the page says of the window.
    pub seen: Seen,
    /// Entries that could not be read.
    pub unreadable: usize,
    /// Whether a now-playing entry was skipped.
    pub now_playing: bool,
    /// Plays left in the window below this page, when the server says.
    pub left: Option<u64>,
    /// The user's oldest play, when the server says.
    pub user_oldest: Option<u64>,
}

impl Default for Seen {
    fn default() -> Seen {
        Seen {
            oldest: None,
            last: true,
        }
    }
}

/// A failed page.
#[derive(Debug)]
pub(crate) enum PageError {
    /// Worth another try after a wait.
    Retry(Trouble, String),
    /// Not worth another try.
    Fatal(ImportError),
}

/// A server's record, page by page.
pub(crate) trait Pages {
    /// The page of plays that started in [window.from, window.before),
    /// newest first (plays outside it may come along).
    fn page(&self, window: Window) -> impl Future<Output = Result<Fetched, PageError>>;

    /// Whether the server takes a page number, to page a record whose
    /// time bounds it ignores.
    fn by_number(&self) -> bool;
}

/// What a run did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Summary {
    pub read: u64,
    pub added: u64,
    pub duplicates: u64,
    pub unreadable: u64,
    pub now_playing: u64,
}

/// Reads every window the cursor under `key` says is left, page by page,
/// into `sink`, each page with the cursor after it.
async fn pull<P: Pages, S: Sink>(
    pages: &P,
    sink: &mut S,
    key: &str,
    target: Option<&str>,
    since: Option<u64>,
    now: u64,
    progress: &mut Progress,
) -> Result<Summary, ImportError> {
    let stored = sink.cursor(key)?;
    let mut cursor = match stored {
        Some(s) => Cursor::parse(&s).map_err(|source| ImportError::Cursor {
            key: key.to_owned(),
            source,
        })?,
        None => Cursor::default(),
    };
    let mut pacing = Pacing::new();
    let mut summary = Summary::default();
    while let Some(mut window) = cursor.next_window(since, now) {
        let mut edge: Vec<Listen> = Vec::new();
        loop {
            tokio::time::sleep(pacing.wait(Instant::now())).await;
            pacing.sent(Instant::now());
            let mut fetched = match pages.page(window).await {
                Ok(f) => f,
                Err(PageError::Fatal(e)) => return Err(e),
                Err(PageError::Retry(trouble, why)) => match pacing.failed(trouble) {
                    Some(wait) => {
                        progress.note(&format!(
                            "{why}; trying again in {}",
                            humantime::format_duration(wait)
                        ));
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    None => return Err(ImportError::GaveUp(why)),
                },
            };
            pacing.succeeded();
            // Plays from above the bound asked for: the server ignores the
            // bounds, and only page numbers move through its record.
            if window.page.is_none() && fetched.plays.iter().any(|p| p.started_at >= window.before)
            {
                if !pages.by_number() {
                    return Err(ImportError::Refused(
                        "the server answers plays outside the time asked for; \
                         its record cannot be read page by page"
                            .into(),
                    ));
                }
                window.page = Some(1);
            }
            let in_window: Vec<Listen> = std::mem::take(&mut fetched.plays)
                .into_iter()
                .filter(|p| (window.from..window.before).contains(&p.started_at))
                .collect();
            let oldest = in_window.iter().map(|p| p.started_at).min();
            let next_edge: Vec<Listen> = in_window
                .iter()
                .filter(|p| Some(p.started_at) == oldest)
                .cloned()
                .collect();
            // The plays of the second two pages share were stored with the
            // page before; the history would only count them again.
            let plays: Vec<Listen> = in_window
                .into_iter()
                .filter(|p| !edge.iter().any(|e| same_play(e, p)))
                .collect();
            edge = next_edge;
            let next = cursor.after_page(window, fetched.seen);
            let added = sink.store(&plays, target, (key, &next.to_string()))?;
            cursor = next;
            summary.read += plays.len() as u64;
            summary.added += added.added as u64;
            summary.duplicates += added.duplicates as u64;
            summary.unreadable += fetched.unreadable as u64;
            summary.now_playing += u64::from(fetched.now_playing);
            progress.update(summary.read, fraction(&summary, window, &fetched));
            match cursor.window {
                Some(w) => window = w,
                None => break,
            }
        }
    }
    progress.clear();
    Ok(summary)
}

/// The share of the work done: by count where the server says how many
/// are left, else by time from the user's oldest play.
fn fraction(summary: &Summary, window: Window, fetched: &Fetched) -> Option<f64> {
    if let Some(left) = fetched.left {
        let done = summary.read as f64;
        return Some(done / (done + left as f64).max(1.0));
    }
    let from = window.from.max(fetched.user_oldest?);
    let span = window.upper.checked_sub(from).filter(|s| *s > 0)? as f64;
    let below = fetched.seen.oldest.unwrap_or(from).max(from);
    Some((window.upper - below) as f64 / span)
}

/// The closing report.
fn report(summary: &Summary, server: &str, target: Option<&str>) {
    out!(
        "{server}: read {}; the history gained {} ({} there already)\n",
        count(summary.read, "play", "plays"),
        summary.added,
        summary.duplicates,
    );
    if let Some(target) = target {
        out!(
            "they count as delivered to {target}; other targets get them only through \
             `mpd-scrobbler backfill TARGET`\n"
        );
    }
    if summary.unreadable > 0 {
        out!(
            "{} without an artist or a title skipped\n",
            count(summary.unreadable, "entry", "entries")
        );
    }
}

#[cfg(test)]
mod tests;
