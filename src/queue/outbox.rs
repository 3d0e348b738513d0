//! The outbox: history changes written in the same sled transaction as the
//! queue change they go with, and kept until the history database
//! (`crate::store::history`) has them on disk. The storage thread applies
//! them ([`Queue::outbox`]) and removes them ([`Queue::outbox_done`]) only
//! after a synced SQLite commit that covers them, so a crash or a power cut
//! at any moment leaves each change in one of the two stores at least, and
//! replaying one twice changes nothing. Also the one-time move of a sled
//! history (tree `history`, as releases before the SQLite history kept it)
//! into the history database.

use super::{Queue, QueueError};
use crate::history::{self, Change, Record};

/// The sled tree of the outbox.
pub(super) const OUTBOX: &str = "outbox";

/// An outbox entry, as read: its key and stored bytes (to remove it only
/// if it was not rewritten meanwhile) and the change.
#[derive(Debug, Clone)]
pub struct Entry {
    key: sled::IVec,
    value: sled::IVec,
    /// The change to apply.
    pub change: Change,
}

/// The key of a change: unique per play and target, so a change written
/// again (a retried write) replaces itself.
pub(super) fn key(change: &Change) -> Vec<u8> {
    let mut k = Vec::with_capacity(24);
    match change {
        Change::Play { key, .. } => {
            k.push(0);
            k.extend_from_slice(&key.to_be_bytes());
        }
        Change::Queued { key, target } | Change::Delivered { key, target, .. } => {
            k.push(if matches!(change, Change::Queued { .. }) {
                1
            } else {
                2
            });
            k.extend_from_slice(&key.to_be_bytes());
            k.extend_from_slice(target.as_bytes());
        }
        Change::Played {
            started_at,
            artist,
            title,
            ..
        } => {
            k.push(3);
            k.extend_from_slice(&started_at.to_be_bytes());
            k.extend_from_slice(artist.as_bytes());
            k.push(0);
            k.extend_from_slice(title.as_bytes());
        }
    }
    k
}

/// The stored bytes of a change.
pub(super) fn value(change: &Change) -> Vec<u8> {
    serde_json::to_vec(change).expect("a change always serialises")
}

impl Entry {
    /// What tells this entry apart from any other, and from itself
    /// rewritten.
    pub fn ident(&self) -> (sled::IVec, sled::IVec) {
        (self.key.clone(), self.value.clone())
    }
}

/// How many records of an old sled history move per batch.
pub const MIGRATION_BATCH: usize = 1000;

impl Queue {
    /// The oldest `at_most` changes waiting in the outbox. Normally all of
    /// them (those since the last synced history commit), but a history
    /// database that could not be written for a while, or plays queued by
    /// something other than the daemon's storage thread, leave more, and
    /// memory is bounded by a batch. An unreadable entry is dropped.
    pub fn outbox(&self, at_most: usize) -> Result<Vec<Entry>, QueueError> {
        let o = self.shared.current()?;
        let tree = o.db.open_tree(OUTBOX).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in tree.iter().take(at_most) {
            let (key, value) = item.map_err(|e| self.err(e))?;
            match serde_json::from_slice(&value) {
                Ok(change) => out.push(Entry { key, value, change }),
                Err(_) => {
                    tree.remove(&key).map_err(|e| self.err(e))?;
                }
            }
        }
        Ok(out)
    }

    /// Remove `entries`, which a synced history commit holds, unless one
    /// was rewritten since it was read. Not flushed: an entry whose removal
    /// is lost is applied again, to no effect.
    pub fn outbox_done(&self, entries: &[Entry]) -> Result<(), QueueError> {
        let o = self.shared.current()?;
        let tree = o.db.open_tree(OUTBOX).map_err(|e| self.err(e))?;
        for e in entries {
            tree.compare_and_swap(&e.key, Some(&e.value), None::<&[u8]>)
                .map_err(|e| self.err(e))?
                .ok();
        }
        Ok(())
    }

    /// The next records of a sled history left by an older release, as
    /// changes, with their keys; empty when there is none (left).
    /// An unreadable record comes as `None`: it cannot be moved, and goes
    /// with the tree.
    pub fn old_history(&self) -> Result<Vec<(sled::IVec, Option<Change>)>, QueueError> {
        let o = self.shared.current()?;
        let has =
            o.db.tree_names()
                .iter()
                .any(|n| n == history::TREE.as_bytes());
        if !has {
            return Ok(Vec::new());
        }
        let tree = o.db.open_tree(history::TREE).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in tree.iter().take(MIGRATION_BATCH) {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let change = history::split_key(&k)
                .zip(Record::decode(&v))
                .map(|((_, id), record)| Change::Play {
                    key: id,
                    record: Box::new(record),
                });
            out.push((k, change));
        }
        Ok(out)
    }

    /// Forget records of the old sled history that the history database
    /// holds (synced); the tree itself once it is empty. Flushed.
    pub fn old_history_done(&self, keys: &[sled::IVec]) -> Result<(), QueueError> {
        let o = self.shared.current()?;
        let tree = o.db.open_tree(history::TREE).map_err(|e| self.err(e))?;
        for k in keys {
            tree.remove(k).map_err(|e| self.err(e))?;
        }
        if tree.is_empty() {
            o.db.drop_tree(history::TREE).map_err(|e| self.err(e))?;
        }
        o.db.flush().map_err(|e| self.err(e))?;
        Ok(())
    }
}

#[cfg(test)]
impl Queue {
    /// Write `n` records into a sled `history` tree as releases before the
    /// SQLite history did (key: start time and id; value: the JSON record).
    pub(crate) fn old_history_fixture(&self, n: u64) {
        let o = self.shared.current().unwrap();
        let tree = o.db.open_tree(history::TREE).unwrap();
        for i in 0..n {
            let listen = crate::model::test_listen(i);
            let record = Record::new(&listen, &crate::history::PlayInfo::default(), &["a".into()]);
            tree.insert(history::key(listen.started_at, i + 1), record.encode())
                .unwrap();
        }
        o.db.flush().unwrap();
    }
}
