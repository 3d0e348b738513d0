//! Storage faults: a full state directory (a real tmpfs, as root) and a
//! damaged queue database, with a real mpd, the real binary and the
//! stand-in Last.fm.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::daemon::{Daemon, TestDir, run_cli};
use crate::common::fake_lastfm::FakeLastFm;
use crate::common::mpd::{MpdServer, SongSpec};

/// The requirement: SIGTERM ends the daemon within 2 s in every state.
const SIGTERM_REQUIRED: Duration = Duration::from_secs(2);
/// What the test allows on a busy 2-core CI machine: the requirement plus
/// the time to be scheduled and for the test's 20 ms polling to notice.
const SIGTERM_SLACK: Duration = Duration::from_secs(2);

fn songs(n: usize) -> Vec<SongSpec> {
    (0..n)
        .map(|i| SongSpec {
            file: Box::leak(format!("s/{i}.flac").into_boxed_str()),
            secs: 6,
            tags: vec![
                ("ARTIST", format!("Artist {i}")),
                ("TITLE", format!("Song {i}")),
            ],
        })
        .collect()
}

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(path)
            .status()
            .expect("run mount");
        assert!(ok.success(), "mount tmpfs on {}", path.display());
        Tmpfs(path.to_owned())
    }

    /// Fill the file system with `name`, up to its last byte.
    fn fill(&self, name: &str) -> PathBuf {
        use std::io::Write;
        let path = self.0.join(name);
        let mut f = std::fs::File::create(&path).expect("create fill file");
        let chunk = vec![0x55u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        while f.write_all(&[0x55]).is_ok() {}
        let _ = f.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn status_json(dir: &TestDir) -> serde_json::Value {
    let out = run_cli(dir, &["status", "--json"], None);
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

/// Wait until `status --json` satisfies `f`; the last answer either way.
fn wait_status(
    dir: &TestDir,
    timeout: Duration,
    f: impl Fn(&serde_json::Value) -> bool,
) -> (bool, serde_json::Value) {
    let start = Instant::now();
    loop {
        let v = status_json(dir);
        if f(&v) {
            return (true, v);
        }
        if start.elapsed() > timeout {
            return (false, v);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A daemon on a 4 MiB tmpfs state directory, with mpd and Last.fm.
struct FullRig {
    mpd: MpdServer,
    lastfm: FakeLastFm,
    // Dropped first: the daemon is killed before the tmpfs goes.
    daemon: Daemon,
    fs: Tmpfs,
    dir: TestDir,
}

impl FullRig {
    fn start(n: usize) -> FullRig {
        let mpd = MpdServer::start(&songs(n));
        let lastfm = FakeLastFm::start();
        lastfm.add_user("alice", "pw");
        let sk = lastfm.issue_session("alice");
        let dir = TestDir::new();
        let fs = Tmpfs::mount(&dir.state_dir(), "4m");
        dir.write_test_config(mpd.port(), &lastfm.url(), Some(&sk));
        let daemon = Daemon::spawn(&dir);
        assert!(
            daemon.wait_log("connected to MPD", Duration::from_secs(10)),
            "{}",
            daemon.log()
        );
        FullRig {
            mpd,
            lastfm,
            daemon,
            fs,
            dir,
        }
    }

    /// Play song `i` until the daemon says it qualified.
    fn play_until_qualified(&self, i: usize) {
        self.mpd.play_file(&format!("s/{i}.flac"));
        assert!(
            self.daemon.wait_log(
                &format!("\"Artist {i} – Song {i}\" qualified"),
                Duration::from_secs(15)
            ),
            "{}",
            self.daemon.log()
        );
    }

    /// Play songs until `status` says the state directory is full; returns
    /// how many were played. sled may fit a first write into space it had
    /// already taken, so it can take more than one.
    fn play_until_full(&self) -> usize {
        for i in 0..3 {
            self.play_until_qualified(i);
            let (full, _) = wait_status(&self.dir, Duration::from_secs(5), |v| {
                v["storage"]["state"] == "full"
            });
            if full {
                return i + 1;
            }
        }
        panic!(
            "status never said the state dir is full:\n{}\n{}",
            status_json(&self.dir),
            self.daemon.log()
        );
    }
}

#[test]
fn a_full_state_dir_holds_plays_in_memory_and_delivers_them_once_space_is_freed() {
    if !crate::common::runs_as_root("mounting a tmpfs") {
        return;
    }
    let mut rig = FullRig::start(5);
    let fill = rig.fs.fill("fill");
    let played = rig.play_until_full();

    // The daemon still follows MPD: the next play qualifies and is held too.
    rig.play_until_qualified(played);
    let played = played + 1;
    let (_, v) = wait_status(&rig.dir, Duration::from_secs(5), |v| {
        v["playing"]["title"] == format!("Song {}", played - 1)
    });
    assert_eq!(
        v["playing"]["title"],
        format!("Song {}", played - 1),
        "status follows MPD: {v}"
    );
    let held = v["storage"]["held"].as_u64().unwrap_or(0);
    assert!(held >= 2, "the plays made while full are held: {v}");
    let text = String::from_utf8_lossy(&run_cli(&rig.dir, &["status"], None).stdout).into_owned();
    assert!(
        text.contains("the state directory is FULL") && text.contains("free some space"),
        "{text}"
    );
    let check = String::from_utf8_lossy(&run_cli(&rig.dir, &["check"], None).stdout).into_owned();
    assert!(
        check.contains("is full") && check.contains("free some space"),
        "{check}"
    );

    // Space again: everything played arrives, each exactly once.
    std::fs::remove_file(&fill).unwrap();
    let got = rig
        .lastfm
        .wait_for_scrobbles(played, Duration::from_secs(40));
    assert!(
        got.len() >= played,
        "expected {played} scrobbles, got {got:?}\n{}",
        rig.daemon.log()
    );
    let (_, v) = wait_status(&rig.dir, Duration::from_secs(15), |v| {
        v["storage"]["state"] == "ok" && v["storage"]["held"] == 0
    });
    assert_eq!(v["storage"]["state"], "ok", "{v}");
    assert!(rig.daemon.sigterm().success(), "{}", rig.daemon.log());
    let mut titles: Vec<String> = rig
        .lastfm
        .scrobbles()
        .into_iter()
        .map(|s| s.track)
        .collect();
    titles.sort();
    let expected: Vec<String> = (0..played).map(|i| format!("Song {i}")).collect();
    assert_eq!(titles, expected, "each play exactly once");
}

#[test]
fn sigterm_while_the_state_dir_is_full_exits_within_two_seconds() {
    if !crate::common::runs_as_root("mounting a tmpfs") {
        return;
    }
    let mut rig = FullRig::start(3);
    rig.lastfm.go_down();
    let _fill = rig.fs.fill("fill");
    rig.play_until_full();
    rig.daemon.signal("TERM");
    let start = Instant::now();
    while rig.daemon.is_running() {
        assert!(
            start.elapsed() < SIGTERM_REQUIRED + SIGTERM_SLACK,
            "still running {:?} after SIGTERM:\n{}",
            start.elapsed(),
            rig.daemon.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = start.elapsed();
    eprintln!("exit after SIGTERM while full: {took:?}");
    let log = rig.daemon.log();
    // What it held could not be written, and the log says which plays.
    assert!(log.contains("lost: \"Artist "), "{log}");
}

/// Queue two scrobbles with Last.fm down, stop, `damage` the database,
/// start again with Last.fm up: the two arrive, or the damage is reported
/// loudly and the database set aside; either way the daemon runs on and
/// scrobbles a new play.
fn damaged_queue_database(damage: impl Fn(&Path)) {
    let mpd = MpdServer::start(&songs(3));
    let lastfm = FakeLastFm::start();
    lastfm.add_user("alice", "pw");
    let sk = lastfm.issue_session("alice");
    lastfm.go_down();
    let dir = TestDir::new();
    dir.write_test_config(mpd.port(), &lastfm.url(), Some(&sk));
    let mut daemon = Daemon::spawn(&dir);
    assert!(daemon.wait_log("connected to MPD", Duration::from_secs(10)));
    for i in 0..2 {
        mpd.play_file(&format!("s/{i}.flac"));
        assert!(
            daemon.wait_log(&format!("queued \"Artist {i} "), Duration::from_secs(15)),
            "{}",
            daemon.log()
        );
    }
    mpd.stop();
    assert!(daemon.sigterm().success());
    damage(&dir.state_dir().join("queue").join("db"));

    lastfm.come_up();
    let mut daemon = Daemon::spawn(&dir);
    assert!(
        daemon.wait_log("connected to MPD", Duration::from_secs(10)),
        "{}",
        daemon.log()
    );
    let log = daemon.log();
    let reported = log.contains("THE QUEUE DATABASE") && log.contains("IS DAMAGED");
    let aside: Vec<_> = std::fs::read_dir(dir.state_dir())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("queue.damaged-")
        })
        .collect();
    eprintln!("damage reported: {reported}");
    if reported {
        assert_eq!(aside.len(), 1, "moved aside: {log}");
        assert!(aside[0].path().join("mpd-scrobbler-damage.txt").exists());
        let check = String::from_utf8_lossy(&run_cli(&dir, &["check"], None).stdout).into_owned();
        assert!(check.contains("damaged queue database"), "{check}");
    } else {
        // Not reported: then nothing may be missing.
        let got = lastfm.wait_for_scrobbles(2, Duration::from_secs(20));
        assert_eq!(got.len(), 2, "a silent loss:\n{}", daemon.log());
    }

    // It keeps running and scrobbles a new play.
    mpd.play_file("s/2.flac");
    let start = Instant::now();
    while !lastfm.scrobbles().iter().any(|s| s.track == "Song 2") {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the new play did not arrive:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(daemon.is_running());
    assert!(daemon.sigterm().success());
}

#[test]
fn a_few_damaged_bytes_in_the_queue_database_are_never_a_silent_loss() {
    damaged_queue_database(|db| {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new().write(true).open(db).unwrap();
        f.seek(SeekFrom::Start(200)).unwrap();
        f.write_all(&[0xde, 0xad, 0xbe, 0xef, 0x00, 0xff]).unwrap();
    });
}

#[test]
fn a_truncated_queue_database_is_never_a_silent_loss() {
    damaged_queue_database(|db| {
        let len = std::fs::metadata(db).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(db)
            .unwrap()
            .set_len(len / 2)
            .unwrap();
    });
}

#[test]
fn garbage_over_the_whole_queue_database_is_never_a_silent_loss() {
    damaged_queue_database(|db| {
        let len = std::fs::metadata(db).unwrap().len() as usize;
        let garbage: Vec<u8> = (0..len).map(|i| (i * 7919 % 251) as u8).collect();
        std::fs::write(db, garbage).unwrap();
    });
}

#[test]
fn sigterm_while_a_flusher_waits_on_a_slow_server_exits_within_two_seconds() {
    use crate::common::fake_lastfm::Failure;
    let mpd = MpdServer::start(&songs(1));
    let lastfm = FakeLastFm::start();
    lastfm.add_user("alice", "pw");
    let sk = lastfm.issue_session("alice");
    lastfm.set_failure(Some(Failure::Hang(Duration::from_secs(30))));
    let dir = TestDir::new();
    dir.write_test_config(mpd.port(), &lastfm.url(), Some(&sk));
    let mut daemon = Daemon::spawn(&dir);
    assert!(daemon.wait_log("connected to MPD", Duration::from_secs(10)));
    mpd.play_file("s/0.flac");
    let start = Instant::now();
    while lastfm.request_count("track.scrobble") == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no scrobble request:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    daemon.signal("TERM");
    let start = Instant::now();
    while daemon.is_running() {
        assert!(
            start.elapsed() < SIGTERM_REQUIRED + SIGTERM_SLACK,
            "still running {:?} after SIGTERM:\n{}",
            start.elapsed(),
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "exit after SIGTERM during a slow request: {:?}",
        start.elapsed()
    );
    // The play stays queued for the next run.
    let out = run_cli(&dir, &["queue", "list"], None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Song 0"), "{text}");
}
