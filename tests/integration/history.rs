//! The local listening history: the zero-config daemon, `history`, `stats`,
//! `history export`, `import listenbrainz` and `backfill`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::common::daemon::{
    Daemon, TestDir, run_cli, run_cli_head, run_cli_zero_config, toml_str, zero_config_state_dir,
};
use crate::common::fake_lastfm::{self, FakeLastFm};
use crate::common::fake_listenbrainz::{self, FakeListenBrainz};
use crate::common::mpd::{MpdServer, SongSpec};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn both(out: &std::process::Output) -> String {
    format!(
        "status {:?}\n--- stdout:\n{}--- stderr:\n{}",
        out.status.code(),
        stdout(out),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `history --json` of a zero-config set-up.
fn history_json(dir: &TestDir, env: &[(&str, &str)]) -> Vec<Value> {
    let out = run_cli_zero_config(dir, &["history", "--json"], env);
    assert!(out.status.success(), "{}", both(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", both(&out)))
}

/// With no config file the daemon follows MPD from MPD_HOST/MPD_PORT with
/// the default rules (tracks over 30 s, half their length played) and keeps
/// the plays in the history.
///
/// The long song lasts 32 s, so it qualifies at its 16 s mark: the shortest
/// play the default rules allow (seeking forward earns no play time). The
/// short one (5 s) plays first, in full, and can never count. The test
/// waits for the condition (the play in the history), not for a time.
#[test]
fn zero_config_daemon_records_only_the_play_that_counts() {
    let mpd = MpdServer::start(&[
        SongSpec::new(
            "zero/short.flac",
            5,
            &[("ARTIST", "Brief Artist"), ("TITLE", "Too Short To Count")],
        ),
        SongSpec::new(
            "zero/long.flac",
            32,
            &[
                ("ARTIST", "Patient Artist"),
                ("TITLE", "Long Enough"),
                ("ALBUM", "Zero Config"),
            ],
        ),
    ]);
    let dir = TestDir::new();
    let port = mpd.port().to_string();
    let env = [("MPD_HOST", "127.0.0.1"), ("MPD_PORT", port.as_str())];
    assert!(!dir.path().join("xdg-config").exists(), "no config file");

    let out = run_cli_zero_config(&dir, &["check"], &env);
    assert!(out.status.success(), "{}", both(&out));
    assert!(
        stdout(&out).contains("no config file at") && stdout(&out).contains("local history"),
        "{}",
        both(&out)
    );

    let daemon = Daemon::spawn_zero_config(&dir, &env);
    assert!(
        daemon.wait_log("connected to MPD", Duration::from_secs(20)),
        "{}",
        daemon.log()
    );
    let log = daemon.log();
    assert_eq!(
        log.matches("running with no online target").count(),
        1,
        "{log}"
    );
    assert!(
        log.contains("[lastfm]") && log.contains("backfill"),
        "{log}"
    );

    mpd.enqueue(&["zero/short.flac", "zero/long.flac"]);
    let before = now();
    mpd.play();
    let deadline = Instant::now() + Duration::from_secs(90);
    let plays = loop {
        // Through the control socket: the daemon holds the database.
        let plays = history_json(&dir, &env);
        if !plays.is_empty() || Instant::now() > deadline {
            break plays;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let seen = now();
    assert_eq!(plays.len(), 1, "{plays:?}\n{}", daemon.log());
    mpd.stop();
    let mut daemon = daemon;
    assert!(daemon.sigterm().success(), "{}", daemon.log());
    assert!(
        daemon
            .log()
            .contains("not scrobbling zero/short.flac: it is too short (5 s)"),
        "{}",
        daemon.log()
    );

    // The database directly, now that the daemon is gone.
    let plays = history_json(&dir, &env);
    assert_eq!(plays.len(), 1, "{plays:?}");
    let p = &plays[0];
    assert_eq!(p["artist"], "Patient Artist");
    assert_eq!(p["title"], "Long Enough");
    assert_eq!(p["album"], "Zero Config");
    assert_eq!(p["duration"], 32);
    // It began after the 5 s song, and had played 16 s when it was seen.
    let started = p["started_at"].as_u64().unwrap();
    assert!(
        started + 1 >= before + 5 && started + 16 <= seen,
        "started {started}, play pressed {before}, seen {seen}"
    );
    assert!(zero_config_state_dir(&dir).join("queue").exists());

    // The other local commands work without a config file too.
    let out = run_cli_zero_config(&dir, &["stats", "--json"], &env);
    assert!(out.status.success(), "{}", both(&out));
    let stats: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["plays"], 1);
    let out = run_cli_zero_config(&dir, &["queue", "--json"], &env);
    assert!(out.status.success(), "{}", both(&out));
    let out = run_cli_zero_config(&dir, &["status"], &env);
    assert!(
        both(&out).contains("History: 1 play since"),
        "{}",
        both(&out)
    );
    // An explicit -c FILE that does not exist is still an error.
    let out = run_cli(&dir, &["history"], None);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(
        both(&out).contains("cannot read config file"),
        "{}",
        both(&out)
    );
}

/// A fixture play.
struct Play {
    at: u64,
    artist: &'static str,
    title: String,
    album: Option<&'static str>,
    secs: u64,
}

/// Known plays: a few artists, several albums, spread over hours and days,
/// some older than seven days.
fn fixture(now: u64) -> Vec<Play> {
    let artists: [(&str, Option<&str>); 4] = [
        ("Sigur Rós", Some("Takk...")),
        ("AC/DC", Some("High Voltage")),
        ("日本語のアーティスト", Some("アルバム")),
        ("Plain, \"Quoted\" Artist", None),
    ];
    let mut plays = Vec::new();
    for i in 0..60u64 {
        // Skewed counts: artist 0 most, artist 3 least.
        let a = match i % 10 {
            0..=4 => 0,
            5..=7 => 1,
            8 => 2,
            _ => 3,
        };
        let (artist, album) = artists[a];
        plays.push(Play {
            // Every 3 h 7 min back from an hour ago: about 7.8 days in all.
            at: now - 3600 - i * (3 * 3600 + 420),
            artist,
            title: format!("Song {}", i % 4),
            album,
            secs: 120 + i,
        });
    }
    plays
}

fn listenbrainz_file(plays: &[Play]) -> String {
    let listens: Vec<Value> = plays
        .iter()
        .map(|p| {
            let mut meta = json!({
                "artist_name": p.artist,
                "track_name": p.title,
                "additional_info": {"duration_ms": p.secs * 1000},
            });
            if let Some(a) = p.album {
                meta["release_name"] = json!(a);
            }
            json!({"listened_at": p.at, "track_metadata": meta})
        })
        .collect();
    serde_json::to_string(&listens).unwrap()
}

/// A zero-config directory whose history holds `plays` (imported, no daemon).
fn history_with(plays: &[Play]) -> TestDir {
    let dir = TestDir::new();
    let file = dir.path().join("listens.json");
    std::fs::write(&file, listenbrainz_file(plays)).unwrap();
    let out = run_cli_zero_config(
        &dir,
        &["import", "listenbrainz", file.to_str().unwrap()],
        &[],
    );
    assert!(out.status.success(), "{}", both(&out));
    assert!(
        stdout(&out).contains(&format!("history: imported {} plays", plays.len())),
        "{}",
        both(&out)
    );
    dir
}

#[test]
fn stats_figures_follow_from_the_plays() {
    let now = now();
    let plays = fixture(now);
    let dir = history_with(&plays);
    let tz = jiff::tz::TimeZone::system();
    let week_ago = now - 7 * 86400;

    for (period, since) in [("7d", Some(week_ago)), ("all", None)] {
        let chosen: Vec<&Play> = plays
            .iter()
            .filter(|p| since.is_none_or(|s| p.at >= s))
            .collect();
        assert!(chosen.len() > 10);
        let out = run_cli_zero_config(&dir, &["stats", "--period", period, "--json"], &[]);
        assert!(out.status.success(), "{}", both(&out));
        let s: Value = serde_json::from_slice(&out.stdout).unwrap();

        assert_eq!(s["plays"], chosen.len(), "{period}");
        assert_eq!(
            s["listening_secs"],
            chosen.iter().map(|p| p.secs).sum::<u64>(),
            "{period}"
        );
        let mut by_artist: BTreeMap<&str, u64> = BTreeMap::new();
        let mut by_track: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        let mut by_hour = [0u64; 24];
        let mut by_day: BTreeMap<String, u64> = BTreeMap::new();
        for p in &chosen {
            *by_artist.entry(p.artist).or_default() += 1;
            *by_track.entry((p.artist, &p.title)).or_default() += 1;
            let local = tz.to_datetime(jiff::Timestamp::from_second(p.at as i64).unwrap());
            by_hour[local.hour() as usize] += 1;
            *by_day.entry(local.date().to_string()).or_default() += 1;
        }
        assert_eq!(s["artists"], by_artist.len());
        let mut expected_artists: Vec<(&str, u64)> = by_artist.into_iter().collect();
        expected_artists.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let got_artists: Vec<(String, u64)> =
            serde_json::from_value(s["top_artists"].clone()).unwrap();
        assert_eq!(
            got_artists
                .iter()
                .map(|(a, n)| (a.as_str(), *n))
                .collect::<Vec<_>>(),
            expected_artists
        );
        let top_track: (String, String, u64) =
            serde_json::from_value(s["top_tracks"][0].clone()).unwrap();
        let best = by_track.values().max().unwrap();
        assert_eq!(top_track.2, *best);
        assert_eq!(
            by_track[&(top_track.0.as_str(), top_track.1.as_str())],
            *best
        );
        let hours: Vec<u64> = serde_json::from_value(s["per_hour"].clone()).unwrap();
        assert_eq!(hours, by_hour);
        // Per day (7d) or per month (all); either way every play is in a bar.
        let per: Vec<(String, u64)> = serde_json::from_value(s["per_period"].clone()).unwrap();
        assert_eq!(per.iter().map(|(_, n)| n).sum::<u64>(), chosen.len() as u64);
        if s["bucket"] == "day" {
            for (day, n) in &by_day {
                assert!(per.contains(&(day.clone(), *n)), "{day}: {per:?}");
            }
        }
    }

    // The text: every line within $COLUMNS, no colour when piped.
    let out = run_cli_zero_config(&dir, &["stats", "--period", "7d"], &[("COLUMNS", "60")]);
    assert!(out.status.success(), "{}", both(&out));
    let text = stdout(&out);
    for needle in [
        "Top artists",
        "Top albums",
        "Top tracks",
        "Plays per day",
        "Plays per hour of the day",
        "█",
    ] {
        assert!(text.contains(needle), "{needle}:\n{text}");
    }
    assert!(!text.contains('\x1b'), "{text}");
    for line in text.lines() {
        let width: usize = line
            .chars()
            .map(|c| {
                if ('\u{3040}'..='\u{9fff}').contains(&c) {
                    2
                } else {
                    1
                }
            })
            .sum();
        assert!(width <= 60, "{width}: {line:?}");
    }
}

#[test]
fn export_round_trip_gives_the_same_plays_back() {
    let plays = fixture(now());
    let dir = history_with(&plays);
    let out = run_cli_zero_config(
        &dir,
        &["history", "export", "--format", "listenbrainz"],
        &[],
    );
    assert!(out.status.success(), "{}", both(&out));
    let exported: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let key = |v: &Value| {
        let m = &v["track_metadata"];
        (
            v["listened_at"].as_u64().unwrap(),
            m["artist_name"].as_str().unwrap().to_owned(),
            m["track_name"].as_str().unwrap().to_owned(),
            m["release_name"].as_str().map(str::to_owned),
            m["additional_info"]["duration_ms"].as_u64(),
        )
    };
    let mut got: Vec<_> = exported.iter().map(key).collect();
    let mut want: Vec<_> = plays
        .iter()
        .map(|p| {
            (
                p.at,
                p.artist.to_owned(),
                p.title.clone(),
                p.album.map(str::to_owned),
                Some(p.secs * 1000),
            )
        })
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);

    // Into a fresh history, and out again: the same plays.
    let other = TestDir::new();
    let file = other.path().join("export.json");
    std::fs::write(&file, &out.stdout).unwrap();
    let imported = run_cli_zero_config(
        &other,
        &["import", "listenbrainz", file.to_str().unwrap()],
        &[],
    );
    assert!(imported.status.success(), "{}", both(&imported));
    assert_eq!(history_json(&other, &[]), history_json(&dir, &[]));

    // CSV: a header and a line per play; fields with commas or quotes are quoted.
    let out = run_cli_zero_config(&dir, &["history", "export", "--format", "csv"], &[]);
    assert!(out.status.success(), "{}", both(&out));
    let csv = stdout(&out);
    assert_eq!(csv.lines().count(), plays.len() + 1);
    assert!(csv.starts_with("started_at,artist,title,album"));
    let quoted = plays.iter().find(|p| p.artist.contains(',')).unwrap();
    assert!(
        csv.contains(&format!(
            "{},\"Plain, \"\"Quoted\"\" Artist\",{},,",
            quoted.at, quoted.title
        )),
        "{csv}"
    );

    // --since, --artist and --limit select from the history.
    let out = run_cli_zero_config(
        &dir,
        &["history", "--json", "--artist", "ac/dc", "--limit", "3"],
        &[],
    );
    let some: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mut acdc: Vec<u64> = plays
        .iter()
        .filter(|p| p.artist == "AC/DC")
        .map(|p| p.at)
        .collect();
    acdc.sort();
    assert_eq!(
        some.iter()
            .map(|p| p["started_at"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        acdc[acdc.len() - 3..]
    );
    let out = run_cli_zero_config(&dir, &["history", "--json", "--since", "1d"], &[]);
    let recent: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let day_ago = now() - 86400;
    assert_eq!(
        recent.len(),
        plays.iter().filter(|p| p.at >= day_ago).count()
    );
}

/// 500 plays recorded before any account existed, then sent to a
/// ListenBrainz-compatible and a Last.fm-style target added later.
#[test]
fn backfill_sends_past_plays_in_batches_and_skips_what_lastfm_would_ignore() {
    let now = now();
    // One play every 2 h 53 min back from 10 minutes ago: 500 plays over
    // about 60 days, so some are within Last.fm's 14 days and most are not.
    // None lies within an hour of the 14-day edge, so which side each falls
    // on is certain.
    let edge = now - 14 * 86400;
    let plays: Vec<Play> = (0..500u64)
        .map(|i| Play {
            at: match now - 600 - i * (2 * 3600 + 53 * 60) {
                t if t.abs_diff(edge) < 3600 => t - 7200,
                t => t,
            },
            artist: if i % 2 == 0 { "Sigur Rós" } else { "AC/DC" },
            title: format!("Song {i}"),
            album: Some("Backfilled"),
            secs: 200,
        })
        .collect();
    let recent = plays.iter().filter(|p| p.at > edge).count();
    let old = plays.len() - recent;
    assert!(recent > 50 && old > 300, "{recent} {old}");
    let dir = history_with(&plays);

    let lastfm = FakeLastFm::start();
    let lb = FakeListenBrainz::start();
    let sk = lastfm.issue_session("alice");
    dir.write_config(&format!(
        "state_dir = {}\n[mpd]\nhost = \"127.0.0.1\"\nport = 1\n\
         [delivery]\nretry_min = \"200ms\"\nretry_max = \"1s\"\nrequest_timeout = \"5s\"\n\
         [lastfm]\nurl = {}\napi_key = {:?}\napi_secret = {:?}\nsession_key = {:?}\n\
         [listenbrainz]\nurl = {}\ntoken = {:?}\n",
        toml_str(&zero_config_state_dir(&dir).display().to_string()),
        toml_str(&lastfm.url()),
        fake_lastfm::API_KEY,
        fake_lastfm::API_SECRET,
        sk,
        toml_str(&lb.url()),
        fake_listenbrainz::TOKEN,
    ));
    let mut daemon = Daemon::spawn(&dir);
    assert!(
        daemon.wait_log("listenbrainz: 0 scrobbles queued", Duration::from_secs(20)),
        "{}",
        daemon.log()
    );

    let out = run_cli(&dir, &["backfill", "listenbrainz", "--json"], None);
    assert!(out.status.success(), "{}", both(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v, json!({"queued": 500, "already": 0, "too_old": 0}));
    let got = lb.wait_for_listens(500, Duration::from_secs(60));
    assert_eq!(got.len(), 500, "{}", daemon.log());
    let subs = lb.submissions();
    assert!(
        subs.iter()
            .all(|(t, n)| (t == "import" || *n == 1) && *n <= 1000),
        "{subs:?}"
    );
    assert!(subs.len() < 500, "sent in batches: {subs:?}");
    let mut times: Vec<u64> = got.iter().filter_map(|l| l.listened_at).collect();
    times.sort();
    times.dedup();
    assert_eq!(times.len(), 500);

    let out = run_cli(&dir, &["backfill", "lastfm"], None);
    assert!(out.status.success(), "{}", both(&out));
    let text = stdout(&out);
    let scrobbled = lastfm.wait_for_scrobbles(recent, Duration::from_secs(60));
    assert_eq!(scrobbled.len(), recent, "{text}\n{}", daemon.log());
    assert!(scrobbled.iter().all(|s| s.timestamp > edge));
    assert!(
        text.contains(&format!("queued {recent} plays"))
            && text.contains(&format!("Skipped {old} older than 14 days")),
        "{text}"
    );
    assert!(lastfm.scrobble_batches().iter().all(|n| *n <= 50));

    // Again: the targets have everything; nothing is queued.
    let out = run_cli(&dir, &["backfill", "listenbrainz", "--json"], None);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["queued"], 0, "{}", both(&out));
    assert_eq!(v["already"], 500);
    // A re-import of the delivered plays is recognised through the history.
    let file = dir.path().join("listens.json");
    let out = run_cli(
        &dir,
        &["import", "listenbrainz", file.to_str().unwrap()],
        None,
    );
    assert!(out.status.success(), "{}", both(&out));
    assert!(
        stdout(&out).contains("history: imported 0 plays (500 there already)"),
        "{}",
        both(&out)
    );
    // The history says who accepted what.
    let out = run_cli(&dir, &["history", "--json"], None);
    let entries: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(entries.len(), 500);
    assert!(
        entries
            .iter()
            .all(|e| e["delivered"]["listenbrainz"].is_u64())
    );
    assert_eq!(
        entries
            .iter()
            .filter(|e| e["delivered"]["lastfm"].is_u64())
            .count(),
        recent
    );

    assert!(daemon.sigterm().success(), "{}", daemon.log());
    assert_eq!(lb.listens().len(), 500);
    assert_eq!(lastfm.scrobbles().len(), recent);
    let out = run_cli(&dir, &["queue", "--json"], None);
    let q: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(q["targets"]["lastfm"], json!([]), "{q}");
    assert_eq!(q["targets"]["listenbrainz"], json!([]), "{q}");
}

/// Issue 23, items 1 and 2: rules see ALBUMARTIST as tagged even when it
/// equals ARTIST (an ignore rule on it fires, and the CSV export has it),
/// and a play's history record holds the time really played once the play
/// has ended, not the time at which it counted; `stats` adds those up.
#[test]
fn album_artist_as_tagged_and_the_whole_play_time_are_recorded() {
    let mpd = MpdServer::start(&[
        SongSpec::new(
            "aa/keep-off.flac",
            6,
            &[
                ("ARTIST", "Keep Off"),
                ("ALBUMARTIST", "Keep Off"),
                ("TITLE", "Ignored"),
            ],
        ),
        SongSpec::new(
            "aa/same.flac",
            6,
            &[
                ("ARTIST", "Same"),
                ("ALBUMARTIST", "Same"),
                ("TITLE", "Whole"),
                ("ALBUM", "Album"),
            ],
        ),
    ]);
    let dir = TestDir::new();
    dir.write_config(&format!(
        "state_dir = {}\n[mpd]\nhost = \"127.0.0.1\"\nport = {}\n\
         [scrobble]\nmin_track_secs = 2\n\
         [[rule]]\naction = \"ignore\"\nalbum_artist = \"Keep Off\"\n",
        toml_str(&dir.state_dir().display().to_string()),
        mpd.port()
    ));
    let daemon = Daemon::spawn(&dir);
    assert!(
        daemon.wait_log("connected to MPD", Duration::from_secs(20)),
        "{}",
        daemon.log()
    );
    mpd.enqueue(&["aa/keep-off.flac", "aa/same.flac"]);
    mpd.play();
    // The second song counts at 3 s; its record gets its whole time when
    // it ends (the playlist ends: MPD stops).
    assert!(
        daemon.wait_log("\"Same – Whole\" played", Duration::from_secs(40)),
        "{}",
        daemon.log()
    );
    let plays = history_json_with(&dir);
    assert_eq!(plays.len(), 1, "the rule on album_artist fired: {plays:?}");
    assert_eq!(plays[0]["title"], "Whole");
    let played = plays[0]["played_secs"].as_u64().unwrap();
    assert!((5..=7).contains(&played), "played {played} s: {plays:?}");

    let out = run_cli(&dir, &["history", "export", "--format", "csv"], None);
    let csv = stdout(&out);
    assert!(csv.contains(",Whole,Album,Same,"), "{csv}");
    let out = run_cli(&dir, &["stats", "--json"], None);
    let stats: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["listening_secs"].as_u64(), Some(played), "{stats}");
    let mut daemon = daemon;
    assert!(daemon.sigterm().success(), "{}", daemon.log());
}

/// `history --json` through the test's config.
fn history_json_with(dir: &TestDir) -> Vec<Value> {
    let out = run_cli(dir, &["history", "--json"], None);
    assert!(out.status.success(), "{}", both(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Issue 22: an export of 200,000 listens, made here, is read a listen at a
/// time (a JSON array, then the same as JSON Lines: every play already
/// there); `history | head -1` then ends quietly with the oldest play.
#[test]
fn a_200000_listen_export_is_imported_streamed_and_history_head_ends_quietly() {
    use std::io::Write;
    const PLAYS: u64 = 200_000;
    let dir = TestDir::new();
    let state = dir.path().join("state");
    dir.write_config(&format!(
        "state_dir = {}\n",
        toml_str(&state.display().to_string())
    ));
    let start = now() - PLAYS * 200;
    let listen = |i: u64| {
        format!(
            "{{\"listened_at\":{},\"track_metadata\":{{\"artist_name\":\"Artist {}\",\
             \"track_name\":\"Track {i}, \\\"quoted\\\" [{}]\",\"release_name\":\"Album {}\"}}}}",
            start + i * 200,
            i % 1000,
            i % 7,
            i % 3000
        )
    };
    let array = dir.path().join("listens.json");
    let lines = dir.path().join("listens.jsonl");
    {
        let mut a = std::io::BufWriter::new(std::fs::File::create(&array).unwrap());
        let mut l = std::io::BufWriter::new(std::fs::File::create(&lines).unwrap());
        writeln!(a, "[").unwrap();
        for i in 0..PLAYS {
            let sep = if i + 1 < PLAYS { "," } else { "" };
            writeln!(a, "  {}{sep}", listen(i)).unwrap();
            if i % 100 == 0 {
                writeln!(l, "{}", listen(i)).unwrap();
            }
        }
        writeln!(a, "]").unwrap();
    }
    let out = run_cli(
        &dir,
        &["import", "listenbrainz", array.to_str().unwrap()],
        None,
    );
    assert!(out.status.success(), "{}", both(&out));
    assert!(
        stdout(&out).contains("history: imported 200000 plays (0 there already)"),
        "{}",
        both(&out)
    );
    let out = run_cli(
        &dir,
        &["import", "listenbrainz", lines.to_str().unwrap()],
        None,
    );
    assert!(out.status.success(), "{}", both(&out));
    assert!(
        stdout(&out).contains("history: imported 0 plays (2000 there already)"),
        "{}",
        both(&out)
    );

    let (first, out) = run_cli_head(&dir, &["history"], 1);
    assert!(out.status.success(), "{:?}", out.status);
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    assert!(
        first[0].ends_with("Artist 0 – Track 0, \"quoted\" [0] (Album 0)"),
        "{first:?}"
    );
    let (first, out) = run_cli_head(&dir, &["history", "export", "--format", "listenbrainz"], 2);
    assert!(out.status.success(), "{:?}", out.status);
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    assert_eq!(first[0], "[");

    let out = run_cli(&dir, &["stats", "--period", "all", "--json"], None);
    assert!(out.status.success(), "{}", both(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["plays"], PLAYS);
    assert_eq!(v["artists"], 1000);
    let out = run_cli(
        &dir,
        &[
            "history",
            "--json",
            "--artist",
            "artist 999",
            "--limit",
            "2",
        ],
        None,
    );
    let v: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v.iter()
            .map(|e| e["title"].as_str().unwrap())
            .collect::<Vec<_>>(),
        [
            "Track 198999, \"quoted\" [3]",
            "Track 199999, \"quoted\" [2]"
        ]
    );
}

/// Issue 22: the sled history of the release before the SQLite history
/// (tests/fixtures/sled-history, made by that release's binary) is moved
/// into history.sqlite once, and reads back whole.
#[test]
fn a_sled_history_of_the_last_release_moves_into_sqlite() {
    let dir = TestDir::new();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/sled-history/state.tar.gz"
    );
    let untar = std::process::Command::new("tar")
        .args(["xzf", fixture, "-C"])
        .arg(&state)
        .status()
        .unwrap();
    assert!(untar.success());
    dir.write_config(&format!(
        "state_dir = {}\n",
        toml_str(&state.display().to_string())
    ));
    assert!(!state.join("history.sqlite").exists());
    for _ in 0..2 {
        let out = run_cli(&dir, &["history", "--json"], None);
        assert!(out.status.success(), "{}", both(&out));
        let v: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v.len(), 300);
        assert_eq!(v[0]["artist"], "Sigur Rós");
        assert_eq!(v[0]["started_at"], 1_700_000_000);
        assert_eq!(v[299]["title"], "Song 299");
        assert_eq!(v[299]["duration"], 200);
    }
    assert!(state.join("history.sqlite").exists());
    // `status` without a daemon reads the count the database keeps.
    let out = run_cli(&dir, &["status"], None);
    assert!(
        both(&out).contains("History: 300 plays since"),
        "{}",
        both(&out)
    );
}
