//! The pure rules that turn the state directory's facts and the queue
//! database's damage reports into a verdict and a fix.

use std::path::{Path, PathBuf};

use super::Verdict;
use crate::queue;

/// Facts about the state directory, gathered from the file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DirFacts {
    /// The directory is missing; this is its nearest existing ancestor and
    /// whether we may create entries in it.
    pub(super) missing: Option<(PathBuf, bool)>,
    /// It exists but is not a directory.
    pub(super) not_a_directory: bool,
    /// It is missing and its nearest existing ancestor (in `missing`) is
    /// not a directory, so it can never be created.
    pub(super) under_a_file: bool,
    /// Creating, syncing and removing a file in it failed with this.
    pub(super) write_error: Option<String>,
    /// The kind of that error.
    pub(super) write_error_kind: Option<std::io::ErrorKind>,
    /// Permission bits.
    pub(super) mode: u32,
    /// Owner of the directory.
    pub(super) owner: u32,
    /// Who runs the check.
    pub(super) euid: u32,
    /// Files holding secrets: path, mode, owner.
    pub(super) secrets: Vec<(PathBuf, u32, u32)>,
    /// Bytes available to unprivileged users on its file system.
    pub(super) free: Option<u64>,
}

/// Below this much free space the queue may not be able to grow.
const FAIL_BELOW_BYTES: u64 = 16 << 20;
/// Below this much free space a long outage could fill the disk.
const WARN_BELOW_BYTES: u64 = 128 << 20;
pub(super) fn judge_dir(dir: &Path, config_path: &Path, f: &DirFacts) -> Verdict {
    const ITEM: &str = "state dir";
    let shown = dir.display();
    let elsewhere = format!("or set state_dir in {}", config_path.display());
    if f.not_a_directory {
        return Verdict::fail(
            ITEM,
            format!("{shown} exists but is not a directory"),
            format!("move it away, {elsewhere}"),
        );
    }
    if let Some((ancestor, _)) = f.missing.as_ref().filter(|_| f.under_a_file) {
        return Verdict::fail(
            ITEM,
            format!(
                "{shown} cannot be created: {} is a file, not a directory",
                ancestor.display()
            ),
            format!("move that file away, {elsewhere}"),
        );
    }
    if let (Some(_), Some(free)) = (&f.missing, f.free.filter(|b| *b < FAIL_BELOW_BYTES)) {
        return Verdict::fail(
            ITEM,
            format!(
                "{shown} does not exist, and its file system has only {} free; the queue \
                 needs at least {}",
                mib(free),
                mib(FAIL_BELOW_BYTES)
            ),
            format!("choose a directory on a real file system with room, {elsewhere}"),
        );
    }
    if let Some((ancestor, writable)) = &f.missing {
        return if *writable {
            Verdict::ok(
                ITEM,
                format!(
                    "{shown} does not exist yet and will be created (mode 0700){}",
                    free_note(f.free)
                ),
            )
        } else {
            Verdict::fail(
                ITEM,
                format!(
                    "{shown} does not exist and cannot be created: {} is not writable",
                    ancestor.display()
                ),
                format!("create it for the user that runs the daemon, {elsewhere}"),
            )
        };
    }
    if let Some(kind) = f
        .write_error_kind
        .filter(|k| *k == std::io::ErrorKind::StorageFull)
    {
        return Verdict::fail(
            ITEM,
            format!("{shown} is full ({kind}): plays cannot be queued until there is room"),
            format!(
                "free some space on its file system (`df -h {shown}`); the daemon holds plays \
                 in memory meanwhile and writes them when there is room, {elsewhere}"
            ),
        );
    }
    if f.write_error_kind == Some(std::io::ErrorKind::ReadOnlyFilesystem) {
        return Verdict::fail(
            ITEM,
            format!("{shown} is on a read-only file system"),
            format!("remount it read-write, {elsewhere}"),
        );
    }
    if let Some(e) = &f.write_error {
        return Verdict::fail(
            ITEM,
            format!("{shown} is not writable: {e}"),
            if f.owner != f.euid {
                format!(
                    "it belongs to uid {}; run as that user, `chown -R {} {shown}`, {elsewhere}",
                    f.owner, f.euid
                )
            } else {
                format!("`chmod u+rwx {shown}`, {elsewhere}")
            },
        );
    }
    if let Some(free) = f.free.filter(|b| *b < FAIL_BELOW_BYTES) {
        return Verdict::fail(
            ITEM,
            format!("only {} free on the file system of {shown}", mib(free)),
            format!("free some space, {elsewhere}"),
        );
    }
    for (path, mode, owner) in &f.secrets {
        if mode & 0o077 != 0 {
            return Verdict::fail(
                ITEM,
                format!(
                    "{} holds a secret but other users may read it (mode {mode:04o})",
                    path.display()
                ),
                format!("`chmod 600 {}`", path.display()),
            );
        }
        if owner != &f.owner {
            // Typically `sudo mpd-scrobbler auth` into a service's directory.
            return Verdict::fail(
                ITEM,
                format!(
                    "{} belongs to uid {owner}, but the directory to uid {}: the daemon cannot read it",
                    path.display(),
                    f.owner
                ),
                format!("`chown {} {}`", f.owner, path.display()),
            );
        }
    }
    if f.mode & 0o077 != 0 {
        return Verdict::warn(
            ITEM,
            format!(
                "{shown} is writable{}, but open to other users (mode {:04o})",
                free_note(f.free),
                f.mode
            ),
            format!("`chmod 700 {shown}`"),
        );
    }
    if let Some(free) = f.free.filter(|b| *b < WARN_BELOW_BYTES) {
        return Verdict::warn(
            ITEM,
            format!("{shown} is writable, but only {} free", mib(free)),
            "free some space before a long outage fills it".into(),
        );
    }
    Verdict::ok(
        ITEM,
        format!(
            "{shown} is writable and private (mode {:04o}){}",
            f.mode,
            free_note(f.free)
        ),
    )
}

/// The queue database's part of the state dir verdict. sled reports little
/// about damage (it takes a bad record for a torn tail and drops what
/// follows), so this shows what the daemon found when it last opened the
/// database: copies it set aside, or a start that died inside sled.
pub(super) fn judge_queue_db(
    ok: Verdict,
    damaged: &[(PathBuf, Option<String>)],
    open_died: bool,
) -> Verdict {
    if let Some((path, report)) = damaged.last() {
        let what = report
            .as_deref()
            .and_then(|r| r.lines().next())
            .unwrap_or("no report was written");
        return Verdict::warn(
            &ok.item,
            format!(
                "{}; but {} damaged queue database(s) were set aside, the last at {}: {what}",
                ok.detail,
                damaged.len(),
                path.display()
            ),
            format!(
                "what sled could still read was queued again; see the daemon's log and {}, \
                 then delete {}",
                path.join(queue::REPORT_FILE).display(),
                path.display()
            ),
        );
    }
    if open_died {
        return Verdict::warn(
            &ok.item,
            format!(
                "{}; but a start of the daemon died while opening the queue database",
                ok.detail
            ),
            "start the daemon: it sets the database aside and carries over what it can read; \
             see its log"
                .into(),
        );
    }
    Verdict::ok(
        &ok.item,
        format!("{}; no damaged queue database found", ok.detail),
    )
}

fn free_note(free: Option<u64>) -> String {
    free.map(|b| format!("; {} free", mib(b)))
        .unwrap_or_default()
}

fn mib(bytes: u64) -> String {
    if bytes >= 10 << 30 {
        format!("{} GiB", bytes >> 30)
    } else {
        format!("{} MiB", bytes >> 20)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::check::Level;

    fn facts() -> DirFacts {
        DirFacts {
            missing: None,
            not_a_directory: false,
            under_a_file: false,
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
}
