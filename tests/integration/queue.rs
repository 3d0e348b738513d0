//! `mpd-scrobbler queue` with and without a running daemon.

use std::time::Duration;

use crate::common::daemon::{Daemon, TestDir, config_toml, run_cli};
use crate::common::fake_lastfm::FakeLastFm;
use crate::common::mpd::{MpdServer, SongSpec};

fn songs() -> Vec<SongSpec> {
    (0..2)
        .map(|i| SongSpec {
            file: ["q/0.flac", "q/1.flac"][i],
            secs: 3,
            tags: vec![
                ("ARTIST", format!("Artist {i}")),
                ("TITLE", format!("Song {i}")),
            ],
        })
        .collect()
}

/// mpd, a Last.fm that is down, and a daemon with a long backoff that has
/// queued both songs.
fn queued() -> (MpdServer, FakeLastFm, TestDir, Daemon) {
    let mpd = MpdServer::start(&songs());
    let lastfm = FakeLastFm::start();
    let dir = TestDir::new();
    let sk = lastfm.issue_session("alice");
    dir.write_config(
        &config_toml(mpd.port(), &dir.state_dir(), &lastfm.url(), Some(&sk))
            .replace("min_track_secs = 2", "min_track_secs = 1")
            .replace("retry_min = \"200ms\"", "retry_min = \"10m\"")
            .replace("retry_max = \"2s\"", "retry_max = \"1h\""),
    );
    lastfm.go_down();
    let daemon = Daemon::spawn(&dir);
    assert!(daemon.wait_log("connected to MPD", Duration::from_secs(10)));
    mpd.cmd("clear");
    mpd.enqueue(&["q/0.flac", "q/1.flac"]);
    mpd.cmd("play");
    assert!(
        daemon.wait_log("queued \"Artist 1", Duration::from_secs(15)),
        "{}",
        daemon.log()
    );
    (mpd, lastfm, dir, daemon)
}

fn stdout(dir: &TestDir, args: &[&str]) -> String {
    let out = run_cli(dir, args, None);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn ids(dir: &TestDir) -> Vec<u64> {
    let v: serde_json::Value =
        serde_json::from_str(&stdout(dir, &["queue", "list", "--json"])).unwrap();
    v["targets"]["lastfm"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_u64().unwrap())
        .collect()
}

#[test]
fn list_drop_and_flush_through_the_running_daemon() {
    let (_mpd, lastfm, dir, daemon) = queued();
    let text = stdout(&dir, &["queue"]);
    assert!(text.starts_with("lastfm: 2 queued"), "{text}");
    assert!(
        text.contains("Artist 0 – Song 0") && text.contains("Artist 1 – Song 1"),
        "{text}"
    );
    let ids = ids(&dir);
    assert_eq!(
        stdout(&dir, &["queue", "drop", &ids[0].to_string()]),
        format!("Dropped {} from lastfm.\n", ids[0])
    );
    let out = run_cli(&dir, &["queue", "drop", &ids[0].to_string()], None);
    assert_eq!(out.status.code(), Some(1), "dropping it twice is an error");
    lastfm.come_up();
    // The daemon backs off for 10 minutes; only a flush explains a delivery now.
    stdout(&dir, &["queue", "flush"]);
    let got = lastfm.wait_for_scrobbles(1, Duration::from_secs(5));
    let titles: Vec<_> = got.iter().map(|s| s.track.as_str()).collect();
    assert_eq!(titles, ["Song 1"], "{}", daemon.log());
}

#[test]
fn list_and_drop_without_a_daemon_and_flush_needs_one() {
    let (_mpd, _lastfm, dir, mut daemon) = queued();
    assert!(daemon.sigterm().success());
    let ids = ids(&dir);
    assert_eq!(ids.len(), 2);
    stdout(
        &dir,
        &["queue", "drop", &ids[1].to_string(), "--name", "lastfm"],
    );
    assert_eq!(self::ids(&dir), [ids[0]]);
    let out = run_cli(&dir, &["queue", "flush"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no daemon is running"));
    let out = run_cli(&dir, &["queue", "drop", "1", "--name", "nosuch"], None);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no target named"));
}

#[test]
fn rejected_items_are_listed_and_retried() {
    let (_mpd, lastfm, dir, daemon) = queued();
    lastfm.set_poison_artist(Some("Artist 0"));
    lastfm.come_up();
    stdout(&dir, &["queue", "flush"]);
    lastfm.wait_for_scrobbles(1, Duration::from_secs(5));
    assert!(
        daemon.wait_log("set aside", Duration::from_secs(5)),
        "{}",
        daemon.log()
    );
    let text = stdout(&dir, &["queue", "list", "--rejected"]);
    assert!(text.starts_with("lastfm: 1 rejected"), "{text}");
    assert!(
        text.contains("Artist 0 – Song 0") && text.contains("Invalid parameters"),
        "{text}"
    );
    lastfm.set_poison_artist(None);
    assert_eq!(
        stdout(&dir, &["queue", "retry"]),
        "lastfm: 1 put back in the queue\n"
    );
    stdout(&dir, &["queue", "flush"]);
    let got = lastfm.wait_for_scrobbles(2, Duration::from_secs(5));
    assert_eq!(got.len(), 2, "{}", daemon.log());
}

#[test]
fn status_shows_progress_and_each_target_state() {
    let mpd = MpdServer::start(&[SongSpec {
        file: "long.flac",
        secs: 20,
        tags: vec![
            ("ARTIST", "Long Artist".into()),
            ("TITLE", "Long Song".into()),
        ],
    }]);
    let lastfm = FakeLastFm::start();
    let dir = TestDir::new();
    let sk = lastfm.issue_session("alice");
    dir.write_test_config(mpd.port(), &lastfm.url(), Some(&sk));
    let out = run_cli(&dir, &["status"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not running"));

    let daemon = Daemon::spawn(&dir);
    assert!(daemon.wait_log("connected to MPD", Duration::from_secs(10)));
    mpd.play_file("long.flac");
    assert!(
        daemon.wait_log("now playing \"Long Artist", Duration::from_secs(10)),
        "{}",
        daemon.log()
    );
    let text = stdout(&dir, &["status"]);
    assert!(text.contains("MPD: connected to 127.0.0.1:"), "{text}");
    assert!(
        text.contains("Current: Long Artist – Long Song, played 0:0")
            && text.contains(" of 0:10 needed"),
        "{text}"
    );
    assert!(
        text.contains("lastfm: ok; 0 queued; last delivery never"),
        "{text}"
    );

    lastfm.go_down();
    assert!(
        daemon.wait_log("retrying in", Duration::from_secs(15)),
        "{}",
        daemon.log()
    );
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&dir, &["status", "--json"])).unwrap();
    let t = &json["targets"][0];
    assert_eq!(t["state"], "retrying", "{json}");
    assert_eq!(t["queued"], 1);
    assert!(
        t["why"].as_str().unwrap().contains("cannot connect"),
        "{json}"
    );
    assert_eq!(json["playing"]["qualified"], true);
}
