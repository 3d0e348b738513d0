//! Auxiliary parts never stop scrobbling, and guard what they hold: the
//! control socket (where it lives, its mode, who may talk, line and idle
//! limits), damaged session files, config errors on secret lines, and the
//! state directory's mode.

use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::daemon::{Daemon, TestDir, config_toml, run_cli, run_cli_as, run_cli_env};
use crate::common::fake_lastfm::{self, FakeLastFm};
use crate::common::fake_listenbrainz::{self, FakeListenBrainz};
use crate::common::mpd::{MpdServer, default_library};

const SONG: &str = "misc/plain.flac";
const OTHER_SONG: &str = "misc/rock.flac";

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The one socket the daemon made in `dir`'s runtime directory.
fn runtime_socket(dir: &TestDir) -> PathBuf {
    let sockets: Vec<PathBuf> = std::fs::read_dir(dir.runtime_dir().join("mpd-scrobbler"))
        .expect("the daemon's runtime directory")
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(sockets.len(), 1, "{sockets:?}");
    sockets.into_iter().next().unwrap()
}

fn start(dir: &TestDir, env: &[(&str, &str)]) -> Daemon {
    let daemon = Daemon::spawn_env(dir, env);
    assert!(
        daemon.wait_log("connected to MPD", Duration::from_secs(10)),
        "{}",
        daemon.log()
    );
    daemon
}

/// Play `file` until the stand-in holds `n` scrobbles, the last of them it.
fn play_until_scrobbled(
    mpd: &MpdServer,
    lastfm: &FakeLastFm,
    daemon: &Daemon,
    file: &str,
    n: usize,
) {
    mpd.play_file(file);
    let got = lastfm.wait_for_scrobbles(n, Duration::from_secs(30));
    assert_eq!(got.len(), n, "{got:?}\n{}", daemon.log());
    mpd.stop();
}

#[test]
fn a_long_state_dir_scrobbles_with_and_without_a_runtime_dir() {
    let mpd = MpdServer::start(&default_library());
    let lastfm = FakeLastFm::start();
    let dir = TestDir::new();
    // Over 150 bytes: too long for a socket address (107 at most).
    let state = dir
        .path()
        .join("x".repeat(70))
        .join("y".repeat(70))
        .join("state");
    assert!(state.as_os_str().len() > 150);
    let sk = lastfm.issue_session("alice");
    dir.write_config(&config_toml(mpd.port(), &state, &lastfm.url(), Some(&sk)));

    // No runtime directory: the socket would be in the state directory, and
    // cannot be; the daemon says why and scrobbles on.
    let no_runtime = [("XDG_RUNTIME_DIR", "")];
    let mut daemon = start(&dir, &no_runtime);
    assert!(
        daemon.wait_log("cannot create the control socket", Duration::from_secs(5)),
        "{}",
        daemon.log()
    );
    assert!(daemon.log().contains("at most 107"), "{}", daemon.log());
    play_until_scrobbled(&mpd, &lastfm, &daemon, SONG, 1);
    assert!(daemon.is_running());
    // The commands find no daemon to ask, and say why they cannot help.
    let out = run_cli_env(&dir, &["status"], None, &no_runtime);
    assert!(!out.status.success());
    assert!(daemon.sigterm().success(), "{}", daemon.log());

    // With a runtime directory: a short socket there, and `status` works.
    let mut daemon = start(&dir, &[]);
    let socket = runtime_socket(&dir);
    assert!(socket.as_os_str().len() < 108, "{}", socket.display());
    assert_eq!(mode(&socket), 0o600);
    assert_eq!(mode(&dir.runtime_dir().join("mpd-scrobbler")), 0o700);
    assert_eq!(
        std::fs::read_link(state.join("control.sock")).unwrap(),
        socket
    );
    let out = run_cli(&dir, &["status"], None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("MPD: connected"), "{stdout}");
    play_until_scrobbled(&mpd, &lastfm, &daemon, OTHER_SONG, 2);
    assert!(daemon.sigterm().success(), "{}", daemon.log());
    assert!(!socket.exists(), "removed at exit");
    assert!(std::fs::symlink_metadata(state.join("control.sock")).is_err());
}

#[test]
fn two_daemons_with_different_state_dirs_each_answer_their_own_commands() {
    let (mpd_a, mpd_b) = (MpdServer::start(&[]), MpdServer::start(&[]));
    let lastfm = FakeLastFm::start();
    let sk = lastfm.issue_session("alice");
    let (a, b) = (TestDir::new(), TestDir::new());
    a.write_test_config(mpd_a.port(), &lastfm.url(), Some(&sk));
    b.write_test_config(mpd_b.port(), &lastfm.url(), Some(&sk));
    // One runtime directory, as for two daemons of one user.
    let runtime = a.runtime_dir();
    let shared = [("XDG_RUNTIME_DIR", runtime.to_str().unwrap())];
    let _daemon_a = start(&a, &shared);
    let _daemon_b = start(&b, &shared);
    let sockets = std::fs::read_dir(runtime.join("mpd-scrobbler"))
        .unwrap()
        .count();
    assert_eq!(sockets, 2);
    let address = |dir: &TestDir| {
        let out = run_cli_env(dir, &["status", "--json"], None, &shared);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["mpd"]["address"].as_str().unwrap().to_owned()
    };
    assert_eq!(address(&a), format!("127.0.0.1:{}", mpd_a.port()));
    assert_eq!(address(&b), format!("127.0.0.1:{}", mpd_b.port()));
}

/// Read until the daemon closes the connection; what came, and when it
/// closed. A reset after the reply counts as closing: the daemon closed
/// with some of the request unread.
fn read_to_close(stream: &mut UnixStream) -> (String, Instant) {
    stream
        .set_read_timeout(Some(Duration::from_secs(40)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("the daemon did not close the connection within 40 s: {e}"),
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), Instant::now())
}

#[test]
fn the_control_socket_is_private_bounded_and_checks_its_peer() {
    let mpd = MpdServer::start(&default_library());
    let lastfm = FakeLastFm::start();
    let dir = TestDir::new();
    dir.write_test_config(
        mpd.port(),
        &lastfm.url(),
        Some(&lastfm.issue_session("alice")),
    );
    let daemon = start(&dir, &[]);
    let socket = runtime_socket(&dir);
    assert!(std::fs::metadata(&socket).unwrap().file_type().is_socket());
    assert_eq!(mode(&socket), 0o600);

    // A line over 4 KiB: refused, and the connection closed.
    let mut long = UnixStream::connect(&socket).unwrap();
    long.write_all(&[b'x'; 5000]).unwrap();
    let (reply, _) = read_to_close(&mut long);
    assert!(reply.contains("longer than 4096 bytes"), "{reply:?}");
    // So is `import` past its own bound (16 MiB), without the daemon holding it.
    let mut huge = UnixStream::connect(&socket).unwrap();
    huge.write_all(b"{\"import\":[").unwrap();
    let chunk = vec![b' '; 1 << 20];
    for _ in 0..17 {
        if huge.write_all(&chunk).is_err() {
            break;
        }
    }
    let (reply, _) = read_to_close(&mut huge);
    assert!(reply.contains("longer than 16777216 bytes"), "{reply:?}");

    // Half a line and then nothing: closed after the idle timeout (10 s),
    // while other connections are served meanwhile.
    let connected = Instant::now();
    let mut idle = UnixStream::connect(&socket).unwrap();
    idle.write_all(b"sta").unwrap();
    let out = run_cli(&dir, &["status"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (reply, closed) = read_to_close(&mut idle);
    assert_eq!(reply, "");
    // The daemon's clock started after `connected`; a little slack for
    // timer rounding.
    let waited = closed - connected;
    assert!(
        waited >= Duration::from_millis(9900),
        "closed after {waited:?}"
    );

    // The daemon goes on scrobbling.
    play_until_scrobbled(&mpd, &lastfm, &daemon, SONG, 1);

    // Another user, even where the file's mode would let it in, is refused
    // by its uid.
    if !crate::common::runs_as_root("connecting as another uid (switching users)") {
        return;
    }
    let runtime = dir.runtime_dir();
    for d in [runtime.clone(), runtime.join("mpd-scrobbler")] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o711)).unwrap();
    }
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = run_cli_as(&dir, 65534, &["status"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("only uid 0 (and root) may use this daemon's control socket"),
        "{stderr}"
    );
    assert!(
        daemon.wait_log(
            "refused a connection from uid 65534",
            Duration::from_secs(5)
        ),
        "{}",
        daemon.log()
    );
}

/// Last.fm (credential from its session file only) and ListenBrainz.
fn two_targets(mpd: &MpdServer, dir: &TestDir, lastfm: &FakeLastFm, lb: &FakeListenBrainz) {
    dir.write_config(&format!(
        "state_dir = {:?}\n[mpd]\nhost = \"127.0.0.1\"\nport = {}\n\
         [scrobble]\nmin_track_secs = 2\nplayed_percent = 50\n\
         [delivery]\nretry_min = \"200ms\"\nretry_max = \"1s\"\nrequest_timeout = \"5s\"\n\
         [lastfm]\nurl = {:?}\napi_key = {:?}\napi_secret = {:?}\n\
         [listenbrainz]\nurl = {:?}\ntoken = {:?}\n",
        dir.state_dir().display().to_string(),
        mpd.port(),
        lastfm.url(),
        fake_lastfm::API_KEY,
        fake_lastfm::API_SECRET,
        lb.url(),
        fake_listenbrainz::TOKEN
    ));
}

fn status_line(dir: &TestDir, target: &str) -> String {
    let out = run_cli(dir, &["status"], None);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find(|l| l.starts_with(&format!("{target}: ")))
        .unwrap_or_else(|| panic!("no {target} in {stdout}"))
        .to_owned()
}

#[test]
fn a_damaged_session_file_pauses_only_its_own_target() {
    let mpd = MpdServer::start(&default_library());
    let (lastfm, lb) = (FakeLastFm::start(), FakeListenBrainz::start());
    let dir = TestDir::new();
    two_targets(&mpd, &dir, &lastfm, &lb);
    let session = dir.state_dir().join("lastfm.session");
    std::fs::create_dir(dir.state_dir()).unwrap();
    std::fs::write(&session, b"\x00\xffsk-left-over-key\x13garbage").unwrap();

    let mut daemon = start(&dir, &[]);
    assert!(
        daemon.wait_log("is damaged", Duration::from_secs(5)),
        "{}",
        daemon.log()
    );
    let log = daemon.log();
    let line = log.lines().find(|l| l.contains("is damaged")).unwrap();
    assert!(line.contains(&session.display().to_string()), "{line}");
    assert!(line.contains("`mpd-scrobbler auth lastfm`"), "{line}");
    assert!(!log.contains("sk-left-over-key"), "{log}");
    let status = status_line(&dir, "lastfm");
    assert!(status.contains("paused: the session file"), "{status}");
    assert!(
        status.contains("fix: run `mpd-scrobbler auth lastfm`"),
        "{status}"
    );

    mpd.play_file(SONG);
    let listens = lb.wait_for_listens(1, Duration::from_secs(30));
    assert_eq!(listens.len(), 1, "{}", daemon.log());
    assert!(status_line(&dir, "lastfm").contains("1 queued"));

    // A good session file and a reload: the queued play goes out.
    let sk = lastfm.issue_session("alice");
    std::fs::write(&session, format!("{{\"user\":\"alice\",\"key\":\"{sk}\"}}")).unwrap();
    daemon.signal("HUP");
    let scrobbles = lastfm.wait_for_scrobbles(1, Duration::from_secs(20));
    assert_eq!(scrobbles.len(), 1, "{}", daemon.log());
    assert_eq!(scrobbles[0].timestamp, listens[0].listened_at.unwrap());
    mpd.stop();
    assert!(daemon.sigterm().success());

    // A directory in the file's place: unreadable, the same pause.
    std::fs::remove_file(&session).unwrap();
    std::fs::create_dir(&session).unwrap();
    let mut daemon = start(&dir, &[]);
    assert!(
        daemon.wait_log("cannot read the session file", Duration::from_secs(5)),
        "{}",
        daemon.log()
    );
    mpd.play_file(OTHER_SONG);
    let listens = lb.wait_for_listens(2, Duration::from_secs(30));
    assert_eq!(listens.len(), 2, "{}", daemon.log());
    assert!(status_line(&dir, "lastfm").contains("paused: cannot read the session file"));
    mpd.stop();
    assert!(daemon.sigterm().success(), "it never exited on its own");
    assert_eq!(
        lastfm.scrobbles().len(),
        1,
        "nothing went to the paused target"
    );
}

#[test]
fn config_errors_name_the_place_but_never_the_secret() {
    let dir = TestDir::new();
    let cases = [
        (
            "[mpd]\nhost = \"localhost\"\npassword = hunter2\n",
            "hunter2",
            "line 3, column 12",
        ),
        (
            "[listenbrainz]\ntoken = 123456789012\n",
            "123456789012",
            "line 2, column 9: key `listenbrainz.token`",
        ),
    ];
    for (text, secret, place) in cases {
        dir.write_config(text);
        for command in ["status", "check"] {
            let out = run_cli(&dir, &[command], None);
            let all = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(out.status.code(), Some(2), "{command}: {all}");
            assert!(
                all.contains(&dir.config_path().display().to_string()),
                "{all}"
            );
            assert!(all.contains(place), "{command}: {all}");
            assert!(!all.contains(secret), "{command}: {all}");
        }
    }
}

/// A command that writes makes the state directory private; one that only
/// reads makes nothing (issue 23, item 19).
#[test]
fn a_command_that_writes_creates_the_state_dir_private() {
    let journal = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/mpdscribble/mpdscribble.journal"
    );
    let dir = TestDir::new();
    dir.write_test_config(1, "http://127.0.0.1:9/", Some("sk"));
    for args in [&["queue", "list"][..], &["status"]] {
        let _ = run_cli(&dir, args, None);
        assert!(!dir.state_dir().exists(), "{args:?} made the state dir");
    }
    let _ = run_cli(&dir, &["import", "mpdscribble", journal], None);
    assert!(dir.state_dir().is_dir(), "import made no state dir");
    assert_eq!(mode(&dir.state_dir()), 0o700);
}
