//! The verdict rules, the facts gathered from the file system, and the report's layout.

use std::path::{Path, PathBuf};

use super::judge::{judge_dir, judge_queue_db};
use super::state_dir::{DirFacts, dir_facts};
use super::*;
use crate::session;

fn facts() -> DirFacts {
    DirFacts {
        missing: None,
        not_a_directory: false,
        write_error: None,
        write_error_kind: None,
        mode: 0o700,
        owner: 1000,
        euid: 1000,
        secrets: vec![(PathBuf::from("/s/lastfm.session"), 0o600, 1000)],
        free: Some(20 << 30),
    }
}

fn judge(f: &DirFacts) -> Verdict {
    judge_dir(Path::new("/s"), Path::new("/c/config.toml"), f)
}

#[test]
fn a_private_writable_directory_passes() {
    let v = judge(&facts());
    assert_eq!(v.level, Level::Ok, "{v:?}");
    assert!(v.detail.contains("20 GiB free"), "{v:?}");
}

#[test]
fn each_problem_has_its_own_verdict_and_fix() {
    let cases: Vec<(DirFacts, Level, &str, &str)> = vec![
        (
            DirFacts {
                write_error: Some("Permission denied (os error 13)".into()),
                owner: 0,
                ..facts()
            },
            Level::Fail,
            "not writable",
            "chown -R 1000 /s",
        ),
        (
            DirFacts {
                write_error: Some("Read-only file system (os error 30)".into()),
                ..facts()
            },
            Level::Fail,
            "Read-only",
            "chmod u+rwx /s",
        ),
        (
            DirFacts {
                write_error: Some("No space left on device (os error 28)".into()),
                write_error_kind: Some(std::io::ErrorKind::StorageFull),
                ..facts()
            },
            Level::Fail,
            "is full",
            "free some space",
        ),
        (
            DirFacts {
                write_error: Some("Read-only file system (os error 30)".into()),
                write_error_kind: Some(std::io::ErrorKind::ReadOnlyFilesystem),
                ..facts()
            },
            Level::Fail,
            "read-only file system",
            "remount it read-write",
        ),
        (
            DirFacts {
                not_a_directory: true,
                ..facts()
            },
            Level::Fail,
            "not a directory",
            "state_dir in /c/config.toml",
        ),
        (
            DirFacts {
                missing: Some((PathBuf::from("/"), false)),
                ..facts()
            },
            Level::Fail,
            "cannot be created",
            "create it",
        ),
        (
            DirFacts {
                free: Some(1 << 20),
                ..facts()
            },
            Level::Fail,
            "only 1 MiB free",
            "free some space",
        ),
        (
            DirFacts {
                secrets: vec![(PathBuf::from("/s/lastfm.session"), 0o644, 1000)],
                ..facts()
            },
            Level::Fail,
            "mode 0644",
            "chmod 600 /s/lastfm.session",
        ),
        (
            DirFacts {
                secrets: vec![(PathBuf::from("/s/lastfm.session"), 0o600, 0)],
                ..facts()
            },
            Level::Fail,
            "belongs to uid 0",
            "chown 1000 /s/lastfm.session",
        ),
        (
            DirFacts {
                mode: 0o755,
                ..facts()
            },
            Level::Warn,
            "mode 0755",
            "chmod 700 /s",
        ),
        (
            DirFacts {
                free: Some(50 << 20),
                ..facts()
            },
            Level::Warn,
            "only 50 MiB free",
            "free some space",
        ),
    ];
    for (f, level, detail, fix) in cases {
        let v = judge(&f);
        assert_eq!(v.level, level, "{f:?} → {v:?}");
        assert!(v.detail.contains(detail), "{f:?} → {v:?}");
        assert!(
            v.fix.as_deref().unwrap_or("").contains(fix),
            "{f:?} → {v:?}"
        );
    }
}

#[test]
fn a_missing_directory_that_can_be_created_passes() {
    let v = judge(&DirFacts {
        missing: Some((PathBuf::from("/home/u/.local/state"), true)),
        ..facts()
    });
    assert_eq!(v.level, Level::Ok, "{v:?}");
    assert!(v.detail.contains("will be created"), "{v:?}");
}

#[test]
fn facts_come_from_the_file_system() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let f = dir_facts(&state, &["lastfm"]);
    assert_eq!(f.missing, Some((dir.path().to_owned(), true)));
    session::store(&state, "lastfm", "alice", "sk").unwrap();
    let f = dir_facts(&state, &["lastfm", "listenbrainz"]);
    assert_eq!(f.missing, None);
    assert_eq!(f.mode, 0o700);
    assert_eq!(f.write_error, None);
    assert_eq!(f.secrets.len(), 1);
    assert_eq!(f.secrets[0].1, 0o600);
    assert!(f.free.unwrap() > 0);
    // The probe leaves nothing behind.
    let names: Vec<_> = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["lastfm.session"]);
}

#[test]
fn render_aligns_and_counts_failures() {
    let text = render(&[
        Verdict::ok("config", "fine".into()),
        Verdict::fail("listenbrainz", "refused\nfor good".into(), "run it".into()),
    ]);
    assert_eq!(
        text,
        concat!(
            "ok    config        fine\n",
            "FAIL  listenbrainz  refused\n",
            "                    for good\n",
            "                    fix: run it\n",
            "1 of 2 checks failed.\n",
        )
    );
}

#[test]
fn a_damaged_queue_database_set_aside_is_shown_with_its_report() {
    let ok = Verdict::ok("state dir", "/s is writable".into());
    assert_eq!(judge_queue_db(ok.clone(), &[], false).level, Level::Ok);
    let v = judge_queue_db(
        ok.clone(),
        &[(
            PathBuf::from("/s/queue.damaged-1700000000"),
            Some("The queue database was set aside at unix time 1700000000 because it lost writes.\nmore".into()),
        )],
        false,
    );
    assert_eq!(v.level, Level::Warn);
    assert!(v.detail.contains("/s/queue.damaged-1700000000"), "{v:?}");
    assert!(v.detail.contains("because it lost writes"), "{v:?}");
    assert!(v.fix.unwrap().contains("mpd-scrobbler-damage.txt"));
    let v = judge_queue_db(ok, &[], true);
    assert_eq!(v.level, Level::Warn);
    assert!(v.detail.contains("died while opening"), "{v:?}");
}
