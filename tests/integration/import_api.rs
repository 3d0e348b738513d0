//! `import lastfm` and `import listenbrainz --user`: a user's whole record
//! read back from the stand-in servers into the history, as delivered to
//! that target, once each, resumable after kill -9.

use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::daemon::{
    Daemon, TestDir, command, config_toml, queued, run_cli, run_cli_stdout_closed, toml_str,
};
use crate::common::fake_lastfm::{self, FakeLastFm};
use crate::common::fake_listenbrainz::{self, FakeListenBrainz};
use crate::common::hostile_server::{Answer, HostileServer};
use crate::common::mpd::{MpdServer, SongSpec};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `n` plays a minute apart, the newest two hours ago (before the hour a
/// later run reads again): (time, artist, title).
fn plays(n: u64) -> Vec<(u64, String, String)> {
    let newest = now() - 2 * 3600;
    (0..n)
        .map(|i| {
            (
                newest - i * 60,
                format!("Artist {}", i % 37),
                format!("Title {i}"),
            )
        })
        .collect()
}

/// The history's plays, oldest first: (start time, artist, title, the
/// targets it counts as delivered to).
pub(crate) fn history(dir: &TestDir) -> Vec<(u64, String, String, Vec<String>)> {
    let db = rusqlite::Connection::open(dir.state_dir().join("history.sqlite")).unwrap();
    let mut s = db
        .prepare(
            "SELECT p.started_at, a.name, p.title, \
               (SELECT group_concat(target) FROM marks m \
                WHERE m.play = p.id AND m.delivered_at IS NOT NULL) \
             FROM plays p JOIN artists a ON a.id = p.artist ORDER BY p.started_at",
        )
        .unwrap();
    s.query_map([], |r| {
        let marks: Option<String> = r.get(3)?;
        Ok((
            r.get::<_, i64>(0)? as u64,
            r.get(1)?,
            r.get(2)?,
            marks
                .map(|m| m.split(',').map(str::to_owned).collect())
                .unwrap_or_default(),
        ))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// The history holds exactly `expected`, each once, delivered to `target`.
pub(crate) fn assert_history(dir: &TestDir, expected: &[(u64, String, String)], target: &str) {
    let got = history(dir);
    let mut want: Vec<(u64, String, String)> = expected.to_vec();
    want.sort();
    let got_plays: Vec<(u64, String, String)> = got
        .iter()
        .map(|(t, a, ti, _)| (*t, a.clone(), ti.clone()))
        .collect();
    assert_eq!(got_plays.len(), want.len(), "plays in the history");
    assert!(got_plays == want, "the history holds other plays");
    assert!(
        got.iter().all(|(.., marks)| marks == &[target.to_string()]),
        "every play counts as delivered to {target} only"
    );
}

pub(crate) fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The command started with stdout and stderr in files of the test
/// directory (for the runs a test kills or waits on for more than a minute).
pub(crate) fn spawn(dir: &TestDir, args: &[&str], name: &str) -> Child {
    let out = std::fs::File::create(dir.path().join(format!("{name}.out"))).unwrap();
    command(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap()
}

fn wait(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(start.elapsed() < limit, "still running after {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn read(dir: &TestDir, name: &str) -> String {
    std::fs::read_to_string(dir.path().join(format!("{name}.out"))).unwrap()
}

/// Wait (with a deadline) until the clock is past `t`.
fn wait_past(t: u64) {
    let start = Instant::now();
    while now() <= t {
        assert!(start.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn lastfm_setup() -> (FakeLastFm, TestDir, Vec<(u64, String, String)>) {
    let dir = TestDir::new();
    let (lastfm, record) = lastfm_setup_in(&dir);
    (lastfm, dir, record)
}

/// A Last.fm stand-in with 3000 scrobbles of alice's, and a config for it
/// (and a second target) in `dir`.
pub(crate) fn lastfm_setup_in(dir: &TestDir) -> (FakeLastFm, Vec<(u64, String, String)>) {
    let lastfm = FakeLastFm::start();
    let sk = lastfm.issue_session("alice");
    // A second target, which the import must not queue anything for.
    dir.write_config(&format!(
        "{}[listenbrainz]\nurl = \"http://127.0.0.1:1\"\ntoken = \"t\"\n",
        config_toml(1, &dir.state_dir(), &lastfm.url(), Some(&sk))
    ));
    let record = plays(3000);
    lastfm.add_history("alice", record.clone());
    (lastfm, record)
}

#[test]
fn lastfm_import_brings_every_scrobble_once_as_delivered() {
    let (lastfm, dir, mut record) = lastfm_setup();
    lastfm.add_now_playing("alice", "Now", "Playing");
    let started = now();
    // No --user: the session's user, asked of the server.
    let out = ok(&run_cli(&dir, &["import", "lastfm"], None));
    assert!(
        out.contains("lastfm: read 3000 plays; the history gained 3000 (0 there already)"),
        "{out}"
    );
    assert!(out.contains("backfill"), "{out}");
    assert!(out.contains("playing now"), "{out}");
    assert_history(&dir, &record, "lastfm");
    let asked = lastfm.recent_requests();
    // 200 a page, and each page one second above the last one's oldest.
    assert_eq!(asked.len(), 16, "{asked:?}");
    assert!(
        asked
            .iter()
            .all(|p| p["limit"] == "200" && p["user"] == "alice")
    );
    assert!(asked.iter().all(|p| p["api_key"] == fake_lastfm::API_KEY));
    assert_eq!(asked[1]["to"], (record[199].0 + 1).to_string());

    // Nothing is sent to Last.fm, nor queued for it or the other target;
    // backfill finds the plays delivered to Last.fm already, and queues
    // them for the other target only when asked.
    assert_eq!(queued(&dir, "lastfm", false), 0);
    assert_eq!(queued(&dir, "listenbrainz", false), 0);
    let out = ok(&run_cli(&dir, &["backfill", "lastfm"], None));
    assert!(
        out.contains("lastfm: queued 0 plays (3000 it has already)."),
        "{out}"
    );
    assert_eq!(queued(&dir, "lastfm", false), 0);
    assert_eq!(lastfm.request_count("track.scrobble"), 0);
    let out = ok(&run_cli(&dir, &["backfill", "listenbrainz"], None));
    assert!(out.contains("listenbrainz: queued 3000 plays"), "{out}");
    assert_eq!(queued(&dir, "listenbrainz", false), 3000);

    // Later: only what is new is read.
    wait_past(started + 1);
    let new: Vec<(u64, String, String)> = (0..3)
        .map(|i| (started + 1, format!("New {i}"), "T".to_string()))
        .collect();
    lastfm.add_history("alice", new.clone());
    wait_past(started + 2);
    let before = lastfm.recent_requests().len();
    let out = ok(&run_cli(
        &dir,
        &["import", "lastfm", "--user", "alice"],
        None,
    ));
    assert!(
        out.contains("read 3 plays; the history gained 3 (0 there already)"),
        "{out}"
    );
    let again = &lastfm.recent_requests()[before..];
    assert_eq!(again.len(), 1, "{again:?}");
    // From an hour before the end of what the first run covered.
    let from: u64 = again[0]["from"].parse().unwrap();
    assert!(
        (started - 3600..started + 5 - 3600).contains(&from),
        "{again:?}"
    );
    record.extend(new);
    assert_history(&dir, &record, "lastfm");
}

#[test]
fn lastfm_import_waits_out_a_rate_limit_and_server_errors() {
    let (lastfm, dir, record) = lastfm_setup();
    lastfm.fail_next(1, fake_lastfm::Failure::Api(29));
    let start = Instant::now();
    let mut child = spawn(&dir, &["import", "lastfm", "--user", "alice"], "import");
    // Meanwhile the server fails twice more (HTTP 503), later in the run.
    let deadline = Instant::now() + Duration::from_secs(90);
    while lastfm.recent_requests().len() < 3 {
        assert!(Instant::now() < deadline, "{}", read(&dir, "import"));
        std::thread::sleep(Duration::from_millis(20));
    }
    lastfm.fail_next(2, fake_lastfm::Failure::Http(503));
    let status = wait(&mut child, Duration::from_secs(180));
    let out = read(&dir, "import");
    assert!(status.success(), "{out}");
    assert!(
        start.elapsed() >= Duration::from_secs(60 + 2 + 4),
        "a minute after error 29, then 2 s and 4 s after the 503s"
    );
    assert!(
        out.contains("too many requests") || out.contains("29"),
        "{out}"
    );
    assert!(
        out.contains("the history gained 3000 (0 there already)"),
        "{out}"
    );
    // The refused page is asked again, unchanged.
    let asked = lastfm.recent_requests();
    assert_eq!(asked[0], asked[1]);
    assert_history(&dir, &record, "lastfm");
}

#[test]
fn a_killed_lastfm_import_resumes_and_imports_nothing_twice() {
    let (lastfm, dir, record) = lastfm_setup();
    lastfm.set_recent_delay(Some(Duration::from_millis(300)));
    let mut child = spawn(&dir, &["import", "lastfm"], "first");
    let deadline = Instant::now() + Duration::from_secs(60);
    while lastfm.recent_requests().len() < 6 {
        assert!(Instant::now() < deadline, "{}", read(&dir, "first"));
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let stored = history(&dir).len();
    assert!(
        (800..3000).contains(&stored),
        "killed mid-import: {stored} plays stored"
    );
    let first_run = lastfm.recent_requests();
    lastfm.set_recent_delay(None);

    let oldest_stored = history(&dir).first().unwrap().0;
    let out = ok(&run_cli(&dir, &["import", "lastfm"], None));
    let resumed = &lastfm.recent_requests()[first_run.len()..];
    // It continued just above the oldest play it had stored, not from the top.
    assert_eq!(
        resumed[0]["to"],
        (oldest_stored + 1).to_string(),
        "{:?}",
        resumed[0]
    );
    assert_eq!(resumed[0]["page"], "1");
    // 16 pages in all: the one in flight at the kill is asked again, and
    // then the time since the first run began (one empty page).
    assert!(
        first_run.len() + resumed.len() <= 18,
        "{} requests, then {} after the restart",
        first_run.len(),
        resumed.len()
    );
    // At most the page being stored when it was killed is read again.
    let gained: usize = out
        .split("the history gained ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(gained, 3000 - stored, "{out}");
    assert_history(&dir, &record, "lastfm");
}

/// Libre.fm runs GNU FM, whose `user.getRecentTracks` ignores `from` and
/// `to`: the import notices and pages by number.
#[test]
fn a_gnu_fm_record_is_read_by_page_number() {
    let (lastfm, dir, mut record) = lastfm_setup();
    lastfm.set_gnu_fm(true);
    let started = now();
    let out = ok(&run_cli(
        &dir,
        &["import", "lastfm", "--user", "alice"],
        None,
    ));
    assert!(
        out.contains("read 3000 plays; the history gained 3000 (0 there already)"),
        "{out}"
    );
    assert_history(&dir, &record, "lastfm");
    let asked = lastfm.recent_requests();
    let pages: Vec<&str> = asked.iter().map(|p| p["page"].as_str()).collect();
    // Page 1 twice (the second time with a `to` it ignored), then on.
    let expected: Vec<String> = std::iter::once("1".to_string())
        .chain((1..=15).map(|p| p.to_string()))
        .collect();
    assert_eq!(pages, expected);

    wait_past(started + 1);
    let new = vec![(started + 1, "New".to_string(), "Play".to_string())];
    lastfm.add_history("alice", new.clone());
    wait_past(started + 2);
    let out = ok(&run_cli(
        &dir,
        &["import", "lastfm", "--user", "alice"],
        None,
    ));
    assert!(
        out.contains("the history gained 1 (0 there already)"),
        "{out}"
    );
    record.extend(new);
    assert_history(&dir, &record, "lastfm");
}

/// `import lastfm | head -1`: the import runs to its end, quietly.
#[test]
fn an_import_into_a_closed_pipe_ends_quietly() {
    let (_lastfm, dir, record) = lastfm_setup();
    let out = run_cli_stdout_closed(&dir, &["import", "lastfm", "--user", "alice"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
    assert_history(&dir, &record, "lastfm");
}

#[test]
fn lastfm_refusals_are_clear_errors() {
    let (lastfm, dir, _) = lastfm_setup();
    let out = run_cli(&dir, &["import", "lastfm", "--user", "nobody"], None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no user \"nobody\""), "{stderr}");
    assert!(!stderr.contains(fake_lastfm::API_KEY), "{stderr}");

    lastfm.fail_next(1, fake_lastfm::Failure::Api(10));
    let out = run_cli(&dir, &["import", "lastfm", "--user", "alice"], None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("api_key"), "{stderr}");

    let out = run_cli(&dir, &["import", "lastfm", "--target", "libre"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(history(&dir).is_empty());
}

fn listenbrainz_setup(n: u64) -> (FakeListenBrainz, TestDir, Vec<(u64, String, String)>) {
    let lb = FakeListenBrainz::start();
    lb.add_token(fake_listenbrainz::TOKEN, "bob");
    let dir = TestDir::new();
    dir.write_config(&format!(
        "state_dir = {}\n[listenbrainz]\nurl = {}\ntoken = {}\n",
        toml_str(&dir.state_dir().display().to_string()),
        toml_str(&lb.url()),
        toml_str(fake_listenbrainz::TOKEN),
    ));
    let record = plays(n);
    lb.add_history("bob", record.clone());
    (lb, dir, record)
}

/// The `max_ts` of a listens request's query.
fn max_ts(query: &str) -> u64 {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("max_ts="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no max_ts in {query}"))
}

#[test]
fn listenbrainz_import_by_user_brings_every_listen_once_and_resumes() {
    let (lb, dir, mut record) = listenbrainz_setup(3500);
    lb.set_listens_delay(Some(Duration::from_millis(300)));
    let started = now();
    let mut child = spawn(&dir, &["import", "listenbrainz", "--user", "bob"], "first");
    let deadline = Instant::now() + Duration::from_secs(60);
    while lb.listens_requests().len() < 3 {
        assert!(Instant::now() < deadline, "{}", read(&dir, "first"));
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let stored = history(&dir).len();
    assert!((1000..3500).contains(&stored), "{stored} stored");
    let first_run = lb.listens_requests();
    lb.set_listens_delay(None);

    let out = ok(&run_cli(
        &dir,
        &["import", "listenbrainz", "--user", "bob"],
        None,
    ));
    let resumed = &lb.listens_requests()[first_run.len()..];
    assert!(
        resumed.iter().all(|q| q.contains("count=1000")),
        "{resumed:?}"
    );
    assert!(
        max_ts(&resumed[0]) < max_ts(&first_run[0]),
        "started over: {resumed:?}"
    );
    let gained = out
        .split("the history gained ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(gained, 3500 - stored, "{out}");
    assert_history(&dir, &record, "listenbrainz");
    assert_eq!(queued(&dir, "listenbrainz", false), 0);
    let out = ok(&run_cli(&dir, &["backfill", "listenbrainz"], None));
    assert!(
        out.contains("listenbrainz: queued 0 plays (3500 it has already)."),
        "{out}"
    );
    assert_eq!(queued(&dir, "listenbrainz", false), 0);

    // Later: only what is new.
    wait_past(started + 1);
    let new = vec![(started + 1, "New".to_string(), "Listen".to_string())];
    lb.add_history("bob", new.clone());
    wait_past(started + 2);
    let before = lb.listens_requests().len();
    let out = ok(&run_cli(
        &dir,
        &["import", "listenbrainz", "--user", "bob"],
        None,
    ));
    assert!(out.contains("read 1 play;"), "{out}");
    assert_eq!(lb.listens_requests().len() - before, 1);
    record.extend(new);
    assert_history(&dir, &record, "listenbrainz");
}

#[test]
fn listenbrainz_import_waits_out_a_rate_limit_and_names_an_unknown_user() {
    let (lb, dir, record) = listenbrainz_setup(1200);
    lb.fail_next(1, fake_listenbrainz::Failure::RateLimited { reset_in: 3 });
    let start = Instant::now();
    let out = ok(&run_cli(
        &dir,
        &["import", "listenbrainz", "--user", "bob"],
        None,
    ));
    assert!(start.elapsed() >= Duration::from_secs(3), "{out}");
    let asked = lb.listens_requests();
    assert_eq!(asked[0], asked[1], "the same page again");
    assert_history(&dir, &record, "listenbrainz");

    let out = run_cli(&dir, &["import", "listenbrainz", "--user", "nobody"], None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no user \"nobody\""), "{stderr}");
    // Neither a file nor a user: a usage error.
    let out = run_cli(&dir, &["import", "listenbrainz"], None);
    assert_eq!(out.status.code(), Some(2));
}

/// The import writes the history while the daemon records a play in it:
/// both land, the play goes out once, the imported listens never.
#[test]
fn an_import_runs_beside_the_daemon() {
    let mpd = MpdServer::start(&[SongSpec::new(
        "live/now.flac",
        6,
        &[("ARTIST", "Live Artist"), ("TITLE", "Played Now")],
    )]);
    let (lb, dir, mut record) = listenbrainz_setup(2500);
    dir.write_config(&format!(
        "state_dir = {}\n[mpd]\nhost = \"127.0.0.1\"\nport = {}\n\
         [scrobble]\nmin_track_secs = 2\n\
         [delivery]\nretry_min = \"200ms\"\nretry_max = \"2s\"\n\
         [listenbrainz]\nurl = {}\ntoken = {}\n",
        toml_str(&dir.state_dir().display().to_string()),
        mpd.port(),
        toml_str(&lb.url()),
        toml_str(fake_listenbrainz::TOKEN),
    ));
    let daemon = Daemon::spawn(&dir);
    assert!(
        daemon.wait_log("connected to MPD", Duration::from_secs(20)),
        "{}",
        daemon.log()
    );
    // The play is recorded while the import holds the history open: pages
    // take a second each, and the song counts 3 s after it starts.
    lb.set_listens_delay(Some(Duration::from_secs(1)));
    let mut import = spawn(&dir, &["import", "listenbrainz", "--user", "bob"], "import");
    let deadline = Instant::now() + Duration::from_secs(30);
    while lb.listens_requests().is_empty() {
        assert!(Instant::now() < deadline, "{}", read(&dir, "import"));
        std::thread::sleep(Duration::from_millis(10));
    }
    mpd.enqueue(&["live/now.flac"]);
    mpd.play();
    assert!(
        wait(&mut import, Duration::from_secs(60)).success(),
        "{}",
        read(&dir, "import")
    );
    let sent = lb.wait_for_listens(2501, Duration::from_secs(40));
    assert_eq!(sent.len(), 2501, "{}", daemon.log());
    assert_eq!(lb.duplicates(), 0);
    let live = sent.iter().find(|l| l.track_name == "Played Now").unwrap();
    record.push((
        live.listened_at.unwrap(),
        "Live Artist".into(),
        "Played Now".into(),
    ));
    record.sort();
    let got = history(&dir);
    let plays: Vec<(u64, String, String)> = got
        .iter()
        .map(|p| (p.0, p.1.clone(), p.2.clone()))
        .collect();
    assert_eq!(plays, record);
    assert!(read(&dir, "import").contains("the history gained 2500 (0 there already)"));
}

/// Whatever answers in the server's place, the import ends with an error
/// naming what to fix, or skips what it cannot read; it never panics.
#[test]
fn hostile_answers_end_the_import_cleanly() {
    let hostile = HostileServer::start(Answer::fixed(
        200,
        "text/html",
        "<html>captive portal</html>",
        &[],
    ));
    let dir = TestDir::new();
    let url = format!("http://{}/2.0/", hostile.addr());
    dir.write_test_config(1, &url, None);
    let out = run_cli(&dir, &["import", "lastfm", "--user", "alice"], None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not the API's JSON"), "{stderr}");
    assert!(stderr.contains("`url`"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    hostile.set(Answer::fixed(
        200,
        "application/json",
        r##"{"recenttracks":{"@attr":{"totalPages":"x","total":[]},"track":[
            1, "x", null, {"date":{"uts":"5"}},
            {"artist":{"#text":"A"},"name":"T","date":{"uts":"-3"}},
            {"artist":{"#text":"A"},"name":"T","date":{"uts":"1700000000"}}]}}"##,
        &[],
    ));
    let out = ok(&run_cli(
        &dir,
        &["import", "lastfm", "--user", "alice"],
        None,
    ));
    assert!(
        out.contains("the history gained 1 (0 there already)"),
        "{out}"
    );
    assert!(
        out.contains("1 entry without an artist or a title skipped"),
        "{out}"
    );
    assert_eq!(history(&dir).len(), 1);
}

/// Ctrl-C ends an import between two pages, saying how to go on; the next
/// run does.
#[test]
fn ctrl_c_stops_an_import_that_the_next_run_continues() {
    let (lastfm, dir, record) = lastfm_setup();
    lastfm.set_recent_delay(Some(Duration::from_millis(300)));
    let mut child = spawn(&dir, &["import", "lastfm", "--user", "alice"], "first");
    let deadline = Instant::now() + Duration::from_secs(60);
    while lastfm.recent_requests().len() < 3 {
        assert!(Instant::now() < deadline, "{}", read(&dir, "first"));
        std::thread::sleep(Duration::from_millis(10));
    }
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = wait(&mut child, Duration::from_secs(30));
    let out = read(&dir, "first");
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(
        out.contains("interrupted: run the same command again"),
        "{out}"
    );
    assert!(!out.contains("panicked"), "{out}");
    let stored = history(&dir).len();
    assert!((200..3000).contains(&stored), "{stored}");
    lastfm.set_recent_delay(None);
    let out = ok(&run_cli(
        &dir,
        &["import", "lastfm", "--user", "alice"],
        None,
    ));
    assert!(
        out.contains(&format!("the history gained {} ", 3000 - stored)),
        "{out}"
    );
    assert_history(&dir, &record, "lastfm");
}
