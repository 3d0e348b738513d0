use std::collections::BTreeMap;

use super::*;
use crate::control::{MpdLink, Storage, StorageState, TargetStatus};
use crate::store::HistorySummary;
use crate::target_state::{Deliveries, TargetState};

fn status() -> Status {
    Status {
        history: HistorySummary::Plays {
            plays: 12,
            first_started: Some(1),
        },
        mpd: MpdLink {
            address: "localhost:6600".into(),
            connected: true,
        },
        playing: None,
        plays_recorded: 3,
        storage: Storage {
            dir: "/var/lib/mpd-scrobbler".into(),
            dropped: 0,
            fix: None,
            held: 0,
            state: StorageState::Ok,
            why: None,
        },
        targets: vec![TargetStatus {
            deliveries: Deliveries {
                accepted: 2,
                ignored: 1,
                rejected: 0,
                failed: BTreeMap::from([("auth".to_owned(), 1)]),
            },
            last_success: Some(1_700_000_100),
            name: "last\"fm".into(),
            oldest_started: Some(1_700_000_000),
            oldest_secs: Some(60),
            queued: 1,
            rejected: 0,
            state: TargetState::Paused {
                why: "refused".into(),
                fix: "run auth".into(),
            },
        }],
    }
}

#[test]
fn the_figures_follow_the_status() {
    let text = metrics(&status());
    for line in [
        "mpd_scrobbler_plays_recorded_total 3",
        "mpd_scrobbler_plays_held 0",
        "mpd_scrobbler_mpd_connected 1",
        "mpd_scrobbler_history_plays 12",
        r#"mpd_scrobbler_queued_plays{target="last\"fm"} 1"#,
        r#"mpd_scrobbler_oldest_queued_timestamp_seconds{target="last\"fm"} 1700000000"#,
        r#"mpd_scrobbler_last_success_timestamp_seconds{target="last\"fm"} 1700000100"#,
        r#"mpd_scrobbler_target_state{target="last\"fm",state="paused"} 1"#,
        r#"mpd_scrobbler_target_state{target="last\"fm",state="ok"} 0"#,
        r#"mpd_scrobbler_deliveries_total{target="last\"fm",outcome="accepted",kind=""} 2"#,
        r#"mpd_scrobbler_deliveries_total{target="last\"fm",outcome="failed",kind="auth"} 1"#,
        r#"mpd_scrobbler_deliveries_total{target="last\"fm",outcome="failed",kind="transient"} 0"#,
        "# TYPE mpd_scrobbler_deliveries_total counter",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line} missing from:\n{text}"
        );
    }
    // Every sample belongs to the family declared just before it.
    let mut family = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            family = rest.split(' ').next().unwrap().to_owned();
        } else if !line.starts_with('#') {
            assert!(line.starts_with(&family), "{line} after {family}");
        }
    }
}

#[test]
fn health_names_what_is_wrong() {
    let mut s = status();
    assert_eq!(health(&s), Ok(()));
    s.mpd.connected = false;
    s.storage.state = StorageState::Full;
    s.storage.why = Some("No space left on device".into());
    let why = health(&s).unwrap_err().to_string();
    assert!(
        why.contains("MPD at localhost:6600 is not connected"),
        "{why}"
    );
    assert!(why.contains("No space left on device"), "{why}");
}

#[test]
fn only_get_on_the_two_paths_is_served() {
    let r = |s: &str| route(s.as_bytes());
    assert_eq!(
        r("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
        Asked::Metrics
    );
    assert_eq!(r("GET /health?x=1 HTTP/1.0\r\n\r\n"), Asked::Health);
    assert_eq!(
        r("POST /metrics HTTP/1.1\r\n\r\n"),
        Asked::Refused(405, "Method Not Allowed")
    );
    assert_eq!(
        r("GET /other HTTP/1.1\r\n\r\n"),
        Asked::Refused(404, "Not Found")
    );
    for bad in [
        "",
        "GET\r\n\r\n",
        "GET /metrics\r\n\r\n",
        "GET /metrics SPDY/3\r\n\r\n",
    ] {
        assert_eq!(r(bad), Asked::Refused(400, "Bad Request"), "{bad:?}");
    }
}
