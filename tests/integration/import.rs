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
        stdout.ends_with(&format!(
            "Read 3 plays from {path} (2 malformed records skipped).\n\
             history: imported 3 plays (0 there already)\n\
             lastfm: queued 3 plays\n"
        )),
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
        again.contains("history: imported 0 plays (3 there already)\nlastfm: queued 0 plays\n"),
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
        again.contains("history: imported 0 plays (3 there already)\nlastfm: queued 0 plays\n"),
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

/// Issue 23, item 4: `import` says what went where, as `backfill` does: a
/// play older than 14 days goes into the history but not to Last.fm, and
/// the report says so instead of counting it as imported.
#[test]
fn import_reports_the_history_and_each_target_apart() {
    let dir = TestDir::new();
    dir.write_test_config(1, "http://127.0.0.1:1/2.0/", None);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let path = dir.path().join("two.journal");
    std::fs::write(
        &path,
        format!(
            "a = Recent\nt = One\ni = {}\no = P\n\na = Old\nt = Two\ni = {}\no = P\n",
            now - 3600,
            now - 20 * 86_400
        ),
    )
    .unwrap();
    let path = path.to_str().unwrap();
    let out = run_cli(&dir, &["import", "mpdscribble", path], None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert_eq!(
        stdout,
        format!(
            "Read 2 plays from {path}.\n\
             history: imported 2 plays (0 there already)\n\
             lastfm: queued 1 play; skipped 1 (older than 14 days, which Last.fm ignores)\n"
        )
    );
    assert_eq!(crate::common::daemon::queued(&dir, "lastfm", false), 1);
}

/// Issue 23, item 5: a file that is not a journal is refused whole (exit
/// 1, naming it); a ListenBrainz export with a bad time says the value is
/// bad rather than missing.
#[test]
fn a_file_that_is_not_a_journal_is_refused() {
    let dir = TestDir::new();
    dir.write_test_config(1, "http://127.0.0.1:1/2.0/", None);
    // Printable noise with the odd journal-like line, as random text has.
    let mut noise = String::new();
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for i in 0..200_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let c = (b'!' + (x % 90) as u8) as char;
        noise.push(c);
        if i % 61 == 0 {
            noise.push_str(if i % 6100 == 0 { "\na = b\n" } else { "\n" });
        }
    }
    let path = dir.path().join("noise.txt");
    std::fs::write(&path, noise).unwrap();
    let path = path.to_str().unwrap();
    let out = run_cli(&dir, &["import", "mpdscribble", path], None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("{path} is not an mpdscribble journal")),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
    assert_eq!(crate::common::daemon::queued(&dir, "lastfm", false), 0);

    let export = dir.path().join("listens.json");
    std::fs::write(
        &export,
        r#"[{"listened_at": "bad", "track_metadata": {"artist_name": "A", "track_name": "T"}}]"#,
    )
    .unwrap();
    let out = run_cli(
        &dir,
        &["import", "listenbrainz", export.to_str().unwrap()],
        None,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("listened_at \"bad\" is not a time") && !stderr.contains("no listened_at"),
        "{stderr}"
    );
}
