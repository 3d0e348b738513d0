//! The durable scrobble queue: one sled database in the state directory, one
//! FIFO tree per target (`queue/<target>`) and one tree of items a server
//! rejected for good (`rejected/<target>`).
//!
//! An enqueue writes the listen to every target's tree and its record to the
//! listening history ([`crate::history`]) in one transaction and waits for
//! the fsync before returning, so a play that qualified survives a crash and
//! is never in a queue without being in the history, or the other way round. Items leave a queue only through [`TargetQueue::remove`] (the server
//! took them) or [`TargetQueue::set_aside`] (the server refused them for good).

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sled::Transactional;

use crate::history::{self, History, PlayInfo, Record};
use crate::scrobble::Listen;

/// Version of the stored item format, so a later release can read old queues.
const FORMAT_VERSION: u32 = 1;

/// A queue failure.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Another process holds the database (sled allows one).
    #[error(
        "another mpd-scrobbler is already running with the state directory {0} \
         (stop it first, or give this one a different state_dir)"
    )]
    Locked(PathBuf),
    /// sled failed.
    #[error("queue database {path}: {source}")]
    Db {
        /// Database directory.
        path: PathBuf,
        /// Cause.
        source: sled::Error,
    },
}

/// A queued item's key: big-endian so sled's byte order is FIFO order.
pub type Key = [u8; 8];

#[derive(Serialize, Deserialize)]
struct Stored {
    v: u32,
    listen: Listen,
}

#[derive(Serialize, Deserialize)]
struct Rejected {
    v: u32,
    listen: Listen,
    reason: String,
    at: u64,
}

/// A love or unlove of a track, queued like a scrobble so that one made
/// while a target is unreachable still arrives.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Love {
    /// The track.
    pub track: crate::scrobble::Track,
    /// `true` to love, `false` to unlove.
    pub love: bool,
}

/// A queued or rejected item, for `queue list`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Item {
    /// Its id in the queue (FIFO order).
    pub id: u64,
    /// The listen.
    pub listen: Listen,
    /// Why the server refused it, for rejected items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The stored form of a queued listen.
fn stored(listen: &Listen) -> Vec<u8> {
    serde_json::to_vec(&Stored {
        v: FORMAT_VERSION,
        listen: listen.clone(),
    })
    .expect("a listen always serialises")
}

/// Insert `value` under `key` in every tree, atomically.
fn insert_all(trees: &[sled::Tree], key: &Key, value: &[u8]) -> Result<(), sled::Error> {
    trees
        .transaction(|trees| {
            for tree in trees {
                tree.insert(key, value)?;
            }
            Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
        })
        .map_err(|e| match e {
            sled::transaction::TransactionError::Storage(e) => e,
            sled::transaction::TransactionError::Abort(()) => unreachable!("never aborts"),
        })
}

/// The queue database.
#[derive(Debug, Clone)]
pub struct Queue {
    db: sled::Db,
    path: PathBuf,
    trees: Vec<sled::Tree>,
    names: Vec<String>,
    /// `None` when the user opted out of the history (`[history] enabled = false`).
    history: Option<History>,
    /// Targets that ignore plays older than this many seconds.
    max_age: Vec<(String, u64)>,
}

/// What [`Queue::backfill`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backfill {
    /// Plays queued for the target.
    pub queued: usize,
    /// Plays the target has already (delivered, waiting or refused).
    pub already: usize,
    /// Plays too old for the target, left out.
    pub too_old: usize,
}

/// One target's view of the queue.
#[derive(Debug, Clone)]
pub struct TargetQueue {
    db: sled::Db,
    path: PathBuf,
    pending: sled::Tree,
    rejected: sled::Tree,
    loves: sled::Tree,
    name: String,
    history: Option<sled::Tree>,
}

impl Queue {
    /// Open (or create) the queue under `state_dir`, with a tree per target.
    pub fn open(state_dir: &Path, targets: &[&str]) -> Result<Queue, QueueError> {
        let path = state_dir.join("queue");
        let db = sled::Config::new()
            .path(&path)
            // sled's default cache budget is 1 GiB; the queue needs little.
            .cache_capacity(1 << 20)
            .mode(sled::Mode::LowSpace)
            // Every enqueue is flushed explicitly; the background flusher would
            // only add two wake-ups a second.
            .flush_every_ms(None)
            .open()
            .map_err(|source| match &source {
                // sled reports the held fs2 lock only as text.
                sled::Error::Io(e) if e.to_string().contains("could not acquire lock") => {
                    QueueError::Locked(state_dir.to_owned())
                }
                _ => QueueError::Db {
                    path: path.clone(),
                    source,
                },
            })?;
        let err = |source| QueueError::Db {
            path: path.clone(),
            source,
        };
        let trees = targets
            .iter()
            .map(|t| db.open_tree(format!("queue/{t}")))
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        let history = Some(History::open(&db).map_err(err)?);
        Ok(Queue {
            db,
            path,
            trees,
            names: targets.iter().map(|t| t.to_string()).collect(),
            history,
            max_age: Vec::new(),
        })
    }

    /// Keep the listening history (the default) or not.
    pub fn record_history(mut self, on: bool) -> Queue {
        if !on {
            self.history = None;
        }
        self
    }

    /// Say that `target` ignores plays older than `secs` (Last.fm's 14
    /// days): import and backfill leave such plays out of its queue rather
    /// than send them to be refused.
    pub fn with_max_age(mut self, target: &str, secs: u64) -> Queue {
        self.max_age.push((target.to_owned(), secs));
        self
    }

    fn too_old(&self, target: &str, started_at: u64, now: u64) -> bool {
        self.max_age
            .iter()
            .any(|(t, max)| t == target && now.saturating_sub(started_at) > *max)
    }

    /// The listening history, unless the user opted out.
    pub fn history(&self) -> Option<&History> {
        self.history.as_ref()
    }

    fn err(&self, source: sled::Error) -> QueueError {
        QueueError::Db {
            path: self.path.clone(),
            source,
        }
    }

    /// Append `listen` to every target's queue atomically and wait until it is
    /// on disk.
    pub async fn enqueue(&self, listen: &Listen) -> Result<(), QueueError> {
        self.enqueue_play(listen, &PlayInfo::default()).await
    }

    /// [`Queue::enqueue`], recording the play in the history in the same
    /// transaction, with what the daemon knows beyond the listen.
    pub async fn enqueue_play(&self, listen: &Listen, info: &PlayInfo) -> Result<(), QueueError> {
        let value = stored(listen);
        let id = self.db.generate_id().map_err(|e| self.err(e))?;
        let key = id.to_be_bytes();
        match &self.history {
            Some(h) => {
                let record = Record::new(listen, info, &self.names).encode();
                let hkey = history::key(listen.started_at, id);
                let mut trees = self.trees.clone();
                trees.push(h.tree().clone());
                let n = self.trees.len();
                trees
                    .as_slice()
                    .transaction(|trees| {
                        for tree in &trees[..n] {
                            tree.insert(&key, value.as_slice())?;
                        }
                        trees[n].insert(&hkey, record.as_slice())?;
                        Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
                    })
                    .map_err(|e| match e {
                        sled::transaction::TransactionError::Storage(e) => self.err(e),
                        sled::transaction::TransactionError::Abort(()) => {
                            unreachable!("never aborts")
                        }
                    })?;
            }
            None => insert_all(&self.trees, &key, &value).map_err(|e| self.err(e))?,
        }
        self.db.flush_async().await.map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Forget history records of plays that started before `before`, except
    /// those still waiting in a queue. Returns how many went.
    pub fn prune_history(&self, before: u64) -> Result<usize, QueueError> {
        let Some(h) = &self.history else {
            return Ok(0);
        };
        let waiting = |id: u64| {
            let k = id.to_be_bytes();
            self.trees.iter().any(|t| t.contains_key(k).unwrap_or(true))
        };
        let removed = h.prune(before, waiting).map_err(|e| self.err(e))?;
        if removed > 0 {
            self.db.flush().map_err(|e| self.err(e))?;
        }
        Ok(removed)
    }

    /// Queue for `target` the recorded plays since `since` that it has not
    /// received, for a target added later. Plays too old for it (see
    /// [`Queue::with_max_age`]) are counted and left out.
    pub fn backfill(
        &self,
        target: &str,
        since: Option<u64>,
        now: u64,
    ) -> Result<Backfill, QueueError> {
        let Some(h) = &self.history else {
            return Ok(Backfill::default());
        };
        let i = self
            .names
            .iter()
            .position(|n| n == target)
            .expect("backfill of a configured target");
        let mut done = Backfill::default();
        for item in h.range(since, None) {
            let (hkey, mut record) = item.map_err(|e| self.err(e))?;
            if record.has(target) {
                done.already += 1;
                continue;
            }
            if self.too_old(target, record.listen.started_at, now) {
                done.too_old += 1;
                continue;
            }
            let Some((_, id)) = history::split_key(&hkey) else {
                continue;
            };
            record.queued.push(target.to_owned());
            let value = stored(&record.listen);
            let record = record.encode();
            (&self.trees[i], h.tree())
                .transaction(|(q, ht)| {
                    q.insert(&id.to_be_bytes(), value.as_slice())?;
                    ht.insert(&hkey, record.as_slice())?;
                    Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
                })
                .map_err(|e| match e {
                    sled::transaction::TransactionError::Storage(e) => self.err(e),
                    sled::transaction::TransactionError::Abort(()) => unreachable!("never aborts"),
                })?;
            done.queued += 1;
        }
        self.db.flush().map_err(|e| self.err(e))?;
        Ok(done)
    }

    /// The queue of one target.
    ///
    /// # Panics
    /// If `name` was not among the targets given to [`Queue::open`].
    pub fn target(&self, name: &str) -> TargetQueue {
        let i = self
            .names
            .iter()
            .position(|n| n == name)
            .expect("queue opened with this target");
        TargetQueue {
            db: self.db.clone(),
            path: self.path.clone(),
            pending: self.trees[i].clone(),
            rejected: self
                .db
                .open_tree(format!("rejected/{name}"))
                .expect("sled can open a tree in an open database"),
            loves: self
                .db
                .open_tree(format!("loves/{name}"))
                .expect("sled can open a tree in an open database"),
            name: name.to_owned(),
            history: self.history.as_ref().map(|h| h.tree().clone()),
        }
    }

    /// Add listens from elsewhere (an mpdscribble journal, a ListenBrainz
    /// export) to the history and to every target's queue, leaving out, per
    /// target, any play it already has: queued there with the same artist,
    /// title and start time, or, through the history, already delivered to
    /// it. Returns how many were added and skipped.
    pub fn import(&self, listens: &[Listen]) -> Result<(usize, usize), QueueError> {
        let mut queued: Vec<Vec<Listen>> = Vec::new();
        for tree in &self.trees {
            let mut v = Vec::new();
            for item in tree.iter() {
                let (_, value) = item.map_err(|e| self.err(e))?;
                if let Ok(s) = serde_json::from_slice::<Stored>(&value) {
                    v.push(s.listen);
                }
            }
            queued.push(v);
        }
        let (mut added, mut skipped) = (0, 0);
        let now = crate::scrobble::unix_now();
        for listen in listens {
            let known = match &self.history {
                Some(h) => h.find(listen).map_err(|e| self.err(e))?,
                None => None,
            };
            let holds = |i: usize| queued[i].iter().any(|q| history::same_play(q, listen));
            let wanted: Vec<usize> = (0..self.trees.len())
                .filter(|&i| {
                    !holds(i)
                        && known.as_ref().is_none_or(|(_, r)| !r.has(&self.names[i]))
                        && !self.too_old(&self.names[i], listen.started_at, now)
                })
                .collect();
            // A play new to the history is recorded even when no target
            // takes it (none configured, or it is too old for them).
            let new_play =
                known.is_none() && self.history.is_some() && !(0..self.trees.len()).any(holds);
            if wanted.is_empty() && !new_play {
                skipped += 1;
                continue;
            }
            let (id, record) = match known {
                Some((hkey, mut r)) => {
                    r.queued
                        .extend(wanted.iter().map(|&i| self.names[i].clone()));
                    (history::split_key(&hkey).map_or(0, |(_, id)| id), r)
                }
                None => {
                    let holders: Vec<String> = (0..self.trees.len())
                        .filter(|&i| holds(i) || wanted.contains(&i))
                        .map(|i| self.names[i].clone())
                        .collect();
                    (
                        self.db.generate_id().map_err(|e| self.err(e))?,
                        Record::new(listen, &PlayInfo::default(), &holders),
                    )
                }
            };
            let value = stored(listen);
            let mut trees: Vec<sled::Tree> =
                wanted.iter().map(|&i| self.trees[i].clone()).collect();
            let n = trees.len();
            if let Some(h) = &self.history {
                trees.push(h.tree().clone());
            }
            let hkey = history::key(listen.started_at, id);
            let record = record.encode();
            trees
                .as_slice()
                .transaction(|trees| {
                    for tree in &trees[..n] {
                        tree.insert(&id.to_be_bytes(), value.as_slice())?;
                    }
                    if let Some(h) = trees.get(n) {
                        h.insert(&hkey, record.as_slice())?;
                    }
                    Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
                })
                .map_err(|e| match e {
                    sled::transaction::TransactionError::Storage(e) => self.err(e),
                    sled::transaction::TransactionError::Abort(()) => unreachable!("never aborts"),
                })?;
            added += 1;
        }
        self.db.flush().map_err(|e| self.err(e))?;
        Ok((added, skipped))
    }

    /// Queue a love for every target in one transaction, on disk before
    /// this returns.
    pub fn enqueue_love(&self, love: &Love) -> Result<(), QueueError> {
        let err = |source| QueueError::Db {
            path: self.path.clone(),
            source,
        };
        let trees: Vec<sled::Tree> = self
            .names
            .iter()
            .map(|t| self.db.open_tree(format!("loves/{t}")))
            .collect::<Result<_, _>>()
            .map_err(err)?;
        let value = serde_json::to_vec(love).expect("a love always serialises");
        let key = self.db.generate_id().map_err(err)?.to_be_bytes();
        insert_all(&trees, &key, &value).map_err(err)?;
        self.db.flush().map_err(err)?;
        Ok(())
    }

    /// The target names the queue was opened with.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Write everything to disk (used at shutdown).
    pub fn flush(&self) -> Result<(), QueueError> {
        self.db.flush().map(drop).map_err(|source| QueueError::Db {
            path: self.path.clone(),
            source,
        })
    }
}

impl TargetQueue {
    fn err(&self, source: sled::Error) -> QueueError {
        QueueError::Db {
            path: self.path.clone(),
            source,
        }
    }

    /// The oldest `n` items, oldest first, without removing them. An item that
    /// cannot be decoded is set aside (with a log line) rather than blocking
    /// the queue.
    pub async fn peek(&self, n: usize) -> Result<Vec<(Key, Listen)>, QueueError> {
        let mut out = Vec::with_capacity(n);
        let mut unreadable = Vec::new();
        for item in self.pending.iter() {
            if out.len() == n {
                break;
            }
            let (k, v) = item.map_err(|e| self.err(e))?;
            let key: Key = k.as_ref().try_into().unwrap_or_default();
            match serde_json::from_slice::<Stored>(&v) {
                Ok(s) => out.push((key, s.listen)),
                Err(e) => unreadable.push((k, v, e)),
            }
        }
        for (k, v, e) in unreadable {
            tracing::error!(
                "queue item {} cannot be read ({e}); moved out of the way",
                hex::encode(&k)
            );
            let mut kept = b"unreadable:".to_vec();
            kept.extend_from_slice(&v);
            self.move_to_rejected(&k, &kept)?;
        }
        Ok(out)
    }

    /// Remove delivered items.
    pub async fn remove(&self, keys: &[Key]) -> Result<(), QueueError> {
        let mut batch = sled::Batch::default();
        for k in keys {
            batch.remove(k);
        }
        self.pending.apply_batch(batch).map_err(|e| self.err(e))?;
        self.db.flush_async().await.map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Remove items the target accepted, and record in the history, in the
    /// same transaction, that this target accepted them now. Each item is
    /// given with its listen's start time, which with its key names its
    /// history record.
    pub async fn remove_delivered(&self, items: &[(Key, u64)]) -> Result<(), QueueError> {
        let Some(history) = &self.history else {
            let keys: Vec<Key> = items.iter().map(|(k, _)| *k).collect();
            return self.remove(&keys).await;
        };
        let now = crate::scrobble::unix_now();
        (&self.pending, history)
            .transaction(|(p, h)| {
                for (key, started_at) in items {
                    p.remove(key)?;
                    let hkey = history::key(*started_at, u64::from_be_bytes(*key));
                    // A play queued before the history existed has no record.
                    if let Some(mut r) = h.get(hkey)?.and_then(|v| Record::decode(&v)) {
                        r.delivered.insert(self.name.clone(), now);
                        h.insert(&hkey, r.encode())?;
                    }
                }
                Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
            })
            .map_err(|e| match e {
                sled::transaction::TransactionError::Storage(e) => self.err(e),
                sled::transaction::TransactionError::Abort(()) => unreachable!("never aborts"),
            })?;
        self.db.flush_async().await.map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Move an item the server refused for good to the rejected list.
    pub async fn set_aside(
        &self,
        key: Key,
        listen: &Listen,
        reason: &str,
    ) -> Result<(), QueueError> {
        let value = serde_json::to_vec(&Rejected {
            v: FORMAT_VERSION,
            listen: listen.clone(),
            reason: reason.to_owned(),
            at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        })
        .expect("a listen always serialises");
        self.move_to_rejected(&key, &value)?;
        self.db.flush_async().await.map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Atomically take `key` out of the pending queue and keep `value` for
    /// it in the rejected list.
    fn move_to_rejected(&self, key: &[u8], value: &[u8]) -> Result<(), QueueError> {
        (&self.pending, &self.rejected)
            .transaction(|(p, r)| {
                p.remove(key)?;
                r.insert(key, value)?;
                Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
            })
            .map_err(|e| match e {
                sled::transaction::TransactionError::Storage(e) => self.err(e),
                sled::transaction::TransactionError::Abort(()) => unreachable!("never aborts"),
            })
    }

    /// The oldest queued love, if any.
    pub fn peek_love(&self) -> Result<Option<(Key, Love)>, QueueError> {
        let Some((k, v)) = self.loves.first().map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        let key: Key = k.as_ref().try_into().unwrap_or_default();
        match serde_json::from_slice(&v) {
            Ok(love) => Ok(Some((key, love))),
            Err(e) => {
                tracing::error!("a queued love cannot be read ({e}); dropped");
                self.loves.remove(k).map_err(|e| self.err(e))?;
                self.peek_love()
            }
        }
    }

    /// Remove a love once delivered or refused for good.
    pub async fn remove_love(&self, key: Key) -> Result<(), QueueError> {
        self.loves.remove(key).map_err(|e| self.err(e))?;
        self.db.flush_async().await.map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Start time of the oldest waiting item.
    pub fn oldest(&self) -> Option<u64> {
        let (_, v) = self.pending.first().ok()??;
        serde_json::from_slice::<Stored>(&v)
            .ok()
            .map(|s| s.listen.started_at)
    }

    /// Every waiting item, oldest first (unreadable ones are skipped).
    pub fn list(&self) -> Result<Vec<Item>, QueueError> {
        let mut out = Vec::new();
        for item in self.pending.iter() {
            let (k, v) = item.map_err(|e| self.err(e))?;
            if let (Ok(key), Ok(s)) = (
                <Key>::try_from(k.as_ref()),
                serde_json::from_slice::<Stored>(&v),
            ) {
                out.push(Item {
                    id: u64::from_be_bytes(key),
                    listen: s.listen,
                    reason: None,
                });
            }
        }
        Ok(out)
    }

    /// Every item set aside, with the reason.
    pub fn list_rejected(&self) -> Result<Vec<Item>, QueueError> {
        let mut out = Vec::new();
        for item in self.rejected.iter() {
            let (k, v) = item.map_err(|e| self.err(e))?;
            if let (Ok(key), Ok(r)) = (
                <Key>::try_from(k.as_ref()),
                serde_json::from_slice::<Rejected>(&v),
            ) {
                out.push(Item {
                    id: u64::from_be_bytes(key),
                    listen: r.listen,
                    reason: Some(r.reason),
                });
            }
        }
        Ok(out)
    }

    /// Drop one waiting item for good; `false` when there is no such item.
    pub fn drop_item(&self, id: u64) -> Result<bool, QueueError> {
        let found = self
            .pending
            .remove(id.to_be_bytes())
            .map_err(|e| self.err(e))?
            .is_some();
        self.db.flush().map_err(|e| self.err(e))?;
        Ok(found)
    }

    /// Put every rejected item back in the queue, in its old place.
    pub fn retry_rejected(&self) -> Result<usize, QueueError> {
        let mut moved = 0;
        for item in self.rejected.iter() {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let Ok(r) = serde_json::from_slice::<Rejected>(&v) else {
                continue;
            };
            let value = serde_json::to_vec(&Stored {
                v: FORMAT_VERSION,
                listen: r.listen,
            })
            .expect("a listen always serialises");
            (&self.pending, &self.rejected)
                .transaction(|(p, rj)| {
                    rj.remove(&k)?;
                    p.insert(&k, value.as_slice())?;
                    Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
                })
                .map_err(|e| match e {
                    sled::transaction::TransactionError::Storage(e) => self.err(e),
                    sled::transaction::TransactionError::Abort(()) => unreachable!("never aborts"),
                })?;
            moved += 1;
        }
        self.db.flush().map_err(|e| self.err(e))?;
        Ok(moved)
    }

    /// Number of items waiting.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Number of items set aside.
    pub fn rejected_len(&self) -> usize {
        self.rejected.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrobble::Track;

    fn listen(i: u64) -> Listen {
        Listen {
            track: Track {
                artist: "Sigur Rós".into(),
                title: format!("日本語 {i} & = more"),
                ..Track::default()
            },
            started_at: 1_700_000_000 + i,
        }
    }

    #[tokio::test]
    async fn fifo_per_target_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let q = Queue::open(dir.path(), &["a", "b"]).unwrap();
            for i in 0..5 {
                q.enqueue(&listen(i)).await.unwrap();
            }
            let a = q.target("a");
            let first = a.peek(2).await.unwrap();
            assert_eq!(
                first
                    .iter()
                    .map(|(_, l)| l.started_at - 1_700_000_000)
                    .collect::<Vec<_>>(),
                [0, 1]
            );
            a.remove(&[first[0].0, first[1].0]).await.unwrap();
            assert_eq!(a.len(), 3);
            assert_eq!(q.target("b").len(), 5, "targets are independent");
        }
        let q = Queue::open(dir.path(), &["a", "b"]).unwrap();
        let rest = q.target("a").peek(50).await.unwrap();
        assert_eq!(
            rest.iter().map(|(_, l)| l.clone()).collect::<Vec<_>>(),
            vec![listen(2), listen(3), listen(4)]
        );
    }

    #[tokio::test]
    async fn set_aside_moves_to_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path(), &["a"]).unwrap();
        q.enqueue(&listen(1)).await.unwrap();
        let t = q.target("a");
        let (k, l) = t.peek(1).await.unwrap().remove(0);
        t.set_aside(k, &l, "error 6: Invalid parameters")
            .await
            .unwrap();
        assert!(t.is_empty());
        assert_eq!(t.rejected_len(), 1);
    }

    #[tokio::test]
    async fn list_drop_and_retry() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path(), &["a"]).unwrap();
        for i in 0..3 {
            q.enqueue(&listen(i)).await.unwrap();
        }
        let t = q.target("a");
        let items = t.list().unwrap();
        assert_eq!(items.len(), 3);
        assert!(items[0].id < items[1].id && items[1].id < items[2].id);
        assert!(t.drop_item(items[1].id).unwrap());
        assert!(!t.drop_item(items[1].id).unwrap());
        let (k, l) = t.peek(1).await.unwrap().remove(0);
        t.set_aside(k, &l, "error 6").await.unwrap();
        let rejected = t.list_rejected().unwrap();
        assert_eq!(rejected[0].reason.as_deref(), Some("error 6"));
        assert_eq!(t.retry_rejected().unwrap(), 1);
        assert_eq!(
            t.list().unwrap().iter().map(|i| i.id).collect::<Vec<_>>(),
            [items[0].id, items[2].id]
        );
        assert_eq!(t.rejected_len(), 0);
    }

    #[tokio::test]
    async fn history_follows_enqueue_delivery_import_and_backfill() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path(), &["a", "b"]).unwrap();
        let info = PlayInfo {
            uri: Some("x/y.flac".into()),
            played_secs: Some(120),
        };
        q.enqueue_play(&listen(1), &info).await.unwrap();
        let h = q.history().unwrap().clone();
        let (_, r) = h.find(&listen(1)).unwrap().unwrap();
        assert_eq!(
            (r.uri.as_deref(), r.played_secs),
            (Some("x/y.flac"), Some(120))
        );
        assert_eq!(r.queued, ["a", "b"]);

        // Delivery to "a" removes it there and records when.
        let a = q.target("a");
        let (k, l) = a.peek(1).await.unwrap().remove(0);
        a.remove_delivered(&[(k, l.started_at)]).await.unwrap();
        assert!(a.is_empty());
        let (_, r) = h.find(&listen(1)).unwrap().unwrap();
        assert_eq!(r.delivered.keys().collect::<Vec<_>>(), ["a"]);

        // Re-importing it adds nothing: "a" has it, "b" still holds it.
        assert_eq!(q.import(&[listen(1), listen(2)]).unwrap(), (1, 1));
        assert_eq!((a.len(), q.target("b").len()), (1, 2));

        // A target added later gets what it lacks; one ignoring old plays
        // gets only the recent ones.
        drop((a, q, h));
        let q = Queue::open(dir.path(), &["a", "b", "c", "d"])
            .unwrap()
            .with_max_age("d", 10);
        let now = 1_700_000_000 + 5;
        assert_eq!(
            q.backfill("c", None, now).unwrap(),
            Backfill {
                queued: 2,
                already: 0,
                too_old: 0
            }
        );
        assert_eq!(q.target("c").len(), 2);
        assert_eq!(q.backfill("c", None, now).unwrap().already, 2);
        let old = Listen {
            started_at: 1_600_000_000,
            ..listen(9)
        };
        assert_eq!(q.import(std::slice::from_ref(&old)).unwrap(), (1, 0));
        assert_eq!(q.target("d").len(), 0, "too old for d");
        let d = q.backfill("d", None, now).unwrap();
        assert_eq!((d.queued, d.too_old), (2, 1));
        assert_eq!(q.history().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn no_history_when_switched_off() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path(), &["a"])
            .unwrap()
            .record_history(false);
        q.enqueue(&listen(1)).await.unwrap();
        assert!(q.history().is_none());
        let q2 = {
            drop(q);
            Queue::open(dir.path(), &["a"]).unwrap()
        };
        assert_eq!(q2.history().unwrap().len(), 0);
        assert_eq!(q2.target("a").len(), 1);
    }

    #[tokio::test]
    async fn second_open_is_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let _q = Queue::open(dir.path(), &["a"]).unwrap();
        let err = Queue::open(dir.path(), &["a"]).unwrap_err();
        assert!(matches!(err, QueueError::Locked(_)), "{err}");
        assert!(err.to_string().contains("already running"));
    }
}
