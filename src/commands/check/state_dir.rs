//! The state directory check: facts gathered from the file system (mode,
//! owner, a test write, free space, the secrets' files), judged by
//! `judge.rs`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use super::judge::{DirFacts, judge_dir, judge_queue_db};
use super::{Level, Verdict};
use crate::config::Config;
use crate::{queue, session};

pub(super) fn check_state_dir(config: &Config) -> Verdict {
    let facts = dir_facts(&config.state_dir, &config.target_names());
    let verdict = judge_dir(&config.state_dir, &config.path, &facts);
    if verdict.level != Level::Ok {
        return verdict;
    }
    judge_queue_db(
        verdict,
        &queue::damaged_copies(&config.state_dir),
        queue::open_died(&config.state_dir),
    )
}

pub(super) fn dir_facts(dir: &Path, targets: &[&str]) -> DirFacts {
    let euid = rustix::process::geteuid().as_raw();
    let mut facts = DirFacts {
        missing: None,
        not_a_directory: false,
        under_a_file: false,
        write_error: None,
        write_error_kind: None,
        mode: 0,
        owner: euid,
        euid,
        secrets: Vec::new(),
        free: None,
    };
    match std::fs::metadata(dir) {
        Err(_) => {
            // The nearest ancestor that exists, whatever it is: a regular
            // file there means "Not a directory" for the daemon.
            let ancestor = dir
                .ancestors()
                .skip(1)
                .find(|a| a.symlink_metadata().is_ok())
                .unwrap_or(Path::new("/"))
                .to_owned();
            facts.under_a_file = !ancestor.is_dir();
            let writable = !facts.under_a_file && access_writable(&ancestor);
            facts.free = free_bytes(&ancestor);
            facts.missing = Some((ancestor, writable));
        }
        Ok(meta) if !meta.is_dir() => facts.not_a_directory = true,
        Ok(meta) => {
            facts.mode = meta.permissions().mode() & 0o7777;
            facts.owner = meta.uid();
            if let Err(e) = probe_write(dir) {
                facts.write_error_kind = Some(e.kind());
                facts.write_error = Some(e.to_string());
            }
            facts.free = free_bytes(dir);
            for name in targets {
                let path = session::path(dir, name);
                if let Ok(m) = std::fs::metadata(&path) {
                    facts
                        .secrets
                        .push((path, m.permissions().mode() & 0o7777, m.uid()));
                }
            }
        }
    }
    facts
}

/// Create, sync and remove a file, as the queue will.
fn probe_write(dir: &Path) -> std::io::Result<()> {
    use std::io::Write;
    let path = dir.join(format!(".check-{}", std::process::id()));
    let result = std::fs::File::create_new(&path).and_then(|mut f| {
        f.write_all(b"check")?;
        f.sync_all()
    });
    let _ = std::fs::remove_file(&path);
    result
}

fn access_writable(dir: &Path) -> bool {
    use rustix::fs::Access;
    rustix::fs::access(dir, Access::WRITE_OK | Access::EXEC_OK).is_ok()
}

fn free_bytes(dir: &Path) -> Option<u64> {
    let st = rustix::fs::statvfs(dir).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
