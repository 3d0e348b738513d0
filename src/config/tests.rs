//! The config file's checks, section by section, and its error messages.

use super::toml_error::redact_unexpected;
use std::time::Duration;

use super::*;
use crate::targets::listenbrainz::{self, Flavor};

const MINIMAL: &str = r#"
[lastfm]
api_key = "k"
api_secret = "s"
"#;

fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |k| {
        pairs
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    }
}

fn parse(text: &str, env: &[(&'static str, &'static str)]) -> Result<Config, ConfigError> {
    let env: &'static [(&str, &str)] = Vec::leak(env.to_vec());
    Config::parse(Path::new("/etc/x/config.toml"), text, &env_of(env))
}

#[test]
fn defaults() {
    let c = parse(MINIMAL, &[("HOME", "/home/u")]).unwrap();
    assert_eq!(c.mpd.address, MpdAddress::Tcp("localhost".into(), 6600));
    assert!(c.mpd.password.is_none());
    assert_eq!(c.rules, Rules::default());
    assert_eq!(
        c.state_dir,
        PathBuf::from("/home/u/.local/state/mpd-scrobbler")
    );
    assert_eq!(c.lastfm[0].url, crate::targets::lastfm::LASTFM_API_URL);
    assert_eq!(c.lastfm[0].name, "lastfm");
    assert_eq!(c.delivery.retry_min, Duration::from_secs(30));
}

#[test]
fn mpd_host_rules_follow_mpc() {
    let cases: &[(&str, MpdAddress, Option<&str>)] = &[
        (
            "pw@example.org",
            MpdAddress::Tcp("example.org".into(), 6600),
            Some("pw"),
        ),
        (
            "/run/mpd/socket",
            MpdAddress::Unix("/run/mpd/socket".into()),
            None,
        ),
        ("@mpd", MpdAddress::Abstract("mpd".into()), None),
        ("pw@@mpd", MpdAddress::Abstract("mpd".into()), Some("pw")),
        (
            "pw@/run/mpd/socket",
            MpdAddress::Unix("/run/mpd/socket".into()),
            Some("pw"),
        ),
        ("::1", MpdAddress::Tcp("::1".into(), 6600), None),
    ];
    for (host, address, password) in cases {
        let env: &'static [(&str, &str)] = Vec::leak(vec![("MPD_HOST", *host)]);
        let c = Config::parse(Path::new("c.toml"), MINIMAL, &env_of(env)).unwrap();
        assert_eq!(&c.mpd.address, address, "MPD_HOST={host}");
        assert_eq!(c.mpd.password.as_ref().map(Secret::expose), *password);
    }
}

#[test]
fn environment_overrides_config() {
    let text = format!("[mpd]\nhost = \"music\"\nport = 7000\npassword = \"cfg\"\n{MINIMAL}");
    let c = parse(&text, &[]).unwrap();
    assert_eq!(c.mpd.address, MpdAddress::Tcp("music".into(), 7000));
    assert_eq!(c.mpd.password.unwrap().expose(), "cfg");
    let c = parse(&text, &[("MPD_PORT", "6601"), ("MPD_HOST", "x@other")]).unwrap();
    assert_eq!(c.mpd.address, MpdAddress::Tcp("other".into(), 6601));
    assert_eq!(c.mpd.password.unwrap().expose(), "x");
    let err = parse(&text, &[("MPD_PORT", "http")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("MPD_PORT") && err.contains("http"), "{err}");
}

#[test]
fn unknown_key_names_file_and_key() {
    let err = parse("[mpd]\nhots = \"x\"\n", &[]).unwrap_err().to_string();
    assert!(err.contains("/etc/x/config.toml"), "{err}");
    assert!(err.contains("hots"), "{err}");
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn invalid_values_name_the_key() {
    let cases = [
        (
            "[scrobble]\nplayed_percent = 0\n",
            "scrobble.played_percent",
        ),
        (
            "[scrobble]\nplayed_percent = 101\n",
            "scrobble.played_percent",
        ),
        ("[delivery]\nretry_min = \"soon\"\n", "delivery.retry_min"),
        (
            "[delivery]\nretry_min = \"10m\"\nretry_max = \"1m\"\n",
            "delivery.retry_max",
        ),
        ("[lastfm]\napi_secret = \"s\"\n", "lastfm.api_key"),
        ("[lastfm]\napi_key = \"k\"\n", "lastfm.api_secret"),
        (
            "[lastfm]\napi_key = \"k\"\napi_secret = \"s\"\nurl = \"ftp://x\"\n",
            "lastfm.url",
        ),
        (
            "[mpd]\npassword = \"a\"\npassword_file = \"b\"\n",
            "mpd.password_file",
        ),
    ];
    for (text, key) in cases {
        let err = parse(text, &[]).unwrap_err().to_string();
        assert!(err.contains(&format!("`{key}`")), "{text:?} gave {err}");
        assert!(err.starts_with("/etc/x/config.toml"), "{err}");
    }
    let err = parse("[scrobble]\nplayed_percent = \"half\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("`scrobble.played_percent`"), "{err}");
}

#[test]
fn several_lastfm_targets_need_distinct_names() {
    let two = r#"
[[lastfm]]
api_key = "k"
api_secret = "s"
[[lastfm]]
name = "librefm"
url = "https://libre.fm/2.0/"
api_key = "k"
api_secret = "s"
"#;
    let c = parse(two, &[]).unwrap();
    assert_eq!(c.lastfm.len(), 2);
    assert_eq!(c.lastfm[1].name, "librefm");
    assert!(c.lastfm_target(None).is_err());
    assert_eq!(
        c.lastfm_target(Some("librefm")).unwrap().url,
        "https://libre.fm/2.0/"
    );
    let err = parse(&two.replace("name = \"librefm\"\n", ""), &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("lastfm[1].name"), "{err}");
}

#[test]
fn the_example_config_is_valid_and_documents_every_section() {
    let text = include_str!("../../config.toml.example");
    let c = parse(text, &[("HOME", "/home/u")]).unwrap();
    assert_eq!(c.rules, Rules::default());
    assert_eq!(c.delivery.retry_max, Duration::from_secs(1800));
    assert_eq!(c.cache.ttl, Duration::from_secs(86400));
    assert_eq!(
        c.history,
        HistoryConfig {
            enabled: true,
            keep: None
        }
    );
    // The commented-out [listenbrainz] section parses too once enabled.
    let lb = text
        .replace("# [listenbrainz]", "[listenbrainz]")
        .replace("# token = \"...\"", "token = \"t\"");
    assert_eq!(parse(&lb, &[]).unwrap().listenbrainz.len(), 1);
    assert!(c.streams.enabled);
    assert!(c.rule_set.is_empty(), "rules are examples, off by default");
    // The commented-out stream and rule settings are valid once enabled.
    let (head, tail) = text.split_at(text.find("\n[streams]").unwrap());
    let is_setting = |l: &str| {
        l.starts_with("# [[")
            || l.strip_prefix("# ")
                .and_then(|l| l.split_once(" = "))
                .is_some_and(|(k, _)| k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
    };
    let enabled: Vec<&str> = tail
        .lines()
        .map(|l| if is_setting(l) { &l[2..] } else { l })
        .collect();
    let c = parse(&format!("{head}{}", enabled.join("\n")), &[]).unwrap();
    assert_eq!(c.streams.stations(), 1);
    assert_eq!(c.rule_set.counts(), (1, 2));
}

#[test]
fn rules_and_streams_are_checked_at_load() {
    let text = format!(
        "{MINIMAL}[streams]\nenabled = false\n\
             [[rule]]\naction = \"ignore\"\nartist = \"x\"\ntargets = [\"lastfm\"]\n\
             [[rule]]\naction = \"rewrite\"\nfield = \"title\"\nregex = \"(Remastered\"\n"
    );
    let err = parse(&text, &[]).unwrap_err().to_string();
    assert!(
        err.starts_with("/etc/x/config.toml: key `rule[1].regex`: "),
        "{err}"
    );
    assert!(err.contains("open group without closing"), "{err}");
    let ok = text.replace("(Remastered", " [(]Remastered[)]$");
    let c = parse(&ok, &[]).unwrap();
    assert!(!c.streams.enabled);
    assert_eq!(c.rule_set.counts(), (1, 1));
    let err = parse(&text.replace("\"lastfm\"]", "\"librefm\"]"), &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`rule[0].targets`") && err.contains("librefm"),
        "{err}"
    );
    let err = parse(&format!("{MINIMAL}[streams]\nsplit = true\n"), &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("split"), "{err}");
    let err = parse(
        &format!("{MINIMAL}[[rule]]\naction = \"ignore\"\nartst = \"x\"\n"),
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("artst"), "{err}");
}

#[test]
fn history_keys() {
    let c = parse("[history]\nkeep = \"365d\"\n", &[]).unwrap();
    assert_eq!(c.history.keep, Some(Duration::from_secs(365 * 86400)));
    assert!(c.history.enabled);
    let c = parse("[history]\nenabled = false\n", &[]).unwrap();
    assert!(!c.history.enabled);
    let err = parse("[history]\nkeep = \"always\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("history.keep") && err.contains("\"always\""),
        "{err}"
    );
}

#[test]
fn a_missing_default_file_is_the_zero_config_set_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let env = env_of(&[("MPD_HOST", "127.0.0.1"), ("MPD_PORT", "6601")]);
    let c = Config::load_or_default(&path, true, &env).unwrap();
    assert!(c.is_zero_config());
    assert!(c.target_names().is_empty());
    assert_eq!(c.mpd.address, MpdAddress::Tcp("127.0.0.1".into(), 6601));
    assert!(c.history.enabled);
    // A file named with -c must exist.
    let err = Config::load_or_default(&path, false, &env).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }), "{err}");
}

#[test]
fn listenbrainz_targets() {
    let c = parse("[listenbrainz]\ntoken = \"t\"\n", &[]).unwrap();
    assert!(c.lastfm.is_empty());
    assert_eq!(c.listenbrainz[0].url, listenbrainz::DEFAULT_URL);
    assert_eq!(c.listenbrainz[0].flavor, Flavor::ListenBrainz);
    assert_eq!(c.listenbrainz[0].token.as_ref().unwrap().expose(), "t");
    let c = parse(
        "[[listenbrainz]]\nname = \"maloja\"\nurl = \"https://m.example/apis/listenbrainz\"\n\
             [[listenbrainz]]\n\
             [lastfm]\napi_key = \"k\"\napi_secret = \"s\"\n",
        &[],
    )
    .unwrap();
    assert_eq!(c.listenbrainz[0].flavor, Flavor::Maloja);
    assert_eq!(c.target_names(), ["lastfm", "maloja", "listenbrainz"]);
    let err = parse("[listenbrainz]\nserver = \"spotify\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("`listenbrainz.server`"), "{err}");
    let err = parse(
        "[listenbrainz]\nname = \"lastfm\"\n[lastfm]\napi_key = \"k\"\napi_secret = \"s\"\n",
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("already named"), "{err}");
}

#[test]
fn state_dir_precedence() {
    let c = parse(
        MINIMAL,
        &[
            ("STATE_DIRECTORY", "/var/lib/mpd-scrobbler:/x"),
            ("XDG_STATE_HOME", "/s"),
        ],
    )
    .unwrap();
    assert_eq!(c.state_dir, PathBuf::from("/var/lib/mpd-scrobbler"));
    let c = parse(MINIMAL, &[("XDG_STATE_HOME", "/s")]).unwrap();
    assert_eq!(c.state_dir, PathBuf::from("/s/mpd-scrobbler"));
    let c = parse(
        &format!("state_dir = \"st\"\n{MINIMAL}"),
        &[("XDG_STATE_HOME", "/s")],
    )
    .unwrap();
    assert_eq!(c.state_dir, PathBuf::from("/etc/x/st"));
}

#[test]
fn systemd_credentials_stand_in_for_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let creds: &'static str = String::leak(dir.path().display().to_string());
    for (name, value) in [
        ("mpd.password", "mpdpw\n"),
        ("lastfm.api_secret", "cred-secret\n"),
        ("lastfm.session_key", "cred-sk"),
        ("lb.token", " cred-token \n"),
    ] {
        std::fs::write(dir.path().join(name), value).unwrap();
    }
    let text = "[lastfm]\napi_key = \"k\"\n[listenbrainz]\nname = \"lb\"\n";
    let c = parse(text, &[("CREDENTIALS_DIRECTORY", creds)]).unwrap();
    assert_eq!(c.mpd.password.unwrap().expose(), "mpdpw");
    assert_eq!(c.lastfm[0].api_secret.expose(), "cred-secret");
    assert_eq!(
        c.lastfm[0].session_key.as_ref().unwrap().expose(),
        "cred-sk"
    );
    assert_eq!(
        c.listenbrainz[0].token.as_ref().unwrap().expose(),
        "cred-token"
    );

    // MPD_HOST's password still wins, as it does over the config file.
    let c = parse(
        text,
        &[("CREDENTIALS_DIRECTORY", creds), ("MPD_HOST", "envpw@h")],
    )
    .unwrap();
    assert_eq!(c.mpd.password.unwrap().expose(), "envpw");

    // The same secret in the config too is ambiguous.
    let both = "[lastfm]\napi_key = \"k\"\napi_secret = \"s\"\n";
    let e = parse(both, &[("CREDENTIALS_DIRECTORY", creds)])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("lastfm.api_secret") && e.contains("\"lastfm.api_secret\""),
        "{e}"
    );

    std::fs::write(dir.path().join("lastfm.api_secret"), "\n").unwrap();
    let e = parse(text, &[("CREDENTIALS_DIRECTORY", creds)])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("lastfm.api_secret") && e.contains("is empty"),
        "{e}"
    );

    // Without the directory the secret is simply missing, and the error
    // names the ways to give it.
    let e = parse(text, &[]).unwrap_err().to_string();
    assert!(
        e.contains("lastfm.api_secret") && e.contains("systemd credential"),
        "{e}"
    );
}

#[test]
fn toml_errors_give_line_and_column_but_never_the_source_or_the_value() {
    let cases = [
        // A syntax error on a secret's line.
        (
            "[mpd]\nhost = \"x\"\npassword = hunter2\n",
            "hunter2",
            "line 3, column 12",
        ),
        ("[mpd]\npassword = 'hunter2\n", "hunter2", "line 2"),
        (
            "[mpd]\npassword = \"ok\" hunter2\n",
            "hunter2",
            "line 2, column 17",
        ),
        // A secret of the wrong type: serde would quote it.
        (
            "[mpd]\npassword = 31337420\n",
            "31337420",
            "line 2, column 12",
        ),
        (
            "[delivery]\nretry_min = 1234567.25\n",
            "1234567.25",
            "line 2, column 13",
        ),
        (
            "[listenbrainz]\ntoken = true\n",
            "true",
            "line 2, column 9: key `listenbrainz.token`",
        ),
        // Columns count characters, not bytes.
        (
            "[mpd]\nhost = \"ü\" sëcret\n",
            "sëcret",
            "line 2, column 12",
        ),
    ];
    for (text, secret, place) in cases {
        let err = parse(text, &[]).unwrap_err().to_string();
        assert!(err.starts_with("/etc/x/config.toml: "), "{err}");
        assert!(err.contains(place), "{text:?} gave {err}");
        assert!(!err.contains(secret), "{text:?} gave {err}");
        assert!(!err.contains('\n'), "one line: {err}");
    }
    let err = parse("[mpd]\npassword = 7\n", &[]).unwrap_err().to_string();
    assert!(
        err.ends_with("key `mpd.password`: invalid type: integer, expected a string"),
        "{err}"
    );
}

#[test]
fn serde_values_are_redacted_from_messages() {
    assert_eq!(
        redact_unexpected("invalid type: floating point `1.5`, expected a string"),
        "invalid type: floating point, expected a string"
    );
    assert_eq!(
        redact_unexpected("invalid value: string \"s3cr3t\", expected u16"),
        "invalid value: string, expected u16"
    );
    assert_eq!(
        redact_unexpected("invalid type: map, expected a string"),
        "invalid type: map, expected a string"
    );
    assert_eq!(
        redact_unexpected("unknown field `hots`, expected `host`"),
        "unknown field `hots`, expected `host`"
    );
}

#[test]
fn secrets_do_not_print() {
    let c = parse(
        "[lastfm]\napi_key = \"k\"\napi_secret = \"topsecret\"\nsession_key = \"sesskey\"\n",
        &[("MPD_HOST", "mpdpass@h")],
    )
    .unwrap();
    let debug = format!("{c:?}");
    for secret in ["topsecret", "sesskey", "mpdpass"] {
        assert!(!debug.contains(secret), "{secret} leaked: {debug}");
    }
}

#[test]
fn default_config_path() {
    let p = default_path(&env_of(&[("XDG_CONFIG_HOME", "/c"), ("HOME", "/h")]));
    assert_eq!(p, PathBuf::from("/c/mpd-scrobbler/config.toml"));
    let p = default_path(&env_of(&[("HOME", "/h")]));
    assert_eq!(p, PathBuf::from("/h/.config/mpd-scrobbler/config.toml"));
}

#[test]
fn every_secret_is_resolved_the_same_way() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(dir.path().join("secret"), " from-file\n").unwrap();
    let load = |text: &str| Config::parse(&path, text, &env_of(&[]));
    let c = load(
        "[mpd]\npassword_file = \"secret\"\n\
         [lastfm]\napi_key = \"k\"\napi_secret_file = \"secret\"\n\
         [listenbrainz]\ntoken_file = \"secret\"\n",
    )
    .unwrap();
    assert_eq!(c.mpd.password.unwrap().expose(), "from-file");
    assert_eq!(c.lastfm[0].api_secret.expose(), "from-file");
    assert_eq!(
        c.listenbrainz[0].token.as_ref().unwrap().expose(),
        "from-file"
    );
    // A value and a file for one secret: refused, naming both keys.
    for (text, key) in [
        (
            "[lastfm]\napi_key = \"k\"\napi_secret = \"s\"\napi_secret_file = \"secret\"\n",
            "lastfm.api_secret_file",
        ),
        (
            "[listenbrainz]\ntoken = \"t\"\ntoken_file = \"secret\"\n",
            "listenbrainz.token_file",
        ),
    ] {
        let e = load(text).unwrap_err().to_string();
        assert!(e.contains(&format!("key `{key}`: give either")), "{e}");
        assert!(!e.contains("from-file"), "{e}");
    }
    // A missing or empty file: the error names the file and the key.
    let e = load("[listenbrainz]\ntoken_file = \"nope\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`listenbrainz.token_file`")
            && e.contains(&format!("{}", dir.path().join("nope").display())),
        "{e}"
    );
    std::fs::write(dir.path().join("empty"), "\n").unwrap();
    let e = load("[mpd]\npassword_file = \"empty\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`mpd.password_file`") && e.contains("is empty"),
        "{e}"
    );
    // An empty session key is no session key; an empty token is a mistake.
    let c = load("[lastfm]\napi_key = \"k\"\napi_secret = \"s\"\nsession_key = \"\"\n").unwrap();
    assert!(c.lastfm[0].session_key.is_none());
    let e = load("[listenbrainz]\ntoken = \" \"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("`listenbrainz.token`: is empty"), "{e}");
}
