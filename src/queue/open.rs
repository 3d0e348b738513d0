//! Opening the queue database, and what happens when it is damaged.
//!
//! sled 0.34 checks a CRC32 on every log record when it opens a database,
//! but it treats a bad record as the torn tail of an interrupted write: it
//! stops reading there, zeroes the rest of that segment and opens what came
//! before, logging only at debug level (`pagecache/iterator.rs`,
//! `pagecache/snapshot.rs`). A few damaged bytes therefore lose every write
//! after them without a word, and damage to the first records makes sled
//! start an empty database (`Db::was_recovered` is then false). Only a
//! damaged `conf` or snapshot file, or a record sled must read later, gives
//! an error (`Error::Corruption`).
//!
//! So the queue keeps its own record of what it must hold: every enqueue
//! stores its key under `last_id` in the `meta` tree, in the same
//! transaction, and after the fsync writes the same key to the file
//! `last-write` next to the database. Opening compares the two: a database
//! whose `last_id` is older than the file lost writes it had confirmed. That
//! file lags the database at most (a crash between the fsync and its
//! rename), so it never raises a false alarm; a torn overwrite of it is
//! recognised and read as no record (`disk.rs`).
//!
//! A database that cannot be opened or read, or that lost writes, is moved
//! aside to `queue.damaged-<unix time>` with a loud log line and a report
//! file in it; whatever sled could still read from it is copied into a
//! fresh database under the same keys, so those scrobbles still go out; the
//! fresh database is built beside the old one and renamed into place, so a
//! crash while that happens loses nothing. A marker file written before sled
//! opens the database and removed after the checks counts starts that died
//! inside sled (sled panics on some damage, and the release build aborts):
//! after two in a row the database is moved aside rather than dying again.

use std::path::Path;

use super::disk::{
    LOCK_WAIT, OPENING_FILE, Open, OpenError, is_lock_error, open_sled, read_last_write,
    sync_dir_of, write_atomically,
};
use super::salvage::{finish_interrupted_rebuild, read_all, start_afresh};

/// Open the database at `path` (the `queue` directory in the state
/// directory) with a tree per target, setting it aside when it is damaged.
pub(super) fn open(path: &Path, names: &[String]) -> Result<Open, OpenError> {
    // sled releases its lock when the last of its threads lets go of a
    // database just closed (a reopen after an error, a test), which can take
    // a moment; another daemon holds it for good.
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    while held_by_another(path) {
        if std::time::Instant::now() >= deadline {
            return Err(OpenError::Locked);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    finish_interrupted_rebuild(path, names)?;
    let marker = path.join(OPENING_FILE);
    // A start killed while sled opened the database (systemd, a power cut)
    // leaves the marker too, so only a second death in a row counts.
    let deaths: u32 = std::fs::read_to_string(&marker)
        .ok()
        .map_or(0, |s| s.trim().parse().unwrap_or(1));
    if deaths >= 2 {
        return start_afresh(
            path,
            names,
            "two starts in a row died while sled was opening it".into(),
            None,
        );
    }
    let existed = std::fs::metadata(path.join("db")).is_ok_and(|m| m.len() > 0);
    // Best effort: on a full disk there may be no room for it. Synced, as
    // its removal is: a count that a power cut brought back would make
    // a clean start look like a second death.
    let _ = std::fs::create_dir_all(path)
        .and_then(|()| write_atomically(&marker, (deaths + 1).to_string().as_bytes()));
    let opened = match open_sled(path, names) {
        Ok(o) => o,
        Err(e) if is_lock_error(&e) => {
            remove_marker(&marker);
            return Err(OpenError::Locked);
        }
        Err(sled::Error::Io(e)) => {
            remove_marker(&marker);
            return Err(OpenError::Io(sled::Error::Io(e)));
        }
        Err(e) => {
            remove_marker(&marker);
            return start_afresh(
                path,
                names,
                format!("sled cannot open it: {e}"),
                Some(Vec::new()),
            );
        }
    };
    let recovered = opened.db.was_recovered();
    // Every record of the queue's own trees is read (sled checks each one);
    // the history, which only grows, is read only when there is damage.
    let unreadable = first_unreadable(&opened.db, &[crate::history::TREE]);
    let mut damage = unreadable.map(|e| format!("sled cannot read all of it: {e}"));
    if damage.is_none() {
        damage = lost_writes(path, &opened, existed, recovered);
    }
    match damage {
        None => {
            remove_marker(&marker);
            tracing::debug!(
                "queue database {} opened ({}; its records' checksums were verified on the way)",
                path.display(),
                if recovered {
                    "recovered from the previous run"
                } else {
                    "new"
                }
            );
            Ok(opened)
        }
        Some(why) => {
            let (items, _) = read_all(&opened.db, &[]);
            drop(opened);
            start_afresh(path, names, why, Some(items))
        }
    }
}

/// Remove the marker of a start in progress, durably (see [`open`]).
fn remove_marker(marker: &Path) {
    if std::fs::remove_file(marker).is_ok() {
        let _ = sync_dir_of(marker);
    }
}

/// The first record sled cannot read in the trees not in `skip`. Each
/// record is dropped once read: keeping them, as a salvage must, held a
/// copy of a 10,000-scrobble backlog (2.6 MB, the daemon's peak) only to
/// throw it away.
fn first_unreadable(db: &sled::Db, skip: &[&str]) -> Option<sled::Error> {
    db.tree_names()
        .into_iter()
        .filter(|name| !skip.iter().any(|s| name.as_ref() == s.as_bytes()))
        .find_map(|name| match db.open_tree(&name) {
            Ok(tree) => tree.iter().find_map(Result::err),
            Err(e) => Some(e),
        })
}

/// Whether another process holds sled's lock on the database file.
pub(super) fn held_by_another(path: &Path) -> bool {
    use rustix::fs::{FlockOperation, flock};
    let Ok(file) = std::fs::OpenOptions::new().read(true).open(path.join("db")) else {
        return false;
    };
    // Released when `file` closes.
    matches!(
        flock(&file, FlockOperation::NonBlockingLockExclusive),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK
    )
}

/// Compare the database with the record of its last confirmed write.
fn lost_writes(path: &Path, opened: &Open, existed: bool, recovered: bool) -> Option<String> {
    let recorded = read_last_write(path);
    let held = match opened.last_id() {
        Ok(h) => h,
        Err(e) => return Some(format!("sled cannot read its bookkeeping: {e}")),
    };
    match (recorded, held) {
        (Some(r), None) => Some(format!(
            "it lost every write: the last scrobble queued had id {r}, but sled opened it {}",
            if recovered {
                "without any"
            } else {
                "as a new, empty database"
            }
        )),
        (Some(r), Some(h)) if h < r => Some(format!(
            "it lost writes it had confirmed: the last scrobble queued had id {r}, \
             but the database ends at id {h}"
        )),
        // sled found no database in a file that held one.
        (None, _) if existed && !recovered => {
            Some("sled found no database in its file and would have started an empty one".into())
        }
        _ => None,
    }
}
