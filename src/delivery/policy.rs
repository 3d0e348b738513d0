//! The flusher's policy, without I/O: what each failure means for delivery
//! ([`Stop`]), what ends a pause ([`Fix`]), and how long to wait before
//! trying again (exponential backoff with jitter, a server's wait capped,
//! the daily limit's next UTC day).

use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, SystemTime};

use crate::config::Delivery;
use crate::http;
use crate::queue::QueueError;
use crate::targets::{ErrorKind, Failure};

/// Wait after a rate-limit answer that says nothing of how long to wait
/// (Last.fm error 29: at least a minute, docs/protocols.md, "Error codes").
pub(super) const RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);

/// What ends a pause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fix {
    /// New credentials (`mpd-scrobbler auth`); the daemon resumes by itself.
    Auth,
    /// A corrected config key, then a restart.
    Config(&'static str),
}

/// How a delivery attempt ended, when it did not simply succeed.
pub(super) enum Stop {
    /// Try again later; the server may have said when.
    Retry {
        rate_limited: bool,
        after: Option<Duration>,
        why: String,
    },
    Pause {
        why: String,
        fix: Fix,
    },
    DailyLimit,
    Queue(QueueError),
    Shutdown,
}

impl From<Failure> for Stop {
    /// The failures that stop delivery for a while; callers handle
    /// [`ErrorKind::Rejected`] themselves, item by item.
    fn from(e: Failure) -> Stop {
        match e.kind {
            ErrorKind::Auth => Stop::Pause {
                why: format!(
                    "the server refused the credentials ({})",
                    one_line(&e.message)
                ),
                fix: Fix::Auth,
            },
            ErrorKind::Config | ErrorKind::Unsupported | ErrorKind::Rejected => Stop::Pause {
                why: format!("the server refused the request ({})", one_line(&e.message)),
                fix: Fix::Config(e.setting),
            },
            kind => Stop::Retry {
                rate_limited: kind == ErrorKind::RateLimited,
                after: e.retry_after,
                why: e.message,
            },
        }
    }
}

impl Fix {
    /// What the user does, given the target's auth command and where it
    /// is configured.
    pub(super) fn text(self, auth: &str, config: &str) -> String {
        match self {
            Fix::Auth => format!("run `{auth}`"),
            Fix::Config(setting) => {
                format!("fix `{setting}` in {config} and restart mpd-scrobbler")
            }
        }
    }
}

/// The next wait of exponential backoff after `failures` failures in a
/// row (counted up here): `retry_min` doubled each time up to `retry_max`,
/// then [`jitter`]ed by `permille`.
pub(super) fn backoff(timing: &Delivery, failures: &mut u32, permille: u32) -> Duration {
    let exp = timing
        .retry_min
        .saturating_mul(1u32 << (*failures).min(16))
        .min(timing.retry_max);
    *failures = failures.saturating_add(1);
    jitter(exp, permille)
}

/// How long to wait before retrying: what the server asked for, capped at
/// [`http::MAX_SERVER_WAIT`] (then also a note for the log saying so), else
/// `backoff`, and at least a minute after a rate-limit answer.
pub(super) fn retry_wait(
    asked: Option<Duration>,
    rate_limited: bool,
    backoff: Duration,
) -> (Duration, Option<String>) {
    match asked {
        Some(asked) => {
            let (wait, capped) = http::cap_wait(asked);
            let note = capped.then(|| {
                format!(
                    "the server asks to wait {} s; waiting {} s instead, the most a server can ask for",
                    asked.as_secs(),
                    wait.as_secs()
                )
            });
            // A second more avoids landing exactly on the window's edge.
            (wait.saturating_add(Duration::from_secs(1)), note)
        }
        None if rate_limited => (backoff.max(RATE_LIMIT_WAIT), None),
        None => (backoff, None),
    }
}

/// Between 75% (`permille` 0) and 125% (`permille` 1000 or more) of `d`, so
/// many daemons behind one outage do not retry in lockstep. A `d` too long
/// to scale (a configured `retry_max` of centuries) is kept as is.
fn jitter(d: Duration, permille: u32) -> Duration {
    let r = f64::from(permille.min(1000));
    Duration::try_from_secs_f64(d.as_secs_f64() * (0.75 + r / 2000.0)).unwrap_or(d)
}

/// A random number from 0 to 1000 for [`jitter`].
pub(super) fn random_permille() -> u32 {
    let r = RandomState::new().hash_one(SystemTime::now()) % 1001;
    u32::try_from(r).unwrap_or(1000)
}

/// A server's message on one log line: a proxy's error page is HTML over
/// many lines.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// How long from `now` (Unix seconds) until a minute past the next UTC
/// midnight, when Last.fm's daily scrobble count starts again; the minute
/// allows for the server's clock being a little behind ours.
pub(super) fn until_next_utc_day(now: u64) -> Duration {
    let day = 24 * 3600;
    Duration::from_secs(day - now % day + 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_spans_75_to_125_percent() {
        let d = Duration::from_secs(100);
        assert_eq!(jitter(d, 0), Duration::from_secs(75));
        assert_eq!(jitter(d, 500), Duration::from_secs(100));
        assert_eq!(jitter(d, 1000), Duration::from_secs(125));
        assert_eq!(jitter(d, u32::MAX), Duration::from_secs(125), "clamped");
        assert_eq!(
            jitter(Duration::from_millis(200), 250),
            Duration::from_millis(175)
        );
    }

    #[test]
    fn random_permille_covers_its_range() {
        let draws: Vec<u32> = (0..2000).map(|_| random_permille()).collect();
        assert!(draws.iter().all(|r| *r <= 1000), "{draws:?}");
        // Not stuck on one value: 2000 draws from 1001 values.
        let distinct: std::collections::BTreeSet<_> = draws.iter().collect();
        assert!(distinct.len() > 100, "{} distinct values", distinct.len());
    }

    #[test]
    fn jitter_survives_absurd_durations() {
        // 125% of these does not fit in a Duration: no panic, kept as is.
        assert_eq!(jitter(Duration::MAX, 1000), Duration::MAX);
        assert_eq!(jitter(Duration::MAX, 0), Duration::MAX.mul_f64(0.75));
        let big = Duration::from_secs(u64::MAX);
        assert_eq!(jitter(big, 1000), big);
        assert_eq!(jitter(Duration::ZERO, 1000), Duration::ZERO);
    }

    #[test]
    fn a_server_asking_for_more_than_an_hour_gets_an_hour_and_the_log_says_so() {
        let backoff = Duration::from_secs(5);
        for asked in [
            Duration::from_secs(3601),
            Duration::from_secs(u64::MAX),
            Duration::MAX,
        ] {
            let (wait, note) = retry_wait(Some(asked), true, backoff);
            assert_eq!(wait, Duration::from_secs(3601), "{asked:?}");
            let note = note.expect("a capped wait is logged");
            assert!(
                note.contains(&format!("asks to wait {} s", asked.as_secs()))
                    && note.contains("waiting 3600 s instead"),
                "{note}"
            );
        }
        let (wait, note) = retry_wait(Some(Duration::from_secs(3600)), false, backoff);
        assert_eq!((wait, note), (Duration::from_secs(3601), None));
        let (wait, note) = retry_wait(Some(Duration::ZERO), true, backoff);
        assert_eq!((wait, note), (Duration::from_secs(1), None));
        assert_eq!(retry_wait(None, true, backoff), (RATE_LIMIT_WAIT, None));
        assert_eq!(retry_wait(None, false, backoff), (backoff, None));
    }

    fn failure(kind: ErrorKind, setting: &'static str) -> Failure {
        Failure {
            kind,
            message: "HTTP 404:\n<html>\n  Not Found</html>".into(),
            retry_after: None,
            setting,
        }
    }

    #[test]
    fn refusals_of_the_request_pause_with_the_config_fix() {
        for kind in [ErrorKind::Config, ErrorKind::Unsupported] {
            match Stop::from(failure(kind, "url")) {
                Stop::Pause { why, fix } => {
                    assert_eq!(fix, Fix::Config("url"), "{kind:?}");
                    assert!(why.contains("HTTP 404: <html> Not Found</html>"), "{why}");
                    assert!(!why.contains('\n'), "one log line: {why:?}");
                }
                _ => panic!("{kind:?} must pause"),
            }
        }
        assert!(matches!(
            Stop::from(failure(ErrorKind::Auth, "url")),
            Stop::Pause { fix: Fix::Auth, .. }
        ));
        assert!(matches!(
            Stop::from(failure(ErrorKind::Transient, "url")),
            Stop::Retry {
                rate_limited: false,
                ..
            }
        ));
    }

    #[test]
    fn the_fix_names_the_config_key_or_the_auth_command() {
        let (auth, config) = (
            "mpd-scrobbler auth lastfm",
            "[lastfm] of /etc/mpd-scrobbler.toml",
        );
        assert_eq!(
            Fix::Config("url").text(auth, config),
            "fix `url` in [lastfm] of /etc/mpd-scrobbler.toml and restart mpd-scrobbler"
        );
        assert_eq!(
            Fix::Auth.text(auth, config),
            "run `mpd-scrobbler auth lastfm`"
        );
    }

    #[test]
    fn backoff_doubles_from_retry_min_up_to_retry_max_with_jitter() {
        let timing = Delivery {
            retry_min: Duration::from_secs(2),
            retry_max: Duration::from_secs(60),
            request_timeout: Duration::from_secs(10),
        };
        let mut failures = 0;
        let waits: Vec<u64> = (0..8)
            .map(|_| backoff(&timing, &mut failures, 500).as_secs())
            .collect();
        assert_eq!(waits, [2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(failures, 8);
        let mut failures = 0;
        assert_eq!(
            backoff(&timing, &mut failures, 0),
            Duration::from_millis(1500)
        );
        let mut failures = u32::MAX;
        assert_eq!(
            backoff(&timing, &mut failures, 1000),
            Duration::from_secs(75)
        );
        assert_eq!(failures, u32::MAX, "saturates");
    }

    #[test]
    fn the_daily_limit_waits_until_a_minute_past_utc_midnight() {
        const DAY: u64 = 24 * 3600;
        // 2024-06-11 (a multiple of a day: midnight UTC) and around it.
        let midnight = 1_718_064_000;
        assert_eq!(midnight % DAY, 0);
        let wait = |now| until_next_utc_day(now).as_secs();
        assert_eq!(wait(midnight - 1), 61, "23:59:59");
        assert_eq!(wait(midnight), DAY + 60, "00:00:00 counts for the new day");
        assert_eq!(wait(midnight + 1), DAY + 59, "00:00:01");
        assert_eq!(wait(midnight + 12 * 3600), 12 * 3600 + 60, "noon");
        assert_eq!(wait(0), DAY + 60, "the epoch");
    }
}
