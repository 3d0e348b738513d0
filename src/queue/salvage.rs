//! Setting a damaged queue database aside (see `open.rs` for
//! how damage is found): what sled can still read of it is copied into a
//! fresh database built beside it and renamed into place, with a report in
//! the copy set aside, and a rebuild a start died in is finished.

use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use super::disk::{
    ID_BASE, LAST_ID, LOCK_WAIT, META, OPENING_FILE, Open, OpenError, be_u64, is_lock_error,
    open_sled, record_last_write_durably, sync_dir_of, write_atomically,
};
use crate::model::unix_now;

/// Present while a database set aside is read for what can be saved.
const SALVAGING_FILE: &str = "salvaging";
/// What happened to a database set aside, inside it.
pub const REPORT_FILE: &str = "mpd-scrobbler-damage.txt";
/// Prefix of a database set aside.
pub const DAMAGED_PREFIX: &str = "queue.damaged-";

/// Every item of every tree sled can still read (the items of the trees
/// read in full, and of the first unreadable one up to the damage), and
/// the first read error.
pub(super) type Items = Vec<(sled::IVec, Vec<(sled::IVec, sled::IVec)>)>;

pub(super) fn read_all(db: &sled::Db, skip: &[&str]) -> (Items, Option<sled::Error>) {
    let mut out = Vec::new();
    for name in db.tree_names() {
        if skip.iter().any(|s| name.as_ref() == s.as_bytes()) {
            continue;
        }
        let tree = match db.open_tree(&name) {
            Ok(t) => t,
            Err(e) => return (out, Some(e)),
        };
        let mut items = Vec::new();
        for item in &tree {
            match item {
                Ok(kv) => items.push(kv),
                Err(e) => {
                    out.push((name, items));
                    return (out, Some(e));
                }
            }
        }
        out.push((name, items));
    }
    (out, None)
}

/// Move the database at `path` aside, log why, and open a fresh one holding
/// `items` under their old keys; `None` means read them from the copy set
/// aside, once (a start that dies doing so leaves its marker there).
///
/// Crash-safe: the fresh database is built beside the old one and renamed
/// into place, and a note of the copy set aside (`queue.rebuilding`) lives
/// from before the move until after that rename, so a start that finds the
/// note and no database finishes the rebuild from the copy set aside.
pub(super) fn start_afresh(
    path: &Path,
    names: &[String],
    why: String,
    items: Option<Items>,
) -> Result<Open, OpenError> {
    let aside = aside_path(path);
    let note = rebuild_note(path);
    let moved = write_atomically(&note, aside.as_os_str().as_encoded_bytes())
        .and_then(|()| std::fs::rename(path, &aside))
        .and_then(|()| sync_dir_of(path));
    if let Err(e) = moved {
        let _ = std::fs::remove_file(&note);
        tracing::error!(
            "the queue database {} is damaged ({why}), and it cannot be moved aside to {}: {e}",
            path.display(),
            aside.display()
        );
        return Err(OpenError::Io(sled::Error::Io(e)));
    }
    let _ = std::fs::remove_file(aside.join(OPENING_FILE));
    let _ = write_atomically(
        &aside.join(REPORT_FILE),
        format!(
            "The queue database was set aside at unix time {} because {why}; reading what can be saved from it did not finish.\n",
            unix_now()
        )
        .as_bytes(),
    );
    let items = items.unwrap_or_else(|| salvage(&aside));
    let (fresh, copied) = rebuild(path, names, &items)?;
    let _ = std::fs::remove_file(&note);
    let queued: usize = items
        .iter()
        .filter(|(name, _)| name.starts_with(b"queue/"))
        .map(|(_, kv)| kv.len())
        .sum();
    let report = format!(
        "The queue database was set aside at unix time {} because {why}.\n\
         {copied} items sled could still read ({queued} queued scrobbles over all targets) \
         were copied into the new database and will be delivered; scrobbles queued after \
         the damage may be lost. This directory is what sled left of it (sled zeroes what \
         it takes for a torn tail when it opens a database).\n",
        unix_now(),
    );
    let _ = write_atomically(&aside.join(REPORT_FILE), report.as_bytes());
    tracing::error!(
        "THE QUEUE DATABASE {} IS DAMAGED: {why}. It was moved to {} and a new one started; \
         {copied} readable items ({queued} queued scrobbles) were carried over, \
         anything queued after the damage may be lost",
        path.display(),
        aside.display()
    );
    Ok(fresh)
}

/// The note of a rebuild under way, beside the database.
fn rebuild_note(path: &Path) -> PathBuf {
    path.with_file_name("queue.rebuilding")
}

/// A rebuild a start died in: when its note is there and the database is
/// not, build the database again from the copy set aside the note names.
pub(super) fn finish_interrupted_rebuild(path: &Path, names: &[String]) -> Result<(), OpenError> {
    let note = rebuild_note(path);
    let Ok(aside) = std::fs::read(&note) else {
        return Ok(());
    };
    let aside = PathBuf::from(std::ffi::OsString::from_vec(aside));
    if !path.exists() && aside.is_dir() {
        tracing::error!(
            "an earlier start died while rebuilding the queue database from {}; finishing it",
            aside.display()
        );
        let items = salvage(&aside);
        let (fresh, copied) = rebuild(path, names, &items)?;
        drop(fresh);
        tracing::error!("the queue database was rebuilt with {copied} readable items");
    }
    let _ = std::fs::remove_file(&note);
    Ok(())
}

/// Build a database holding `items` beside `path`, then rename it into
/// place; it is complete before it takes the place of the old one.
fn rebuild(path: &Path, names: &[String], items: &Items) -> Result<(Open, usize), OpenError> {
    let building = path.with_file_name("queue.rebuild");
    let _ = std::fs::remove_dir_all(&building);
    let as_open_error = |e: sled::Error| {
        if is_lock_error(&e) {
            OpenError::Locked
        } else {
            OpenError::Io(e)
        }
    };
    let mut fresh = open_sled(&building, names).map_err(as_open_error)?;
    let (copied, max_key) = copy_into(&mut fresh, items).map_err(|e| {
        tracing::error!("cannot copy what was readable into the new queue database: {e}");
        OpenError::Io(e)
    })?;
    drop(fresh);
    if let Some(max) = max_key {
        if let Err(e) = record_last_write_durably(&building, max) {
            tracing::debug!("cannot record the last queue write: {e}");
        }
    }
    let renamed = std::fs::rename(&building, path).and_then(|()| sync_dir_of(path));
    if let Err(e) = renamed {
        return Err(OpenError::Io(sled::Error::Io(e)));
    }
    // sled lets go of the lock on the database just built when its last
    // thread does.
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match open_sled(path, names) {
            Ok(o) => return Ok((o, copied)),
            Err(e) if is_lock_error(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(as_open_error(e)),
        }
    }
}

/// Copy `items` into `fresh` under their keys and make its new keys follow
/// them. Returns how many were copied and the largest 8-byte key.
fn copy_into(fresh: &mut Open, items: &Items) -> Result<(usize, Option<u64>), sled::Error> {
    let mut copied = 0;
    let mut max_key: Option<u64> = None;
    for (name, kv) in items {
        if name.as_ref() == META.as_bytes() || name.as_ref() == b"__sled__default" {
            continue;
        }
        let tree = fresh.db.open_tree(name)?;
        for (k, v) in kv {
            tree.insert(k, v)?;
            copied += 1;
            if let Some(key) = be_u64(k) {
                max_key = Some(max_key.map_or(key, |m| m.max(key)));
            }
        }
    }
    if let Some(max) = max_key {
        fresh.id_base = max.saturating_add(1);
        fresh.meta.insert(ID_BASE, &fresh.id_base.to_be_bytes())?;
        fresh.meta.insert(LAST_ID, &max.to_be_bytes())?;
    }
    fresh.db.flush()?;
    Ok((copied, max_key))
}

/// What sled can read of the database set aside at `aside`, unless an
/// earlier attempt died there.
fn salvage(aside: &Path) -> Items {
    let marker = aside.join(SALVAGING_FILE);
    if marker.exists() {
        return Vec::new();
    }
    let _ = std::fs::write(&marker, b"");
    let items = match open_sled(aside, &[]) {
        Ok(o) => read_all(&o.db, &[]).0,
        Err(e) => {
            tracing::error!(
                "cannot read the damaged queue database {}: {e}",
                aside.display()
            );
            Vec::new()
        }
    };
    let _ = std::fs::remove_file(&marker);
    items
}

fn aside_path(path: &Path) -> PathBuf {
    let dir = path.parent().unwrap_or(Path::new("."));
    let now = unix_now();
    let mut aside = dir.join(format!("{DAMAGED_PREFIX}{now}"));
    let mut n = 1;
    while aside.exists() {
        aside = dir.join(format!("{DAMAGED_PREFIX}{now}-{n}"));
        n += 1;
    }
    aside
}

/// Databases set aside in `state_dir`, with their report, oldest first.
pub fn damaged_copies(state_dir: &Path) -> Vec<(PathBuf, Option<String>)> {
    let mut out: Vec<(PathBuf, Option<String>)> = std::fs::read_dir(state_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(DAMAGED_PREFIX))
        .map(|e| {
            let report = std::fs::read_to_string(e.path().join(REPORT_FILE)).ok();
            (e.path(), report)
        })
        .collect();
    out.sort();
    out
}

/// Whether a start died while sled opened the database (it will be set
/// aside at the next start).
pub fn open_died(state_dir: &Path) -> bool {
    state_dir.join("queue").join(OPENING_FILE).exists()
}
