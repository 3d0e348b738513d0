//! systemd integration: the units in contrib/ pass `systemd-analyze verify`,
//! and the daemon speaks the notify protocol (Type=notify).

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use crate::common::daemon::{Daemon, TestDir, run_cli};
use crate::common::fake_lastfm::FakeLastFm;
use crate::common::mpd::MpdServer;

/// Verify a unit with its ExecStart pointing at the built binary (verify
/// checks that the executable exists).
fn verify(unit: &str, installed_path: &str) {
    let dir = TestDir::new();
    let text = std::fs::read_to_string(format!("{}/contrib/{unit}", env!("CARGO_MANIFEST_DIR")))
        .unwrap()
        .replace(installed_path, env!("CARGO_BIN_EXE_mpd-scrobbler"));
    let path = dir.path().join("mpd-scrobbler.service");
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (apt-get install systemd)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // verify also complains about unrelated units of the host; only lines
    // about this unit matter, and any of them is a defect.
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("mpd-scrobbler.service"))
        .collect();
    assert!(out.status.success() && ours.is_empty(), "{unit}: {stderr}");
}

/// The daemon, started with NOTIFY_SOCKET pointing at a socket of the test's.
fn spawn_with_notify_socket(dir: &TestDir) -> (UnixDatagram, Daemon) {
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let daemon = Daemon::spawn_env(dir, &[("NOTIFY_SOCKET", path.to_str().unwrap())]);
    (socket, daemon)
}

/// The next sd_notify message; fails the test after 10 s.
fn notification(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).expect("a notification within 10 s");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn units_pass_systemd_analyze_verify() {
    verify(
        "system/mpd-scrobbler.service",
        "/usr/local/bin/mpd-scrobbler",
    );
    verify("mpd-scrobbler.service", "%h/.local/bin/mpd-scrobbler");
}

#[test]
fn notify_ready_after_the_first_mpd_sync_and_stopping_on_sigterm() {
    let mpd = MpdServer::start(&[]);
    let lastfm = FakeLastFm::start();
    lastfm.go_down();
    let dir = TestDir::new();
    dir.write_test_config(mpd.port(), &lastfm.url(), Some("sk"));
    let (socket, mut daemon) = spawn_with_notify_socket(&dir);
    assert_eq!(notification(&socket), "READY=1\n", "{}", daemon.log());
    daemon.signal("TERM");
    assert_eq!(notification(&socket), "STOPPING=1\n");
    assert!(daemon.sigterm().success());
}

/// Whether a log line holds an RFC 3339 timestamp, as the default format
/// writes it ("2026-11-25T09:17:30.837653Z"), coloured or not.
fn has_timestamp(line: &str) -> bool {
    line.as_bytes().windows(16).any(|w| {
        let digits = |r: std::ops::Range<usize>| w[r].iter().all(u8::is_ascii_digit);
        digits(0..4)
            && w[4] == b'-'
            && digits(5..7)
            && w[7] == b'-'
            && digits(8..10)
            && w[10] == b'T'
            && digits(11..13)
            && w[13] == b':'
            && digits(14..16)
    })
}

#[test]
fn journal_logs_carry_priorities_and_no_timestamps_or_colours() {
    let mpd = MpdServer::start(&[]);
    let lastfm = FakeLastFm::start();
    let dir = TestDir::new();
    // No session: the daemon warns that the target is not authorised.
    dir.write_test_config(mpd.port(), &lastfm.url(), None);
    // Colours forced, so that only the journal detection can turn them off.
    let force = [("CLICOLOR_FORCE", "1")];

    // Until it has connected, then stopped; what it logged.
    let log_of = |mut daemon: Daemon| {
        assert!(
            daemon.wait_log("connected to MPD", Duration::from_secs(10)),
            "{}",
            daemon.log()
        );
        assert!(daemon.sigterm().success());
        daemon.log()
    };

    let log = log_of(Daemon::spawn_env(&dir, &force));
    assert!(log.contains("\x1b["), "colours were forced: {log}");
    assert!(log.lines().any(has_timestamp), "{log}");

    let log = log_of(Daemon::spawn_journal(&dir, &force));
    assert!(
        !log.contains('\x1b'),
        "escape codes in the journal: {log:?}"
    );
    for line in log.lines() {
        assert!(!has_timestamp(line), "{line:?}");
        let priority = line.strip_prefix('<').and_then(|l| l.split_once('>'));
        assert!(
            matches!(priority, Some(("3" | "4" | "6" | "7", _))),
            "no priority prefix: {line:?}"
        );
    }
    assert!(
        log.lines()
            .any(|l| l.starts_with("<4>") && l.contains("not authorised yet")),
        "{log}"
    );
    assert!(log.lines().any(|l| l.starts_with("<6>")), "{log}");
    assert!(log.lines().any(|l| l.starts_with("<7>")), "{log}");
}

#[test]
fn started_before_mpd_and_the_network_it_is_ready_and_catches_up() {
    let mut mpd = MpdServer::start(&[crate::common::mpd::SongSpec::new(
        "a.flac",
        3,
        &[("ARTIST", "Early Artist"), ("TITLE", "Early Song")],
    )]);
    mpd.stop_server();
    let lastfm = FakeLastFm::start();
    let sk = lastfm.issue_session("alice");
    lastfm.go_down();
    let dir = TestDir::new();
    dir.write_test_config(mpd.port(), &lastfm.url(), Some(&sk));
    let (socket, mut daemon) = spawn_with_notify_socket(&dir);
    // Ready although nothing it needs is up: no start timeout, no crash loop.
    assert_eq!(notification(&socket), "READY=1\n", "{}", daemon.log());
    assert!(
        daemon.wait_log("retrying", Duration::from_secs(5)),
        "{}",
        daemon.log()
    );
    // Still up and answering, without MPD.
    let out = run_cli(&dir, &["status", "--json"], None);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert_eq!(
        status["mpd"]["connected"],
        false,
        "{status}\n{}",
        daemon.log()
    );
    assert!(daemon.is_running(), "{}", daemon.log());

    mpd.start_server();
    assert!(
        daemon.wait_log("connected to MPD", Duration::from_secs(40)),
        "{}",
        daemon.log()
    );
    mpd.play_file("a.flac");
    mpd.wait_state("stop", Duration::from_secs(15));
    lastfm.come_up();
    let got = lastfm.wait_for_scrobbles(1, Duration::from_secs(30));
    assert_eq!(got.len(), 1, "{}", daemon.log());
    assert_eq!(got[0].track, "Early Song");
    assert!(daemon.sigterm().success());
}
