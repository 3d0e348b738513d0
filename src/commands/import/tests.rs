use std::cell::RefCell;
use std::collections::BTreeMap;

use super::*;
use crate::model::Track;

/// A server's record: plays at the given start times, paged newest first
/// `size` to a page, failing as told.
struct Record {
    times: Vec<u64>,
    size: usize,
    asked: RefCell<Vec<Window>>,
    failures: RefCell<Vec<PageError>>,
    /// Ignore the time bounds and page by number, as GNU FM does.
    gnufm: bool,
}

impl Record {
    fn new(mut times: Vec<u64>, size: usize) -> Record {
        times.sort_unstable_by(|a, b| b.cmp(a));
        Record {
            times,
            size,
            asked: RefCell::default(),
            failures: RefCell::default(),
            gnufm: false,
        }
    }
}

fn play(at: u64) -> Listen {
    Listen {
        track: Track {
            artist: "A".into(),
            title: format!("T{at}"),
            ..Track::default()
        },
        started_at: at,
    }
}

impl Pages for Record {
    async fn page(&self, w: Window) -> Result<Fetched, PageError> {
        self.asked.borrow_mut().push(w);
        if let Some(e) = self.failures.borrow_mut().pop() {
            return Err(e);
        }
        if self.gnufm {
            let page = w.page.unwrap_or(1) as usize;
            let on_page: Vec<u64> = self
                .times
                .iter()
                .copied()
                .skip((page - 1) * self.size)
                .take(self.size)
                .collect();
            return Ok(Fetched {
                plays: on_page.iter().copied().map(play).collect(),
                seen: Seen {
                    oldest: on_page.last().copied(),
                    last: on_page.len() < self.size,
                },
                unreadable: 0,
                now_playing: false,
                left: None,
                user_oldest: None,
            });
        }
        let all: Vec<u64> = self
            .times
            .iter()
            .copied()
            .filter(|t| *t < w.before && *t >= w.from)
            .collect();
        let page: Vec<u64> = all.iter().copied().take(self.size).collect();
        Ok(Fetched {
            plays: page.iter().copied().map(play).collect(),
            seen: Seen {
                oldest: page.last().copied(),
                last: all.len() <= self.size,
            },
            unreadable: 0,
            now_playing: w.before == w.upper,
            left: Some((all.len() - page.len()) as u64),
            user_oldest: None,
        })
    }

    fn by_number(&self) -> bool {
        self.gnufm
    }
}

/// The history as the import sees it: plays by (time, title), the
/// delivered marks and the cursors; `fail_after` stores fail (a crash).
#[derive(Default)]
struct History {
    plays: BTreeMap<(u64, String), Option<String>>,
    cursors: BTreeMap<String, String>,
    stores: usize,
    fail_after: Option<usize>,
}

impl Sink for History {
    fn cursor(&self, key: &str) -> Result<Option<String>, HistoryError> {
        Ok(self.cursors.get(key).cloned())
    }

    fn store(
        &mut self,
        plays: &[Listen],
        target: Option<&str>,
        cursor: (&str, &str),
    ) -> Result<ImportCount, HistoryError> {
        if self.fail_after.is_some_and(|n| self.stores >= n) {
            return Err(HistoryError::Io {
                path: "history.sqlite".into(),
                source: std::io::Error::other("cut"),
            });
        }
        self.stores += 1;
        let mut count = ImportCount::default();
        for p in plays {
            let key = (p.started_at, p.track.title.clone());
            if self.plays.insert(key, target.map(str::to_owned)).is_some() {
                count.duplicates += 1;
            } else {
                count.added += 1;
            }
        }
        self.cursors.insert(cursor.0.into(), cursor.1.into());
        Ok(count)
    }
}

async fn import(
    record: &Record,
    history: &mut History,
    since: Option<u64>,
    now: u64,
) -> Result<Summary, ImportError> {
    let mut progress = Progress::new();
    pull(
        record,
        history,
        "k",
        Some("lastfm"),
        since,
        now,
        &mut progress,
    )
    .await
}

#[tokio::test(start_paused = true)]
async fn everything_lands_once_each_page_with_its_cursor() {
    let record = Record::new((1..=1000).map(|i| i * 10).collect(), 200);
    let mut history = History::default();
    let s = import(&record, &mut history, None, 20_000).await.unwrap();
    assert_eq!(s.added, 1000);
    assert_eq!(s.read, 1000);
    assert_eq!(s.now_playing, 1);
    assert_eq!(
        s.duplicates, 0,
        "the second two pages share is not stored twice"
    );
    assert_eq!(history.plays.len(), 1000);
    assert!(
        history
            .plays
            .values()
            .all(|t| t.as_deref() == Some("lastfm"))
    );
    assert_eq!(history.stores, 6);
    assert_eq!(history.cursors["k"], "covered=0..20001");
    // Each page asked below the oldest play of the one before (plus the
    // second it may share with the next).
    let befores: Vec<u64> = record.asked.borrow().iter().map(|w| w.before).collect();
    assert_eq!(befores, [20_001, 8_011, 6_021, 4_031, 2_041, 51]);
}

#[tokio::test(start_paused = true)]
async fn a_stopped_import_resumes_at_the_page_it_had_not_stored() {
    let record = Record::new((1..=1000).map(|i| i * 10).collect(), 200);
    let mut history = History {
        fail_after: Some(2),
        ..History::default()
    };
    assert!(matches!(
        import(&record, &mut history, None, 20_000).await,
        Err(ImportError::History(_))
    ));
    assert_eq!(history.plays.len(), 399);
    history.fail_after = None;
    record.asked.borrow_mut().clear();
    let s = import(&record, &mut history, None, 30_000).await.unwrap();
    assert_eq!(record.asked.borrow()[0].before, 6_021, "not from the top");
    assert_eq!(s.added, 601);
    // After a crash the page's shared second is read again: the history
    // recognises the play it has.
    assert_eq!(s.duplicates, 1);
    assert_eq!(history.plays.len(), 1000);
    // The stopped window ended at its own upper bound; the new seconds
    // since then are read next.
    assert_eq!(history.cursors["k"], "covered=0..30001");
}

#[tokio::test(start_paused = true)]
async fn a_later_run_reads_only_what_is_new() {
    let mut record = Record::new((1..=500).map(|i| i * 10).collect(), 200);
    let mut history = History::default();
    import(&record, &mut history, None, 5_000).await.unwrap();
    record = Record::new((1..=600).map(|i| i * 10).collect(), 200);
    let s = import(&record, &mut history, None, 6_000).await.unwrap();
    // The new plays, and the last hour before them again.
    assert_eq!(s.added, 100);
    assert_eq!(s.duplicates, 360);
    {
        let asked = record.asked.borrow();
        assert_eq!(asked.len(), 3);
        assert_eq!(
            (asked[0].from, asked[0].before),
            (5_001 - cursor::OVERLAP, 6_001)
        );
    }
    assert_eq!(history.plays.len(), 600);
    // An earlier --since then reads what it adds before the covered span.
    let s = import(&record, &mut history, Some(0), 6_000).await.unwrap();
    assert_eq!(s.read, 0);
    assert_eq!(record.asked.borrow().len(), 3, "nothing left to ask");
}

#[tokio::test(start_paused = true)]
async fn since_limits_the_first_run_and_plays_outside_the_window_are_dropped() {
    let record = Record::new((1..=100).map(|i| i * 10).collect(), 200);
    let mut history = History::default();
    let s = import(&record, &mut history, Some(505), 1_000)
        .await
        .unwrap();
    assert_eq!(s.added, 50);
    assert!(history.plays.keys().all(|(t, _)| *t >= 505));
}

#[tokio::test(start_paused = true)]
async fn a_rate_limit_is_waited_out_and_nothing_is_stored_twice() {
    let record = Record::new((1..=300).map(|i| i * 10).collect(), 200);
    record
        .failures
        .borrow_mut()
        .push(PageError::Retry(Trouble::RateLimited(None), "29".into()));
    let mut history = History::default();
    let start = tokio::time::Instant::now();
    let s = import(&record, &mut history, None, 5_000).await.unwrap();
    assert!(start.elapsed() >= std::time::Duration::from_secs(60));
    assert_eq!((s.added, s.duplicates), (300, 0));
    assert_eq!(record.asked.borrow().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_refusal_ends_the_import_and_repeated_failures_too() {
    let record = Record::new(vec![1, 2, 3], 200);
    record
        .failures
        .borrow_mut()
        .push(PageError::Fatal(ImportError::Refused("no user".into())));
    let mut history = History::default();
    assert!(matches!(
        import(&record, &mut history, None, 5_000).await,
        Err(ImportError::Refused(_))
    ));
    for _ in 0..20 {
        record.failures.borrow_mut().push(PageError::Retry(
            Trouble::Transient(None),
            "HTTP 503".into(),
        ));
    }
    assert!(matches!(
        import(&record, &mut history, None, 5_000).await,
        Err(ImportError::GaveUp(_))
    ));
    assert!(history.plays.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_server_that_ignores_the_bounds_is_read_by_page_number_and_resumed() {
    let mut record = Record::new((1..=1000).map(|i| i * 10).collect(), 200);
    record.gnufm = true;
    let mut history = History {
        fail_after: Some(3),
        ..History::default()
    };
    assert!(import(&record, &mut history, None, 20_000).await.is_err());
    // Page 1, then page 1 again (the bound ignored: paging by number
    // from then on), then page 2.
    assert_eq!(history.plays.len(), 400);
    assert_eq!(history.cursors["k"], "window=0..6011..20001@3");
    history.fail_after = None;
    let s = import(&record, &mut history, None, 20_000).await.unwrap();
    assert_eq!(s.added, 600);
    assert_eq!(history.plays.len(), 1000);
    let pages: Vec<Option<u32>> = record.asked.borrow().iter().map(|w| w.page).collect();
    assert_eq!(
        pages,
        [
            None,
            None,
            Some(2),
            Some(3),
            Some(3),
            Some(4),
            Some(5),
            Some(6)
        ],
        "the resumed run starts again at page 3, whose store failed"
    );
    assert_eq!(history.cursors["k"], "covered=0..20001");
    // A server without page numbers that ignores the bounds is an error,
    // not an endless loop.
    let mut record = Record::new((1..=1000).map(|i| i * 10).collect(), 200);
    record.gnufm = true;
    let mut no_pages = NoPages(record);
    no_pages.0.gnufm = true;
    let mut history = History::default();
    let e = import_with(&no_pages, &mut history).await.unwrap_err();
    assert!(matches!(e, ImportError::Refused(_)), "{e}");
}

/// A server like `Record` that takes no page numbers.
struct NoPages(Record);

impl Pages for NoPages {
    async fn page(&self, w: Window) -> Result<Fetched, PageError> {
        self.0.page(Window { page: None, ..w }).await
    }

    fn by_number(&self) -> bool {
        false
    }
}

async fn import_with<P: Pages>(pages: &P, history: &mut History) -> Result<Summary, ImportError> {
    let mut progress = Progress::new();
    pull(pages, history, "k", None, None, 20_000, &mut progress).await
}

#[test]
fn a_damaged_cursor_is_named() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let record = Record::new(vec![1], 200);
    let mut history = History::default();
    history.cursors.insert("k".into(), "covered=x".into());
    let e = rt
        .block_on(import(&record, &mut history, None, 5))
        .unwrap_err();
    assert!(e.to_string().contains("\"k\""), "{e}");
    assert!(e.to_string().contains("covered=x"), "{e}");
}
