//! What a target's delivery is doing, as `mpd-scrobbler status` shows it:
//! the state the flusher sets, shared by the daemon's reply and the
//! command's rendering.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::targets::ErrorKind;

/// Whether a target delivers, waits to retry, or waits for the user.
///
/// In the status reply it is flattened into the target's object:
/// `{"state": "retrying", "retry_at": .., "why": ..}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub(crate) enum TargetState {
    /// Delivering, or nothing to deliver.
    #[default]
    Ok,
    /// A delivery failed; the next attempt is due at a known time.
    Retrying {
        /// When the next attempt is due (Unix seconds).
        #[serde(rename = "retry_at")]
        at: u64,
        /// What failed.
        why: String,
    },
    /// Delivery waits for the user: new credentials or a corrected config.
    Paused {
        /// What the server refused, or why there is no credential.
        why: String,
        /// What the user does about it: the auth command, or the config key
        /// to correct and where.
        fix: String,
    },
}

impl TargetState {
    /// Whether `other` is the same kind of state for the same reason, so
    /// that a retry after a retry is not news.
    pub(crate) fn same_as(&self, other: &TargetState) -> bool {
        match (self, other) {
            (TargetState::Ok, TargetState::Ok) => true,
            (TargetState::Retrying { why: a, .. }, TargetState::Retrying { why: b, .. }) => a == b,
            (a @ TargetState::Paused { .. }, b) => a == b,
            _ => false,
        }
    }

    /// Whether delivery waits for the user.
    pub(crate) fn is_paused(&self) -> bool {
        matches!(self, TargetState::Paused { .. })
    }
}

impl fmt::Display for TargetState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetState::Ok => f.write_str("ok"),
            TargetState::Retrying { at, why } => {
                write!(f, "retrying at {} ({why})", crate::time::local_time(*at))
            }
            TargetState::Paused { why, fix } => write!(f, "paused: {why}; fix: {fix}"),
        }
    }
}

/// A target's part of `status`, kept by its flusher.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Health {
    /// What delivery is doing.
    #[serde(flatten)]
    pub state: TargetState,
    /// Time of the last successful delivery (Unix seconds).
    pub last_success: Option<u64>,
}

/// How a target's deliveries ended since the daemon started: scrobbles
/// accepted, ignored (dropped by the server with a code) and rejected (set
/// aside), and requests that failed, by the kind of failure.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    accepted: AtomicU64,
    ignored: AtomicU64,
    rejected: AtomicU64,
    /// Indexed as [`FAILURE_KINDS`].
    failed: [AtomicU64; FAILURE_KINDS.len()],
}

/// The kinds of failed request counted, with their names in `status --json`
/// and the metrics.
pub(crate) const FAILURE_KINDS: [(ErrorKind, &str); 7] = [
    (ErrorKind::Transient, "transient"),
    (ErrorKind::Unknown, "unknown"),
    (ErrorKind::RateLimited, "rate_limited"),
    (ErrorKind::Auth, "auth"),
    (ErrorKind::Config, "config"),
    (ErrorKind::Unsupported, "unsupported"),
    (ErrorKind::Rejected, "rejected"),
];

/// A [`Tally`] read at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Deliveries {
    /// Scrobbles the server accepted.
    pub accepted: u64,
    /// Scrobbles the server ignored.
    pub ignored: u64,
    /// Scrobbles the server refused, set aside.
    pub rejected: u64,
    /// Failed requests by kind ([`FAILURE_KINDS`]' names); kinds that never
    /// failed are left out.
    pub failed: std::collections::BTreeMap<String, u64>,
}

impl Tally {
    pub(super) fn accepted(&self, n: usize) {
        self.accepted.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(super) fn ignored(&self) {
        self.ignored.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn failed(&self, kind: ErrorKind) {
        if let Some(i) = FAILURE_KINDS.iter().position(|(k, _)| *k == kind) {
            self.failed[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counts now.
    pub(crate) fn read(&self) -> Deliveries {
        Deliveries {
            accepted: self.accepted.load(Ordering::Relaxed),
            ignored: self.ignored.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            failed: FAILURE_KINDS
                .iter()
                .zip(&self.failed)
                .map(|((_, name), n)| ((*name).to_owned(), n.load(Ordering::Relaxed)))
                .filter(|(_, n)| *n > 0)
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_reply_keeps_its_keys_and_reads_back() {
        let cases = [
            (TargetState::Ok, serde_json::json!({"state": "ok"})),
            (
                TargetState::Retrying {
                    at: 1_700_000_000,
                    why: "HTTP 503".into(),
                },
                serde_json::json!({"state": "retrying", "retry_at": 1_700_000_000u64, "why": "HTTP 503"}),
            ),
            (
                TargetState::Paused {
                    why: "the server refused the request".into(),
                    fix: "fix `api_key` in [lastfm] of x.toml".into(),
                },
                serde_json::json!({"state": "paused", "why": "the server refused the request",
                    "fix": "fix `api_key` in [lastfm] of x.toml"}),
            ),
        ];
        for (state, mut expected) in cases {
            let health = Health {
                state: state.clone(),
                last_success: Some(5),
            };
            let mut v = serde_json::to_value(&health).unwrap();
            expected["last_success"] = 5.into();
            assert_eq!(v, expected);
            // The status command reads the state back from the target's
            // object, which holds more keys.
            v["queued"] = 3.into();
            v["name"] = "lastfm".into();
            assert_eq!(serde_json::from_value::<TargetState>(v).unwrap(), state);
        }
    }

    #[test]
    fn rendering_names_the_fix() {
        let paused = TargetState::Paused {
            why: "no credentials".into(),
            fix: "run `mpd-scrobbler auth lastfm`".into(),
        };
        assert_eq!(
            paused.to_string(),
            "paused: no credentials; fix: run `mpd-scrobbler auth lastfm`"
        );
        assert!(paused.is_paused());
        assert_eq!(TargetState::Ok.to_string(), "ok");
        let retrying = TargetState::Retrying {
            at: 0,
            why: "HTTP 503".into(),
        };
        assert!(retrying.to_string().starts_with("retrying at "));
        assert!(retrying.to_string().ends_with(" (HTTP 503)"));
        assert!(!retrying.is_paused());
    }

    #[test]
    fn the_tally_counts_by_outcome_and_kind() {
        let tally = Tally::default();
        tally.accepted(3);
        tally.ignored();
        tally.rejected();
        tally.failed(ErrorKind::Auth);
        tally.failed(ErrorKind::Auth);
        tally.failed(ErrorKind::Transient);
        let d = tally.read();
        assert_eq!((d.accepted, d.ignored, d.rejected), (3, 1, 1));
        assert_eq!(
            d.failed.into_iter().collect::<Vec<_>>(),
            [("auth".to_owned(), 2), ("transient".to_owned(), 1)]
        );
    }

    #[test]
    fn a_retry_for_the_same_reason_is_the_same_state() {
        let retry = |at, why: &str| TargetState::Retrying {
            at,
            why: why.into(),
        };
        assert!(retry(1, "HTTP 503").same_as(&retry(2, "HTTP 503")));
        assert!(!retry(1, "HTTP 503").same_as(&retry(1, "HTTP 502")));
        assert!(!TargetState::Ok.same_as(&retry(1, "x")));
    }
}
