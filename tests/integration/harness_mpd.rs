//! The mpd harness itself: the generated library and the controls the
//! end-to-end tests rely on.

use std::time::Duration;

use crate::common::mpd::{MpdServer, default_library};

#[test]
fn library_tags_play_pause_and_restart() {
    let mut mpd = MpdServer::start(&default_library());
    let info = mpd.cmd("listallinfo");
    let artists: Vec<&str> = info
        .iter()
        .filter(|(k, _)| k == "Artist")
        .map(|(_, v)| v.as_str())
        .collect();
    for expected in ["Sigur Rós", "日本語のアーティスト", "AC/DC", "Foo", "Bar"] {
        assert!(
            artists.contains(&expected),
            "{expected} missing from {artists:?}"
        );
    }
    assert!(
        info.iter()
            .any(|(k, v)| k == "Title" && v == "Rock & Roll = Life")
    );

    mpd.play_file("misc/long.flac");
    mpd.wait_state("play", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(600));
    assert!(mpd.elapsed() > 0.3, "the null output plays in real time");
    mpd.pause();
    mpd.wait_state("pause", Duration::from_secs(5));
    mpd.seek(10.0);
    assert!((mpd.elapsed() - 10.0).abs() < 0.5);

    let port = mpd.port();
    mpd.stop_server();
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    mpd.start_server();
    assert_eq!(mpd.port(), port);
    let songs = mpd
        .cmd("stats")
        .into_iter()
        .find(|(k, _)| k == "songs")
        .map(|(_, v)| v);
    assert_eq!(
        songs.as_deref(),
        Some("8"),
        "the database survives a restart"
    );
}
