//! Where an import from a server stands, without I/O: what of the server's
//! record is in the history already, the window being read, and how a page
//! moves it on (docs/design.md, "Importing a server's record").
//!
//! Both servers page newest first, so a window [from, upper) is read from
//! its top down: after each page, everything in [before, upper) is in the
//! history and the next page asks for what started before `before`. The
//! cursor goes into the history in the same transaction as the page's
//! plays, so after a crash the import resumes at the page it had not
//! stored. A finished window joins `covered`, the span known complete; a
//! later run reads [covered's end, now) and, for an earlier `--since`,
//! [since, covered's start).

use std::fmt;

/// How far back from the covered span's end a later run reads again:
/// a play reaches the server after it started (at half the track, or
/// later from a scrobbler's offline queue), so plays that started just
/// before the last run can have arrived after it. The history recognises
/// the ones it has.
pub(crate) const OVERLAP: u64 = 3600;

/// Where an import stands; stored as text (its [`fmt::Display`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Cursor {
    /// Plays that started in [start, end) are all in the history.
    pub covered: Option<(u64, u64)>,
    /// The window being read, when a run stopped before its end.
    pub window: Option<Window>,
}

/// A span of start times being read newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    /// Its lower bound (included).
    pub from: u64,
    /// Everything in [before, upper) is in the history; the next page asks
    /// for plays that started before this.
    pub before: u64,
    /// Its upper bound (excluded).
    pub upper: u64,
    /// The next page by number, for a server that ignores the time bounds
    /// (GNU FM, so Libre.fm, pages only by offset from the newest); `None`
    /// while the bounds do the paging.
    pub page: Option<u32>,
}

/// What a page says of the window it was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seen {
    /// The oldest start time on the page (its plays are newest first).
    pub oldest: Option<u64>,
    /// Whether the server said this is the window's last page.
    pub last: bool,
}

/// A stored cursor that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("unreadable import cursor {0:?} (expected `covered=A..B` and/or `window=A..B..C`)")]
pub(crate) struct BadCursor(String);

impl Cursor {
    /// The next window to read: the stopped one; else what started since
    /// the covered span's end (less [`OVERLAP`]) up to `now` (included);
    /// else what started
    /// from `since` (0: the beginning) up to the covered span's start.
    /// `None` when nothing is left.
    pub(crate) fn next_window(&self, since: Option<u64>, now: u64) -> Option<Window> {
        if let Some(w) = self.window {
            return Some(w);
        }
        let since = since.unwrap_or(0);
        let upper = now.saturating_add(1);
        let (from, upper) = match self.covered {
            None => (since, upper),
            Some((start, end)) if end < upper => {
                (end.saturating_sub(OVERLAP).max(start).max(since), upper)
            }
            Some((start, _)) if since < start => (since, start),
            Some(_) => return None,
        };
        (from < upper).then_some(Window {
            from,
            before: upper,
            upper,
            page: None,
        })
    }

    /// The cursor once the page read from `window` is stored.
    ///
    /// The next page asks for what started before the page's oldest play
    /// plus one second: plays of that second can straddle two pages, and
    /// the history drops the one seen twice. A page that would not move the
    /// window down (more than a page of plays in one second) moves it one
    /// second anyway, so an import always ends. Paging by number, the next
    /// page is the one after; new plays on top only push the record down,
    /// so a page read again costs duplicates, never a play missed.
    pub(crate) fn after_page(self, window: Window, seen: Seen) -> Cursor {
        let next = seen
            .oldest
            .filter(|_| !seen.last)
            .map(|oldest| match window.page {
                None => Window {
                    before: oldest
                        .saturating_add(1)
                        .min(window.before.saturating_sub(1)),
                    ..window
                },
                Some(page) => Window {
                    before: oldest.saturating_add(1).min(window.before),
                    page: Some(page.saturating_add(1)),
                    ..window
                },
            })
            .filter(|next| next.before > window.from);
        match next {
            Some(next) => Cursor {
                covered: self.covered,
                window: Some(next),
            },
            None => Cursor {
                covered: Some(match self.covered {
                    None => (window.from, window.upper),
                    Some((start, end)) => (start.min(window.from), end.max(window.upper)),
                }),
                window: None,
            },
        }
    }

    /// Reads a stored cursor.
    ///
    /// # Errors
    ///
    /// [`BadCursor`] for anything [`fmt::Display`] does not write.
    pub(crate) fn parse(s: &str) -> Result<Cursor, BadCursor> {
        let bad = || BadCursor(s.chars().take(100).collect());
        let mut cursor = Cursor::default();
        for part in s.split_whitespace() {
            let (key, value) = part.split_once('=').ok_or_else(bad)?;
            let (value, page) = match value.split_once('@') {
                Some((v, p)) => (v, Some(p.parse::<u32>().map_err(|_| bad())?)),
                None => (value, None),
            };
            let numbers = value
                .split("..")
                .map(str::parse::<u64>)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| bad())?;
            match (key, numbers.as_slice()) {
                ("covered", &[start, end])
                    if start <= end && cursor.covered.is_none() && page.is_none() =>
                {
                    cursor.covered = Some((start, end));
                }
                ("window", &[from, before, upper])
                    if from < before && before <= upper && cursor.window.is_none() =>
                {
                    cursor.window = Some(Window {
                        from,
                        before,
                        upper,
                        page,
                    });
                }
                _ => return Err(bad()),
            }
        }
        Ok(cursor)
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        if let Some((start, end)) = self.covered {
            write!(f, "covered={start}..{end}")?;
            sep = " ";
        }
        if let Some(w) = self.window {
            write!(f, "{sep}window={}..{}..{}", w.from, w.before, w.upper)?;
            if let Some(page) = w.page {
                write!(f, "@{page}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(from: u64, before: u64, upper: u64) -> Window {
        Window {
            from,
            before,
            upper,
            page: None,
        }
    }

    #[test]
    fn a_first_run_reads_everything_up_to_now() {
        let c = Cursor::default();
        assert_eq!(c.next_window(None, 1000), Some(window(0, 1001, 1001)));
        assert_eq!(
            c.next_window(Some(500), 1000),
            Some(window(500, 1001, 1001))
        );
        assert_eq!(c.next_window(Some(2000), 1000), None);
    }

    #[test]
    fn pages_move_the_window_down_then_it_joins_the_covered_span() {
        let w = window(100, 1001, 1001);
        let c = Cursor::default().after_page(
            w,
            Seen {
                oldest: Some(700),
                last: false,
            },
        );
        let w2 = window(100, 701, 1001);
        assert_eq!(c.window, Some(w2));
        assert_eq!(c.covered, None);
        // What a crash leaves is read back as it was written.
        assert_eq!(Cursor::parse(&c.to_string()).unwrap(), c);
        assert_eq!(c.next_window(None, 5000), Some(w2));
        let done = c.after_page(
            w2,
            Seen {
                oldest: Some(150),
                last: true,
            },
        );
        assert_eq!(done.window, None);
        assert_eq!(done.covered, Some((100, 1001)));
        assert_eq!(Cursor::parse(&done.to_string()).unwrap(), done);
        // An empty page, or one reaching below the window, ends it too.
        for oldest in [None, Some(90)] {
            let end = c.after_page(
                w2,
                Seen {
                    oldest,
                    last: false,
                },
            );
            assert_eq!(end.covered, Some((100, 1001)), "{oldest:?}");
        }
        // More plays may share the window's first second.
        let edge = c.after_page(
            w2,
            Seen {
                oldest: Some(100),
                last: false,
            },
        );
        assert_eq!(edge.window, Some(window(100, 101, 1001)));
    }

    #[test]
    fn a_later_run_reads_what_is_newer_then_what_since_adds_before() {
        let c = Cursor {
            covered: Some((100_000, 200_001)),
            window: None,
        };
        assert_eq!(
            c.next_window(None, 200_000),
            Some(window(0, 100_000, 100_000))
        );
        assert_eq!(c.next_window(Some(100_000), 200_000), None);
        assert_eq!(c.next_window(Some(150_000), 200_000), None);
        // The last hour before the covered end is read again.
        let newer = window(200_001 - OVERLAP, 300_001, 300_001);
        assert_eq!(c.next_window(Some(150_000), 300_000), Some(newer));
        assert_eq!(
            c.next_window(Some(250_000), 300_000),
            Some(window(250_000, 300_001, 300_001))
        );
        let c = c.after_page(
            newer,
            Seen {
                oldest: None,
                last: true,
            },
        );
        assert_eq!(c.covered, Some((100_000, 300_001)));
        let c = c.after_page(
            window(0, 100_000, 100_000),
            Seen {
                oldest: Some(3),
                last: true,
            },
        );
        assert_eq!(c.covered, Some((0, 300_001)));
        assert_eq!(c.next_window(None, 300_000), None);
        // A covered span shorter than the overlap is read from its start.
        let short = Cursor {
            covered: Some((100, 200)),
            window: None,
        };
        assert_eq!(short.next_window(None, 300), Some(window(100, 301, 301)));
    }

    #[test]
    fn a_page_of_one_second_still_moves_the_window() {
        let w = window(0, 501, 1001);
        let c = Cursor::default().after_page(
            w,
            Seen {
                oldest: Some(500),
                last: false,
            },
        );
        assert_eq!(c.window, Some(window(0, 500, 1001)));
        let c = Cursor::default().after_page(
            window(0, 1, 10),
            Seen {
                oldest: Some(0),
                last: false,
            },
        );
        assert_eq!(c.covered, Some((0, 10)));
    }

    #[test]
    fn a_server_that_ignores_the_bounds_is_paged_by_number() {
        let w = Window {
            page: Some(2),
            ..window(100, 1001, 1001)
        };
        let c = Cursor::default().after_page(
            w,
            Seen {
                oldest: Some(700),
                last: false,
            },
        );
        let next = Window {
            page: Some(3),
            ..window(100, 701, 1001)
        };
        assert_eq!(c.window, Some(next));
        assert_eq!(c.to_string(), "window=100..701..1001@3");
        assert_eq!(Cursor::parse(&c.to_string()).unwrap(), c);
        // New plays pushed the record down: the page held nothing older.
        let c = c.after_page(
            next,
            Seen {
                oldest: Some(800),
                last: false,
            },
        );
        assert_eq!(
            c.window,
            Some(Window {
                page: Some(4),
                ..next
            })
        );
        let c = c.after_page(
            Window {
                page: Some(4),
                ..next
            },
            Seen {
                oldest: Some(50),
                last: false,
            },
        );
        assert_eq!(c.covered, Some((100, 1001)));
    }

    #[test]
    fn damaged_cursors_are_errors() {
        assert_eq!(Cursor::parse("").unwrap(), Cursor::default());
        for s in [
            "covered",
            "covered=1",
            "covered=2..1",
            "covered=1..2 covered=1..2",
            "window=1..2",
            "window=5..2..9",
            "window=1..2..3..4",
            "x=1..2",
            "covered=-1..2",
            "covered=1..99999999999999999999999",
            "covered=1..2@3",
            "window=1..2..3@x",
            "window=1..2..3@",
        ] {
            assert!(Cursor::parse(s).is_err(), "{s}");
        }
    }
}
