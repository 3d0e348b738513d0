//! systemd integration: the units in contrib/ pass `systemd-analyze verify`,
//! and the daemon speaks the notify protocol (Type=notify).

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use crate::common::daemon::{Daemon, TestDir, config_toml};
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
    dir.write_config(&config_toml(
        mpd.port(),
        &dir.state_dir(),
        &lastfm.url(),
        Some("sk"),
    ));
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut daemon = Daemon::spawn_env(&dir, &[("NOTIFY_SOCKET", socket_path.to_str().unwrap())]);
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).expect("a notification");
    assert_eq!(&buf[..n], b"READY=1\n", "{}", daemon.log());
    daemon.signal("TERM");
    let n = socket.recv(&mut buf).expect("a notification");
    assert_eq!(&buf[..n], b"STOPPING=1\n");
    assert!(daemon.sigterm().success());
}
