//! What a target's delivery is doing, as `mpd-scrobbler status` shows it:
//! the state the flusher sets, shared by the daemon's reply and the
//! command's rendering.

use std::fmt;

use serde::{Deserialize, Serialize};

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
                write!(
                    f,
                    "retrying at {} ({why})",
                    crate::metadata::info::local_time(*at)
                )
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
}
