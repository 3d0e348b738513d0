//! Power cuts: the state directory lives on the power-cut file system
//! (`common/powercut.rs`), which keeps only what was fsynced (and, for a
//! new name, what its directory sync covered) when it is cut. A kill -9
//! cannot show this, since the kernel's page cache outlives the process;
//! here every cut is a kill -9 of the daemon followed by the cut, as when
//! the plug of a Raspberry Pi is pulled.
//!
//! What must hold (docs/design.md, "Durability"): a play logged `queued`, an
//! import or an `auth` that reported success, survives; a request whose
//! in-flight record is on disk is reconciled with the server after the
//! boot, so a backlog delivered through cuts arrives exactly once; a torn
//! write costs nothing that was synced, and no boot reports false damage.

use std::time::{Duration, Instant};

use crate::common::daemon::{Daemon, TestDir, config_toml, queued, run_cli};
use crate::common::fake_lastfm::{self, FakeLastFm};
use crate::common::fake_listenbrainz::{self, FakeListenBrainz};
use crate::common::mpd::{MpdServer, SongSpec};
use crate::common::powercut::PowerCutFs;
use crate::torture::{Rng, Stored, configure, import, journal, on_lastfm, on_listenbrainz};

/// The power-cut file system mounted as the test's state directory, or
/// `None` (with the reason printed) where FUSE cannot be mounted; in CI
/// that fails the test instead.
fn mount(dir: &TestDir, what: &str) -> Option<PowerCutFs> {
    if let Err(reason) = PowerCutFs::available() {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
        assert!(!ci, "{what} needs FUSE, and in CI it must run: {reason}");
        eprintln!("SKIPPED: {what} needs FUSE: {reason}");
        return None;
    }
    std::fs::create_dir_all(dir.state_dir()).expect("the mount point");
    Some(PowerCutFs::mount(&dir.state_dir()).expect("mount the power-cut file system"))
}

/// A daemon started, with the queue open and its control socket bound.
/// Commands run only then: with no daemon up yet, `queue` or `import`
/// opens the database itself, and the starting daemon would find it taken.
fn daemon_up(dir: &TestDir) -> Daemon {
    let daemon = Daemon::spawn(dir);
    assert!(
        daemon.wait_log("control socket at", Duration::from_secs(10)),
        "{}",
        daemon.log()
    );
    daemon
}

/// Pull the plug: kill the daemon, then drop everything not synced.
fn cut(fs: &mut PowerCutFs, daemon: &mut Daemon) {
    daemon.kill9();
    fs.cut().expect("the power cut");
}

/// The queue databases set aside as damaged: each one's name and report.
fn damaged(dir: &TestDir) -> Vec<(String, String)> {
    std::fs::read_dir(dir.state_dir())
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with("queue.damaged-")
                })
                .map(|e| {
                    let report = std::fs::read_to_string(e.path().join("mpd-scrobbler-damage.txt"));
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        report.unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The plays in the history, read without a daemon: (artist, title, start).
fn history(dir: &TestDir) -> Stored {
    let out = run_cli(dir, &["history", "--json"], None);
    assert!(
        out.status.success(),
        "history: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plays: serde_json::Value = serde_json::from_slice(&out.stdout).expect("history JSON");
    plays
        .as_array()
        .expect("an array of plays")
        .iter()
        .map(|p| {
            (
                p["artist"].as_str().unwrap_or_default().to_owned(),
                p["title"].as_str().unwrap_or_default().to_owned(),
                p["started_at"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

fn short_songs(n: usize) -> Vec<SongSpec> {
    (0..n)
        .map(|i| SongSpec {
            file: Box::leak(format!("short/{i}.flac").into_boxed_str()),
            secs: 8,
            tags: vec![
                ("ARTIST", format!("Artist {i}")),
                ("TITLE", format!("Song {i}")),
            ],
        })
        .collect()
}

#[test]
fn every_play_logged_queued_survives_a_power_cut() {
    let dir = TestDir::new();
    let Some(mut fs) = mount(&dir, "power-cut test") else {
        return;
    };
    let mpd = MpdServer::start(&short_songs(3));
    // Last.fm is down: the plays stay queued.
    let lastfm = FakeLastFm::start();
    let sk = lastfm.issue_session("alice");
    lastfm.go_down();
    dir.write_config(
        &config_toml(mpd.port(), &dir.state_dir(), &lastfm.url(), Some(&sk))
            // 2 s of an 8 s song: room for a late wake-up.
            .replace("played_percent = 50", "played_percent = 25"),
    );
    let mut daemon = Daemon::spawn(&dir);
    assert!(
        daemon.wait_log("connected to MPD", Duration::from_secs(10)),
        "{}",
        daemon.log()
    );
    for i in 0..3 {
        mpd.play_file(&format!("short/{i}.flac"));
        assert!(
            daemon.wait_log(&format!("queued \"Artist {i} "), Duration::from_secs(15)),
            "{}",
            daemon.log()
        );
    }
    cut(&mut fs, &mut daemon);

    assert_eq!(queued(&dir, "lastfm", false), 3, "every play logged queued");
    let plays = history(&dir);
    let artists: Vec<&str> = plays.iter().map(|(a, ..)| a.as_str()).collect();
    assert_eq!(artists, ["Artist 0", "Artist 1", "Artist 2"], "{plays:?}");
    let damage = damaged(&dir);
    assert!(damage.is_empty(), "a false damage report: {damage:?}");
}

#[test]
fn an_import_reported_done_survives_a_power_cut() {
    let dir = TestDir::new();
    let Some(mut fs) = mount(&dir, "power-cut test") else {
        return;
    };
    let (lastfm, lb) = (FakeLastFm::start(), FakeListenBrainz::start());
    lastfm.go_down();
    lb.go_down();
    configure(&dir, &lastfm, &lb, "2s");
    let (path, listens) = journal(&dir, 120);
    // Through the running daemon, which owns the database.
    let mut daemon = daemon_up(&dir);
    import(&dir, &path);
    cut(&mut fs, &mut daemon);

    assert_eq!(history(&dir), listens);
    assert_eq!(queued(&dir, "lastfm", false), 120);
    assert_eq!(queued(&dir, "listenbrainz", false), 120);
}

/// `import lastfm` cut mid-way: each page's plays and the cursor after
/// them are one synced transaction, so the import resumes just below the
/// plays that survived, and ends with each play once.
#[test]
fn a_lastfm_import_cut_mid_way_resumes_and_imports_nothing_twice() {
    use crate::import_api::{assert_history, history, lastfm_setup_in, ok, read, spawn};
    let dir = TestDir::new();
    let Some(mut fs) = mount(&dir, "power-cut test") else {
        return;
    };
    let (lastfm, record) = lastfm_setup_in(&dir);
    lastfm.set_recent_delay(Some(Duration::from_millis(300)));
    let mut child = spawn(&dir, &["import", "lastfm", "--user", "alice"], "first");
    let deadline = Instant::now() + Duration::from_secs(60);
    while lastfm.recent_requests().len() < 6 {
        assert!(Instant::now() < deadline, "{}", read(&dir, "first"));
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    fs.cut().expect("the power cut");
    let kept = history(&dir);
    assert!(
        (800..3000).contains(&kept.len()),
        "{} plays survived five stored pages",
        kept.len()
    );
    let first_run = lastfm.recent_requests().len();
    lastfm.set_recent_delay(None);
    ok(&run_cli(
        &dir,
        &["import", "lastfm", "--user", "alice"],
        None,
    ));
    let resumed = &lastfm.recent_requests()[first_run..];
    assert_eq!(resumed[0]["to"], (kept[0].0 + 1).to_string());
    assert_history(&dir, &record, "lastfm");
}

#[test]
fn a_session_stored_by_auth_survives_a_power_cut() {
    let dir = TestDir::new();
    let Some(mut fs) = mount(&dir, "power-cut test") else {
        return;
    };
    let lastfm = FakeLastFm::start();
    lastfm.add_user("alice", "s3cret pässword");
    dir.write_test_config(1, &lastfm.url(), None);
    let out = run_cli(
        &dir,
        &["auth", "lastfm", "--username", "alice"],
        Some("s3cret pässword\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = dir.state_dir().join("lastfm.session");
    let stored = std::fs::read_to_string(&path).expect("the session file");
    fs.cut().expect("the power cut");
    assert_eq!(
        std::fs::read_to_string(&path).ok().as_deref(),
        Some(stored.as_str()),
        "the session auth reported stored"
    );
}

/// A backlog imported (and so on disk), then delivered to both stand-ins
/// by a daemon cut off at random moments, some while a request hangs for a
/// second; every other cut also tears the writes in flight in the queue's
/// log. Then one more boot delivers the rest.
#[test]
fn a_backlog_delivered_through_30_power_cuts_arrives_exactly_once() {
    const ITEMS: usize = 300;
    const CUTS: u64 = 30;
    let mut rng = Rng(Rng::seed("power-cut", "POWERCUT_SEED"));

    let dir = TestDir::new();
    let Some(mut fs) = mount(&dir, "power-cut test") else {
        return;
    };
    let (lastfm, lb) = (FakeLastFm::start(), FakeListenBrainz::start());
    configure(&dir, &lastfm, &lb, "2s");
    let (path, listens) = journal(&dir, ITEMS);
    lastfm.go_down();
    lb.go_down();
    let mut daemon = daemon_up(&dir);
    import(&dir, &path);
    cut(&mut fs, &mut daemon);
    lastfm.come_up();
    lb.come_up();

    let started = Instant::now();
    let mut tears = 0;
    for round in 0..CUTS {
        if round % 3 == 1 {
            // The next request is stored at once and answered a second
            // later: the cut may come while the daemon waits for it.
            let hang = fake_lastfm::Failure::Slow {
                store_after: Duration::ZERO,
                answer_after: Duration::from_secs(1),
            };
            lastfm.fail_next(1, hang);
            lb.fail_next(
                1,
                fake_listenbrainz::Failure::Slow {
                    store_after: Duration::ZERO,
                    answer_after: Duration::from_secs(1),
                },
            );
        }
        let mut daemon = Daemon::spawn(&dir);
        // Not while sled opens the database: two deaths in a row there are
        // taken for damage that kills every start (`src/queue/open.rs`).
        assert!(
            daemon.wait_log("opened (", Duration::from_secs(10)),
            "{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(rng.below(1500)));
        daemon.kill9();
        if round % 2 == 1 {
            let torn = fs.cut_torn(rng.below(u64::MAX)).expect("a torn power cut");
            // The queue's log: writes since its last sync, of which a
            // prefix was kept, the last one perhaps in part.
            tears += torn
                .iter()
                .filter(|t| t.path == "/queue/db" && t.partial.is_some())
                .count();
        } else {
            fs.cut().expect("the power cut");
        }
        let (on_fm, on_lb) = (lastfm.scrobbles().len(), lb.listens().len());
        assert!(
            on_fm <= ITEMS && on_lb <= ITEMS,
            "cut {round}: sent again: Last.fm {on_fm}, ListenBrainz {on_lb}"
        );
        if round % 10 == 9 {
            eprintln!(
                "cut {}: {on_fm} on Last.fm, {on_lb} on ListenBrainz after {:?}",
                round + 1,
                started.elapsed()
            );
        }
    }

    eprintln!("{tears} cuts tore a write in the queue's log");
    assert!(tears > 0, "no cut tore a write in the queue's log");
    let mut daemon = daemon_up(&dir);
    let deadline = Instant::now() + Duration::from_secs(60);
    while lastfm.scrobbles().len() < ITEMS || lb.listens().len() < ITEMS {
        assert!(
            Instant::now() < deadline,
            "Last.fm {} and ListenBrainz {} of {ITEMS}:\n{}",
            lastfm.scrobbles().len(),
            lb.listens().len(),
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Then until nothing is queued or in flight, so that a resend would
    // have been made.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = run_cli(&dir, &["queue"], None);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("lastfm: 0 queued") && text.contains("listenbrainz: 0 queued") {
            break;
        }
        assert!(Instant::now() < deadline, "{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = daemon.log();
    let trouble: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("WARN"))
        .filter(|l| !l.contains("MPD"))
        .collect();
    assert!(daemon.sigterm().success(), "{log}");
    assert!(trouble.is_empty(), "{}", trouble.join("\n"));

    assert_eq!(on_lastfm(&lastfm), listens, "Last.fm lost plays");
    assert_eq!(on_listenbrainz(&lb), listens, "ListenBrainz lost plays");
    assert_eq!(lastfm.duplicates(), 0, "duplicates on Last.fm");
    assert_eq!(lb.duplicates(), 0, "duplicates on ListenBrainz");
    assert_eq!(lastfm.scrobbles().len(), ITEMS);
    assert_eq!(lb.listens().len(), ITEMS);
    let damage = damaged(&dir);
    assert!(damage.is_empty(), "a false damage report: {damage:?}");
    assert_eq!(history(&dir), listens, "the history");
}

/// Issue 22: the history (SQLite) and the queues (sled) are two stores,
/// and a cut at any moment of a play's enqueue or delivery leaves them
/// agreeing once the daemon is up again: every play logged `queued` is in
/// the history, and every target the history says a play was queued for
/// holds it in its queue or has received it (and no more).
#[test]
fn the_history_and_the_queues_agree_after_power_cuts_during_enqueue_and_delivery() {
    const ROUNDS: usize = 8;
    let mut rng = Rng(Rng::seed("history-cut", "POWERCUT_SEED"));
    let dir = TestDir::new();
    let Some(mut fs) = mount(&dir, "power-cut test") else {
        return;
    };
    let mpd = MpdServer::start(&short_songs(ROUNDS));
    let lastfm = FakeLastFm::start();
    let sk = lastfm.issue_session("alice");
    dir.write_config(
        &config_toml(mpd.port(), &dir.state_dir(), &lastfm.url(), Some(&sk))
            .replace("played_percent = 50", "played_percent = 25"),
    );
    let mut logged = Vec::new();
    for i in 0..ROUNDS {
        let mut daemon = Daemon::spawn(&dir);
        assert!(
            daemon.wait_log("connected to MPD", Duration::from_secs(10)),
            "{}",
            daemon.log()
        );
        mpd.play_file(&format!("short/{i}.flac"));
        assert!(
            daemon.wait_log(&format!("queued \"Artist {i} "), Duration::from_secs(15)),
            "{}",
            daemon.log()
        );
        logged.push((format!("Artist {i}"), format!("Song {i}")));
        // Before, during or after the history commit and the delivery.
        std::thread::sleep(Duration::from_millis(rng.below(400)));
        daemon.kill9();
        if i % 2 == 1 {
            fs.cut_torn(rng.below(u64::MAX)).expect("a torn power cut");
        } else {
            fs.cut().expect("the power cut");
        }
    }
    mpd.stop();
    // A boot with Last.fm down: the outbox is applied, nothing is sent.
    lastfm.go_down();
    let mut daemon = daemon_up(&dir);
    assert!(
        daemon.wait_log("connected to MPD", Duration::from_secs(10)),
        "{}",
        daemon.log()
    );
    assert!(daemon.sigterm().success(), "{}", daemon.log());

    let plays = history(&dir);
    for (artist, title) in &logged {
        assert!(
            plays.iter().any(|(a, t, _)| a == artist && t == title),
            "{artist} – {title} was logged queued but is not in the history: {plays:?}"
        );
    }
    let out = run_cli(&dir, &["queue", "list", "--json"], None);
    let q: serde_json::Value = serde_json::from_slice(&out.stdout).expect("queue list JSON");
    let waiting: Stored = q["targets"]["lastfm"]
        .as_array()
        .expect("the lastfm queue")
        .iter()
        .map(|i| {
            let l = &i["listen"];
            (
                l["track"]["artist"].as_str().unwrap_or_default().to_owned(),
                l["track"]["title"].as_str().unwrap_or_default().to_owned(),
                l["started_at"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    let sent = on_lastfm(&lastfm);
    let db = rusqlite::Connection::open(dir.state_dir().join("history.sqlite")).expect("history");
    let mut marks = db
        .prepare(
            "SELECT a.name, p.title, p.started_at, m.delivered_at FROM marks m \
             JOIN plays p ON p.id = m.play JOIN artists a ON a.id = p.artist \
             WHERE m.target = 'lastfm'",
        )
        .expect("the marks");
    let marked: Vec<((String, String, u64), bool)> = marks
        .query_map([], |r| {
            Ok((
                (
                    r.get(0)?,
                    r.get(1)?,
                    u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                ),
                r.get::<_, Option<i64>>(3)?.is_some(),
            ))
        })
        .expect("the marks")
        .map(|r| r.expect("a mark"))
        .collect();
    for (play, delivered) in &marked {
        assert!(
            waiting.contains(play) || sent.contains(play),
            "{play:?} is marked for lastfm but neither queued nor sent"
        );
        if *delivered {
            assert!(sent.contains(play), "{play:?} marked delivered, never sent");
        }
    }
    for play in waiting.iter().chain(&sent) {
        assert!(
            marked.iter().any(|(p, _)| p == play),
            "{play:?} queued or sent, but the history has no mark for lastfm"
        );
    }
    let damage = damaged(&dir);
    assert!(damage.is_empty(), "a false damage report: {damage:?}");
}

/// The metadata cache is not synced (it is a cache), but a cut, torn or
/// not, must never make a command crash or answer garbage: each answer
/// comes from the cache or the server, whole.
#[test]
fn the_metadata_cache_survives_power_cuts() {
    let dir = TestDir::new();
    let Some(mut fs) = mount(&dir, "power-cut test") else {
        return;
    };
    let lastfm = crate::info::server();
    dir.write_config(&format!(
        "state_dir = {:?}\n[mpd]\nhost = \"127.0.0.1\"\nport = 1\n\
         [lastfm]\nurl = {:?}\napi_key = {:?}\napi_secret = {:?}\n",
        dir.state_dir().display().to_string(),
        lastfm.url(),
        fake_lastfm::API_KEY,
        fake_lastfm::API_SECRET,
    ));
    let mut rng = Rng(7);
    for round in 0..12 {
        // Half of the answers are fetched again and written to the cache.
        let args: &[&str] = if round % 2 == 0 {
            &["artist", "Cher", "--refresh"]
        } else {
            &["artist", "Cher"]
        };
        let out = run_cli(&dir, args, None);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.starts_with("Cher\n") && text.contains("listeners"),
            "round {round}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if round % 3 == 2 {
            fs.cut().expect("the power cut");
        } else {
            fs.cut_torn(rng.below(u64::MAX)).expect("a torn power cut");
        }
    }
}
