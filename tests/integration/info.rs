//! The metadata and stats commands against the stand-in Last.fm serving
//! fixtures in Last.fm's shape (tests/fixtures/lastfm), and a real mpd for
//! the "what is playing" defaults.

use std::process::Output;
use std::time::Duration;

use crate::common::daemon::{TestDir, run_cli, run_cli_env};
use crate::common::fake_lastfm::{API_KEY, API_SECRET, FakeLastFm};
use crate::common::mpd::{MpdServer, SongSpec};

fn fixture(name: &str) -> serde_json::Value {
    let path = format!(
        "{}/tests/fixtures/lastfm/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

pub(crate) fn server() -> FakeLastFm {
    let s = FakeLastFm::start();
    s.set_read("artist.getInfo", "cher", fixture("artist.getInfo-cher"));
    s.set_read(
        "artist.getInfo",
        "sigur rós",
        fixture("artist.getInfo-sigur"),
    );
    s.set_read(
        "album.getInfo",
        "sigur rós/takk...",
        fixture("album.getInfo-takk"),
    );
    s.set_read(
        "artist.search",
        "rammstein",
        fixture("artist.search-rammstein"),
    );
    s.set_read(
        "user.getTopTracks",
        "alice",
        fixture("user.getTopTracks-alice"),
    );
    s.set_read(
        "user.getTopArtists",
        "alice",
        fixture("user.getTopArtists-alice"),
    );
    s.set_read(
        "user.getRecentTracks",
        "alice",
        fixture("user.getRecentTracks-alice"),
    );
    s
}

fn setup(extra: &str, mpd_port: u16) -> (FakeLastFm, TestDir) {
    let lastfm = server();
    let dir = TestDir::new();
    dir.write_config(&format!(
        "state_dir = {:?}\n[mpd]\nhost = \"127.0.0.1\"\nport = {mpd_port}\n{extra}\n\
         [lastfm]\nurl = {:?}\napi_key = {API_KEY:?}\napi_secret = {API_SECRET:?}\n",
        dir.state_dir().display().to_string(),
        lastfm.url()
    ));
    (lastfm, dir)
}

fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn artist_text_and_json_cope_with_the_quirks() {
    let (lastfm, dir) = setup("", 1);
    let text = ok(&run_cli(&dir, &["artist", "Cher"], None));
    assert!(text.starts_with("Cher\n"), "{text}");
    assert!(
        text.contains("1,688,480 listeners, 135,692,303 plays"),
        "{text}"
    );
    assert!(
        text.contains("Similar: Sonny & Cher"),
        "one similar artist as an object: {text}"
    );
    assert!(!text.contains("Tags:"), "\"tags\": \"\" is no tags: {text}");
    assert!(text.contains("is an American singer & actress."), "{text}");
    assert!(
        !text.contains("Read more") && !text.contains("<a"),
        "{text}"
    );
    assert!(!text.contains("MBID"), "an empty mbid is left out: {text}");
    let full = ok(&run_cli(
        &dir,
        &["artist", "Cher", "--full", "--refresh"],
        None,
    ));
    assert!(
        full.contains("Goddess of Pop") && !full.contains("Creative Commons"),
        "{full}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&run_cli(&dir, &["artist", "Cher", "--json"], None))).unwrap();
    assert_eq!(json["similar"], serde_json::json!(["Sonny & Cher"]));
    assert_eq!(json["tags"], serde_json::json!([]));
    assert_eq!(json["listeners"], 1_688_480);
    assert!(json["mbid"].is_null());
    assert!(json["image"].as_str().unwrap().contains("300x300"));
    assert_eq!(
        lastfm.request_count("artist.getInfo"),
        2,
        "--json came from the cache"
    );
}

#[test]
fn cache_hit_refresh_and_expiry() {
    let (lastfm, dir) = setup("[cache]\nttl = \"2s\"\n", 1);
    ok(&run_cli(&dir, &["artist", "Cher"], None));
    ok(&run_cli(&dir, &["artist", "  CHER "], None));
    assert_eq!(
        lastfm.request_count("artist.getInfo"),
        1,
        "same artist, other case and spaces"
    );
    ok(&run_cli(&dir, &["artist", "Cher", "--refresh"], None));
    assert_eq!(lastfm.request_count("artist.getInfo"), 2);
    std::thread::sleep(Duration::from_millis(2100));
    ok(&run_cli(&dir, &["artist", "Cher"], None));
    assert_eq!(
        lastfm.request_count("artist.getInfo"),
        3,
        "expired after the ttl"
    );
}

#[test]
fn offline_shows_an_expired_entry_with_its_age() {
    let (lastfm, dir) = setup("[cache]\nttl = \"1s\"\n", 1);
    ok(&run_cli(&dir, &["search", "rammstein"], None));
    std::thread::sleep(Duration::from_millis(1100));
    lastfm.go_down();
    let out = run_cli(&dir, &["search", "rammstein"], None);
    let text = ok(&out);
    assert!(text.contains("Rammstein Tribute"), "{text}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("showing what it said") && stderr.contains("seconds ago"),
        "{stderr}"
    );
    let out = run_cli(&dir, &["artist", "Cher"], None);
    assert_eq!(
        out.status.code(),
        Some(1),
        "nothing cached: a clear failure"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("Last.fm"));
}

#[test]
fn search_lists_aligned_rows_and_empty_results() {
    let (_lastfm, dir) = setup("", 1);
    let text = ok(&run_cli(
        &dir,
        &["search", "rammstein", "--limit", "2"],
        None,
    ));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("1. Rammstein "), "{text}");
    assert!(lines[0].ends_with("1,913,191 listeners"), "{text}");
    assert_eq!(
        lines[0].find("1,913"),
        lines[1].find("1,234"),
        "aligned: {text}"
    );
    assert_eq!(
        ok(&run_cli(&dir, &["search", "zzzz"], None)),
        "Nothing found.\n"
    );
}

#[test]
fn not_found_and_usage_errors_have_distinct_exit_codes() {
    let (_lastfm, dir) = setup("", 1);
    let out = run_cli(&dir, &["artist", "Nobody Known"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("knows nothing of \"Nobody Known\""));
    assert_eq!(
        run_cli(&dir, &["album", "only-artist"], None).status.code(),
        Some(2)
    );
    assert_eq!(
        run_cli(&dir, &["top", "weekly"], None).status.code(),
        Some(2)
    );
    let out = run_cli(&dir, &["top", "artists"], None);
    assert_eq!(out.status.code(), Some(2), "no user and no session");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--user"));
}

#[test]
fn top_and_recent_default_to_the_stored_session_user() {
    let (lastfm, dir) = setup("", 1);
    lastfm.add_user("alice", "pw");
    ok(&run_cli(
        &dir,
        &["auth", "lastfm", "--username", "alice"],
        Some("pw\n"),
    ));
    let tracks = ok(&run_cli(&dir, &["top", "tracks", "--period", "7day"], None));
    assert!(
        tracks.contains("1. Sigur Rós – Hoppípolla  311 plays"),
        "{tracks}"
    );
    assert!(
        tracks.contains("2. AC/DC – T.N.T.          1,200 plays"),
        "{tracks}"
    );
    let artists = ok(&run_cli(&dir, &["top", "artists", "--json"], None));
    let json: serde_json::Value = serde_json::from_str(&artists).unwrap();
    assert_eq!(json[0]["name"], "Sigur Rós", "a single artist as an object");
    let recent = ok(&run_cli_env(
        &dir,
        &["recent", "--user", "alice"],
        None,
        &[("TZ", "UTC")],
    ));
    let lines: Vec<&str> = recent.lines().collect();
    assert!(
        lines[0].starts_with("now playing")
            && lines[0].contains("Radiohead – Karma Police (OK Computer)"),
        "{recent}"
    );
    assert!(
        lines[1].starts_with("2024-06-11 23:55  Portishead – Glory Box (Dummy)"),
        "{recent}"
    );
    assert!(
        lines[2].ends_with("Sigur Rós – Hoppípolla"),
        "an empty album is left out: {recent}"
    );
}

#[test]
fn artist_and_album_default_to_what_mpd_plays() {
    let mpd = MpdServer::start(&[SongSpec {
        file: "takk.flac",
        secs: 20,
        tags: vec![
            ("ARTIST", "Sigur Rós".into()),
            ("TITLE", "Hoppípolla".into()),
            ("ALBUM", "Takk...".into()),
        ],
    }]);
    let (_lastfm, dir) = setup("", mpd.port());
    mpd.play_file("takk.flac");
    let artist = ok(&run_cli(&dir, &["artist"], None));
    assert!(
        artist.starts_with("Sigur Rós\n") && artist.contains("Tags: post-rock, icelandic"),
        "{artist}"
    );
    let album = ok(&run_cli(&dir, &["album"], None));
    assert!(album.starts_with("Sigur Rós – Takk...\n"), "{album}");
    assert!(
        album.contains("2. Glósóli") && album.contains("6:14"),
        "{album}"
    );
    mpd.stop();
    let out = run_cli(&dir, &["artist"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not playing"));
}

#[test]
fn two_commands_at_once_do_not_fail_on_the_cache_lock() {
    let (_lastfm, dir) = setup("", 1);
    let dir = std::sync::Arc::new(dir);
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let dir = std::sync::Arc::clone(&dir);
            std::thread::spawn(move || run_cli(&dir, &["artist", "Cher", "--refresh"], None))
        })
        .collect();
    for h in handles {
        ok(&h.join().unwrap());
    }
}
