//! The pure rules that turn the state directory's facts and the queue
//! database's damage reports into a verdict and a fix.

use std::path::{Path, PathBuf};

use super::Verdict;
use super::state_dir::DirFacts;
use crate::queue;

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
