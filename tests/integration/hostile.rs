//! The real daemon, with a backlog queued, against hostile answers: absurd
//! rate-limit and Retry-After headers, a 50 MiB body, HTML with HTTP 200, a
//! reply dripped a byte a second, a plain 404. The daemon must not crash,
//! must not hold the body in memory, must keep the queue (nothing set aside
//! for a misdirected request), and must deliver once the server behaves.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::common::daemon::{Daemon, TestDir, config_toml, run_cli, toml_str};
use crate::common::fake_lastfm::FakeLastFm;
use crate::common::fake_listenbrainz::{self, FakeListenBrainz};
use crate::common::hostile_server::{Answer, HostileServer, addr_of};

/// Scrobbles in the backlog.
const BACKLOG: usize = 5;
/// Peak resident memory the daemon may reach: a 50 MiB body held in memory
/// would go far over it.
const MAX_HWM_KIB: u64 = 64 * 1024;
const WAIT: Duration = Duration::from_secs(20);

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Queue `BACKLOG` recent scrobbles with no daemon running, from an
/// mpdscribble journal.
fn import_backlog(dir: &TestDir) {
    let start = now() - 5000;
    let mut journal = String::new();
    for i in 0..BACKLOG {
        journal.push_str(&format!(
            "a = Artist {i}\nt = Title {i}\ni = {}\nl = 200\n\n",
            start + 300 * i as u64
        ));
    }
    let path = dir.path().join("backlog.journal");
    std::fs::write(&path, journal).unwrap();
    let out = run_cli(
        dir,
        &["import", "mpdscribble", path.to_str().unwrap()],
        None,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(&format!(": queued {BACKLOG} plays\n")),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Items of `target` in the queue (or the rejected list), read with the
/// daemon stopped.
fn listed(dir: &TestDir, target: &str, rejected: bool) -> usize {
    let mut args = vec!["queue", "list", "--json"];
    if rejected {
        args.push("--rejected");
    }
    let out = run_cli(dir, &args, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["targets"][target].as_array().map_or(0, Vec::len)
}

fn assert_queue_intact(dir: &TestDir, target: &str) {
    assert_eq!(listed(dir, target, false), BACKLOG, "queue kept whole");
    assert_eq!(listed(dir, target, true), 0, "nothing set aside");
}

/// The daemon's peak resident set (VmHWM) in KiB.
fn peak_rss_kib(daemon: &Daemon) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.pid())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

/// Still running and within the memory bound; then SIGTERM ends it cleanly.
fn survives_and_stops_cleanly(daemon: &mut Daemon) {
    assert!(daemon.is_running(), "crashed:\n{}", daemon.log());
    let hwm = peak_rss_kib(daemon);
    assert!(hwm < MAX_HWM_KIB, "peak RSS {hwm} KiB\n{}", daemon.log());
    let status = daemon.sigterm();
    assert!(status.success(), "{status:?}\n{}", daemon.log());
    assert!(!daemon.log().contains("panicked"), "{}", daemon.log());
}

/// Config with one Last.fm-style target at `url`.
fn lastfm_config(dir: &TestDir, url: &str, sk: &str) {
    dir.write_test_config(1, url, Some(sk));
}

/// Config with one ListenBrainz target at `url`.
fn listenbrainz_config(dir: &TestDir, url: &str) {
    let base = config_toml(1, &dir.state_dir(), "http://unused", None);
    let without_lastfm = &base[..base.find("[lastfm]").unwrap()];
    dir.write_config(&format!(
        "{without_lastfm}[listenbrainz]\nurl = {}\ntoken = {}\n",
        toml_str(url),
        toml_str(fake_listenbrainz::TOKEN)
    ));
}

/// A Last.fm stand-in behind a hostile server answering `answer`, a config
/// pointing at the hostile one, and the backlog queued.
fn lastfm_rig(answer: Answer) -> (FakeLastFm, HostileServer, TestDir) {
    let lastfm = FakeLastFm::start();
    let hostile = HostileServer::start(answer);
    let dir = TestDir::new();
    let sk = lastfm.issue_session("alice");
    let url = hostile.url_for(&lastfm.url(), addr_of(&lastfm.url()));
    lastfm_config(&dir, &url, &sk);
    import_backlog(&dir);
    (lastfm, hostile, dir)
}

fn behave_lastfm(hostile: &HostileServer, lastfm: &FakeLastFm) {
    hostile.set(Answer::Relay(addr_of(&lastfm.url())));
}

fn delivered_to_lastfm(lastfm: &FakeLastFm, daemon: &Daemon) {
    let got = lastfm.wait_for_scrobbles(BACKLOG, WAIT);
    assert_eq!(got.len(), BACKLOG, "{}", daemon.log());
}

fn status_json(dir: &TestDir) -> Value {
    let out = run_cli(dir, &["status", "--json"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Wait for the target to be paused and check what `status` says of it.
fn assert_paused_for_config(dir: &TestDir, daemon: &Daemon, url: &str, status: &str) {
    assert!(
        daemon.wait_log("Delivery is paused", WAIT),
        "{}",
        daemon.log()
    );
    let log = daemon.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Delivery is paused"))
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(
        lines[0].contains(url) && lines[0].contains(status),
        "names the URL and the status: {}",
        lines[0]
    );
    let config = dir.config_path().display().to_string();
    let fix = "fix `url` in ";
    assert!(
        lines[0].contains(fix) && lines[0].contains(&config) && lines[0].contains("restart"),
        "{}",
        lines[0]
    );
    assert!(!lines[0].contains("mpd-scrobbler auth"), "{}", lines[0]);
    let v = status_json(dir);
    let t = &v["targets"][0];
    assert_eq!(t["state"], "paused", "{v}");
    assert_eq!(t["queued"], BACKLOG, "{v}");
    assert_eq!(t["rejected"], 0, "{v}");
    let shown_fix = t["fix"].as_str().unwrap();
    assert!(
        shown_fix.contains(fix) && shown_fix.contains(&config),
        "{v}"
    );
    assert!(t["why"].as_str().unwrap().contains(status), "{v}");
}

#[test]
fn a_lastfm_url_answering_404_or_html_pauses_with_nothing_set_aside() {
    let (lastfm, hostile, dir) = lastfm_rig(Answer::fixed(404, "text/plain", "Not Found", &[]));
    let url = hostile.url_for(&lastfm.url(), addr_of(&lastfm.url()));

    let mut daemon = Daemon::spawn(&dir);
    assert_paused_for_config(&dir, &daemon, &url, "HTTP 404");
    survives_and_stops_cleanly(&mut daemon);
    assert_eq!(hostile.hostile_count(), 1, "one request, then paused");
    assert_queue_intact(&dir, "lastfm");

    // A captive portal: HTML with HTTP 200.
    hostile.set(Answer::fixed(
        200,
        "text/html",
        "<html><body>\n<h1>Welcome</h1>\nSign in to the hotel Wi-Fi\n</body></html>",
        &[],
    ));
    let mut daemon = Daemon::spawn(&dir);
    assert_paused_for_config(&dir, &daemon, &url, "HTTP 200");
    survives_and_stops_cleanly(&mut daemon);
    assert_queue_intact(&dir, "lastfm");

    // The fix: a URL that answers properly, and a restart.
    behave_lastfm(&hostile, &lastfm);
    let mut daemon = Daemon::spawn(&dir);
    delivered_to_lastfm(&lastfm, &daemon);
    survives_and_stops_cleanly(&mut daemon);
    assert_eq!(listed(&dir, "lastfm", false), 0);
    assert_eq!(listed(&dir, "lastfm", true), 0);
}

#[test]
fn a_listenbrainz_url_answering_html_or_405_pauses_and_keeps_every_listen() {
    let lb = FakeListenBrainz::start();
    let upstream = addr_of(&lb.url());
    let hostile = HostileServer::start(Answer::fixed(
        200,
        "text/html",
        "<html>Sign in to the hotel Wi-Fi</html>",
        &[],
    ));
    let dir = TestDir::new();
    let url = hostile.url_for(&lb.url(), upstream);
    listenbrainz_config(&dir, &url);
    import_backlog(&dir);

    // A 200 that is not the API's answer once counted as delivered.
    let mut daemon = Daemon::spawn(&dir);
    assert_paused_for_config(&dir, &daemon, &url, "HTTP 200");
    survives_and_stops_cleanly(&mut daemon);
    assert_queue_intact(&dir, "listenbrainz");

    hostile.set(Answer::fixed(405, "text/html", "Method Not Allowed", &[]));
    let mut daemon = Daemon::spawn(&dir);
    assert_paused_for_config(&dir, &daemon, &url, "HTTP 405");
    survives_and_stops_cleanly(&mut daemon);
    assert_queue_intact(&dir, "listenbrainz");

    hostile.set(Answer::Relay(upstream));
    let mut daemon = Daemon::spawn(&dir);
    let start = Instant::now();
    while lb.listens().len() < BACKLOG && start.elapsed() < WAIT {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(lb.listens().len(), BACKLOG, "{}", daemon.log());
    survives_and_stops_cleanly(&mut daemon);
}

#[test]
fn an_endless_rate_limit_window_waits_an_hour_and_sigterm_still_ends_it() {
    let lb = FakeListenBrainz::start();
    let upstream = addr_of(&lb.url());
    let hostile = HostileServer::start(Answer::fixed(
        429,
        "application/json",
        r#"{"code":429,"error":"Too many requests"}"#,
        &[
            ("X-RateLimit-Remaining", "0"),
            ("X-RateLimit-Reset-In", "18446744073709551615"),
            ("Retry-After", "18446744073709551615"),
        ],
    ));
    let dir = TestDir::new();
    listenbrainz_config(&dir, &hostile.url_for(&lb.url(), upstream));
    import_backlog(&dir);

    let mut daemon = Daemon::spawn(&dir);
    assert!(
        daemon.wait_log("waiting 3600 s instead", WAIT),
        "{}",
        daemon.log()
    );
    let log = daemon.log();
    assert!(log.contains("asks to wait 18446744073709551615 s"), "{log}");
    assert!(log.contains("(X-RateLimit-Reset-In)"), "{log}");
    let v = status_json(&dir);
    let t = &v["targets"][0];
    assert_eq!(t["state"], "retrying", "{v}");
    let retry_at = t["retry_at"].as_u64().unwrap();
    let ahead = retry_at.saturating_sub(now());
    assert!((3000..=3700).contains(&ahead), "{ahead} s ahead: {v}");
    // A flush request cannot make it send inside the window the server set.
    daemon.signal("USR1");
    assert!(
        daemon.wait_log("rate-limit window", WAIT),
        "{}",
        daemon.log()
    );
    assert_eq!(hostile.hostile_count(), 1, "{}", daemon.log());
    survives_and_stops_cleanly(&mut daemon);
    assert_queue_intact(&dir, "listenbrainz");

    hostile.set(Answer::Relay(upstream));
    let mut daemon = Daemon::spawn(&dir);
    let start = Instant::now();
    while lb.listens().len() < BACKLOG && start.elapsed() < WAIT {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(lb.listens().len(), BACKLOG, "{}", daemon.log());
    survives_and_stops_cleanly(&mut daemon);
}

#[test]
fn retry_after_huge_negative_dated_or_garbage_is_survived() {
    let (lastfm, hostile, dir) = lastfm_rig(Answer::fixed(503, "text/html", "busy", &[]));
    let mut daemon = Daemon::spawn(&dir);
    // Up and delivering: its SIGUSR1 handler is in place.
    assert!(hostile.wait_hostile(1, WAIT), "{}", daemon.log());
    for value in [
        "18446744073709551615",
        "-5",
        "Wed, 01 Jan 3000 00:00:00 GMT",
        "Fri, 31 Dec 9999 23:59:59 GMT",
        "99999999999999999999999",
        "soon",
    ] {
        let seen = hostile.hostile_count();
        hostile.set(Answer::fixed(
            503,
            "text/html",
            "busy",
            &[("Retry-After", value)],
        ));
        // Cut any wait short: the next attempt gets this answer.
        daemon.signal("USR1");
        assert!(
            hostile.wait_hostile(seen + 1, WAIT),
            "{value}: {}",
            daemon.log()
        );
        assert!(daemon.is_running(), "{value}: {}", daemon.log());
    }
    let log = daemon.log();
    assert!(
        log.contains("the server asks to wait 18446744073709551615 s; waiting 3600 s instead"),
        "{log}"
    );
    behave_lastfm(&hostile, &lastfm);
    daemon.signal("USR1");
    delivered_to_lastfm(&lastfm, &daemon);
    survives_and_stops_cleanly(&mut daemon);
    assert_eq!(listed(&dir, "lastfm", true), 0);
}

#[test]
fn a_50_mib_body_is_refused_without_being_held_in_memory() {
    let (lastfm, hostile, dir) = lastfm_rig(Answer::Huge { bytes: 50 << 20 });
    let mut daemon = Daemon::spawn(&dir);
    assert!(hostile.wait_hostile(2, WAIT), "{}", daemon.log());
    assert!(
        daemon.wait_log("larger than 1024 KiB", WAIT),
        "{}",
        daemon.log()
    );
    assert!(daemon.is_running(), "{}", daemon.log());
    let hwm = peak_rss_kib(&daemon);
    assert!(hwm < MAX_HWM_KIB, "peak RSS {hwm} KiB");
    survives_and_stops_cleanly(&mut daemon);
    assert_queue_intact(&dir, "lastfm");

    behave_lastfm(&hostile, &lastfm);
    let mut daemon = Daemon::spawn(&dir);
    delivered_to_lastfm(&lastfm, &daemon);
    survives_and_stops_cleanly(&mut daemon);
}

#[test]
fn a_drip_fed_reply_ends_with_the_request_timeout() {
    // request_timeout is 5 s in the test config; the reply would take 115 s.
    let (lastfm, hostile, dir) = lastfm_rig(Answer::Drip {
        every: Duration::from_secs(1),
    });
    let mut daemon = Daemon::spawn(&dir);
    let start = Instant::now();
    assert!(hostile.wait_hostile(1, WAIT), "{}", daemon.log());
    assert!(
        daemon.wait_log("retrying in", Duration::from_secs(60)),
        "{}",
        daemon.log()
    );
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "the drip was not cut off by the request timeout"
    );
    assert!(daemon.log().contains("timed out"), "{}", daemon.log());
    behave_lastfm(&hostile, &lastfm);
    daemon.signal("USR1");
    delivered_to_lastfm(&lastfm, &daemon);
    survives_and_stops_cleanly(&mut daemon);
    assert_eq!(listed(&dir, "lastfm", true), 0);
}
