//! Exactly once where the server can be asked: requests that time out, are
//! lost, or are cut short by SIGKILL, against stand-ins that read back what
//! they stored and count duplicates. No MPD is needed: the backlog comes in
//! through `import` with the daemon stopped, and the daemon's MPD address
//! points at a closed port (it just keeps retrying).

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::daemon::{Daemon, TestDir, queued, run_cli};
use crate::common::fake_lastfm::{self, FakeLastFm};
use crate::common::fake_listenbrainz::{self, FakeListenBrainz};

/// What a stand-in stored, reduced to what must arrive exactly once.
pub(crate) type Stored = BTreeSet<(String, String, u64)>;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An mpdscribble journal of `n` listens a minute apart, the newest an hour
/// ago (Last.fm takes nothing older than 14 days); names with punctuation
/// and non-ASCII text. Returns its path and the listens.
pub(crate) fn journal(dir: &TestDir, n: usize) -> (String, Stored) {
    let start = now() - 3600 - 60 * n as u64;
    let mut text = String::new();
    let mut listens = Stored::new();
    for i in 0..n {
        let (artist, title) = (format!("Artist {} & Co.", i % 37), format!("Sång «{i}»"));
        let at = start + 60 * i as u64;
        text.push_str(&format!(
            "a = {artist}\nt = {title}\ni = {at}\nl = 200\no = P\n\n"
        ));
        listens.insert((artist, title, at));
    }
    let path = dir.path().join("backlog.journal");
    std::fs::write(&path, text).unwrap();
    (path.display().to_string(), listens)
}

/// Both stand-ins as targets, with `timeout` per request and quick retries;
/// MPD on a closed port.
pub(crate) fn configure(dir: &TestDir, lastfm: &FakeLastFm, lb: &FakeListenBrainz, timeout: &str) {
    dir.write_config(&format!(
        "state_dir = {:?}\n[mpd]\nhost = \"127.0.0.1\"\nport = 1\n\
         [delivery]\nretry_min = \"50ms\"\nretry_max = \"500ms\"\nrequest_timeout = {timeout:?}\n\
         [lastfm]\nurl = {:?}\napi_key = {:?}\napi_secret = {:?}\nsession_key = {:?}\n\
         [listenbrainz]\nurl = {:?}\ntoken = {:?}\n",
        dir.state_dir().display().to_string(),
        lastfm.url(),
        fake_lastfm::API_KEY,
        fake_lastfm::API_SECRET,
        lastfm.issue_session("alice"),
        lb.url(),
        fake_listenbrainz::TOKEN,
    ));
}

pub(crate) fn import(dir: &TestDir, journal: &str) {
    let out = run_cli(dir, &["import", "mpdscribble", journal], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub(crate) fn on_lastfm(lastfm: &FakeLastFm) -> Stored {
    lastfm
        .scrobbles()
        .into_iter()
        .map(|s| (s.artist, s.track, s.timestamp))
        .collect()
}

pub(crate) fn on_listenbrainz(lb: &FakeListenBrainz) -> Stored {
    lb.listens()
        .into_iter()
        .map(|l| (l.artist_name, l.track_name, l.listened_at.unwrap_or(0)))
        .collect()
}

/// Wait until both stand-ins hold `n` listens each; false after `limit`.
fn wait_delivered(lastfm: &FakeLastFm, lb: &FakeListenBrainz, n: usize, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if lastfm.scrobbles().len() >= n && lb.listens().len() >= n {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Wait until `daemon`'s log says `needle` `times` times; false after `limit`.
fn wait_log_count(daemon: &Daemon, needle: &str, times: usize, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if daemon.log().matches(needle).count() >= times {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Both stand-ins store their next request after `store_after` and answer
/// it after `answer_after`, as a slow server does.
fn next_request_slow(
    lastfm: &FakeLastFm,
    lb: &FakeListenBrainz,
    store_after: Duration,
    answer_after: Duration,
) {
    lastfm.fail_next(
        1,
        fake_lastfm::Failure::Slow {
            store_after,
            answer_after,
        },
    );
    lb.fail_next(
        1,
        fake_listenbrainz::Failure::Slow {
            store_after,
            answer_after,
        },
    );
}

#[test]
fn a_request_stored_after_the_client_gave_up_is_not_sent_again() {
    let (lastfm, lb) = (FakeLastFm::start(), FakeListenBrainz::start());
    let dir = TestDir::new();
    configure(&dir, &lastfm, &lb, "2s");
    let (path, listens) = journal(&dir, 3);
    import(&dir, &path);
    // Stored within the timeout, answered well after it.
    let slow = Duration::from_secs(1);
    let answer = Duration::from_secs(4);
    next_request_slow(&lastfm, &lb, slow, answer);
    let mut daemon = Daemon::spawn(&dir);
    assert!(
        wait_log_count(
            &daemon,
            "the server has 3 of the 3",
            2,
            Duration::from_secs(20)
        ),
        "both targets ask and find the batch:\n{}",
        daemon.log()
    );
    assert!(daemon.sigterm().success());
    assert_eq!(on_lastfm(&lastfm), listens);
    assert_eq!(on_listenbrainz(&lb), listens);
    assert_eq!(lastfm.duplicates(), 0);
    assert_eq!(lb.duplicates(), 0);
    assert_eq!(lastfm.request_count("track.scrobble"), 1, "not resent");
    assert_eq!(lb.submissions().len(), 1, "not resent");
    assert!(lastfm.request_count("user.getRecentTracks") >= 1);
}

#[test]
fn a_request_the_server_lost_is_sent_again_once() {
    let (lastfm, lb) = (FakeLastFm::start(), FakeListenBrainz::start());
    let dir = TestDir::new();
    configure(&dir, &lastfm, &lb, "2s");
    let (path, listens) = journal(&dir, 3);
    import(&dir, &path);
    let lost = Duration::from_secs(3);
    lastfm.fail_next(1, fake_lastfm::Failure::Lost(lost));
    lb.fail_next(1, fake_listenbrainz::Failure::Lost(lost));
    let mut daemon = Daemon::spawn(&dir);
    assert!(
        wait_log_count(
            &daemon,
            "the server has 0 of the 3",
            2,
            Duration::from_secs(20)
        ),
        "{}",
        daemon.log()
    );
    assert!(
        wait_delivered(&lastfm, &lb, 3, Duration::from_secs(20)),
        "{}",
        daemon.log()
    );
    assert!(daemon.sigterm().success());
    assert_eq!(on_lastfm(&lastfm), listens);
    assert_eq!(on_listenbrainz(&lb), listens);
    assert_eq!(lastfm.duplicates(), 0);
    assert_eq!(lb.duplicates(), 0);
    assert_eq!(lastfm.request_count("track.scrobble"), 2, "sent again once");
    assert_eq!(lb.submissions().len(), 1, "the lost one never got through");
}

#[test]
fn a_restart_after_a_crash_mid_request_waits_out_the_timeout_before_asking() {
    let (lastfm, lb) = (FakeLastFm::start(), FakeListenBrainz::start());
    let dir = TestDir::new();
    // Stored 2.5 s after it arrived, within the 4 s timeout: a restart that
    // asked at once would not find it and would send it again.
    configure(&dir, &lastfm, &lb, "4s");
    let (path, listens) = journal(&dir, 3);
    import(&dir, &path);
    let slow = Duration::from_millis(2500);
    next_request_slow(&lastfm, &lb, slow, slow);
    let mut daemon = Daemon::spawn(&dir);
    let start = Instant::now();
    while lastfm.request_count("track.scrobble") == 0 || lb.request_count() == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    daemon.kill9();
    assert!(lastfm.scrobbles().is_empty(), "killed before the store");
    let mut daemon = Daemon::spawn(&dir);
    assert!(
        wait_log_count(
            &daemon,
            "the server has 3 of the 3",
            2,
            Duration::from_secs(20)
        ),
        "{}",
        daemon.log()
    );
    assert!(daemon.sigterm().success());
    assert_eq!(on_lastfm(&lastfm), listens);
    assert_eq!(on_listenbrainz(&lb), listens);
    assert_eq!(lastfm.duplicates(), 0);
    assert_eq!(lb.duplicates(), 0);
    assert_eq!(lastfm.request_count("track.scrobble"), 1);
}

/// splitmix64: a seeded generator, so a failing run can be repeated with
/// `TORTURE_SEED`.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    /// A seed from `var`, or from the clock; printed so that a failing run
    /// can be repeated.
    pub(crate) fn seed(what: &str, var: &str) -> u64 {
        let seed = std::env::var(var)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("{what} seed: {seed} (repeat with {var}={seed})");
        seed
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n
    }
}

#[test]
fn kill_9_at_random_moments_loses_nothing_and_duplicates_nothing() {
    const ITEMS: usize = 4000;
    const ROUNDS: usize = 50;
    let seed = Rng::seed("torture", "TORTURE_SEED");
    let mut rng = Rng(seed);

    let (lastfm, lb) = (FakeLastFm::start(), FakeListenBrainz::start());
    let dir = TestDir::new();
    configure(&dir, &lastfm, &lb, "1s");
    let (path, listens) = journal(&dir, ITEMS);
    import(&dir, &path);
    // Some requests are stored at once but answered after the client's
    // timeout, as a slow server does.
    let slow = (Duration::from_millis(300), Duration::from_millis(1500));
    lastfm.fail_every_nth_scrobble(Some((
        5,
        fake_lastfm::Failure::Slow {
            store_after: slow.0,
            answer_after: slow.1,
        },
    )));
    lb.fail_every_nth_submission(Some((
        3,
        fake_listenbrainz::Failure::Slow {
            store_after: slow.0,
            answer_after: slow.1,
        },
    )));

    let started = Instant::now();
    for round in 0..ROUNDS {
        let mut daemon = Daemon::spawn(&dir);
        std::thread::sleep(Duration::from_millis(50 + rng.below(1200)));
        daemon.kill9();
        if round % 10 == 9 {
            eprintln!(
                "round {}: {} on Last.fm, {} on ListenBrainz after {:?}",
                round + 1,
                lastfm.scrobbles().len(),
                lb.listens().len(),
                started.elapsed()
            );
        }
    }
    lastfm.fail_every_nth_scrobble(None);
    lb.fail_every_nth_submission(None);
    let mut daemon = Daemon::spawn(&dir);
    // Twice the backlog would be there too if everything were resent.
    assert!(
        wait_delivered(&lastfm, &lb, ITEMS, Duration::from_secs(90)),
        "Last.fm {} and ListenBrainz {} of {ITEMS}:\n{}",
        lastfm.scrobbles().len(),
        lb.listens().len(),
        daemon.log()
    );
    // Then until nothing is queued or in flight, and stop.
    let start = Instant::now();
    loop {
        let out = run_cli(&dir, &["queue"], None);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("lastfm: 0 queued") && text.contains("listenbrainz: 0 queued") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(daemon.sigterm().success());
    let settled: usize = (0..=ROUNDS)
        .map(|n| std::fs::read_to_string(dir.path().join(format!("daemon-{n}.log"))))
        .map(|log| {
            log.unwrap_or_default()
                .matches("of an unanswered request")
                .count()
        })
        .sum();
    eprintln!(
        "{ROUNDS} rounds and the rest delivered in {:?}; Last.fm got {} requests, \
         ListenBrainz {}; {settled} unanswered requests settled by asking",
        started.elapsed(),
        lastfm.request_count("track.scrobble"),
        lb.submissions().len()
    );
    assert!(
        settled > 0,
        "no request was ever left unanswered: the test tested nothing"
    );

    let (got_lastfm, got_lb) = (on_lastfm(&lastfm), on_listenbrainz(&lb));
    let lost_lastfm: Vec<_> = listens.difference(&got_lastfm).collect();
    let lost_lb: Vec<_> = listens.difference(&got_lb).collect();
    assert!(lost_lastfm.is_empty(), "lost on Last.fm: {lost_lastfm:?}");
    assert!(lost_lb.is_empty(), "lost on ListenBrainz: {lost_lb:?}");
    assert_eq!(got_lastfm, listens, "nothing else arrived");
    assert_eq!(got_lb, listens, "nothing else arrived");
    assert_eq!(
        lastfm.duplicates(),
        0,
        "duplicated on Last.fm (seed {seed})"
    );
    assert_eq!(
        lb.duplicates(),
        0,
        "duplicated on ListenBrainz (seed {seed})"
    );
    assert_eq!(lastfm.scrobbles().len(), ITEMS);
    assert_eq!(lb.listens().len(), ITEMS);
}

#[test]
fn a_backlog_of_120_goes_out_as_50_50_20_to_lastfm_and_100_20_to_listenbrainz() {
    let (lastfm, lb) = (FakeLastFm::start(), FakeListenBrainz::start());
    let dir = TestDir::new();
    configure(&dir, &lastfm, &lb, "5s");
    let (path, listens) = journal(&dir, 120);
    import(&dir, &path);
    let mut daemon = Daemon::spawn(&dir);
    assert!(
        wait_delivered(&lastfm, &lb, 120, Duration::from_secs(60)),
        "{}",
        daemon.log()
    );
    assert!(daemon.sigterm().success(), "{}", daemon.log());
    assert_eq!(lastfm.scrobble_batches(), [50, 50, 20], "{}", daemon.log());
    assert_eq!(
        lb.submissions(),
        [("import".to_string(), 100), ("import".to_string(), 20)]
    );
    assert_eq!(on_lastfm(&lastfm), listens);
    assert_eq!(on_listenbrainz(&lb), listens);
    assert_eq!(lastfm.scrobbles().len(), 120, "none twice");
    assert_eq!(lb.listens().len(), 120, "none twice");
    for target in ["lastfm", "listenbrainz"] {
        assert_eq!(queued(&dir, target, false), 0, "{target}: nothing left");
    }
}
