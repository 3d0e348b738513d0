//! Love and unlove: MPD client-to-client messages (mpdscribble's channel and
//! our own) and the `love` command, delivered to Last.fm and ListenBrainz.

use std::time::Duration;

use crate::common::daemon::{Daemon, TestDir, run_cli};
use crate::common::fake_lastfm::{self, FakeLastFm};
use crate::common::fake_listenbrainz::{self, FakeListenBrainz};
use crate::common::mpd::{MpdServer, SongSpec, quote};

const RECORDING: &str = "b8f4c4b6-2c3f-4a9e-9a5e-0123456789ab";

fn setup() -> (MpdServer, FakeLastFm, FakeListenBrainz, TestDir, Daemon) {
    let mpd = MpdServer::start(&[
        SongSpec {
            file: "love/tagged.flac",
            secs: 30,
            tags: vec![
                ("ARTIST", "Sigur Rós".into()),
                ("TITLE", "Hoppípolla".into()),
                ("MUSICBRAINZ_TRACKID", RECORDING.into()),
            ],
        },
        SongSpec {
            file: "love/plain.flac",
            secs: 30,
            tags: vec![("ARTIST", "AC/DC".into()), ("TITLE", "T.N.T.".into())],
        },
    ]);
    let (lastfm, lb) = (FakeLastFm::start(), FakeListenBrainz::start());
    let dir = TestDir::new();
    dir.write_config(&format!(
        "state_dir = {:?}\n[mpd]\nhost = \"127.0.0.1\"\nport = {}\n\
         [delivery]\nretry_min = \"200ms\"\nretry_max = \"1s\"\n\
         [lastfm]\nurl = {:?}\napi_key = {:?}\napi_secret = {:?}\nsession_key = {:?}\n\
         [listenbrainz]\nurl = {:?}\ntoken = {:?}\n",
        dir.state_dir().display().to_string(),
        mpd.port(),
        lastfm.url(),
        fake_lastfm::API_KEY,
        fake_lastfm::API_SECRET,
        lastfm.issue_session("alice"),
        lb.url(),
        fake_listenbrainz::TOKEN,
    ));
    let daemon = Daemon::spawn(&dir);
    assert!(daemon.wait_log("connected to MPD", Duration::from_secs(10)));
    (mpd, lastfm, lb, dir, daemon)
}

fn wait<T>(what: impl Fn() -> Vec<T>, n: usize) -> Vec<T> {
    for _ in 0..250 {
        let got = what();
        if got.len() >= n {
            return got;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    what()
}

#[test]
fn mpdscribble_love_message_reaches_both_services() {
    let (mpd, lastfm, lb, _dir, daemon) = setup();
    mpd.play_file("love/tagged.flac");
    assert!(daemon.wait_log("now playing", Duration::from_secs(5)));
    // What `mpc sendmessage mpdscribble love` sends.
    mpd.cmd(&format!(
        "sendmessage {} {}",
        quote("mpdscribble"),
        quote("love")
    ));
    let loves = wait(|| lastfm.loves(), 1);
    assert_eq!(
        loves,
        [("Sigur Rós".to_string(), "Hoppípolla".to_string(), true)],
        "{}",
        daemon.log()
    );
    assert_eq!(wait(|| lb.feedback(), 1), [(RECORDING.to_string(), 1)]);
    mpd.cmd(&format!(
        "sendmessage {} {}",
        quote("mpd-scrobbler"),
        quote("unlove")
    ));
    assert!(!wait(|| lastfm.loves(), 2)[1].2, "the second is an unlove");
    assert_eq!(wait(|| lb.feedback(), 2)[1], (RECORDING.to_string(), 0));
}

#[test]
fn love_while_a_target_is_down_arrives_later_and_no_mbid_is_explained() {
    let (mpd, lastfm, lb, dir, daemon) = setup();
    mpd.play_file("love/plain.flac");
    assert!(daemon.wait_log("now playing", Duration::from_secs(5)));
    lastfm.go_down();
    let out = run_cli(&dir, &["love"], None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Queued love of AC/DC – T.N.T."), "{stdout}");
    assert!(
        daemon.wait_log("no MUSICBRAINZ_TRACKID", Duration::from_secs(5)),
        "ListenBrainz needs the recording id: {}",
        daemon.log()
    );
    assert!(lb.feedback().is_empty());
    // Last.fm was tried and the love kept for later.
    assert!(
        daemon.wait_for_log(
            |log| log
                .lines()
                .any(|l| l.contains("lastfm:") && l.contains("retrying in")),
            Duration::from_secs(10)
        ),
        "{}",
        daemon.log()
    );
    lastfm.come_up();
    assert_eq!(
        wait(|| lastfm.loves(), 1),
        [("AC/DC".to_string(), "T.N.T.".to_string(), true)],
        "{}",
        daemon.log()
    );
}

#[test]
fn love_without_a_daemon_or_a_song_is_a_clear_error() {
    let (mpd, _lastfm, _lb, dir, mut daemon) = setup();
    let out = run_cli(&dir, &["love"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing is playing"));
    daemon.sigterm();
    mpd.play_file("love/plain.flac");
    let out = run_cli(&dir, &["unlove"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("daemon is not running"));
}
