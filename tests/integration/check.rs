//! `mpd-scrobbler check` against a real mpd that wants a password and the
//! stand-in servers: everything right passes; a wrong MPD password, a
//! revoked session and an unwritable state directory each fail with their
//! own verdict and fix, and leave the other items passing.

use std::process::Output;

use crate::common::daemon::{TestDir, config_toml, run_cli, run_cli_as, run_cli_env};
use crate::common::fake_lastfm::FakeLastFm;
use crate::common::fake_listenbrainz::FakeListenBrainz;
use crate::common::mpd::MpdServer;

const MPD_PASSWORD: &str = "s3cret";
const NOBODY: u32 = 65534;

struct Setup {
    mpd: MpdServer,
    lastfm: FakeLastFm,
    listenbrainz: FakeListenBrainz,
    dir: TestDir,
}

impl Setup {
    fn new() -> Setup {
        let mpd = MpdServer::start_with_password(&[], MPD_PASSWORD);
        let lastfm = FakeLastFm::start();
        let listenbrainz = FakeListenBrainz::start();
        listenbrainz.add_token("lb-token", "bob");
        let dir = TestDir::new();
        let setup = Setup {
            mpd,
            lastfm,
            listenbrainz,
            dir,
        };
        setup.write_config(Some(MPD_PASSWORD), &setup.lastfm.issue_session("alice"));
        setup
    }

    fn write_config(&self, mpd_password: Option<&str>, session_key: &str) {
        let mut text = config_toml(
            self.mpd.port(),
            &self.dir.state_dir(),
            &self.lastfm.url(),
            Some(session_key),
        );
        if let Some(pw) = mpd_password {
            text = text.replace("[mpd]\n", &format!("[mpd]\npassword = {pw:?}\n"));
        }
        text.push_str(&format!(
            "[listenbrainz]\nurl = {:?}\ntoken = \"lb-token\"\n",
            self.listenbrainz.url()
        ));
        self.dir.write_config(&text);
    }
}

/// The verdict line of `item` and the fix under it, if any.
fn verdict<'a>(out: &'a str, item: &str) -> (&'a str, Option<&'a str>) {
    let lines: Vec<&str> = out.lines().collect();
    let i = lines
        .iter()
        // "LEVEL  ITEM  detail", the level padded to 4 columns.
        .position(|l| {
            l.get(6..)
                .and_then(|rest| rest.strip_prefix(item))
                .is_some_and(|rest| rest.starts_with("  "))
        })
        .unwrap_or_else(|| panic!("no verdict for {item:?} in:\n{out}"));
    let fix = lines
        .get(i + 1)
        .filter(|l| l.trim_start().starts_with("fix: "))
        .map(|l| l.trim_start());
    (lines[i], fix)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn everything_right_passes_with_exit_0() {
    let s = Setup::new();
    let out = run_cli(&s.dir, &["check"], None);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    for item in ["config", "mpd", "state dir", "lastfm", "listenbrainz"] {
        let (line, fix) = verdict(&text, item);
        assert!(line.starts_with("ok "), "{item}: {text}");
        assert_eq!(fix, None, "{text}");
    }
    assert!(verdict(&text, "lastfm").0.contains("\"alice\""), "{text}");
    assert!(
        verdict(&text, "listenbrainz").0.contains("\"bob\""),
        "{text}"
    );
    assert!(text.contains("All 6 checks passed."), "{text}");
    // The state directory is checked, not created: that is the daemon's job.
    assert!(!s.dir.state_dir().exists());
    // Nothing was sent that changes anything.
    assert!(s.lastfm.scrobbles().is_empty() && s.lastfm.now_playing().is_empty());
    assert!(
        !text.contains(MPD_PASSWORD)
            && !String::from_utf8_lossy(&out.stderr).contains(MPD_PASSWORD)
    );
}

#[test]
fn wrong_or_missing_mpd_password_fails_mpd_only() {
    let s = Setup::new();
    let sk = s.lastfm.issue_session("alice");
    s.write_config(Some("wrong"), &sk);
    let out = run_cli(&s.dir, &["check"], None);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let (line, fix) = verdict(&text, "mpd");
    assert!(
        line.starts_with("FAIL") && line.contains("rejected the password"),
        "{text}"
    );
    assert!(fix.unwrap().contains("[mpd] password"), "{text}");
    for item in ["config", "state dir", "lastfm", "listenbrainz"] {
        assert!(verdict(&text, item).0.starts_with("ok "), "{item}: {text}");
    }
    assert!(text.contains("1 of 6 checks failed."), "{text}");

    // No password at all: MPD lets us in but tells nothing.
    s.write_config(None, &sk);
    let out = run_cli(&s.dir, &["check"], None);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let (line, fix) = verdict(&text, "mpd");
    assert!(
        line.starts_with("FAIL") && line.contains("refuses to say what plays"),
        "{text}"
    );
    assert!(fix.unwrap().contains("password"), "{text}");
}

#[test]
fn revoked_session_fails_its_target_with_the_auth_command() {
    let s = Setup::new();
    s.lastfm.revoke_sessions("alice");
    let out = run_cli(&s.dir, &["check"], None);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let (line, fix) = verdict(&text, "lastfm");
    assert!(
        line.starts_with("FAIL") && line.contains("no longer valid"),
        "{text}"
    );
    assert_eq!(fix, Some("fix: run `mpd-scrobbler auth lastfm`"), "{text}");
    for item in ["config", "mpd", "state dir", "listenbrainz"] {
        assert!(verdict(&text, item).0.starts_with("ok "), "{item}: {text}");
    }
}

#[test]
fn unwritable_state_dir_fails_with_the_owner_to_fix() {
    use std::os::unix::fs::PermissionsExt;
    let s = Setup::new();
    let state = s.dir.state_dir();
    std::fs::create_dir(&state).unwrap();
    let out = if rustix::process::geteuid().is_root() {
        // Root writes anywhere; a directory root owns is unwritable for nobody.
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
        run_cli_as(&s.dir, NOBODY, &["check"])
    } else {
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o500)).unwrap();
        run_cli(&s.dir, &["check"], None)
    };
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (line, fix) = verdict(&text, "state dir");
    assert!(
        line.starts_with("FAIL")
            && line.contains("not writable")
            && line.contains("Permission denied"),
        "{text}"
    );
    assert!(
        fix.unwrap().contains(&state.display().to_string()),
        "{text}"
    );
    for item in ["config", "mpd", "lastfm", "listenbrainz"] {
        assert!(verdict(&text, item).0.starts_with("ok "), "{item}: {text}");
    }
}

#[test]
fn bad_config_is_one_verdict_and_exit_2() {
    let s = Setup::new();
    std::fs::write(s.dir.config_path(), "[mpd]\nport = \"x\"\n").unwrap();
    let out = run_cli(&s.dir, &["check"], None);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.starts_with("FAIL  config  "), "{text}");
    assert!(
        text.contains("config.toml") && text.contains("expected u16"),
        "{text}"
    );
    let fix = text
        .lines()
        .find(|l| l.trim_start().starts_with("fix: "))
        .unwrap();
    assert!(
        fix.contains("edit ") && fix.contains("`mpd-scrobbler config show`"),
        "{text}"
    );
    assert!(text.ends_with("1 of 1 checks failed.\n"), "{text}");

    // Issue 23, item 15: no "edit FILE" for a file that does not exist.
    std::fs::remove_file(s.dir.config_path()).unwrap();
    let out = run_cli(&s.dir, &["check"], None);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    let fix = text
        .lines()
        .find(|l| l.trim_start().starts_with("fix: "))
        .unwrap();
    assert!(!fix.contains("edit "), "{text}");
    assert!(
        fix.contains(&format!(
            "`mpd-scrobbler -c {} config init`",
            s.dir.config_path().display()
        )),
        "{text}"
    );
}

#[test]
fn secrets_from_systemd_credentials_pass() {
    let s = Setup::new();
    let sk = s.lastfm.issue_session("alice");
    // The config holds no secret at all; the credentials directory does.
    let text = config_toml(s.mpd.port(), &s.dir.state_dir(), &s.lastfm.url(), None)
        .lines()
        .filter(|l| !l.starts_with("api_secret"))
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        + &format!("[listenbrainz]\nurl = {:?}\n", s.listenbrainz.url());
    s.dir.write_config(&text);
    let creds = s.dir.path().join("credentials");
    std::fs::create_dir(&creds).unwrap();
    for (name, value) in [
        ("mpd.password", MPD_PASSWORD),
        ("lastfm.api_secret", "fedcba9876543210fedcba9876543210"),
        ("lastfm.session_key", sk.as_str()),
        ("listenbrainz.token", "lb-token"),
    ] {
        std::fs::write(creds.join(name), value).unwrap();
    }
    let out = run_cli_env(
        &s.dir,
        &["check"],
        None,
        &[("CREDENTIALS_DIRECTORY", creds.to_str().unwrap())],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("All 6 checks passed."), "{text}");

    // Without them, the same config names what is missing.
    let out = run_cli(&s.dir, &["check"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stdout(&out).contains("lastfm.api_secret"),
        "{}",
        stdout(&out)
    );
}
