//! `mpd-scrobbler auth lastfm` against the stand-in Last.fm server.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::daemon::{TestDir, run_cli};
use crate::common::fake_lastfm::FakeLastFm;

fn setup() -> (FakeLastFm, TestDir) {
    let lastfm = FakeLastFm::start();
    lastfm.add_user("alice", "s3cret pässword");
    let dir = TestDir::new();
    // No daemon and no mpd are needed to authorise.
    dir.write_test_config(1, &lastfm.url(), None);
    (lastfm, dir)
}

fn stored_session(dir: &TestDir) -> (String, u32) {
    let path = dir.state_dir().join("lastfm.session");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    (std::fs::read_to_string(&path).unwrap(), mode)
}

#[test]
fn desktop_flow_waits_for_approval_and_stores_the_session() {
    let (lastfm, dir) = setup();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mpd-scrobbler"))
        .arg("-c")
        .arg(dir.config_path())
        .args(["auth", "lastfm"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let token = loop {
        if let Some(t) = lastfm.pending_tokens().into_iter().next() {
            break t;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no token requested"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // Not approved yet: the command keeps polling (error 14) instead of
    // failing. A second poll shows it went on after the first refusal.
    while lastfm.request_count("auth.getSession") < 2 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "gave up before approval"
        );
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no second poll"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "gave up before approval"
    );
    lastfm.approve_token(&token, "alice");
    let status = child.wait().unwrap();
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{stdout}{stderr}");
    let page = format!(
        "/api/auth/?api_key={}&token={token}",
        crate::common::fake_lastfm::API_KEY
    );
    assert!(
        stdout.contains(&page),
        "the approval page is printed: {stdout}"
    );
    assert!(stdout.contains("Authorised as alice"), "{stdout}");
    let (session, mode) = stored_session(&dir);
    assert_eq!(mode, 0o600);
    assert!(session.contains("alice"));
    let key = session
        .split('"')
        .nth(7)
        .expect("key in session file")
        .to_owned();
    assert!(
        !stdout.contains(&key) && !stderr.contains(&key),
        "session key printed"
    );
}

#[test]
fn mobile_flow_reads_the_password_from_stdin() {
    let (lastfm, dir) = setup();
    let out = run_cli(
        &dir,
        &["auth", "lastfm", "--username", "Alice"],
        Some("s3cret pässword\n"),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(!stdout.contains("s3cret") && !stderr.contains("s3cret"));
    let (session, mode) = stored_session(&dir);
    assert_eq!(mode, 0o600);
    assert!(session.contains("alice"), "{session}");
    assert_eq!(lastfm.request_count("auth.getMobileSession"), 1);
}

#[test]
fn wrong_password_is_a_clear_failure() {
    let (_lastfm, dir) = setup();
    let out = run_cli(
        &dir,
        &["auth", "lastfm", "--username", "alice"],
        Some("wrong\n"),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("alice"), "{stderr}");
    assert!(!dir.state_dir().join("lastfm.session").exists());
}

#[test]
fn completions_and_man_page_come_from_the_command_line_definition() {
    // No config at all: these must work before anything is set up.
    let dir = TestDir::new();
    for shell in ["bash", "zsh", "fish"] {
        let out = run_cli(&dir, &["completions", shell], None);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{shell}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for sub in ["queue", "listenbrainz", "recent"] {
            assert!(text.contains(sub), "{shell} completion lacks {sub}");
        }
    }
    let out = run_cli(&dir, &["manpage"], None);
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        page.contains(".TH mpd-scrobbler 1") && page.contains("status"),
        "{page}"
    );
}

/// Issue 23, item 13: an `auth` the server refuses for the API key (error
/// 10) or the secret (error 13) says which key of which file to check, as
/// `check` does.
#[test]
fn auth_failures_name_the_key_to_fix() {
    let (lastfm, dir) = setup();
    let config = std::fs::read_to_string(dir.config_path()).unwrap();
    let path = dir.config_path().display().to_string();
    for (from, to, key, code) in [
        (
            "0123456789abcdef0123456789abcdef",
            "00000000000000000000000000000000",
            "api_key",
            "10",
        ),
        (
            "fedcba9876543210fedcba9876543210",
            "11111111111111111111111111111111",
            "api_secret",
            "13",
        ),
    ] {
        dir.write_config(&config.replace(from, to));
        for args in [
            &["auth", "lastfm"][..],
            &["auth", "lastfm", "--username", "alice"],
        ] {
            let out = run_cli(&dir, args, Some("pw\n"));
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
            assert!(
                stderr.contains(&format!("check {key} in [lastfm] of {path}")),
                "{code} {args:?}: {stderr}"
            );
            assert!(!stderr.contains(to), "{stderr}");
        }
    }
    assert!(lastfm.request_count("auth.getToken") >= 2);
}
