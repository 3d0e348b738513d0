//! How fast an import asks, without I/O: at most 5 requests a second, and
//! backoff after a rate limit or a server failure (docs/protocols.md, "Read methods":
//! Last.fm wants 200 ms between calls and a minute after error 29). The
//! caller passes the clock in, so this is tested without sleeping.

use std::time::{Duration, Instant};

/// Least time between two requests (5 a second).
pub(crate) const MIN_GAP: Duration = Duration::from_millis(200);

/// First wait after a rate limit that says nothing of how long (error 29).
const RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);
/// First wait after a server failure (5xx, timeout, an unreadable reply).
const TRANSIENT_WAIT: Duration = Duration::from_secs(2);
/// Longest wait between attempts.
const MAX_WAIT: Duration = Duration::from_secs(15 * 60);
/// Failed attempts in a row after which the import stops (it resumes
/// where it stopped when run again).
const MAX_FAILURES: u32 = 6;

/// Why a request failed, for the backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trouble {
    /// The server said too many requests; maybe how long to wait.
    RateLimited(Option<Duration>),
    /// The server failed or did not answer; maybe how long to wait.
    Transient(Option<Duration>),
}

/// The pacing of one import's requests.
#[derive(Debug)]
pub(crate) struct Pacing {
    last_sent: Option<Instant>,
    failures: u32,
}

impl Pacing {
    pub(crate) fn new() -> Pacing {
        Pacing {
            last_sent: None,
            failures: 0,
        }
    }

    /// How long to wait at `now` before the next request may go out.
    pub(crate) fn wait(&self, now: Instant) -> Duration {
        self.last_sent.map_or(Duration::ZERO, |t| {
            (t + MIN_GAP).saturating_duration_since(now)
        })
    }

    /// A request went out at `now`.
    pub(crate) fn sent(&mut self, now: Instant) {
        self.last_sent = Some(now);
    }

    /// The last request succeeded.
    pub(crate) fn succeeded(&mut self) {
        self.failures = 0;
    }

    /// The last request failed: how long to wait before trying again, or
    /// `None` when it is time to give up. A wait the server names is
    /// honoured (capped at [`crate::http::MAX_SERVER_WAIT`]); otherwise the
    /// wait doubles from a minute after a rate limit (Last.fm's error 29
    /// says nothing of how long) and from 2 s after a server failure.
    pub(crate) fn failed(&mut self, trouble: Trouble) -> Option<Duration> {
        self.failures += 1;
        if self.failures > MAX_FAILURES {
            return None;
        }
        let (first, asked) = match trouble {
            Trouble::RateLimited(asked) => (RATE_LIMIT_WAIT, asked),
            Trouble::Transient(asked) => (TRANSIENT_WAIT, asked),
        };
        if let Some(asked) = asked {
            return Some(crate::http::cap_wait(asked).0.max(Duration::from_secs(1)));
        }
        Some(
            first
                .saturating_mul(1 << (self.failures - 1).min(16))
                .min(MAX_WAIT),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_five_requests_a_second() {
        let t0 = Instant::now();
        let mut p = Pacing::new();
        assert_eq!(p.wait(t0), Duration::ZERO);
        p.sent(t0);
        assert_eq!(p.wait(t0), MIN_GAP);
        assert_eq!(
            p.wait(t0 + Duration::from_millis(150)),
            Duration::from_millis(50)
        );
        assert_eq!(p.wait(t0 + Duration::from_secs(1)), Duration::ZERO);
        // Five requests as fast as allowed span at least 0.8 s.
        let mut now = t0;
        let mut p = Pacing::new();
        for _ in 0..5 {
            now += p.wait(now);
            p.sent(now);
        }
        assert_eq!(now - t0, Duration::from_millis(800));
    }

    #[test]
    fn a_rate_limit_waits_a_minute_then_longer() {
        let mut p = Pacing::new();
        let waits: Vec<_> = (0..6)
            .map(|_| p.failed(Trouble::RateLimited(None)).unwrap().as_secs())
            .collect();
        assert_eq!(waits, [60, 120, 240, 480, 900, 900]);
        p.succeeded();
        assert_eq!(
            p.failed(Trouble::RateLimited(None)),
            Some(Duration::from_secs(60))
        );
    }

    #[test]
    fn server_failures_back_off_and_a_named_wait_is_honoured() {
        let mut p = Pacing::new();
        assert_eq!(
            p.failed(Trouble::Transient(None)),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            p.failed(Trouble::Transient(None)),
            Some(Duration::from_secs(4))
        );
        assert_eq!(
            p.failed(Trouble::Transient(Some(Duration::from_secs(30)))),
            Some(Duration::from_secs(30))
        );
        // ListenBrainz says when its window opens again.
        assert_eq!(
            p.failed(Trouble::RateLimited(Some(Duration::from_secs(3)))),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            p.failed(Trouble::RateLimited(Some(Duration::ZERO))),
            Some(Duration::from_secs(1))
        );
        // A server cannot make the import wait for days.
        let mut p = Pacing::new();
        assert_eq!(
            p.failed(Trouble::RateLimited(Some(Duration::from_secs(1 << 40)))),
            Some(crate::http::MAX_SERVER_WAIT)
        );
    }

    #[test]
    fn the_import_gives_up_after_failures_in_a_row() {
        let mut p = Pacing::new();
        for _ in 0..MAX_FAILURES {
            assert!(p.failed(Trouble::Transient(None)).is_some());
        }
        assert_eq!(p.failed(Trouble::Transient(None)), None);
        p.succeeded();
        assert!(p.failed(Trouble::Transient(None)).is_some());
    }
}
