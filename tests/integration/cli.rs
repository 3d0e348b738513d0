//! The commands a newcomer meets first, as a person would run them: output
//! kept beside the tests (`tests/integration/cli/`, compared with snapbox;
//! `SNAPSHOTS=overwrite cargo test --test integration cli::` rewrites them
//! for review in the diff), closed pipes, exit statuses.

use crate::common::daemon::{TestDir, run_cli, run_cli_stdout_closed, run_cli_zero_config};

fn both(out: &std::process::Output) -> String {
    format!(
        "status {:?}\n--- stdout:\n{}--- stderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A config with a Last.fm target nobody listens at and a state directory
/// in the test's own.
fn configured() -> TestDir {
    let dir = TestDir::new();
    dir.write_test_config(1, "http://127.0.0.1:1/2.0/", None);
    dir
}

/// Issue 23, item 8: every command that writes to stdout ends quietly when
/// the reader has gone (`history | head -1`): exit 0, nothing on stderr, no
/// panic (which the release build turns into an abort, status 134).
#[test]
fn a_closed_stdout_ends_every_command_quietly() {
    let dir = configured();
    // A history with plays in it, so that there is something to write.
    let journal = dir.path().join("plays.journal");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut text = String::new();
    for i in 0..50 {
        text.push_str(&format!(
            "a = Artist {i}\nt = Title {i}\nb = Album\nl = 200\ni = {}\no = P\n\n",
            now - 3600 - i * 300
        ));
    }
    std::fs::write(&journal, text).unwrap();
    let out = run_cli(
        &dir,
        &["import", "mpdscribble", journal.to_str().unwrap()],
        None,
    );
    assert!(out.status.success(), "{}", both(&out));

    for args in [
        &["history"][..],
        &["history", "--json"],
        &["history", "export", "--format", "csv"],
        &["history", "export", "--format", "listenbrainz"],
        &["stats"],
        &["queue"],
        &["queue", "--json"],
        &["completions", "bash"],
        &["completions", "zsh"],
        &["manpage"],
        &["config", "show"],
        &["rules", "test", "--artist", "A", "--title", "T"],
        &["check"],
        &["--help"],
        &["history", "--help"],
    ] {
        let out = run_cli_stdout_closed(&dir, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.contains("Broken pipe"), "{args:?}: {stderr}");
        // `check` fails (nobody listens at the target), and says so in
        // its exit status even when nobody reads its verdicts.
        let expected = if args == ["check"] { 1 } else { 0 };
        assert_eq!(out.status.code(), Some(expected), "{args:?}: {stderr}");
    }
}

/// Issue 23, item 12: `config init` writes the commented default config
/// (mode 0600, in a directory it makes 0700), never over a file, and what it
/// writes is what `config show` prints and what loads with no target; the
/// hints name the command, not a file the user may not have.
#[test]
fn config_init_writes_the_commented_default_once() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TestDir::new();
    let path = dir.path().join("new").join("config.toml");
    let path_arg = path.to_str().unwrap();
    let show = run_cli(&dir, &["config", "show"], None);
    assert!(show.status.success(), "{}", both(&show));

    let out = run_cli_zero_config(&dir, &["-c", path_arg, "config", "init"], &[]);
    assert!(out.status.success(), "{}", both(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with(&format!(
            "Wrote a commented default config to {path_arg}.\n"
        )),
        "{}",
        both(&out)
    );
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    let written = std::fs::read(&path).unwrap();
    assert_eq!(written, show.stdout);
    assert_eq!(
        written,
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml.example")).unwrap()
    );

    // A second time: refused, the file untouched.
    std::fs::write(&path, "# mine\n").unwrap();
    let out = run_cli_zero_config(&dir, &["-c", path_arg, "config", "init"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains(&format!("{path_arg} already exists; not overwriting it")),
        "{}",
        both(&out)
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "# mine\n");

    // The default config loads: no target, so plays stay local, and the
    // hint says how to add one.
    std::fs::write(&path, &show.stdout).unwrap();
    let out = run_cli_zero_config(&dir, &["-c", path_arg, "check"], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "{path_arg} is valid but has no [lastfm] or [listenbrainz] section"
        )) && text.contains("`mpd-scrobbler config"),
        "{}",
        both(&out)
    );
    assert!(!text.contains("config.toml.example"), "{text}");

    // Without a config file, `config init` writes the default path.
    let out = run_cli_zero_config(&dir, &["config", "init"], &[]);
    assert!(out.status.success(), "{}", both(&out));
    let default = dir
        .path()
        .join("xdg-config")
        .join("mpd-scrobbler")
        .join("config.toml");
    assert_eq!(std::fs::read(&default).unwrap(), show.stdout);
}

/// Issue 23, item 11: a verbatim copy of the example with its `[lastfm]`
/// section switched on still holds placeholders, and a key of the wrong
/// shape is refused before any server is asked: exit 2 from every command,
/// naming the file and the key, never the value.
#[test]
fn placeholder_and_misshapen_keys_are_config_errors() {
    let dir = TestDir::new();
    let example = String::from_utf8(run_cli(&dir, &["config", "show"], None).stdout).unwrap();
    let switched_on = example
        .replace("# [lastfm]", "[lastfm]")
        .replace("# api_key = ", "api_key = ")
        .replace("# api_secret = ", "api_secret = ");
    let path = dir.config_path().display().to_string();
    dir.write_config(&switched_on);
    for args in [&["check"][..], &["run"], &["queue"], &["auth", "lastfm"]] {
        let out = run_cli(&dir, args, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", both(&out));
        assert!(
            both(&out).contains(&format!(
                "{path}: key `lastfm.api_key`: is still the example's placeholder"
            )),
            "{args:?}: {}",
            both(&out)
        );
    }
    dir.write_config(
        &switched_on
            .replace("your 32-character API key", "short")
            .replace(
                "your 32-character shared secret",
                "fedcba9876543210fedcba9876543210",
            ),
    );
    let out = run_cli(&dir, &["check"], None);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    let text = both(&out);
    assert!(
        text.contains("key `lastfm.api_key`: is not a Last.fm API key: those are 32 hexadecimal characters (this one has 5 characters)"),
        "{text}"
    );
    assert!(!text.contains("\"short\""), "{text}");
}
