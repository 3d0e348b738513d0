//! Ignore and rewrite rules end to end: on files and on a stream, per
//! target, `rules test`, and a bad rule refused at load.

use crate::common::daemon::{TestDir, run_cli};
use crate::common::icy_station::IcyStation;
use crate::common::mpd::SongSpec;
use crate::radio::{Rig, sentinel};

/// Ignore an artist on Last.fm only; strip remaster suffixes everywhere.
const RULES: &str = r#"
[[rule]]
action = "ignore"
artist = "nickelback"
case_insensitive = true
targets = ["lastfm"]

[[rule]]
action = "rewrite"
field = "title"
regex = '\s*(\((\d{4} )?remaster(ed)?( \d{4})?\)|- (\d{4} )?remaster(ed)?( \d{4})?)$'
case_insensitive = true
"#;

fn library() -> Vec<SongSpec> {
    vec![
        SongSpec::new(
            "a/queen.flac",
            12,
            &[
                ("ARTIST", "Queen"),
                ("TITLE", "Bicycle Race (Remastered 2011)"),
            ],
        ),
        SongSpec::new(
            "a/nickelback.flac",
            12,
            &[("ARTIST", "Nickelback"), ("TITLE", "Photograph")],
        ),
        sentinel(),
    ]
}

fn pairs<'a>(v: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<(&'a str, &'a str)> {
    v.into_iter().collect()
}

#[test]
fn rules_apply_to_files_and_streams_per_target() {
    let station = IcyStation::start(
        "Test FM",
        &[
            ("NICKELBACK - How You Remind Me", 10.0),
            ("The Beatles - Come Together - 2009 Remaster", 10.0),
            ("Múm - Green Grass of Tunnel", 200.0),
        ],
        240,
    );
    let mut rig = Rig::start(&library(), RULES);

    // Files, one at a time.
    rig.mpd.play_file("a/queen.flac");
    rig.listens(1);
    rig.mpd.play_file("a/nickelback.flac");
    rig.listens(2);
    // The stream: its first two titles.
    rig.tune_in(&station);
    rig.listens(4);
    rig.mpd.play_file("sentinel.flac");
    rig.listens(5);
    rig.scrobbles(3);
    rig.finish();

    let lb = rig.listenbrainz.listens();
    assert_eq!(
        pairs(
            lb.iter()
                .map(|l| (l.artist_name.as_str(), l.track_name.as_str()))
        ),
        [
            ("Queen", "Bicycle Race"),
            ("Nickelback", "Photograph"),
            ("NICKELBACK", "How You Remind Me"),
            ("The Beatles", "Come Together"),
            ("Sentinel", "The End"),
        ],
        "ListenBrainz gets the ignored artist, rewritten titles"
    );
    let lastfm = rig.lastfm.scrobbles();
    assert_eq!(
        pairs(lastfm.iter().map(|s| (s.artist.as_str(), s.track.as_str()))),
        [
            ("Queen", "Bicycle Race"),
            ("The Beatles", "Come Together"),
            ("Sentinel", "The End"),
        ],
        "Last.fm gets neither the ignored file nor the ignored stream title"
    );
    let now_playing = rig.lastfm.now_playing();
    assert!(
        now_playing
            .iter()
            .all(|n| !n.artist.eq_ignore_ascii_case("nickelback")),
        "an ignored play sends no now playing: {now_playing:?}"
    );
    assert!(
        now_playing.iter().any(|n| n.track == "Come Together"),
        "now playing is rewritten: {now_playing:?}"
    );
    let lb_now: Vec<String> = rig
        .listenbrainz
        .playing_now()
        .iter()
        .map(|l| l.track_name.clone())
        .collect();
    assert!(lb_now.contains(&"Photograph".to_string()), "{lb_now:?}");

    // One debug line per ignored play, naming the rule.
    let log = rig.daemon.log();
    for artist in [
        "\"Nickelback – Photograph\"",
        "\"NICKELBACK – How You Remind Me\"",
    ] {
        assert_eq!(
            log.matches(&format!("ignoring {artist} for lastfm (rule 1)"))
                .count(),
            1,
            "{log}"
        );
    }
}

#[test]
fn rules_test_shows_each_step_and_the_result() {
    let dir = TestDir::new();
    // No MPD is asked when the track is given.
    dir.write_test_config(1, "http://127.0.0.1:1/2.0/", None);
    let config = std::fs::read_to_string(dir.config_path()).unwrap();
    dir.write_config(&format!("{config}[listenbrainz]\ntoken = \"t\"\n{RULES}"));
    let out = run_cli(
        &dir,
        &[
            "rules",
            "test",
            "--artist",
            "Nickelback",
            "--title",
            "Photograph (Remastered)",
            "--album",
            "All the Right Reasons",
        ],
        None,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        text,
        "artist:      Nickelback\n\
         title:       Photograph (Remastered)\n\
         album:       All the Right Reasons\n\
         \n\
         lastfm:\n  \
         rule 1 ignores this play\n  \
         result: not sent (rule 1)\n\
         \n\
         listenbrainz:\n  \
         rule 2 rewrote title: \"Photograph (Remastered)\" -> \"Photograph\"\n  \
         result: Nickelback – Photograph (album All the Right Reasons)\n"
    );
}

#[test]
fn rules_test_takes_the_playing_stream_title_by_default() {
    let station = IcyStation::start(
        "Test FM",
        &[("The Beatles - Come Together - 2009 Remaster", 200.0)],
        240,
    );
    let mut rig = Rig::start(&[], RULES);
    rig.tune_in(&station);
    rig.wait_log_count("INFO now playing \"The Beatles – Come Together", 1);
    let out = run_cli(&rig.dir, &["rules", "test"], None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.starts_with("stream:      Test FM\nartist:      The Beatles\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!("stream_url:  {}\n", station.url())),
        "{text}"
    );
    assert!(
        text.ends_with(
            "lastfm, listenbrainz:\n  \
             rule 2 rewrote title: \"Come Together - 2009 Remaster\" -> \"Come Together\"\n  \
             result: The Beatles – Come Together\n"
        ),
        "{text}"
    );
    rig.mpd.stop();
    let out = run_cli(&rig.dir, &["rules", "test"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("MPD plays nothing"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    rig.finish();
}

#[test]
fn a_bad_regex_is_refused_at_load_naming_file_rule_and_error() {
    let dir = TestDir::new();
    dir.write_test_config(1, "http://127.0.0.1:1/2.0/", None);
    let config = std::fs::read_to_string(dir.config_path()).unwrap();
    dir.write_config(&format!(
        "{config}{RULES}\n[[rule]]\naction = \"rewrite\"\nfield = \"title\"\nregex = '(feat\\. [^)]+'\n"
    ));
    let path = dir.config_path().display().to_string();
    for args in [&["check"][..], &["run"], &["rules", "test", "--title", "x"]] {
        let out = run_cli(&dir, args, None);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(2), "{args:?}: {text}");
        assert!(
            text.contains(&format!("{path}: key `rule[2].regex`")),
            "{args:?}: {text}"
        );
        assert!(
            text.contains("open group without closing"),
            "{args:?}: {text}"
        );
    }

    // A valid set passes `check`, which says what is in force.
    dir.write_config(&format!("{config}{RULES}"));
    let out = run_cli(&dir, &["check"], None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("1 ignore and 1 rewrite rules are valid; streams are scrobbled"),
        "{text}"
    );
}
