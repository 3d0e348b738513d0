//! Internet radio end to end: a real mpd playing the stand-in ICY station
//! over HTTP (curl input), the real daemon, and the stand-in Last.fm and
//! ListenBrainz servers.
//!
//! Times are the issue's 40 s / 10 s / 40 s titles divided by four, with
//! `min_track_secs = 5`: every title that must count plays at least twice
//! the minimum, and every stop "before the minimum" comes right after the
//! title was seen, so a late wake-up of a few seconds changes no verdict.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::daemon::{Daemon, TestDir, config_toml};
use crate::common::fake_lastfm::{FakeLastFm, Scrobbled};
use crate::common::fake_listenbrainz::{self, FakeListenBrainz, Received};
use crate::common::icy_station::IcyStation;
use crate::common::mpd::{MpdServer, SongSpec};

/// Minimum play of a title, in the test config.
pub const MIN_TRACK_SECS: u64 = 5;
/// Audio the station has: more than any test plays.
const STATION_SECS: u32 = 240;
/// Long enough for anything the tests wait for.
const WAIT: Duration = Duration::from_secs(60);

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// mpd, both stand-in targets and the daemon, with `extra` appended to the
/// test config (stream settings, rules).
pub struct Rig {
    pub mpd: MpdServer,
    pub lastfm: FakeLastFm,
    pub listenbrainz: FakeListenBrainz,
    pub dir: TestDir,
    pub daemon: Daemon,
}

impl Rig {
    pub fn start(library: &[SongSpec], extra: &str) -> Rig {
        Rig::start_with(library, extra, 240)
    }

    /// `start` with another `max_required_secs`.
    pub fn start_with(library: &[SongSpec], extra: &str, max_required_secs: u64) -> Rig {
        let mpd = MpdServer::start(library);
        let lastfm = FakeLastFm::start();
        lastfm.add_user("alice", "pw");
        let sk = lastfm.issue_session("alice");
        let listenbrainz = FakeListenBrainz::start();
        let dir = TestDir::new();
        let config = config_toml(mpd.port(), &dir.state_dir(), &lastfm.url(), Some(&sk))
            .replace(
                "min_track_secs = 2",
                &format!("min_track_secs = {MIN_TRACK_SECS}"),
            )
            .replace(
                "max_required_secs = 240",
                &format!("max_required_secs = {max_required_secs}"),
            );
        dir.write_config(&format!(
            "{config}[listenbrainz]\nurl = {:?}\ntoken = {:?}\n{extra}",
            listenbrainz.url(),
            fake_listenbrainz::TOKEN
        ));
        let daemon = Daemon::spawn(&dir);
        assert!(
            daemon.wait_log("connected to MPD", Duration::from_secs(10)),
            "{}",
            daemon.log()
        );
        Rig {
            mpd,
            lastfm,
            listenbrainz,
            dir,
            daemon,
        }
    }

    /// Clear the queue and play the station.
    pub fn tune_in(&self, station: &IcyStation) {
        self.mpd.cmd("clear");
        self.mpd.cmd_args("add", &[&station.url()]);
        self.mpd.play();
    }

    /// Wait until the daemon's log has `needle` at least `n` times.
    pub fn wait_log_count(&self, needle: &str, n: usize) {
        let start = std::time::Instant::now();
        while self.daemon.log().matches(needle).count() < n {
            assert!(
                start.elapsed() < WAIT,
                "{needle:?} not logged {n} times:\n{}",
                self.daemon.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn scrobbles(&self, n: usize) -> Vec<Scrobbled> {
        let got = self.lastfm.wait_for_scrobbles(n, WAIT);
        assert!(
            got.len() >= n,
            "expected {n} Last.fm scrobbles, got {got:?}\n{}",
            self.daemon.log()
        );
        got
    }

    pub fn listens(&self, n: usize) -> Vec<Received> {
        let got = self.listenbrainz.wait_for_listens(n, WAIT);
        assert!(
            got.len() >= n,
            "expected {n} listens, got {got:?}\n{}",
            self.daemon.log()
        );
        got
    }

    /// Stop the daemon, so that what the servers hold is final.
    pub fn finish(&mut self) {
        assert!(self.daemon.sigterm().success(), "{}", self.daemon.log());
    }
}

fn pairs(s: &[Scrobbled]) -> Vec<(&str, &str)> {
    s.iter()
        .map(|s| (s.artist.as_str(), s.track.as_str()))
        .collect()
}

fn listen_pairs(l: &[Received]) -> Vec<(&str, &str)> {
    l.iter()
        .map(|l| (l.artist_name.as_str(), l.track_name.as_str()))
        .collect()
}

/// A file to play after a stream, so that a test can wait for something
/// that comes after what must not arrive (the queue is first in, first out).
pub fn sentinel() -> SongSpec {
    SongSpec::new(
        "sentinel.flac",
        12,
        &[("ARTIST", "Sentinel"), ("TITLE", "The End")],
    )
}

#[test]
fn three_titles_split_with_start_times_station_id_skipped() {
    let station = IcyStation::start(
        "Test FM",
        &[
            ("Sigur Rós - Hoppípolla", 10.0),
            ("Test FM jingle", 2.5),
            ("Björk – Jóga", 10.0),
            ("Múm - Green Grass of Tunnel", 200.0),
        ],
        STATION_SECS,
    );
    let mut rig = Rig::start(&[], "");
    let before = unix_now();
    rig.tune_in(&station);
    let after = unix_now();

    let got = rig.scrobbles(2);
    assert_eq!(
        pairs(&got),
        [("Sigur Rós", "Hoppípolla"), ("Björk", "Jóga")],
        "{}",
        rig.daemon.log()
    );
    let (first, second) = (got[0].timestamp, got[1].timestamp);
    assert!(
        first + 1 >= before && first <= after + 5,
        "the first title began at tune-in ({before}..{after}), not {first}"
    );
    // The third title began 12.5 s of audio after the first.
    assert!(
        (9..=16).contains(&(second - first)),
        "titles began {first} and {second}: the second is not its own start"
    );
    for s in &got {
        assert_eq!(s.duration, None, "a title's length is unknown");
        assert_eq!(s.chosen_by_user.as_deref(), Some("0"), "a broadcast");
        assert_eq!(s.album, None);
    }

    let listens = rig.listens(2);
    assert_eq!(
        listen_pairs(&listens),
        [("Sigur Rós", "Hoppípolla"), ("Björk", "Jóga")]
    );
    for l in &listens {
        assert_eq!(l.additional_info["origin_url"], station.url().as_str());
        assert!(l.additional_info.get("duration_ms").is_none());
    }
    assert_eq!(listens[0].listened_at, Some(first));

    // Now playing at each title change, never for the station ID nor with
    // the station as the artist.
    rig.wait_log_count("INFO now playing \"Múm", 1);
    rig.finish();
    let np = rig.lastfm.now_playing();
    assert_eq!(
        pairs(&np),
        [
            ("Sigur Rós", "Hoppípolla"),
            ("Björk", "Jóga"),
            ("Múm", "Green Grass of Tunnel")
        ]
    );
    assert_eq!(rig.lastfm.scrobbles().len(), 2, "the jingle is no play");
    let log = rig.daemon.log();
    assert_eq!(
        log.matches("not scrobbling").count(),
        1,
        "one line for the station ID:\n{log}"
    );
    assert!(
        log.contains("\"Test FM jingle\" is not \"Artist - Title\""),
        "{log}"
    );
    assert!(
        !log.contains("Test FM –"),
        "the station as an artist:\n{log}"
    );
    assert_eq!(station.asked_for_metadata(), [true]);
}

#[test]
fn a_pause_mid_title_stops_its_clock() {
    let station = IcyStation::start(
        "Test FM",
        &[("Sigur Rós - Hoppípolla", 200.0)],
        STATION_SECS,
    );
    // The title qualifies at 8 s of play; the pause lasts longer than that.
    let mut rig = Rig::start_with(&[], "", 8);

    rig.tune_in(&station);
    let tuned = unix_now();
    rig.wait_log_count("INFO now playing \"Sigur Rós – Hoppípolla\"", 1);
    rig.mpd.pause();
    rig.wait_log_count("state=Paused", 1);
    std::thread::sleep(Duration::from_secs(10));
    rig.mpd.resume();
    let got = rig.scrobbles(1);
    assert_eq!(pairs(&got), [("Sigur Rós", "Hoppípolla")]);
    assert!(
        got[0].timestamp + 1 >= tuned && got[0].timestamp <= tuned + 5,
        "the title's start, before the pause"
    );
    // It qualified after the resume (which sends now playing again), not
    // during the pause. (The writer logs "queued" after the listen may
    // already have gone out: wait for the line.)
    rig.wait_log_count("queued \"Sigur Rós – Hoppípolla\"", 1);
    let log = rig.daemon.log();
    let resumed = log
        .match_indices("INFO now playing \"Sigur Rós – Hoppípolla\"")
        .nth(1)
        .map(|(i, _)| i)
        .unwrap_or_else(|| panic!("no now playing at resume:\n{log}"));
    let queued = log
        .find("queued \"Sigur Rós – Hoppípolla\"")
        .unwrap_or_else(|| panic!("not queued:\n{log}"));
    assert!(queued > resumed, "queued during the pause:\n{log}");
    rig.finish();
}

#[test]
fn a_stop_mid_title_counts_after_the_minimum_only() {
    let station = IcyStation::start(
        "Test FM",
        &[("Sigur Rós - Hoppípolla", 200.0)],
        STATION_SECS,
    );
    let mut rig = Rig::start(&[sentinel()], "");

    // After the minimum: the stop ends the title, which counts.
    rig.tune_in(&station);
    rig.wait_log_count("INFO now playing \"Sigur Rós – Hoppípolla\"", 1);
    std::thread::sleep(Duration::from_secs(MIN_TRACK_SECS + 3));
    rig.mpd.stop();
    assert_eq!(
        pairs(&rig.scrobbles(1)),
        [("Sigur Rós", "Hoppípolla")],
        "{}",
        rig.daemon.log()
    );

    // Before it: stopped as soon as the daemon saw it.
    rig.tune_in(&station);
    rig.wait_log_count("INFO now playing \"Sigur Rós – Hoppípolla\"", 2);
    rig.mpd.stop();
    rig.mpd.play_file("sentinel.flac");
    let got = rig.scrobbles(2);
    rig.finish();
    assert_eq!(
        pairs(&got),
        [("Sigur Rós", "Hoppípolla"), ("Sentinel", "The End")]
    );
    assert_eq!(rig.lastfm.scrobbles().len(), 2);
    assert_eq!(got[1].chosen_by_user, None, "a file is the user's choice");
    assert_eq!(got[1].duration.as_deref(), Some("12"));
}

#[test]
fn a_title_artist_station_and_an_ignored_station() {
    let backwards = IcyStation::start(
        "Backwards Radio",
        &[("Hoppípolla - Sigur Rós", 10.0), ("Jóga / Björk", 200.0)],
        STATION_SECS,
    );
    let ignored = IcyStation::start("Ads FM", &[("Buy - Now", 200.0)], STATION_SECS);
    let extra = format!(
        "[[streams.station]]\nname = \"backwards*\"\norder = \"title-artist\"\n\
         [[streams.station]]\nurl = {:?}\nignore = true\n",
        ignored.url()
    );
    let mut rig = Rig::start(&[sentinel()], &extra);
    rig.tune_in(&backwards);
    let got = rig.scrobbles(1);
    assert_eq!(pairs(&got), [("Sigur Rós", "Hoppípolla")]);
    // "Jóga / Björk" does not split at the default separators.
    rig.wait_log_count("\"Jóga / Björk\" is not \"Artist - Title\"", 1);

    rig.tune_in(&ignored);
    rig.wait_log_count("the station is ignored", 1);
    std::thread::sleep(Duration::from_secs(MIN_TRACK_SECS + 1));
    rig.mpd.play_file("sentinel.flac");
    rig.scrobbles(2);
    rig.finish();
    assert_eq!(
        pairs(&rig.lastfm.scrobbles()),
        [("Sigur Rós", "Hoppípolla"), ("Sentinel", "The End")]
    );
    assert!(
        !pairs(&rig.lastfm.now_playing()).contains(&("Buy", "Now")),
        "an ignored station sends no now playing"
    );
}

#[test]
fn streams_switched_off_are_not_scrobbled() {
    let station = IcyStation::start(
        "Test FM",
        &[("Sigur Rós - Hoppípolla", 200.0)],
        STATION_SECS,
    );
    let mut rig = Rig::start(&[sentinel()], "[streams]\nenabled = false\n");
    rig.tune_in(&station);
    rig.wait_log_count("stream scrobbling is off", 1);
    std::thread::sleep(Duration::from_secs(MIN_TRACK_SECS + 1));
    rig.mpd.play_file("sentinel.flac");
    rig.scrobbles(1);
    rig.finish();
    assert_eq!(pairs(&rig.lastfm.scrobbles()), [("Sentinel", "The End")]);
    assert!(
        rig.lastfm
            .now_playing()
            .iter()
            .all(|n| n.artist == "Sentinel")
    );
}
