//! The queue database on disk: opening sled with the queue's trees, the
//! keys of its own bookkeeping, and the durable writes of the files beside
//! it. Shared by opening ([`super::open`]) and damage recovery
//! ([`super::salvage`]); why the queue keeps these records is in
//! `open.rs`.

use std::path::Path;

/// The tree of the queue's own bookkeeping.
pub(super) const META: &str = "meta";
/// Key of the last enqueued item, in [`META`].
pub(super) const LAST_ID: &[u8] = b"last_id";
/// Value added to sled's ids, so that a database started afresh from a
/// damaged one hands out keys after the ones it took over.
pub(super) const ID_BASE: &[u8] = b"id_base";
/// The last key known to be on disk, written after each enqueue's fsync.
pub(super) const LAST_WRITE_FILE: &str = "last-write";
/// How long a lock held on the database may take to be released.
pub(super) const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(1);
/// Present while sled opens the database.
pub(super) const OPENING_FILE: &str = "opening";

/// An open database and the trees the queue uses.
#[derive(Debug)]
pub(super) struct Open {
    pub(super) db: sled::Db,
    pub(super) meta: sled::Tree,
    /// `queue/<target>`, in the order of the target names.
    pub(super) pending: Vec<sled::Tree>,
    pub(super) id_base: u64,
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
    pub(super) fn last_id(&self) -> Result<Option<u64>, sled::Error> {
        Ok(self.meta.get(LAST_ID)?.and_then(|v| be_u64(&v)))
    }
}

/// Write the key of the last durable enqueue beside the database. A failure
/// only weakens the damage check (the file lags), so it is not an error.
///
/// Overwritten in place at a fixed width and not fsynced: the kernel writes
/// it back within seconds, and a crash or power cut before then leaves an
/// older key, which only narrows what the check can see. Creating, fsyncing
/// and renaming a file cost each play three more waits on the disk. Only
/// its creation is made durable (with its directory), once.
///
/// A cut can tear that overwrite, leaving the new key's first digits before
/// the old key's last ones: a key larger than any written, and a false
/// alarm. So the key is followed by its complement ([`last_write_line`]),
/// and a line that does not check out is read as no record at all.
pub(super) fn record_last_write(path: &Path, key: u64) {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    let file = path.join(LAST_WRITE_FILE);
    let line = last_write_line(key);
    let written = match std::fs::OpenOptions::new().write(true).open(&file) {
        Ok(f) => f.write_all_at(line.as_bytes(), 0),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&file)
            .and_then(|f| {
                f.write_all_at(line.as_bytes(), 0)?;
                f.sync_all()
            })
            .and_then(|()| sync_dir_of(&file)),
        Err(e) => Err(e),
    };
    if let Err(e) = written {
        tracing::debug!("cannot record the last queue write: {e}");
    }
}

/// [`record_last_write`], durably: for a rebuilt database, before it is
/// renamed into place.
pub(super) fn record_last_write_durably(path: &Path, key: u64) -> std::io::Result<()> {
    write_atomically(&path.join(LAST_WRITE_FILE), last_write_line(key).as_bytes())
}

/// The record of `key`: fixed width, so that each overwrite covers the
/// last, and checkable, so that a torn one is recognised.
fn last_write_line(key: u64) -> String {
    format!("{key:020} {:016x}\n", !key)
}

/// The key recorded beside the database at `path`, if the record is there
/// and whole. A record of an older release is the key alone.
pub(super) fn read_last_write(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path.join(LAST_WRITE_FILE)).ok()?;
    parse_last_write(&text)
}

fn parse_last_write(text: &str) -> Option<u64> {
    let mut words = text.split_whitespace();
    let key = words.next()?.parse::<u64>().ok()?;
    match (words.next(), words.next()) {
        (None, None) => Some(key),
        (Some(check), None) => (u64::from_str_radix(check, 16).ok()? == !key).then_some(key),
        _ => None,
    }
}

/// Replace `path` with `bytes`, durably: after a crash or a power cut it
/// holds the old contents or the new, and the new once this returns.
pub(super) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    sync_dir_of(path)
}

/// Make the directory entry of `path` (a file just created, renamed or
/// removed in its directory) durable.
pub(super) fn sync_dir_of(path: &Path) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)?.sync_all()
}

pub(super) fn be_u64(v: &[u8]) -> Option<u64> {
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

/// sled reports its held fs2 lock only as text.
pub(super) fn is_lock_error(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(e) if e.to_string().contains("could not acquire lock"))
}

pub(super) fn open_sled(path: &Path, names: &[String]) -> Result<Open, sled::Error> {
    let db = sled::Config::new()
        .path(path)
        // sled's default cache budget is 1 GiB; the queue needs little, and
        // the history, which `stats` used to read through this cache, is in
        // SQLite now. 256 KiB: 0.6 to 0.9 MiB less at the peak of a backlog
        // flush than 1 MiB (docs/performance.md).
        .cache_capacity(256 << 10)
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

#[cfg(test)]
mod tests {
    use super::{last_write_line, parse_last_write};

    /// Every torn overwrite of one record by another (a prefix of the new
    /// bytes over the old) reads as the old key, the new one or none: never
    /// as a key that was not written.
    #[test]
    fn a_torn_last_write_record_never_reads_as_another_key() {
        let pairs = [
            (13_000_001, 14_000_000),
            (9, 10),
            (0, u64::MAX),
            (14_000_000, 14_000_001),
            (99_999_999, 100_000_000),
        ];
        for (old, new) in pairs {
            let (a, b) = (last_write_line(old), last_write_line(new));
            assert_eq!(a.len(), b.len());
            assert_eq!(parse_last_write(&a), Some(old));
            assert_eq!(parse_last_write(&b), Some(new));
            for cut in 0..=b.len() {
                let torn = format!("{}{}", &b[..cut], &a[cut..]);
                let read = parse_last_write(&torn);
                assert!(
                    read.is_none() || read == Some(old) || read == Some(new),
                    "{old} overwritten by {new}, torn at {cut}: {torn:?} read as {read:?}"
                );
            }
        }
        // The key alone, as the last release wrote it, still counts.
        assert_eq!(parse_last_write("00000000000000000042\n"), Some(42));
        assert_eq!(parse_last_write("42"), Some(42));
        assert_eq!(parse_last_write("42 0\n"), None);
        assert_eq!(parse_last_write(""), None);
    }
}
