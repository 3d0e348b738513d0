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
/// Issue 26: `--version` (and `-V`) name the commit a checkout was built
/// from, so a bug report says which code ran; built outside a checkout, the
/// version alone.
#[test]
fn version_names_the_commit_of_a_checkout() {
    let dir = TestDir::new();
    let root = env!("CARGO_MANIFEST_DIR");
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let checkout = git(&["rev-parse", "--show-toplevel"])
        .is_some_and(|top| std::fs::canonicalize(top).ok() == std::fs::canonicalize(root).ok());
    let expected = match git(&["rev-parse", "--short=12", "HEAD"]).filter(|_| checkout) {
        Some(commit) => format!(
            "mpd-scrobbler {} (commit {commit})\n",
            env!("CARGO_PKG_VERSION")
        ),
        None => format!("mpd-scrobbler {}\n", env!("CARGO_PKG_VERSION")),
    };
    for flag in ["--version", "-V"] {
        let out = run_cli(&dir, &[flag], None);
        assert!(out.status.success(), "{}", both(&out));
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected, "{flag}");
    }
}

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

/// Whether `shell` can be run here. In CI (env CI set) every shell must be
/// installed (.ci/run installs them); elsewhere a missing one is skipped
/// with a line saying so.
fn have_shell(shell: &str) -> bool {
    let found = std::process::Command::new(shell)
        .arg("-c")
        .arg("true")
        .status()
        .is_ok_and(|s| s.success());
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
    assert!(
        found || !ci,
        "{shell} is not installed (.ci/run installs it)"
    );
    if !found {
        eprintln!("SKIPPED: {shell} is not installed; completion in {shell} untested");
    }
    found
}

/// What `mpd-scrobbler completions SHELL` writes, saved in the test dir.
fn completion_script(dir: &TestDir, shell: &str) -> std::path::PathBuf {
    let out = run_cli(dir, &["completions", shell], None);
    assert!(out.status.success(), "{}", both(&out));
    let path = dir.path().join(format!("completion.{shell}"));
    std::fs::write(&path, &out.stdout).unwrap();
    path
}

/// Issue 23, item 9: bash completes a subcommand's options (clap-rs/clap#6421
/// broke every one with a hyphen in the binary's name), as does fish; zsh
/// loads its script and knows the options.
#[test]
fn shell_completion_completes_subcommand_options() {
    let dir = TestDir::new();
    let bash = completion_script(&dir, "bash");
    // As bash-completion calls it: the function `complete -p` names, with
    // the words so far.
    let complete = |line: &str| -> Vec<String> {
        let script = format!(
            r#"source {bash}
spec=$(complete -p mpd-scrobbler) || exit 3
fn=${{spec#*-F }}; fn=${{fn%% *}}
COMP_LINE={line:?}; COMP_POINT=${{#COMP_LINE}}
read -ra COMP_WORDS <<< "$COMP_LINE"
[[ $COMP_LINE == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
cur=${{COMP_WORDS[COMP_CWORD]}}; prev=${{COMP_WORDS[COMP_CWORD-1]}}
"$fn" mpd-scrobbler "$cur" "$prev"
printf '%s\n' "${{COMPREPLY[@]}}"
"#,
            bash = bash.display()
        );
        let out = std::process::Command::new("bash")
            .arg("--norc")
            .arg("-c")
            .arg(script)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", both(&out));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(complete("mpd-scrobbler history --si"), ["--since"]);
    assert_eq!(complete("mpd-scrobbler queue list --r"), ["--rejected"]);
    let auth = complete("mpd-scrobbler auth lastfm --");
    assert!(
        auth.contains(&"--username".to_string()) && auth.contains(&"--name".to_string()),
        "{auth:?}"
    );
    let top = complete("mpd-scrobbler conf");
    assert_eq!(top, ["config"]);
    let config = complete("mpd-scrobbler config ");
    assert!(
        config.contains(&"init".to_string()) && config.contains(&"show".to_string()),
        "{config:?}"
    );

    if have_shell("fish") {
        let fish = completion_script(&dir, "fish");
        let out = std::process::Command::new("fish")
            .arg("--no-config")
            .arg("-c")
            .arg(format!(
                "source {}; complete -C 'mpd-scrobbler history --si'; complete -C 'mpd-scrobbler queue list --r'",
                fish.display()
            ))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}", both(&out));
        assert!(text.lines().any(|l| l.starts_with("--since")), "{text}");
        assert!(text.lines().any(|l| l.starts_with("--rejected")), "{text}");
    }
    if have_shell("zsh") {
        let zsh = completion_script(&dir, "zsh");
        let out = std::process::Command::new("zsh")
            .arg("-f")
            .arg("-c")
            .arg(format!(
                "autoload -Uz compinit && compinit -u -D && source {} && functions _mpd-scrobbler",
                zsh.display()
            ))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}", both(&out));
        assert!(
            text.contains("--since") && text.contains("--rejected"),
            "{text}"
        );
    }
}

/// Issue 23, item 10: `manpage --dir` writes every page the main page
/// refers to, with the sections a user looks for; `manpage` alone prints the
/// main page; the synopsis shows option values.
#[test]
fn manpage_dir_writes_a_page_per_subcommand_and_the_config_page() {
    let dir = TestDir::new();
    let man = dir.path().join("man");
    let out = run_cli(&dir, &["manpage", "--dir", man.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", both(&out));
    let listed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    let mut files: Vec<String> = std::fs::read_dir(&man)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    files.sort();
    assert_eq!(listed, files);
    let page = |name: &str| std::fs::read_to_string(man.join(name)).unwrap();
    for name in [
        "mpd-scrobbler.1",
        "mpd-scrobbler-history.1",
        "mpd-scrobbler-history-export.1",
        "mpd-scrobbler-queue-list.1",
        "mpd-scrobbler-config-init.1",
        "mpd-scrobbler.toml.5",
    ] {
        assert!(man.join(name).exists(), "{name} missing from {listed:?}");
    }
    assert!(!man.join("mpd-scrobbler-help.1").exists());
    // Every page a page refers to exists.
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (i, _) in text.match_indices("mpd\\-scrobbler\\-") {
            let rest = &text[i..];
            let Some(end) = rest.find("(1)") else {
                continue;
            };
            let name = rest[..end].replace("\\-", "-");
            if name.chars().all(|c| c.is_ascii_lowercase() || c == '-') {
                assert!(
                    man.join(format!("{name}.1")).exists(),
                    "{f} names {name}(1)"
                );
            }
        }
    }
    let main = page("mpd-scrobbler.1");
    for section in [
        ".SH SYNOPSIS",
        ".SH FILES",
        ".SH ENVIRONMENT",
        ".SH \"EXIT STATUS\"",
        ".SH CONFIGURATION",
    ] {
        let section = section.replace('"', "");
        assert!(
            main.contains(&section) || main.contains(&format!(".SH \"{}\"", &section[4..])),
            "{section} missing:\n{main}"
        );
    }
    assert!(main.contains("[\\-c|\\-\\-config FILE]"), "{main}");
    assert!(main.contains("MPD_HOST") && main.contains("CREDENTIALS_DIRECTORY"));
    let history = page("mpd-scrobbler-history.1");
    assert!(
        history.contains("\\fBmpd\\-scrobbler history\\fR")
            && history.contains("\\-\\-since DATE|DURATION"),
        "{history}"
    );
    let toml = page("mpd-scrobbler.toml.5");
    for key in [
        "\\fBapi_key\\fR",
        "\\fBmin_track_secs\\fR",
        "\\fBcase_insensitive\\fR",
        "\\fBkeep\\fR",
    ] {
        assert!(toml.contains(key), "{key} missing:\n{toml}");
    }
    // `manpage` alone: the main page on stdout.
    let out = run_cli(&dir, &["manpage"], None);
    assert_eq!(String::from_utf8_lossy(&out.stdout), main);
}

/// Issue 23, item 17: a command a person waits on gives up on a server that
/// never answers after 10 s, as `check` does, even with the daemon's
/// `request_timeout = "30s"`, and says so.
#[test]
fn interactive_commands_give_up_on_a_hung_server_after_10_s() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts and never answers; the connections stay open until the end.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().take(16) {
            held.push(s);
        }
    });
    let dir = TestDir::new();
    dir.write_test_config(1, &format!("http://127.0.0.1:{port}/2.0/"), None);
    let config = std::fs::read_to_string(dir.config_path())
        .unwrap()
        .replace("request_timeout = \"5s\"", "request_timeout = \"30s\"");
    dir.write_config(&config);
    let started = std::time::Instant::now();
    let out = run_cli(&dir, &["artist", "Cher"], None);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert!(
        took >= std::time::Duration::from_secs(9) && took < std::time::Duration::from_secs(20),
        "{took:?}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Last.fm did not answer within 10 s"),
        "{}",
        both(&out)
    );
}

/// Issue 23, item 19: the commands that only read create nothing: no state
/// directory, no queue database, on a fresh set-up with or without a
/// config file; and what they print says there is nothing yet.
#[test]
fn read_only_commands_create_nothing() {
    let commands: [&[&str]; 10] = [
        &["history"],
        &["history", "--json"],
        &["history", "export", "--format", "csv"],
        &["stats"],
        &["stats", "--json"],
        &["queue"],
        &["queue", "list", "--json"],
        &["queue", "list", "--rejected"],
        &["status"],
        &["check"],
    ];
    let dir = TestDir::new();
    for args in commands {
        let out = run_cli_zero_config(&dir, args, &[]);
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{args:?}: {}",
            both(&out)
        );
        assert!(!dir.path().join("xdg-state").exists(), "{args:?} made it");
    }
    let out = run_cli_zero_config(&dir, &["history"], &[]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "No plays recorded yet.\n"
    );

    let dir = configured();
    for args in commands {
        let out = run_cli(&dir, args, None);
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{args:?}: {}",
            both(&out)
        );
        assert!(!dir.state_dir().exists(), "{args:?} made it");
    }
    let out = run_cli(&dir, &["queue"], None);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "lastfm: 0 queued\n");
    let out = run_cli(&dir, &["status"], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "mpd-scrobbler: The daemon is not running.\nlastfm: 0 queued, 0 rejected\nHistory: no plays yet\n"
    );
}

/// Issue 23, item 6: `check` fails a state directory the daemon could not
/// use: one under a regular file, and one on a file system with no room
/// (/proc has 0 bytes free).
#[test]
fn check_fails_state_dirs_the_daemon_cannot_use() {
    let dir = TestDir::new();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    for (state, expected) in [
        (
            file.join("state"),
            format!(
                "cannot be created: {} is a file, not a directory",
                file.display()
            ),
        ),
        (
            std::path::PathBuf::from("/proc/mpd-scrobbler-test/state"),
            "its file system has only 0 MiB free; the queue needs at least 16 MiB".to_owned(),
        ),
    ] {
        dir.write_config(&format!(
            "state_dir = {}\n",
            crate::common::daemon::toml_str(&state.display().to_string())
        ));
        let out = run_cli(&dir, &["check"], None);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{}", both(&out));
        let line = text
            .lines()
            .find(|l| l.contains("state dir"))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(line.starts_with("FAIL"), "{text}");
        assert!(line.contains(&expected), "{text}");
    }
}

/// The output of the commands that need no daemon, kept beside this file
/// in `cli/` and reviewed when it changes (`SNAPSHOTS=overwrite` rewrites
/// the files). Times are fixed and shown in UTC; the test's directory
/// reads as `[ROOT]`.
mod snapshots {
    use snapbox::file;

    use super::both;
    use crate::common::daemon::{TestDir, run_cli_env};

    /// Plays at fixed times: 2023-11-14 22:13:20 UTC and on.
    const JOURNAL: &str = "a = Sigur Rós\nt = Hoppípolla\nb = Takk...\ni = 1700000000\nl = 268\no = P\n\n\
                           a = AC/DC\nt = T.N.T.\ni = 1700000300\nl = 215\no = P\n\n\
                           a = \nt = Station ID\ni = 1700000600\no = P\n\n\
                           a = Broken\ni = yesterday\no = P\n";

    /// A config with a ListenBrainz target (no age limit, so old plays
    /// queue) nobody listens at, and one rule.
    fn setup() -> TestDir {
        let dir = TestDir::new();
        dir.write_config(&format!(
            "state_dir = {}\n[listenbrainz]\nurl = \"http://127.0.0.1:1\"\ntoken = \"t\"\n\
             [[rule]]\naction = \"ignore\"\nartist = \"AC/DC\"\n",
            crate::common::daemon::toml_str(&dir.state_dir().display().to_string())
        ));
        dir
    }

    fn run(dir: &TestDir, args: &[&str]) -> std::process::Output {
        run_cli_env(
            dir,
            args,
            None,
            &[
                ("TZ", "UTC"),
                ("COLUMNS", "72"),
                ("MPD_SCROBBLER_LOG", "warn"),
            ],
        )
    }

    fn assert_matches(dir: &TestDir, actual: &[u8], expected: snapbox::Data) {
        let mut redactions = snapbox::Redactions::new();
        redactions
            .insert("[ROOT]", dir.path().to_path_buf())
            .unwrap();
        snapbox::Assert::new()
            .action_env(snapbox::assert::DEFAULT_ACTION_ENV)
            .redact_with(redactions)
            .eq(String::from_utf8_lossy(actual).into_owned(), expected);
    }

    #[test]
    fn help_keeps_global_options_apart() {
        let dir = TestDir::new();
        let out = run(&dir, &["--help"]);
        assert!(out.status.success(), "{}", both(&out));
        assert_matches(&dir, &out.stdout, file!["cli/help.stdout"]);
        let out = run(&dir, &["history", "--help"]);
        assert!(out.status.success(), "{}", both(&out));
        assert_matches(&dir, &out.stdout, file!["cli/history-help.stdout"]);
        // The file imports and the server imports side by side.
        let out = run(&dir, &["import", "--help"]);
        assert!(out.status.success(), "{}", both(&out));
        assert_matches(&dir, &out.stdout, file!["cli/import-help.stdout"]);
        let out = run(&dir, &["import", "listenbrainz", "--help"]);
        assert!(out.status.success(), "{}", both(&out));
        assert_matches(
            &dir,
            &out.stdout,
            file!["cli/import-listenbrainz-help.stdout"],
        );
    }

    #[test]
    fn import_queue_history_stats_and_rules() {
        let dir = setup();
        let journal = dir.path().join("mpdscribble.journal");
        std::fs::write(&journal, JOURNAL).unwrap();
        let out = run(&dir, &["import", "mpdscribble", journal.to_str().unwrap()]);
        assert!(out.status.success(), "{}", both(&out));
        assert_matches(&dir, &out.stdout, file!["cli/import.stdout"]);
        assert_matches(&dir, &out.stderr, file!["cli/import.stderr"]);

        for (args, expected) in [
            (&["queue"][..], file!["cli/queue.stdout"]),
            (&["history"], file!["cli/history.stdout"]),
            (
                &["history", "export", "--format", "csv"],
                file!["cli/export.csv"],
            ),
            (&["stats", "--period", "all"], file!["cli/stats.stdout"]),
            (
                &["rules", "test", "--artist", "AC/DC", "--title", "T.N.T."],
                file!["cli/rules-test.stdout"],
            ),
        ] {
            let out = run(&dir, args);
            assert!(out.status.success(), "{args:?}: {}", both(&out));
            assert_matches(&dir, &out.stdout, expected);
        }
        let out = run(&dir, &["status"]);
        assert_eq!(out.status.code(), Some(1), "{}", both(&out));
        assert_matches(&dir, &out.stderr, file!["cli/status-no-daemon.stderr"]);
    }

    /// Issue 23, item 18: the exit statuses of the README's table.
    #[test]
    fn usage_and_config_errors_exit_2() {
        let dir = setup();
        for (args, expected) in [
            (
                &["backfill", "lastfm"][..],
                file!["cli/backfill-no-target.stderr"],
            ),
            (
                &["history", "--since", "2024-05-02", "--until", "2024-05-01"],
                file!["cli/history-reversed.stderr"],
            ),
            (&["auth", "lastfm"], file!["cli/auth-no-section.stderr"]),
        ] {
            let out = run(&dir, args);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {}", both(&out));
            assert_matches(&dir, &out.stderr, expected);
        }
        // With no config file at all, too.
        let out = crate::common::daemon::run_cli_zero_config(&dir, &["backfill", "lastfm"], &[]);
        assert_eq!(out.status.code(), Some(2), "{}", both(&out));
        dir.write_config("[mpd]\nport = \"x\"\n");
        let out = run(&dir, &["check"]);
        assert_eq!(out.status.code(), Some(2), "{}", both(&out));
        assert_matches(&dir, &out.stdout, file!["cli/check-bad-config.stdout"]);
        let out = run(&dir, &["history"]);
        assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    }
}
