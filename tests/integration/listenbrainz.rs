//! ListenBrainz-compatible targets end to end, alone and beside Last.fm.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::daemon::{Daemon, TestDir, queued, run_cli};
use crate::common::fake_lastfm::{self, FakeLastFm};
use crate::common::fake_listenbrainz::{self, FakeListenBrainz, Flavor};
use crate::common::http_server::{Response, Server};
use crate::common::mpd::{MpdServer, SongSpec};

const RECORDING: &str = "b8f4c4b6-2c3f-4a9e-9a5e-0123456789ab";
const ARTIST_A: &str = "11111111-2222-3333-4444-555555555555";
const ARTIST_B: &str = "66666666-7777-8888-9999-000000000000";
const RELEASE: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";

/// Songs of 8 s that count after 2 s of play (see `config`): a song the
/// daemon sees start seconds late still counts.
fn library() -> Vec<SongSpec> {
    vec![
        SongSpec {
            file: "lb/0.flac",
            secs: 8,
            tags: vec![
                ("ARTIST", "Sigur Rós".into()),
                ("ARTIST", "Jónsi".into()),
                ("TITLE", "Hoppípolla & = 日本語".into()),
                ("ALBUM", "Takk...".into()),
                ("TRACKNUMBER", "3/11".into()),
                ("MUSICBRAINZ_TRACKID", RECORDING.into()),
                ("MUSICBRAINZ_ARTISTID", ARTIST_A.into()),
                ("MUSICBRAINZ_ARTISTID", ARTIST_B.into()),
                ("MUSICBRAINZ_ALBUMID", RELEASE.into()),
                ("MUSICBRAINZ_RELEASEGROUPID", "not-a-uuid".into()),
            ],
        },
        SongSpec {
            file: "lb/1.flac",
            secs: 8,
            tags: vec![("ARTIST", "Artist 1".into()), ("TITLE", "Song 1".into())],
        },
        SongSpec {
            file: "lb/2.flac",
            secs: 8,
            tags: vec![("ARTIST", "Artist 2".into()), ("TITLE", "Song 2".into())],
        },
    ]
}

/// A config with the given target sections and test timings.
fn config(mpd: &MpdServer, dir: &TestDir, targets: &str) -> String {
    format!(
        "state_dir = {:?}\n[mpd]\nhost = \"127.0.0.1\"\nport = {}\n\
         [scrobble]\nmin_track_secs = 1\nplayed_percent = 25\n\
         [delivery]\nretry_min = \"200ms\"\nretry_max = \"1s\"\nrequest_timeout = \"5s\"\n{targets}",
        dir.state_dir().display().to_string(),
        mpd.port()
    )
}

fn lastfm_section(server: &FakeLastFm) -> String {
    format!(
        "[lastfm]\nurl = {:?}\napi_key = {:?}\napi_secret = {:?}\nsession_key = {:?}\n",
        server.url(),
        fake_lastfm::API_KEY,
        fake_lastfm::API_SECRET,
        server.issue_session("alice")
    )
}

fn listenbrainz_section(server: &FakeListenBrainz) -> String {
    format!(
        "[listenbrainz]\nurl = {:?}\ntoken = {:?}\n",
        server.url(),
        fake_listenbrainz::TOKEN
    )
}

fn start(mpd: &MpdServer, dir: &TestDir, targets: &str) -> Daemon {
    dir.write_config(&config(mpd, dir, targets));
    let daemon = Daemon::spawn(dir);
    assert!(
        daemon.wait_log("connected to MPD", Duration::from_secs(10)),
        "{}",
        daemon.log()
    );
    daemon
}

/// Play the three songs one at a time, each until the daemon has queued it,
/// then stop.
fn play_all(mpd: &MpdServer, daemon: &Daemon) {
    for file in ["lb/0.flac", "lb/1.flac", "lb/2.flac"] {
        let before = daemon.log_count("queued \"");
        mpd.play_file(file);
        assert!(
            daemon.wait_log_count("queued \"", before + 1, Duration::from_secs(15)),
            "{file} never queued:\n{}",
            daemon.log()
        );
    }
    mpd.stop();
}

#[test]
fn both_targets_receive_the_same_plays_with_metadata() {
    let mpd = MpdServer::start(&library());
    let (lastfm, lb) = (FakeLastFm::start(), FakeListenBrainz::start());
    let dir = TestDir::new();
    let daemon = start(
        &mpd,
        &dir,
        &(lastfm_section(&lastfm) + &listenbrainz_section(&lb)),
    );
    play_all(&mpd, &daemon);
    let listens = lb.wait_for_listens(3, Duration::from_secs(20));
    let scrobbles = lastfm.wait_for_scrobbles(3, Duration::from_secs(5));
    assert_eq!(listens.len(), 3, "{}", daemon.log());
    let from_lb: Vec<_> = listens
        .iter()
        .map(|l| {
            (
                l.artist_name.clone(),
                l.track_name.clone(),
                l.listened_at.unwrap(),
            )
        })
        .collect();
    let from_lastfm: Vec<_> = scrobbles
        .iter()
        .map(|s| (s.artist.clone(), s.track.clone(), s.timestamp))
        .collect();
    assert_eq!(from_lb, from_lastfm, "the same plays, the same start times");
    assert_eq!(listens[0].artist_name, "Sigur Rós, Jónsi");
    assert_eq!(listens[0].track_name, "Hoppípolla & = 日本語");
    assert_eq!(listens[0].release_name.as_deref(), Some("Takk..."));
    assert!(listens.iter().all(|l| l.listen_type == "single"));
    let info = &listens[0].additional_info;
    assert_eq!(info["media_player"], "MPD");
    assert_eq!(info["submission_client"], "mpd-scrobbler");
    assert_eq!(info["submission_client_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info["duration_ms"], 8000);
    assert_eq!(info["tracknumber"], "3");
    assert_eq!(info["recording_mbid"], RECORDING);
    assert_eq!(info["release_mbid"], RELEASE);
    assert_eq!(
        info["artist_mbids"],
        serde_json::json!([ARTIST_A, ARTIST_B])
    );
    assert!(
        info.get("release_group_mbid").is_none(),
        "an invalid MBID is left out: {info}"
    );
    assert!(!lb.playing_now().is_empty(), "playing_now was sent");
    assert!(lb.playing_now().iter().all(|p| p.listened_at.is_none()));
}

#[test]
fn one_target_down_does_not_delay_the_other_and_catches_up_in_an_import() {
    let mpd = MpdServer::start(&library());
    let (lastfm, lb) = (FakeLastFm::start(), FakeListenBrainz::start());
    let dir = TestDir::new();
    let mut daemon = start(
        &mpd,
        &dir,
        &(lastfm_section(&lastfm) + &listenbrainz_section(&lb)),
    );
    lb.go_down();
    play_all(&mpd, &daemon);
    let scrobbles = lastfm.wait_for_scrobbles(3, Duration::from_secs(20));
    assert_eq!(
        scrobbles.len(),
        3,
        "Last.fm kept receiving: {}",
        daemon.log()
    );
    assert!(lb.listens().is_empty());
    lb.come_up();
    let listens = lb.wait_for_listens(3, Duration::from_secs(10));
    assert!(daemon.sigterm().success(), "{}", daemon.log());
    assert_eq!(lb.listens().len(), 3, "none twice: {}", daemon.log());
    assert_eq!(
        queued(&dir, "listenbrainz", false),
        0,
        "nothing left to send"
    );
    let titles: Vec<_> = listens.iter().map(|l| l.track_name.as_str()).collect();
    assert_eq!(titles, ["Hoppípolla & = 日本語", "Song 1", "Song 2"]);
    assert!(
        lb.submissions().contains(&("import".to_string(), 3)),
        "the backlog went out as one import: {:?}",
        lb.submissions()
    );
    assert_eq!(lastfm.scrobbles().len(), 3);
    assert_eq!(lastfm.duplicates(), 0);
    assert_eq!(lb.duplicates(), 0);
}

/// Stands in for every server off loopback: the daemon's proxy variables
/// point here, so any request to a real service's address (for https, a
/// CONNECT naming its host) is recorded, and refused.
struct RecordingProxy {
    server: Server,
    seen: Arc<Mutex<Vec<String>>>,
}

impl RecordingProxy {
    fn start() -> RecordingProxy {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        let server = Server::start(move |req| {
            let line = format!("{} {}", req.method, req.path);
            record.lock().unwrap().push(line);
            Response {
                status: 403,
                content_type: "text/plain",
                headers: Vec::new(),
                body: "no outside access in tests".into(),
            }
        });
        RecordingProxy { server, seen }
    }

    /// Requests seen: "CONNECT ws.audioscrobbler.com:443".
    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    /// The environment that sends the daemon's outside requests here;
    /// the stand-ins and mpd on 127.0.0.1 are reached directly.
    fn env(&self) -> Vec<(&'static str, String)> {
        let url = format!("http://{}", self.server.addr());
        vec![
            ("HTTP_PROXY", url.clone()),
            ("HTTPS_PROXY", url.clone()),
            ("ALL_PROXY", url),
            ("NO_PROXY", "127.0.0.1,localhost".into()),
        ]
    }
}

/// The daemon started with `config`'s targets and its outside requests
/// going to `proxy`.
fn start_behind(proxy: &RecordingProxy, mpd: &MpdServer, dir: &TestDir, targets: &str) -> Daemon {
    dir.write_config(&config(mpd, dir, targets));
    let env = proxy.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let daemon = Daemon::spawn_env(dir, &env);
    assert!(
        daemon.wait_log("connected to MPD", Duration::from_secs(10)),
        "{}",
        daemon.log()
    );
    daemon
}

#[test]
fn listenbrainz_only_config_never_calls_lastfm() {
    let mpd = MpdServer::start(&library());
    let (lastfm, lb) = (FakeLastFm::start(), FakeListenBrainz::start());
    let proxy = RecordingProxy::start();
    let dir = TestDir::new();
    // A Last.fm session left from an earlier set-up: a daemon that made a
    // Last.fm target of it would send to Last.fm's default address.
    {
        use std::io::Write;
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(dir.state_dir())
            .unwrap();
        let session = format!(
            "{{\"user\":\"alice\",\"key\":\"{}\"}}",
            lastfm.issue_session("alice")
        );
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dir.state_dir().join("lastfm.session"))
            .and_then(|mut f| f.write_all(session.as_bytes()))
            .unwrap();
    }
    let mut daemon = start_behind(&proxy, &mpd, &dir, &listenbrainz_section(&lb));
    mpd.play_file("lb/1.flac");
    let listens = lb.wait_for_listens(1, Duration::from_secs(15));
    assert_eq!(listens.len(), 1, "{}", daemon.log());
    mpd.stop();
    assert!(daemon.sigterm().success(), "{}", daemon.log());
    assert_eq!(proxy.seen(), Vec::<String>::new(), "requests off loopback");
    assert_eq!(lastfm.request_count("track.scrobble"), 0);
    assert!(!daemon.log().contains("lastfm"), "{}", daemon.log());
}

/// The control for the test above: the proxy does see a daemon that sends
/// to Last.fm's default address.
#[test]
fn a_lastfm_target_at_the_default_address_shows_at_the_recording_proxy() {
    let mpd = MpdServer::start(&library());
    let proxy = RecordingProxy::start();
    let dir = TestDir::new();
    let lastfm = format!(
        "[lastfm]\napi_key = {:?}\napi_secret = {:?}\nsession_key = \"0123456789abcdef0123456789abcdef\"\n",
        fake_lastfm::API_KEY,
        fake_lastfm::API_SECRET,
    );
    let mut daemon = start_behind(&proxy, &mpd, &dir, &lastfm);
    mpd.play_file("lb/1.flac");
    let start = Instant::now();
    while proxy.seen().is_empty() && start.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(20));
    }
    mpd.stop();
    assert!(daemon.sigterm().success(), "{}", daemon.log());
    assert!(
        proxy
            .seen()
            .iter()
            .any(|r| r == "CONNECT ws.audioscrobbler.com:443"),
        "{:?}\n{}",
        proxy.seen(),
        daemon.log()
    );
}

#[test]
fn revoked_token_pauses_and_auth_listenbrainz_resumes() {
    let mpd = MpdServer::start(&library());
    let lb = FakeListenBrainz::start();
    let dir = TestDir::new();
    let daemon = start(&mpd, &dir, &listenbrainz_section(&lb));
    lb.revoke_token(fake_listenbrainz::TOKEN);
    mpd.play_file("lb/1.flac");
    assert!(
        daemon.wait_log(
            "run `mpd-scrobbler auth listenbrainz`",
            Duration::from_secs(10)
        ),
        "{}",
        daemon.log()
    );
    let new_token = "fedcba98-7654-3210-fedc-ba9876543210";
    lb.add_token(new_token, "alice");
    let out = run_cli(
        &dir,
        &["auth", "listenbrainz"],
        Some(&format!("{new_token}\n")),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Authorised as alice"), "{stdout}");
    assert!(!stdout.contains(new_token), "token echoed");
    let listens = lb.wait_for_listens(1, Duration::from_secs(10));
    assert_eq!(listens.len(), 1, "{}", daemon.log());
    assert!(!daemon.log().contains(new_token), "token in the log");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.state_dir().join("listenbrainz.session"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn auth_listenbrainz_refuses_an_unknown_token() {
    let lb = FakeListenBrainz::start();
    let dir = TestDir::new();
    dir.write_config(&format!(
        "state_dir = {:?}\n[listenbrainz]\nurl = {:?}\n",
        dir.state_dir().display().to_string(),
        lb.url()
    ));
    let out = run_cli(&dir, &["auth", "listenbrainz"], Some("not-a-token\n"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does not accept this token"), "{stderr}");
}

#[test]
fn rate_limit_waits_for_the_reset_and_a_bad_listen_is_set_aside() {
    let mpd = MpdServer::start(&library());
    let lb = FakeListenBrainz::start();
    let dir = TestDir::new();
    let daemon = start(&mpd, &dir, &listenbrainz_section(&lb));
    lb.go_down();
    lb.set_poison_artist(Some("Artist 1"));
    play_all(&mpd, &daemon);
    // Longer than any backoff of this config (retry_max 1 s).
    let reset_in = 3;
    lb.fail_next(1, fake_listenbrainz::Failure::RateLimited { reset_in });
    lb.come_up();
    let listens = lb.wait_for_listens(2, Duration::from_secs(20));
    let titles: Vec<_> = listens.iter().map(|l| l.track_name.as_str()).collect();
    assert_eq!(
        titles,
        ["Hoppípolla & = 日本語", "Song 2"],
        "{}",
        daemon.log()
    );
    // The next submission came no earlier than the server's reset.
    let times = lb.submission_times();
    let limited = times
        .iter()
        .position(|(_, limited)| *limited)
        .expect("a submission was rate-limited");
    let (at, _) = times[limited];
    let (next, _) = times
        .get(limited + 1)
        .copied()
        .expect("a submission after the rate limit");
    let waited = next - at;
    assert!(
        waited >= Duration::from_secs(reset_in),
        "retried {waited:?} after a 429 asking for {reset_in} s\n{}",
        daemon.log()
    );
    let log = daemon.log();
    assert!(log.contains("HTTP 429"), "{log}");
    assert!(log.contains("refused \"Artist 1 – Song 1\""), "{log}");
}

#[test]
fn maloja_gets_single_listens_with_duration_in_seconds() {
    let mpd = MpdServer::start(&library());
    let maloja = FakeListenBrainz::start_flavor(Flavor::Maloja);
    let dir = TestDir::new();
    let daemon = start(&mpd, &dir, &listenbrainz_section(&maloja));
    maloja.go_down();
    play_all(&mpd, &daemon);
    maloja.come_up();
    let listens = maloja.wait_for_listens(3, Duration::from_secs(10));
    assert_eq!(listens.len(), 3, "{}", daemon.log());
    assert!(
        maloja
            .submissions()
            .iter()
            .all(|(t, n)| t == "single" && *n == 1),
        "one listen per request for Maloja: {:?}",
        maloja.submissions()
    );
    assert_eq!(listens[0].additional_info["duration"], 8);
    assert!(listens[0].additional_info.get("duration_ms").is_none());
}
