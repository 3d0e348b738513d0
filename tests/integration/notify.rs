//! Notifications and the metrics endpoint end to end (issue 25): the real
//! daemon with a real mpd, the stand-in Last.fm, and a stand-in
//! ntfy/Gotify/webhook server.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::daemon::{Daemon, TestDir, config_toml, queued, run_cli, toml_str};
use crate::common::fake_lastfm::{Failure, FakeLastFm};
use crate::common::fake_notify::{FakeNotify, GOTIFY_TOKEN, Mode};
use crate::common::mpd::{MpdServer, SongSpec};

fn songs(n: usize, secs: u32) -> Vec<SongSpec> {
    (0..n)
        .map(|i| SongSpec {
            file: Box::leak(format!("short/{i}.flac").into_boxed_str()),
            secs,
            tags: vec![
                ("ARTIST", format!("Artist {i}")),
                ("TITLE", format!("Song {i}")),
                ("ALBUM", "Album".into()),
            ],
        })
        .collect()
}

/// Wait until `done` holds; fail with `what` after `limit`.
fn wait_until(limit: Duration, what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A loopback port free now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One GET (or `method`) to the endpoint: status and body.
fn request(addr: SocketAddr, method: &str, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    request(addr, "GET", path)
}

/// mpd, the stand-in Last.fm with user "alice", and a test directory with
/// its config (plus `extra`), the daemon started and following mpd.
struct Rig {
    mpd: MpdServer,
    lastfm: FakeLastFm,
    dir: TestDir,
    daemon: Daemon,
}

impl Rig {
    fn start(library: &[SongSpec], extra: impl FnOnce(&TestDir) -> String) -> Rig {
        let mpd = MpdServer::start(library);
        let lastfm = FakeLastFm::start();
        lastfm.add_user("alice", "s3cret pässword");
        let sk = lastfm.issue_session("alice");
        let dir = TestDir::new();
        let config = config_toml(mpd.port(), &dir.state_dir(), &lastfm.url(), Some(&sk));
        let extra = extra(&dir);
        dir.write_config(&format!("{config}{extra}"));
        let daemon = Daemon::spawn(&dir);
        assert!(
            daemon.wait_log("connected to MPD", Duration::from_secs(10)),
            "daemon did not connect:\n{}",
            daemon.log()
        );
        Rig {
            mpd,
            lastfm,
            dir,
            daemon,
        }
    }
}

#[test]
fn a_revoked_session_is_told_once_and_its_end_once_and_slow_sinks_delay_nothing() {
    let ok = FakeNotify::start(Mode::Ok);
    let failing = FakeNotify::start(Mode::Fail);
    let stuck = FakeNotify::start(Mode::Hang);
    let hook_secret = "hook-secret-0123";
    let ntfy_token = "tk_ntfy_secret_456";
    let rig = Rig::start(&songs(1, 4), |dir| {
        let token_file = dir.path().join("gotify-token");
        std::fs::write(&token_file, format!("{GOTIFY_TOKEN}\n")).unwrap();
        format!(
            r#"
[[notify]]
name = "phone"
kind = "ntfy"
url = {ntfy}
token = {ntfy_token}
[[notify]]
kind = "gotify"
url = {gotify}
token_file = {token_file}
[[notify]]
kind = "webhook"
url = {hook}
[[notify]]
name = "broken"
kind = "ntfy"
url = {broken}
[[notify]]
name = "stuck"
kind = "webhook"
url = {stuck}
"#,
            ntfy = toml_str(&format!("{}/alerts", ok.url())),
            ntfy_token = toml_str(ntfy_token),
            gotify = toml_str(&ok.url()),
            token_file = toml_str(&token_file.display().to_string()),
            hook = toml_str(&format!("{}/hook/{hook_secret}", ok.url())),
            broken = toml_str(&format!("{}/alerts", failing.url())),
            stuck = toml_str(&format!("{}/hook/x", stuck.url())),
        )
    });
    rig.lastfm.revoke_sessions("alice");
    rig.mpd.play_file("short/0.flac");
    let hook = format!("/hook/{hook_secret}");
    let paths = ["/alerts", "/message", hook.as_str()];
    wait_until(
        Duration::from_secs(20),
        "a paused message on each sink",
        || paths.iter().all(|p| ok.count(p, "paused") >= 1),
    );
    let received = ok.received();
    let ntfy = received.iter().find(|r| r.path == "/alerts").unwrap();
    assert_eq!(ntfy.token.as_deref(), Some(ntfy_token));
    assert!(
        ntfy.body.contains("lastfm: delivery is paused")
            && ntfy.body.contains("Fix: run `mpd-scrobbler auth lastfm`"),
        "{ntfy:?}"
    );
    let gotify = received.iter().find(|r| r.path == "/message").unwrap();
    assert_eq!(gotify.token.as_deref(), Some(GOTIFY_TOKEN));
    let webhook = received.iter().find(|r| r.path == hook).unwrap();
    let v: serde_json::Value = serde_json::from_str(&webhook.body).unwrap();
    assert_eq!(v["event"], "paused", "{v}");
    assert_eq!(v["target"], "lastfm", "{v}");
    assert!(
        v["fix"]
            .as_str()
            .unwrap()
            .contains("mpd-scrobbler auth lastfm"),
        "{v}"
    );
    assert!(v["since"].as_u64().unwrap() > 1_700_000_000, "{v}");
    assert!(!v["host"].as_str().unwrap().is_empty(), "{v}");

    let out = run_cli(
        &rig.dir,
        &["auth", "lastfm", "--username", "alice"],
        Some("s3cret pässword\n"),
    );
    assert!(out.status.success(), "{out:?}");
    // The stuck and the failing sink hold up no delivery.
    let got = rig.lastfm.wait_for_scrobbles(1, Duration::from_secs(10));
    assert_eq!(got.len(), 1, "{}", rig.daemon.log());
    wait_until(
        Duration::from_secs(20),
        "a recovered message on each sink",
        || paths.iter().all(|p| ok.count(p, "recovered") >= 1),
    );
    for p in paths {
        assert_eq!(ok.count(p, "paused"), 1, "{p}: {:?}", ok.received());
        assert_eq!(ok.count(p, "recovered"), 1, "{p}: {:?}", ok.received());
    }
    // The failing sink was tried, logged once, and its message retried.
    wait_until(
        Duration::from_secs(20),
        "a retry of the failing sink",
        || failing.received().len() >= 2,
    );
    let log = rig.daemon.log();
    assert_eq!(
        log.matches("notify broken: cannot deliver a message: the server answered HTTP 500")
            .count(),
        1,
        "{log}"
    );
    for secret in [hook_secret, ntfy_token, GOTIFY_TOKEN] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}

#[test]
fn a_command_sink_gets_its_environment_and_health_follows_mpd() {
    let scripts = tempfile::tempdir().unwrap();
    let record = scripts.path().join("record");
    let fail = scripts.path().join("fail");
    let out = scripts.path().join("out");
    std::fs::create_dir(&out).unwrap();
    write_script(
        &record,
        "n=$(ls \"$1\" | wc -l)\nenv | grep '^MPD_SCROBBLER_' | sort > \"$1/$n.tmp\"\nmv \"$1/$n.tmp\" \"$1/$n.env\"\n",
    );
    write_script(&fail, "echo run >> \"$1\"\nexit 3\n");
    let runs = scripts.path().join("fail-runs");
    let port = free_port();
    let mut rig = Rig::start(&songs(1, 4), |_| {
        format!(
            r#"
[[notify]]
name = "script"
kind = "command"
command = [{record}, {out}]
events = ["mpd_unreachable"]
mpd_after = "1s"
[[notify]]
name = "failing"
kind = "command"
command = [{fail}, {runs}]
mpd_after = "1s"
[metrics]
listen = "127.0.0.1:{port}"
"#,
            record = toml_str(&record.display().to_string()),
            out = toml_str(&out.display().to_string()),
            fail = toml_str(&fail.display().to_string()),
            runs = toml_str(&runs.display().to_string()),
        )
    });
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let health = || get(addr, "/health");
    wait_until(Duration::from_secs(10), "healthy", || {
        health().is_some_and(|(s, _)| s == 200)
    });
    assert_eq!(health().unwrap().1, "ok\n");

    rig.mpd.stop_server();
    wait_until(Duration::from_secs(20), "/health 503", || {
        health().is_some_and(|(s, _)| s == 503)
    });
    let (_, why) = health().unwrap();
    assert!(
        why.contains("MPD at 127.0.0.1:") && why.contains("not connected"),
        "{why}"
    );
    let env = |n: usize| std::fs::read_to_string(out.join(format!("{n}.env"))).ok();
    wait_until(Duration::from_secs(20), "the command ran", || {
        env(0).is_some()
    });
    let first = env(0).unwrap();
    for line in [
        "MPD_SCROBBLER_EVENT=mpd_unreachable",
        "MPD_SCROBBLER_PROBLEM=mpd_unreachable",
        "MPD_SCROBBLER_TARGET=",
        "MPD_SCROBBLER_FIX=start MPD, or correct `host` and `port` in [mpd]",
    ] {
        assert!(first.lines().any(|l| l == line), "{line} not in:\n{first}");
    }
    assert!(
        first.contains("MPD_SCROBBLER_MESSAGE=MPD at 127.0.0.1:"),
        "{first}"
    );
    assert!(first.contains("MPD_SCROBBLER_HOST="), "{first}");
    assert!(first.contains("MPD_SCROBBLER_SINCE="), "{first}");

    rig.mpd.start_server();
    wait_until(Duration::from_secs(40), "/health 200 again", || {
        health().is_some_and(|(s, _)| s == 200)
    });
    wait_until(
        Duration::from_secs(20),
        "the recovery ran the command",
        || env(1).is_some(),
    );
    assert!(
        env(1).unwrap().contains("MPD_SCROBBLER_EVENT=recovered"),
        "{:?}",
        env(1)
    );
    // The failing command: retried, logged once.
    wait_until(
        Duration::from_secs(30),
        "a retry of the failing command",
        || std::fs::read_to_string(&runs).is_ok_and(|r| r.lines().count() >= 2),
    );
    let log = rig.daemon.log();
    assert_eq!(
        log.matches("notify failing: cannot deliver a message")
            .count(),
        1,
        "{log}"
    );
    assert!(log.contains("exited with status 3"), "{log}");
    assert!(env(2).is_none(), "one message per change of state");
}

fn write_script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The value of the sample `series` (name and labels, as written).
fn sample(metrics: &str, series: &str) -> Option<u64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn metrics_follow_plays_and_failures_and_pass_promtool() {
    let port = free_port();
    let rig = Rig::start(&songs(2, 8), |_| {
        format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n")
    });
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // One play meets a server error and is retried; the next goes at once.
    rig.lastfm.set_failure(Some(Failure::Http(503)));
    rig.mpd.play_file("short/0.flac");
    assert!(
        rig.daemon.wait_log("retrying in", Duration::from_secs(15)),
        "{}",
        rig.daemon.log()
    );
    let (_, during) = get(addr, "/metrics").unwrap();
    assert_eq!(
        sample(
            &during,
            r#"mpd_scrobbler_target_state{target="lastfm",state="retrying"}"#
        ),
        Some(1),
        "{during}"
    );
    assert_eq!(
        sample(&during, r#"mpd_scrobbler_queued_plays{target="lastfm"}"#),
        Some(1)
    );
    assert!(
        sample(
            &during,
            r#"mpd_scrobbler_oldest_queued_timestamp_seconds{target="lastfm"}"#
        )
        .is_some_and(|t| t > 1_700_000_000),
        "{during}"
    );
    rig.lastfm.set_failure(None);
    assert_eq!(
        rig.lastfm
            .wait_for_scrobbles(1, Duration::from_secs(15))
            .len(),
        1
    );
    rig.mpd.play_file("short/1.flac");
    assert_eq!(
        rig.lastfm
            .wait_for_scrobbles(2, Duration::from_secs(20))
            .len(),
        2
    );
    wait_until(Duration::from_secs(10), "the queue is empty", || {
        get(addr, "/metrics").is_some_and(|(_, m)| {
            sample(&m, r#"mpd_scrobbler_queued_plays{target="lastfm"}"#) == Some(0)
        })
    });
    let (status, m) = get(addr, "/metrics").unwrap();
    assert_eq!(status, 200);
    let failed = rig.lastfm.request_count("track.scrobble") - 2;
    assert!(failed >= 1);
    for (series, value) in [
        ("mpd_scrobbler_plays_recorded_total", 2),
        ("mpd_scrobbler_plays_held", 0),
        ("mpd_scrobbler_storage_writable", 1),
        ("mpd_scrobbler_mpd_connected", 1),
        ("mpd_scrobbler_history_plays", 2),
        (
            r#"mpd_scrobbler_target_state{target="lastfm",state="ok"}"#,
            1,
        ),
        (
            r#"mpd_scrobbler_target_state{target="lastfm",state="retrying"}"#,
            0,
        ),
        (
            r#"mpd_scrobbler_deliveries_total{target="lastfm",outcome="accepted",kind=""}"#,
            2,
        ),
        (
            r#"mpd_scrobbler_deliveries_total{target="lastfm",outcome="rejected",kind=""}"#,
            0,
        ),
        (
            r#"mpd_scrobbler_deliveries_total{target="lastfm",outcome="failed",kind="transient"}"#,
            failed as u64,
        ),
        (
            r#"mpd_scrobbler_deliveries_total{target="lastfm",outcome="failed",kind="auth"}"#,
            0,
        ),
    ] {
        assert_eq!(sample(&m, series), Some(value), "{series} in:\n{m}");
    }
    assert!(
        sample(
            &m,
            r#"mpd_scrobbler_last_success_timestamp_seconds{target="lastfm"}"#
        )
        .is_some_and(|t| t > 1_700_000_000),
        "{m}"
    );
    assert!(m.contains("mpd_scrobbler_build_info{version=\""), "{m}");
    assert!(
        !m.contains("oldest_queued_timestamp_seconds{"),
        "no queue, no oldest: {m}"
    );
    // Prometheus's own checker (Debian's `prometheus` package).
    let promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .output_with_stdin(&m);
    assert!(
        promtool.status.success(),
        "promtool: {}{}\n{m}",
        String::from_utf8_lossy(&promtool.stdout),
        String::from_utf8_lossy(&promtool.stderr)
    );
    // status --json has the same figures.
    let out = run_cli(&rig.dir, &["status", "--json"], None);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["plays_recorded"], 2, "{v}");
    assert_eq!(v["targets"][0]["deliveries"]["accepted"], 2, "{v}");
    assert_eq!(
        v["targets"][0]["deliveries"]["failed"]["transient"], failed as u64,
        "{v}"
    );
    assert_eq!(queued(&rig.dir, "lastfm", false), 0);
}

trait OutputWithStdin {
    fn output_with_stdin(&mut self, input: &str) -> std::process::Output;
}

impl OutputWithStdin for std::process::Command {
    fn output_with_stdin(&mut self, input: &str) -> std::process::Output {
        let mut child = self
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("promtool (apt-get install prometheus)");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap()
}

#[test]
fn the_endpoint_answers_hostile_clients_without_harm() {
    let port = free_port();
    let mut rig = Rig::start(&songs(1, 4), |_| {
        format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n")
    });
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_until(Duration::from_secs(10), "serving", || {
        get(addr, "/health").is_some_and(|(s, _)| s == 200)
    });
    let rss_before = rss_kib(rig.daemon.pid());
    assert_eq!(request(addr, "POST", "/metrics").unwrap().0, 405);
    assert_eq!(get(addr, "/secret").unwrap().0, 404);
    // A request line far past the limit.
    let long = |head: String| {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // The server may stop reading and answer before all is sent.
        let _ = s.write_all(head.as_bytes());
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        text
    };
    let answer = long(format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(1 << 20)));
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer:?}");
    let answer = long(format!(
        "GET /metrics HTTP/1.1\r\n{}\r\n",
        "X-Pad: 0123456789012345678901234567890123456789\r\n".repeat(1000)
    ));
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer:?}");
    // A slow client is cut off; others are served meanwhile.
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(b"GET /met").unwrap();
    assert_eq!(get(addr, "/health").unwrap().0, 200);
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut text = String::new();
    let _ = slow.read_to_string(&mut text);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text:?}");
    // A thousand connections at once: the ones over the limit are closed.
    let flood: Vec<TcpStream> = (0..1000)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    assert!(flood.len() >= 900, "{} connected", flood.len());
    assert!(rig.daemon.is_running(), "{}", rig.daemon.log());
    drop(flood);
    wait_until(Duration::from_secs(20), "serving after the flood", || {
        get(addr, "/health").is_some_and(|(s, _)| s == 200)
    });
    let rss_after = rss_kib(rig.daemon.pid());
    assert!(
        rss_after < rss_before + 8 * 1024,
        "RSS grew from {rss_before} to {rss_after} KiB"
    );
    // Scrobbling went on.
    rig.mpd.play_file("short/0.flac");
    assert_eq!(
        rig.lastfm
            .wait_for_scrobbles(1, Duration::from_secs(15))
            .len(),
        1
    );
}

#[test]
fn notify_test_sends_through_each_sink_and_names_the_failures() {
    let ok = FakeNotify::start(Mode::Ok);
    let failing = FakeNotify::start(Mode::Fail);
    let dir = TestDir::new();
    dir.write_config(&format!(
        r#"state_dir = {state}
[[notify]]
name = "good"
kind = "ntfy"
url = {good}
[[notify]]
name = "bad"
kind = "webhook"
url = {bad}
"#,
        state = toml_str(&dir.state_dir().display().to_string()),
        good = toml_str(&format!("{}/t", ok.url())),
        bad = toml_str(&format!("{}/hook/secret-in-url", failing.url())),
    ));
    let out = run_cli(&dir, &["notify", "test", "good"], None);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "good: sent\n");
    assert_eq!(ok.count("/t", "test"), 1, "{:?}", ok.received());
    let out = run_cli(&dir, &["notify", "test"], None);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("good: sent"), "{text}");
    assert!(
        text.contains("bad: FAILED: the server answered HTTP 500"),
        "{text}"
    );
    assert!(!text.contains("secret-in-url"), "{text}");
    assert_eq!(ok.count("/t", "test"), 2);
    let out = run_cli(&dir, &["notify", "test", "nope"], None);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no [[notify]] section is named \"nope\""),
        "{out:?}"
    );
}

#[test]
fn a_stale_queue_is_told_and_its_end_too() {
    let ok = FakeNotify::start(Mode::Ok);
    let rig = Rig::start(&songs(1, 4), |_| {
        format!(
            "[[notify]]\nkind = \"webhook\"\nurl = {}\nevents = [\"queue_stale\"]\nqueued_after = \"2s\"\n",
            toml_str(&format!("{}/hook/q", ok.url()))
        )
    });
    rig.lastfm.go_down();
    rig.mpd.play_file("short/0.flac");
    wait_until(Duration::from_secs(20), "a queue_stale message", || {
        ok.count("/hook/q", "queue_stale") == 1
    });
    let v: serde_json::Value = serde_json::from_str(&ok.received()[0].body).unwrap();
    assert_eq!(v["target"], "lastfm", "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("oldest queued scrobble has waited"),
        "{v}"
    );
    rig.lastfm.come_up();
    assert_eq!(
        rig.lastfm
            .wait_for_scrobbles(1, Duration::from_secs(20))
            .len(),
        1
    );
    wait_until(Duration::from_secs(20), "a recovered message", || {
        ok.count("/hook/q", "recovered") == 1
    });
    assert_eq!(ok.received().len(), 2, "{:?}", ok.received());
}
