//! `mpd-scrobbler import mpdscribble` with a journal in mpdscribble's format.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::daemon::{Daemon, TestDir, run_cli};
use crate::common::fake_lastfm::FakeLastFm;

/// The fixture with recent start times (ISO for the second, as old
/// mpdscribble versions wrote), and those times.
fn journal(dir: &TestDir) -> (std::path::PathBuf, [u64; 3]) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let times = [now - 3000, now - 2000, now - 1000];
    let iso = jiff::Timestamp::from_second(times[1] as i64)
        .unwrap()
        .strftime("%Y-%m-%dT%H:%M:%S")
        .to_string();
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/mpdscribble/mpdscribble.journal"
    ))
    .unwrap()
    .replace("STARTED_AT_1", &times[0].to_string())
    .replace("STARTED_AT_2", &iso)
    .replace("STARTED_AT_3", &times[2].to_string());
    let path = dir.path().join("mpdscribble.journal");
    std::fs::write(&path, text).unwrap();
    (path, times)
}

#[test]
fn journal_is_imported_once_with_original_times_and_delivered_once() {
    let lastfm = FakeLastFm::start();
    let dir = TestDir::new();
    let sk = lastfm.issue_session("alice");
    dir.write_test_config(1, &lastfm.url(), Some(&sk));
    let (path, times) = journal(&dir);
    let path = path.to_str().unwrap();

    // No daemon: straight into the queue database.
    let out = run_cli(&dir, &["import", "mpdscribble", path], None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("Imported 3 scrobbles") && stdout.contains("2 malformed"),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!("{path}:20: skipped: no time (i)")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{path}:25: skipped: unreadable time")),
        "{stderr}"
    );
    // Again: nothing new.
    let out = run_cli(&dir, &["import", "mpdscribble", path], None);
    let again = String::from_utf8_lossy(&out.stdout);
    assert!(
        again.contains("Imported 0 scrobbles") && again.contains("(3 already queued"),
        "{again}"
    );

    let daemon = Daemon::spawn(&dir);
    let got = lastfm.wait_for_scrobbles(3, Duration::from_secs(10));
    assert_eq!(got.len(), 3, "{}", daemon.log());
    let mut seen: Vec<(String, u64)> = got.iter().map(|s| (s.track.clone(), s.timestamp)).collect();
    seen.sort_by_key(|(_, t)| *t);
    assert_eq!(
        seen,
        [
            ("Hoppípolla".to_string(), times[0]),
            ("T.N.T.".to_string(), times[1]),
            ("Rock & Roll = Life".to_string(), times[2]),
        ]
    );
    assert_eq!(got[0].album.as_deref(), Some("Takk..."));

    // With the daemon running the import goes through it, and the history
    // knows these plays were delivered: nothing is queued or sent again.
    let out = run_cli(&dir, &["import", "mpdscribble", path], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = String::from_utf8_lossy(&out.stdout);
    assert!(
        again.contains("Imported 0 scrobbles") && again.contains("(3 already queued or delivered"),
        "{again}"
    );
    let mut daemon = daemon;
    assert!(daemon.sigterm().success(), "{}", daemon.log());
    assert_eq!(lastfm.scrobbles().len(), 3);
    let out = run_cli(&dir, &["queue", "--json"], None);
    let queued: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        queued["targets"]["lastfm"],
        serde_json::json!([]),
        "{queued}"
    );
    let out = run_cli(&dir, &["history", "--json"], None);
    let plays: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        plays
            .iter()
            .map(|p| p["started_at"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        times
    );
    assert!(plays.iter().all(|p| p["delivered"]["lastfm"].is_u64()));
}

#[test]
fn a_missing_journal_is_named_in_the_error() {
    let dir = TestDir::new();
    dir.write_test_config(1, "http://127.0.0.1:1/2.0/", None);
    let out = run_cli(
        &dir,
        &["import", "mpdscribble", "/nonexistent/journal"],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/journal"));
}
