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
//! rename), so it never raises a false alarm.
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

use crate::scrobble::unix_now;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// The tree of the queue's own bookkeeping.
pub(super) const META: &str = "meta";
/// Key of the last enqueued item, in [`META`].
pub(super) const LAST_ID: &[u8] = b"last_id";
/// Value added to sled's ids, so that a database started afresh from a
/// damaged one hands out keys after the ones it took over.
const ID_BASE: &[u8] = b"id_base";
/// The last key known to be on disk, written after each enqueue's fsync.
const LAST_WRITE_FILE: &str = "last-write";
/// How long a lock held on the database may take to be released.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(1);
/// Present while sled opens the database.
const OPENING_FILE: &str = "opening";
/// Present while a database set aside is read for what can be saved.
const SALVAGING_FILE: &str = "salvaging";
/// What happened to a database set aside, inside it.
pub const REPORT_FILE: &str = "mpd-scrobbler-damage.txt";
/// Prefix of a database set aside.
pub const DAMAGED_PREFIX: &str = "queue.damaged-";

/// An open database and the trees the queue uses.
#[derive(Debug)]
pub(super) struct Open {
    pub(super) db: sled::Db,
    pub(super) meta: sled::Tree,
    /// `queue/<target>`, in the order of the target names.
    pub(super) pending: Vec<sled::Tree>,
    id_base: u64,
}

impl Open {
    /// A fresh, increasing key.
    pub(super) fn next_key(&self) -> Result<super::Key, sled::Error> {
        Ok(self
            .db
            .generate_id()?
            .saturating_add(self.id_base)
            .to_be_bytes())
    }

    /// The key of the last enqueue this database holds.
    fn last_id(&self) -> Result<Option<u64>, sled::Error> {
        Ok(self.meta.get(LAST_ID)?.and_then(|v| be_u64(&v)))
    }
}

/// Write the key of the last durable enqueue beside the database. A failure
/// only weakens the damage check (the file lags), so it is not an error.
pub(super) fn record_last_write(path: &Path, key: u64) {
    if let Err(e) = write_atomically(&path.join(LAST_WRITE_FILE), key.to_string().as_bytes()) {
        tracing::debug!("cannot record the last queue write: {e}");
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn be_u64(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.try_into().ok()?))
}

/// Why opening failed.
#[derive(Debug)]
pub(super) enum OpenError {
    /// Another process holds the database.
    Locked,
    /// The file system refused (full, read-only, permissions): not damage,
    /// so the database stays where it is and opening is tried again later.
    Io(sled::Error),
}

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
    // Best effort: on a full disk there may be no room for it.
    let _ = std::fs::create_dir_all(path)
        .and_then(|()| std::fs::write(&marker, (deaths + 1).to_string()));
    let opened = match open_sled(path, names) {
        Ok(o) => o,
        Err(e) if is_lock_error(&e) => {
            let _ = std::fs::remove_file(&marker);
            return Err(OpenError::Locked);
        }
        Err(sled::Error::Io(e)) => {
            let _ = std::fs::remove_file(&marker);
            return Err(OpenError::Io(sled::Error::Io(e)));
        }
        Err(e) => {
            let _ = std::fs::remove_file(&marker);
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
    let (_, unreadable) = read_all(&opened.db, &[crate::history::TREE]);
    let mut damage = unreadable.map(|e| format!("sled cannot read all of it: {e}"));
    if damage.is_none() {
        damage = lost_writes(path, &opened, existed, recovered);
    }
    match damage {
        None => {
            let _ = std::fs::remove_file(&marker);
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

/// Whether another process holds sled's lock on the database file.
fn held_by_another(path: &Path) -> bool {
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

/// sled reports its held fs2 lock only as text.
pub(super) fn is_lock_error(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(e) if e.to_string().contains("could not acquire lock"))
}

fn open_sled(path: &Path, names: &[String]) -> Result<Open, sled::Error> {
    let db = sled::Config::new()
        .path(path)
        // sled's default cache budget is 1 GiB; the queue needs little.
        .cache_capacity(1 << 20)
        .mode(sled::Mode::LowSpace)
        // Every enqueue is flushed explicitly; the background flusher would
        // only add two wake-ups a second.
        .flush_every_ms(None)
        .open()?;
    let meta = db.open_tree(META)?;
    let pending = names
        .iter()
        .map(|t| db.open_tree(format!("queue/{t}")))
        .collect::<Result<Vec<_>, _>>()?;
    let id_base = meta.get(ID_BASE)?.and_then(|v| be_u64(&v)).unwrap_or(0);
    Ok(Open {
        db,
        meta,
        pending,
        id_base,
    })
}

/// Every item of every tree sled can still read (the items of the trees
/// read in full, and of the first unreadable one up to the damage), and
/// the first read error.
type Items = Vec<(sled::IVec, Vec<(sled::IVec, sled::IVec)>)>;

fn read_all(db: &sled::Db, skip: &[&str]) -> (Items, Option<sled::Error>) {
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
        for item in tree.iter() {
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

/// Compare the database with the record of its last confirmed write.
fn lost_writes(path: &Path, opened: &Open, existed: bool, recovered: bool) -> Option<String> {
    let recorded = std::fs::read_to_string(path.join(LAST_WRITE_FILE))
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
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

/// Move the database at `path` aside, log why, and open a fresh one holding
/// `items` under their old keys; `None` means read them from the copy set
/// aside, once (a start that dies doing so leaves its marker there).
///
/// Crash-safe: the fresh database is built beside the old one and renamed
/// into place, and a note of the copy set aside (`queue.rebuilding`) lives
/// from before the move until after that rename, so a start that finds the
/// note and no database finishes the rebuild from the copy set aside.
fn start_afresh(
    path: &Path,
    names: &[String],
    why: String,
    items: Option<Items>,
) -> Result<Open, OpenError> {
    let aside = aside_path(path);
    let note = rebuild_note(path);
    let moved = write_atomically(&note, aside.as_os_str().as_encoded_bytes())
        .and_then(|()| std::fs::rename(path, &aside));
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
    let _ = std::fs::write(
        aside.join(REPORT_FILE),
        format!(
            "The queue database was set aside at unix time {} because {why}; reading what can be saved from it did not finish.\n",
            unix_now()
        ),
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
    let _ = std::fs::write(aside.join(REPORT_FILE), &report);
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
fn finish_interrupted_rebuild(path: &Path, names: &[String]) -> Result<(), OpenError> {
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
        record_last_write(&building, max);
    }
    let renamed = std::fs::rename(&building, path).and_then(|()| sync_dir(path));
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

/// Make a rename in the directory holding `path` durable.
fn sync_dir(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()
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
