//! The mpd harness itself: the generated library and the controls the
//! end-to-end tests rely on, and the mpd behaviour they assume. Each test has
//! its own mpd, so they run in parallel; together they take about 2 s.

use std::time::{Duration, Instant};

use crate::common::mpd::{HOPPIPOLLA_MBID, MpdServer, SongSpec, default_library};

/// The values of `key` in a response, in order.
fn values<'a>(pairs: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    pairs
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

#[test]
fn library_tags_come_back_intact() {
    let library = default_library();
    let mpd = MpdServer::start(&library);

    let all = mpd.cmd("listallinfo");
    let mut files = values(&all, "file");
    let mut expected: Vec<&str> = library.iter().map(|s| s.file).collect();
    files.sort_unstable();
    expected.sort_unstable();
    assert_eq!(files, expected, "every generated song, and nothing else");
    // One song's tags, in the order mpd gives them.
    let tags = |file: &str| mpd.cmd_args("lsinfo", &[file]);

    // mpd reports the generated length exactly.
    for spec in &library {
        let t = tags(spec.file);
        assert_eq!(values(&t, "Time"), [spec.secs.to_string()], "{}", spec.file);
        assert_eq!(
            values(&t, "duration"),
            [format!("{}.000", spec.secs)],
            "{}",
            spec.file
        );
    }

    let sigur = tags("sigur/hoppipolla.flac");
    assert_eq!(values(&sigur, "Artist"), ["Sigur Rós"]);
    assert_eq!(values(&sigur, "Title"), ["Hoppípolla"]);
    assert_eq!(values(&sigur, "Album"), ["Takk..."]);
    assert_eq!(values(&sigur, "AlbumArtist"), ["Sigur Rós"]);
    assert_eq!(values(&sigur, "Track"), ["3"]);
    assert_eq!(values(&sigur, "MUSICBRAINZ_TRACKID"), [HOPPIPOLLA_MBID]);

    let jp = tags("jp/song.flac");
    assert_eq!(values(&jp, "Artist"), ["日本語のアーティスト"]);
    assert_eq!(values(&jp, "Title"), ["日本語の曲"]);
    assert_eq!(
        values(&tags("misc/rock.flac"), "Title"),
        ["Rock & Roll = Life"]
    );
    // Two ARTIST comments are two Artist lines, in file order.
    assert_eq!(values(&tags("misc/duo.flac"), "Artist"), ["Foo", "Bar"]);
    assert!(values(&tags("misc/untagged.flac"), "Artist").is_empty());

    // `find` matches non-ASCII values exactly.
    let found = mpd.cmd_args("find", &["Artist", "Sigur Rós"]);
    assert_eq!(values(&found, "file"), ["sigur/hoppipolla.flac"]);
    let found = mpd.cmd_args("find", &["Title", "日本語の曲"]);
    assert_eq!(values(&found, "file"), ["jp/song.flac"]);
    let found = mpd.cmd_args("find", &["Artist", "Bar"]);
    assert_eq!(values(&found, "file"), ["misc/duo.flac"]);
}

#[test]
fn arguments_with_quotes_backslashes_and_spaces_are_quoted() {
    let title = r#"Say "Hi" \ Bye"#;
    let file = "odd dir/it's \"quoted\".flac";
    let mpd = MpdServer::start(&[SongSpec::new(file, 1, &[("TITLE", title)])]);
    let found = mpd.cmd_args("find", &["Title", title]);
    assert_eq!(values(&found, "file"), [file]);
    mpd.enqueue(&[file]);
    assert_eq!(values(&mpd.cmd("playlistinfo"), "Title"), [title]);
}

#[test]
#[should_panic(expected = "mpd refused \"find \\\"NoSuchTag\\\" \\\"x\\\"\": ACK")]
fn a_refused_command_panics_with_the_ack() {
    let mpd = MpdServer::start(&[]);
    mpd.cmd_args("find", &["NoSuchTag", "x"]);
}

#[test]
fn plays_in_real_time_pauses_and_seeks() {
    let mpd = MpdServer::start(&default_library());
    mpd.play_file("misc/long.flac");
    mpd.wait_state("play", Duration::from_secs(5));
    // Each reading is bracketed by the wall clock, so a slow answer on a
    // busy machine widens the window instead of failing the test.
    let (before0, e0, after0) = (Instant::now(), mpd.elapsed(), Instant::now());
    // The situation under test: real time passing.
    std::thread::sleep(Duration::from_millis(700));
    let (before1, e1, after1) = (Instant::now(), mpd.elapsed(), Instant::now());
    let played = e1 - e0;
    let least = (before1 - after0).as_secs_f64();
    let most = (after1 - before0).as_secs_f64();
    // The null output keeps real time, give or take its 0.256 s chunk:
    // neither stalled nor running ahead.
    assert!(
        (least - 0.3..=most + 0.3).contains(&played),
        "{played:.3} s played in {least:.3} to {most:.3} s"
    );
    assert_eq!(mpd.status_value("duration").as_deref(), Some("20.000"));

    mpd.pause();
    mpd.wait_state("pause", Duration::from_secs(5));
    let paused_at = mpd.elapsed();
    // The situation under test: time passing while paused.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        mpd.elapsed(),
        paused_at,
        "elapsed stands still while paused"
    );

    mpd.seek(10.0);
    assert!((mpd.elapsed() - 10.0).abs() < 0.1, "{}", mpd.elapsed());
    assert_eq!(mpd.state(), "pause", "seeking keeps the pause");
    mpd.resume();
    mpd.wait_state("play", Duration::from_secs(5));
    let resumed = Instant::now();
    while mpd.elapsed() <= 10.0 {
        assert!(
            resumed.elapsed() < Duration::from_secs(5),
            "still at {} after resuming",
            mpd.elapsed()
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    mpd.stop();
    mpd.wait_state("stop", Duration::from_secs(5));
    assert_eq!(mpd.elapsed(), 0.0);
}

#[test]
fn a_song_ends_in_stop_and_repeat_single_replays_it() {
    let mpd = MpdServer::start(&default_library());
    let t0 = Instant::now();
    mpd.play_file("misc/short.flac");
    mpd.wait_state("stop", Duration::from_secs(5));
    // One 4 KiB chunk (0.256 s at 8 kHz mono) early, see common/mpd.rs.
    let took = t0.elapsed();
    // Played in real time, not skipped; the upper bound only rules out a
    // song that never ends (a busy machine may answer late).
    assert!(
        (Duration::from_millis(600)..Duration::from_secs(4)).contains(&took),
        "a 1 s song played in {took:?}"
    );

    // repeat + single: the same queue entry again and again, `songid`
    // unchanged, `elapsed` back to 0, never leaving `play`.
    mpd.repeat(true);
    mpd.single(true);
    mpd.play();
    mpd.wait_state("play", Duration::from_secs(5));
    let id = mpd.status_value("songid");
    let mut restarted = false;
    let mut last = mpd.elapsed();
    let start = Instant::now();
    while !restarted && start.elapsed() < Duration::from_secs(6) {
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(mpd.state(), "play");
        assert_eq!(mpd.status_value("songid"), id);
        let now = mpd.elapsed();
        restarted = now < last;
        last = now;
    }
    assert!(restarted, "elapsed never went back to the start");
}

#[test]
fn restart_keeps_port_database_and_queue() {
    let library = default_library();
    let mut mpd = MpdServer::start(&library);
    mpd.enqueue(&["sigur/hoppipolla.flac", "misc/duo.flac"]);
    let port = mpd.port();

    mpd.stop_server();
    assert!(
        std::net::TcpStream::connect((mpd.host(), port)).is_err(),
        "mpd is gone"
    );
    mpd.start_server();
    assert_eq!(mpd.port(), port);
    // No rescan: start_server does not run `update`.
    let songs = mpd.cmd("stats");
    assert_eq!(values(&songs, "songs"), [library.len().to_string()]);
    // The state file brings back the queue.
    assert_eq!(
        values(&mpd.cmd("playlistinfo"), "file"),
        ["sigur/hoppipolla.flac", "misc/duo.flac"]
    );
}
