//! The durable scrobble queue: one sled database in the state directory, one
//! FIFO tree per target (`queue/<target>`), one tree of items a server
//! rejected for good (`rejected/<target>`), and one of the requests sent but
//! not yet answered (`inflight/<target>`), so that a crash or a timeout
//! mid-request leaves a record of what the server may have stored.
//!
//! An enqueue writes the listen to every target's tree and its record to the
//! listening history ([`crate::history`]) in one transaction and waits for
//! the fsync before returning, so a play that qualified survives a crash and
//! is never in a queue without being in the history, or the other way round. Items leave a queue only through [`TargetQueue::finish_in_flight`]
//! (the server took them, or refused them for good) or
//! [`TargetQueue::set_aside`] (refused for good before sending).
//!
//! An I/O error closes the database and the next operation opens it again
//! (sled's errors are sticky); opening checks for damage ([`open`](self::open)).

mod open;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sled::Transactional;

use crate::history::{self, History, PlayInfo, Record};
use crate::scrobble::Listen;
use open::Open;
pub use open::{DAMAGED_PREFIX, REPORT_FILE, damaged_copies, open_died};

/// Version of the stored item format, so a later release can read old queues.
const FORMAT_VERSION: u32 = 1;
/// The last listen enqueued, in the `meta` tree: a retried enqueue whose
/// first attempt reached the disk after all finds it there.
const LAST_LISTEN: &[u8] = b"last_listen";

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
    /// An I/O error closed the database; writing plays opens it again.
    #[error(
        "queue database {0} is closed after a write error; it is opened again as soon as \
         writing works"
    )]
    Closed(PathBuf),
}

impl QueueError {
    /// The kind of the file system's error behind this one, if any.
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            QueueError::Db {
                source: sled::Error::Io(e),
                ..
            } => Some(e.kind()),
            _ => None,
        }
    }
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

/// A request whose outcome is not known yet: recorded, on disk, before it
/// is sent, and cleared together with the answer's effect on the queue.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct InFlight {
    /// Keys of the queued items the request carries.
    pub keys: Vec<Key>,
    /// Earliest start time among them (Unix seconds).
    pub first: u64,
    /// Latest start time among them (Unix seconds).
    pub last: u64,
    /// Wall-clock time the request went out (Unix milliseconds).
    pub sent_at_ms: u64,
}

#[derive(Serialize, Deserialize)]
struct StoredFlight {
    v: u32,
    flight: InFlight,
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

/// The stored form of an item set aside for `reason`.
fn rejected_value(listen: &Listen, reason: &str) -> Vec<u8> {
    serde_json::to_vec(&Rejected {
        v: FORMAT_VERSION,
        listen: listen.clone(),
        reason: reason.to_owned(),
        at: crate::scrobble::unix_now(),
    })
    .expect("a listen always serialises")
}

/// What a queue transaction body can fail with: only storage errors, since
/// none of them aborts.
type Conflict = sled::transaction::ConflictableTransactionError<std::convert::Infallible>;

/// The storage error of a transaction that cannot abort.
fn storage_error(e: sled::transaction::TransactionError<std::convert::Infallible>) -> sled::Error {
    match e {
        sled::transaction::TransactionError::Storage(e) => e,
        sled::transaction::TransactionError::Abort(never) => match never {},
    }
}

/// The stored form of a queued listen.
fn stored(listen: &Listen) -> Vec<u8> {
    serde_json::to_vec(&Stored {
        v: FORMAT_VERSION,
        listen: listen.clone(),
    })
    .expect("a listen always serialises")
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

/// Insert `value` under `key` in every tree, atomically.
fn insert_all(trees: &[sled::Tree], key: &Key, value: &[u8]) -> Result<(), sled::Error> {
    trees
        .transaction(|trees| {
            for tree in trees {
                tree.insert(key, value)?;
            }
            Ok::<_, Conflict>(())
        })
        .map_err(storage_error)
}

/// What every handle on the queue shares: the open database, replaced
/// after an I/O error.
///
/// sled's I/O errors are sticky: after one (a full disk, say), every later
/// write on the same handle fails even once the cause is gone. So an I/O
/// error closes the database, and the next operation opens it again, which
/// clears it. sled's file lock allows one open instance, so the reopen
/// succeeds only once the operations still holding the old one are done;
/// until then operations fail and their callers retry.
#[derive(Debug)]
struct Shared {
    path: PathBuf,
    names: Vec<String>,
    open: std::sync::RwLock<Option<Arc<Open>>>,
    /// Signalled when an error closes the database.
    closed: tokio::sync::Notify,
    /// Whether plays go to the history too (`[history] enabled`).
    history_on: bool,
    /// Targets that ignore plays older than this many seconds.
    max_age: Vec<(String, u64)>,
}

impl Shared {
    /// The open database, opening it again if an error closed it.
    fn current(&self) -> Result<Arc<Open>, QueueError> {
        if let Ok(o) = self.if_open() {
            return Ok(o);
        }
        let mut slot = self.open.write().unwrap_or_else(|e| e.into_inner());
        if let Some(o) = slot.as_ref() {
            return Ok(Arc::clone(o));
        }
        let o = Arc::new(self.reopen()?);
        tracing::info!("queue database {} opened again", self.path.display());
        *slot = Some(Arc::clone(&o));
        Ok(o)
    }

    /// The open database; a closed one stays closed. Operations on a
    /// target's queue run on the runtime thread and leave reopening, which
    /// reads the whole database, to the writer's blocking thread.
    fn if_open(&self) -> Result<Arc<Open>, QueueError> {
        self.open
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(Arc::clone)
            .ok_or_else(|| QueueError::Closed(self.path.clone()))
    }

    fn reopen(&self) -> Result<Open, QueueError> {
        open::open(&self.path, &self.names).map_err(|e| match e {
            // Our own old handles, still held by an operation that has not
            // finished.
            open::OpenError::Locked => QueueError::Closed(self.path.clone()),
            open::OpenError::Io(source) => QueueError::Db {
                path: self.path.clone(),
                source,
            },
        })
    }

    /// The error for `source`; an I/O error closes the database so that the
    /// next operation opens it afresh.
    fn fail(&self, source: sled::Error) -> QueueError {
        if matches!(source, sled::Error::Io(_))
            && self
                .open
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .is_some()
        {
            tracing::warn!(
                "queue database {}: {source}; closed, to be opened again",
                self.path.display()
            );
            self.closed.notify_one();
        }
        QueueError::Db {
            path: self.path.clone(),
            source,
        }
    }
}

/// The queue database.
#[derive(Debug, Clone)]
pub struct Queue {
    shared: Arc<Shared>,
}

/// One target's view of the queue.
#[derive(Debug, Clone)]
pub struct TargetQueue {
    shared: Arc<Shared>,
    name: String,
}

/// A target's trees in the currently open database.
struct Trees {
    db: sled::Db,
    pending: sled::Tree,
    rejected: sled::Tree,
    loves: sled::Tree,
    inflight: sled::Tree,
}

impl Queue {
    /// Open (or create) the queue under `state_dir`, with a tree per target.
    /// A damaged database is set aside and a fresh one started (see
    /// [`open`](self::open)).
    pub fn open(state_dir: &Path, targets: &[&str]) -> Result<Queue, QueueError> {
        let queue = Queue::unopened(state_dir, targets);
        let o = match open::open(&queue.shared.path, &queue.shared.names) {
            Ok(o) => o,
            Err(open::OpenError::Locked) => return Err(QueueError::Locked(state_dir.to_owned())),
            Err(open::OpenError::Io(source)) => {
                return Err(QueueError::Db {
                    path: queue.shared.path.clone(),
                    source,
                });
            }
        };
        *queue.shared.open.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(o));
        Ok(queue)
    }

    /// As [`Queue::open`], but an I/O error (a full or read-only file
    /// system) leaves the queue closed rather than failing: every operation
    /// tries to open it again, so the daemon can start and hold plays until
    /// the disk has room.
    pub fn open_or_retry_later(state_dir: &Path, targets: &[&str]) -> Result<Queue, QueueError> {
        match Queue::open(state_dir, targets) {
            Err(e @ QueueError::Db { .. }) => {
                tracing::error!("{e}; trying again at the next write");
                Ok(Queue::unopened(state_dir, targets))
            }
            other => other,
        }
    }

    fn unopened(state_dir: &Path, targets: &[&str]) -> Queue {
        Queue {
            shared: Arc::new(Shared {
                path: state_dir.join("queue"),
                names: targets.iter().map(|t| t.to_string()).collect(),
                open: std::sync::RwLock::new(None),
                closed: tokio::sync::Notify::new(),
                history_on: true,
                max_age: Vec::new(),
            }),
        }
    }

    fn err(&self, source: sled::Error) -> QueueError {
        self.shared.fail(source)
    }

    /// The settings only [`Queue::record_history`] and
    /// [`Queue::with_max_age`] change, right after opening.
    fn settings(&mut self) -> &mut Shared {
        Arc::get_mut(&mut self.shared).expect("configured before the queue is shared")
    }

    /// Keep the listening history (the default) or not. Call right after
    /// opening, before the queue is cloned.
    pub fn record_history(mut self, on: bool) -> Queue {
        self.settings().history_on = on;
        self
    }

    /// Say that `target` ignores plays older than `secs` (Last.fm's 14
    /// days): import and backfill leave such plays out of its queue rather
    /// than send them to be refused. Call right after opening.
    pub fn with_max_age(mut self, target: &str, secs: u64) -> Queue {
        self.settings().max_age.push((target.to_owned(), secs));
        self
    }

    fn too_old(&self, target: &str, started_at: u64, now: u64) -> bool {
        self.shared
            .max_age
            .iter()
            .any(|(t, max)| t == target && now.saturating_sub(started_at) > *max)
    }

    /// The listening history, unless the user opted out.
    pub fn history(&self) -> Result<Option<History>, QueueError> {
        if !self.shared.history_on {
            return Ok(None);
        }
        let o = self.shared.current()?;
        History::open(&o.db).map(Some).map_err(|e| self.err(e))
    }

    /// Append `listen` to every target's queue atomically and wait until it is
    /// on disk.
    pub async fn enqueue(&self, listen: &Listen) -> Result<(), QueueError> {
        let o = self.shared.current()?;
        let Some(key) = self.insert_listen(&o, listen, &PlayInfo::default())? else {
            return Ok(());
        };
        o.db.flush_async().await.map_err(|e| self.err(e))?;
        open::record_last_write(&self.shared.path, key);
        Ok(())
    }

    /// [`Queue::enqueue`] for a blocking thread (the daemon's writer runs it
    /// off the runtime). Writing a listen that is already the last one
    /// written (an attempt whose fsync failed after sled kept it) does
    /// nothing, so retrying never queues a play twice.
    pub fn enqueue_blocking(&self, listen: &Listen) -> Result<(), QueueError> {
        self.enqueue_play_blocking(listen, &PlayInfo::default())
    }

    /// [`Queue::enqueue_blocking`], with what the daemon knows of the play
    /// beyond the listen (file, play time) for its history record.
    pub fn enqueue_play_blocking(
        &self,
        listen: &Listen,
        info: &PlayInfo,
    ) -> Result<(), QueueError> {
        let o = self.shared.current()?;
        let key = self.insert_listen(&o, listen, info)?;
        o.db.flush().map_err(|e| self.err(e))?;
        if let Some(key) = key {
            open::record_last_write(&self.shared.path, key);
        }
        Ok(())
    }

    /// Insert `listen` into every target's tree and note its key as the
    /// last one; `None` if it is already the last one written.
    fn insert_listen(
        &self,
        o: &Open,
        listen: &Listen,
        info: &PlayInfo,
    ) -> Result<Option<u64>, QueueError> {
        let value = serde_json::to_vec(&Stored {
            v: FORMAT_VERSION,
            listen: listen.clone(),
        })
        .expect("a listen always serialises");
        let last = o.meta.get(LAST_LISTEN).map_err(|e| self.err(e))?;
        if last.as_deref() == Some(value.as_slice()) {
            return Ok(None);
        }
        let key = o.next_key().map_err(|e| self.err(e))?;
        let mut trees = o.pending.clone();
        let n = trees.len();
        let record = if self.shared.history_on {
            trees.push(o.db.open_tree(history::TREE).map_err(|e| self.err(e))?);
            Some((
                history::key(listen.started_at, u64::from_be_bytes(key)),
                Record::new(listen, info, &self.shared.names).encode(),
            ))
        } else {
            None
        };
        trees.push(o.meta.clone());
        trees
            .as_slice()
            .transaction(|trees| {
                let (meta, rest) = trees.split_last().expect("meta is last");
                for tree in &rest[..n] {
                    tree.insert(&key, value.as_slice())?;
                }
                if let (Some(h), Some((hkey, record))) = (rest.get(n), &record) {
                    h.insert(hkey, record.as_slice())?;
                }
                meta.insert(open::LAST_ID, &key)?;
                meta.insert(LAST_LISTEN, value.as_slice())?;
                Ok::<_, Conflict>(())
            })
            .map_err(|e| self.err(storage_error(e)))?;
        Ok(Some(u64::from_be_bytes(key)))
    }

    /// The queue of one target.
    ///
    /// # Panics
    /// If `name` was not among the targets given to [`Queue::open`].
    pub fn target(&self, name: &str) -> TargetQueue {
        assert!(
            self.shared.names.iter().any(|n| n == name),
            "queue opened with this target"
        );
        TargetQueue {
            shared: Arc::clone(&self.shared),
            name: name.to_owned(),
        }
    }

    /// Add listens from elsewhere (an mpdscribble journal, a ListenBrainz
    /// export) to the history and to every target's queue, leaving out, per
    /// target, any play it already has: queued there with the same artist,
    /// title and start time, or, through the history, already delivered to
    /// it, or too old for it. Returns how many were added and skipped.
    pub fn import(&self, listens: &[Listen]) -> Result<(usize, usize), QueueError> {
        let o = self.shared.current()?;
        let err = |source| self.err(source);
        let names = &self.shared.names;
        let mut queued: Vec<Vec<Listen>> = Vec::new();
        for tree in &o.pending {
            let mut v = Vec::new();
            for item in tree.iter() {
                let (_, value) = item.map_err(err)?;
                if let Ok(s) = serde_json::from_slice::<Stored>(&value) {
                    v.push(s.listen);
                }
            }
            queued.push(v);
        }
        let history = match self.shared.history_on {
            true => Some(History::open(&o.db).map_err(err)?),
            false => None,
        };
        let now = crate::scrobble::unix_now();
        let (mut added, mut skipped) = (0, 0);
        for listen in listens {
            let known = match &history {
                Some(h) => h.find(listen).map_err(err)?,
                None => None,
            };
            let holds = |i: usize| queued[i].iter().any(|q| history::same_play(q, listen));
            let wanted: Vec<usize> = (0..o.pending.len())
                .filter(|&i| {
                    !holds(i)
                        && known.as_ref().is_none_or(|(_, r)| !r.has(&names[i]))
                        && !self.too_old(&names[i], listen.started_at, now)
                })
                .collect();
            // A play new to the history is recorded even when no target
            // takes it (none configured, or it is too old for them).
            let new_play = known.is_none() && history.is_some() && !(0..o.pending.len()).any(holds);
            if wanted.is_empty() && !new_play {
                skipped += 1;
                continue;
            }
            let (id, record) = match known {
                Some((hkey, mut r)) => {
                    r.queued.extend(wanted.iter().map(|&i| names[i].clone()));
                    (history::split_key(&hkey).map_or(0, |(_, id)| id), r)
                }
                None => {
                    let holders: Vec<String> = (0..o.pending.len())
                        .filter(|&i| holds(i) || wanted.contains(&i))
                        .map(|i| names[i].clone())
                        .collect();
                    let key = o.next_key().map_err(err)?;
                    o.meta.insert(open::LAST_ID, &key).map_err(err)?;
                    (
                        u64::from_be_bytes(key),
                        Record::new(listen, &PlayInfo::default(), &holders),
                    )
                }
            };
            let value = stored(listen);
            let mut trees: Vec<sled::Tree> = wanted.iter().map(|&i| o.pending[i].clone()).collect();
            let n = trees.len();
            if let Some(h) = &history {
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
                    Ok::<_, Conflict>(())
                })
                .map_err(|e| self.err(storage_error(e)))?;
            added += 1;
        }
        o.db.flush().map_err(err)?;
        if let Some(last) = o.meta.get(open::LAST_ID).ok().flatten() {
            if let Ok(k) = <Key>::try_from(last.as_ref()) {
                open::record_last_write(&self.shared.path, u64::from_be_bytes(k));
            }
        }
        Ok((added, skipped))
    }

    /// Forget history records of plays that started before `before`, except
    /// those still waiting in a queue. Returns how many went.
    pub fn prune_history(&self, before: u64) -> Result<usize, QueueError> {
        let Some(h) = self.history()? else {
            return Ok(0);
        };
        let o = self.shared.current()?;
        let waiting = |id: u64| {
            let k = id.to_be_bytes();
            o.pending.iter().any(|t| t.contains_key(k).unwrap_or(true))
        };
        let removed = h.prune(before, waiting).map_err(|e| self.err(e))?;
        if removed > 0 {
            o.db.flush().map_err(|e| self.err(e))?;
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
        let Some(h) = self.history()? else {
            return Ok(Backfill::default());
        };
        let o = self.shared.current()?;
        let i = self
            .shared
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
            (&o.pending[i], h.tree())
                .transaction(|(q, ht)| {
                    q.insert(&id.to_be_bytes(), value.as_slice())?;
                    ht.insert(&hkey, record.as_slice())?;
                    Ok::<_, Conflict>(())
                })
                .map_err(|e| self.err(storage_error(e)))?;
            done.queued += 1;
        }
        o.db.flush().map_err(|e| self.err(e))?;
        Ok(done)
    }

    /// Queue a love for every target in one transaction, on disk before
    /// this returns.
    pub fn enqueue_love(&self, love: &Love) -> Result<(), QueueError> {
        let o = self.shared.current()?;
        let err = |source| self.err(source);
        let trees: Vec<sled::Tree> = self
            .shared
            .names
            .iter()
            .map(|t| o.db.open_tree(format!("loves/{t}")))
            .collect::<Result<_, _>>()
            .map_err(err)?;
        let value = serde_json::to_vec(love).expect("a love always serialises");
        let key = o.next_key().map_err(err)?;
        insert_all(&trees, &key, &value).map_err(err)?;
        o.db.flush().map_err(err)?;
        Ok(())
    }

    /// The target names the queue was opened with.
    pub fn names(&self) -> &[String] {
        &self.shared.names
    }

    /// Write everything to disk (used at shutdown).
    pub fn flush(&self) -> Result<(), QueueError> {
        let o = self.shared.current()?;
        o.db.flush().map(drop).map_err(|e| self.err(e))
    }

    /// Whether the database is open now (an I/O error closes it until
    /// [`Queue::reopen_blocking`] or a write opens it again).
    pub fn is_open(&self) -> bool {
        self.shared.if_open().is_ok()
    }

    /// Open the database again if an error closed it. Blocking.
    pub fn reopen_blocking(&self) -> Result<(), QueueError> {
        self.shared.current().map(drop)
    }

    /// Wait until an error closes the database.
    pub async fn closed(&self) {
        self.shared.closed.notified().await
    }
}

impl TargetQueue {
    fn err(&self, source: sled::Error) -> QueueError {
        self.shared.fail(source)
    }

    /// This target's trees in the open database.
    fn trees(&self) -> Result<Trees, QueueError> {
        let o = self.shared.if_open()?;
        let i = self
            .shared
            .names
            .iter()
            .position(|n| *n == self.name)
            .expect("checked by Queue::target");
        let open = |prefix: &str| {
            o.db.open_tree(format!("{prefix}/{}", self.name))
                .map_err(|e| self.err(e))
        };
        Ok(Trees {
            db: o.db.clone(),
            pending: o.pending[i].clone(),
            rejected: open("rejected")?,
            loves: open("loves")?,
            inflight: open("inflight")?,
        })
    }

    /// The oldest `n` items, oldest first, without removing them. An item that
    /// cannot be decoded is set aside (with a log line) rather than blocking
    /// the queue.
    pub async fn peek(&self, n: usize) -> Result<Vec<(Key, Listen)>, QueueError> {
        let t = self.trees()?;
        let mut out = Vec::with_capacity(n);
        let mut unreadable = Vec::new();
        for item in t.pending.iter() {
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

    /// Move an item the server refused for good to the rejected list.
    pub async fn set_aside(
        &self,
        key: Key,
        listen: &Listen,
        reason: &str,
    ) -> Result<(), QueueError> {
        let t = self.trees()?;
        self.move_to_rejected(&key, &rejected_value(listen, reason))?;
        t.db.flush_async().await.map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Atomically take `key` out of the pending queue and keep `value` for
    /// it in the rejected list.
    fn move_to_rejected(&self, key: &[u8], value: &[u8]) -> Result<(), QueueError> {
        let t = self.trees()?;
        (&t.pending, &t.rejected)
            .transaction(|(p, r)| {
                p.remove(key)?;
                r.insert(key, value)?;
                Ok::<_, Conflict>(())
            })
            .map_err(|e| self.err(storage_error(e)))
    }

    /// The oldest queued love, if any.
    pub fn peek_love(&self) -> Result<Option<(Key, Love)>, QueueError> {
        let t = self.trees()?;
        let Some((k, v)) = t.loves.first().map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        let key: Key = k.as_ref().try_into().unwrap_or_default();
        match serde_json::from_slice(&v) {
            Ok(love) => Ok(Some((key, love))),
            Err(e) => {
                tracing::error!("a queued love cannot be read ({e}); dropped");
                t.loves.remove(k).map_err(|e| self.err(e))?;
                self.peek_love()
            }
        }
    }

    /// Remove a love once delivered or refused for good.
    pub async fn remove_love(&self, key: Key) -> Result<(), QueueError> {
        let t = self.trees()?;
        t.loves.remove(key).map_err(|e| self.err(e))?;
        t.db.flush_async().await.map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Record `flight` as sent, on disk before this returns: one fsync per
    /// request. Returns the record's id.
    pub async fn mark_in_flight(&self, flight: &InFlight) -> Result<Key, QueueError> {
        let value = serde_json::to_vec(&StoredFlight {
            v: FORMAT_VERSION,
            flight: flight.clone(),
        })
        .expect("a record always serialises");
        let t = self.trees()?;
        let id = t.db.generate_id().map_err(|e| self.err(e))?.to_be_bytes();
        t.inflight.insert(id, value).map_err(|e| self.err(e))?;
        t.db.flush_async().await.map_err(|e| self.err(e))?;
        Ok(id)
    }

    /// The oldest request whose outcome is not known, if any. A record that
    /// cannot be read is dropped with a log line: its items are still
    /// queued and are simply sent again.
    pub fn in_flight(&self) -> Result<Option<(Key, InFlight)>, QueueError> {
        let t = self.trees()?;
        for item in t.inflight.iter() {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let key: Key = k.as_ref().try_into().unwrap_or_default();
            match serde_json::from_slice::<StoredFlight>(&v) {
                Ok(s) => return Ok(Some((key, s.flight))),
                Err(e) => {
                    tracing::error!(
                        "in-flight record {} cannot be read ({e}); its scrobbles are sent again",
                        hex::encode(&k)
                    );
                    t.inflight.remove(&k).map_err(|e| self.err(e))?;
                }
            }
        }
        Ok(None)
    }

    /// Forget an in-flight record after an answer that changes nothing in
    /// the queue (a refusal before anything was stored). Not flushed: a
    /// record that survives a crash only makes the server be asked again.
    pub fn clear_in_flight(&self, id: Key) -> Result<(), QueueError> {
        self.trees()?.inflight.remove(id).map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Settle an in-flight request in one transaction: remove what the
    /// server has, set aside what it refused for good, and forget the
    /// record; on disk before this returns.
    pub async fn finish_in_flight(
        &self,
        id: Key,
        delivered: &[Key],
        refused: &[(Key, Listen, String)],
    ) -> Result<(), QueueError> {
        let refused: Vec<(Key, Vec<u8>)> = refused
            .iter()
            .map(|(k, listen, reason)| (*k, rejected_value(listen, reason)))
            .collect();
        let t = self.trees()?;
        // With the history off, a tree no play is written to: nothing to mark.
        let history =
            t.db.open_tree(match self.shared.history_on {
                true => history::TREE,
                false => "history-off",
            })
            .map_err(|e| self.err(e))?;
        let now = crate::scrobble::unix_now();
        let name = &self.name;
        (&t.pending, &t.rejected, &t.inflight, &history)
            .transaction(|(p, r, f, h)| {
                for k in delivered {
                    let Some(v) = p.remove(k)? else { continue };
                    // Record in the history, in this transaction, that this
                    // target accepted the play now. A play queued before the
                    // history existed has no record.
                    let Ok(s) = serde_json::from_slice::<Stored>(&v) else {
                        continue;
                    };
                    let hkey = history::key(s.listen.started_at, u64::from_be_bytes(*k));
                    if let Some(mut rec) = h.get(hkey)?.and_then(|v| Record::decode(&v)) {
                        rec.delivered.insert(name.clone(), now);
                        h.insert(&hkey, rec.encode())?;
                    }
                }
                for (k, value) in &refused {
                    p.remove(k)?;
                    r.insert(k, value.as_slice())?;
                }
                f.remove(&id)?;
                Ok::<_, Conflict>(())
            })
            .map_err(|e| self.err(storage_error(e)))?;
        t.db.flush_async().await.map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Those of `keys` still queued, with their listens, in queue order.
    pub fn items(&self, keys: &[Key]) -> Result<Vec<(Key, Listen)>, QueueError> {
        let t = self.trees()?;
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            if let Some(v) = t.pending.get(k).map_err(|e| self.err(e))? {
                if let Ok(s) = serde_json::from_slice::<Stored>(&v) {
                    out.push((*k, s.listen));
                }
            }
        }
        out.sort_by_key(|(k, _)| *k);
        Ok(out)
    }

    /// Start time of the oldest waiting item.
    pub fn oldest(&self) -> Option<u64> {
        let t = self.trees().ok()?;
        let (_, v) = t.pending.first().ok()??;
        serde_json::from_slice::<Stored>(&v)
            .ok()
            .map(|s| s.listen.started_at)
    }

    /// Every waiting item, oldest first (unreadable ones are skipped).
    pub fn list(&self) -> Result<Vec<Item>, QueueError> {
        let t = self.trees()?;
        let mut out = Vec::new();
        for item in t.pending.iter() {
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
        let t = self.trees()?;
        let mut out = Vec::new();
        for item in t.rejected.iter() {
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
        let t = self.trees()?;
        let found = t
            .pending
            .remove(id.to_be_bytes())
            .map_err(|e| self.err(e))?
            .is_some();
        t.db.flush().map_err(|e| self.err(e))?;
        Ok(found)
    }

    /// Put every rejected item back in the queue, in its old place.
    pub fn retry_rejected(&self) -> Result<usize, QueueError> {
        let t = self.trees()?;
        let mut moved = 0;
        for item in t.rejected.iter() {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let Ok(r) = serde_json::from_slice::<Rejected>(&v) else {
                continue;
            };
            let value = serde_json::to_vec(&Stored {
                v: FORMAT_VERSION,
                listen: r.listen,
            })
            .expect("a listen always serialises");
            (&t.pending, &t.rejected)
                .transaction(|(p, rj)| {
                    rj.remove(&k)?;
                    p.insert(&k, value.as_slice())?;
                    Ok::<_, Conflict>(())
                })
                .map_err(|e| self.err(storage_error(e)))?;
            moved += 1;
        }
        t.db.flush().map_err(|e| self.err(e))?;
        Ok(moved)
    }

    /// Number of items waiting.
    pub fn len(&self) -> usize {
        let Ok(t) = self.trees() else { return 0 };
        t.pending.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        let Ok(t) = self.trees() else { return true };
        t.pending.is_empty()
    }

    /// Number of items set aside.
    pub fn rejected_len(&self) -> usize {
        let Ok(t) = self.trees() else { return 0 };
        t.rejected.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::PlayInfo;
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
            let sent = a
                .mark_in_flight(&InFlight {
                    keys: vec![first[0].0, first[1].0],
                    first: first[0].1.started_at,
                    last: first[1].1.started_at,
                    sent_at_ms: 0,
                })
                .await
                .unwrap();
            a.finish_in_flight(sent, &[first[0].0, first[1].0], &[])
                .await
                .unwrap();
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
    async fn an_in_flight_record_survives_a_reopen_and_settles_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let flight = {
            let q = Queue::open(dir.path(), &["a"]).unwrap();
            for i in 0..4 {
                q.enqueue(&listen(i)).await.unwrap();
            }
            let t = q.target("a");
            let batch = t.peek(3).await.unwrap();
            let flight = InFlight {
                keys: batch.iter().map(|(k, _)| *k).collect(),
                first: batch[0].1.started_at,
                last: batch[2].1.started_at,
                sent_at_ms: 1_700_000_000_000,
            };
            t.mark_in_flight(&flight).await.unwrap();
            flight
        };
        let q = Queue::open(dir.path(), &["a"]).unwrap();
        let t = q.target("a");
        let (id, found) = t.in_flight().unwrap().expect("recorded before the send");
        assert_eq!(found, flight);
        let items = t.items(&found.keys).unwrap();
        assert_eq!(items.len(), 3);
        t.finish_in_flight(
            id,
            &[items[0].0],
            &[(items[1].0, items[1].1.clone(), "ignored".into())],
        )
        .await
        .unwrap();
        assert!(t.in_flight().unwrap().is_none());
        assert_eq!(t.len(), 2, "the third item and the unsent fourth stay");
        assert_eq!(t.rejected_len(), 1);
        assert_eq!(t.items(&found.keys).unwrap(), vec![items[2].clone()]);
    }

    #[tokio::test]
    async fn history_follows_enqueue_delivery_import_and_backfill() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path(), &["a", "b"]).unwrap();
        let info = PlayInfo {
            uri: Some("x/y.flac".into()),
            played_secs: Some(120),
        };
        q.enqueue_play_blocking(&listen(1), &info).unwrap();
        let h = q.history().unwrap().unwrap();
        let (_, r) = h.find(&listen(1)).unwrap().unwrap();
        assert_eq!(
            (r.uri.as_deref(), r.played_secs),
            (Some("x/y.flac"), Some(120))
        );
        assert_eq!(r.queued, ["a", "b"]);

        // Delivery to "a" removes it there and records when.
        let a = q.target("a");
        let (k, l) = a.peek(1).await.unwrap().remove(0);
        assert_eq!(l, listen(1));
        a.finish_in_flight([0; 8], &[k], &[]).await.unwrap();
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
        assert_eq!(q.history().unwrap().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn no_history_when_switched_off() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path(), &["a"])
            .unwrap()
            .record_history(false);
        q.enqueue(&listen(1)).await.unwrap();
        assert!(q.history().unwrap().is_none());
        let q2 = {
            drop(q);
            Queue::open(dir.path(), &["a"]).unwrap()
        };
        assert_eq!(q2.history().unwrap().unwrap().len(), 0);
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

    fn queued_titles(q: &Queue, target: &str) -> Vec<String> {
        q.target(target)
            .list()
            .unwrap()
            .into_iter()
            .map(|i| i.listen.track.title)
            .collect()
    }

    /// Two scrobbles queued, the daemon stopped, then `damage` done to the
    /// database file: the scrobbles survive, or the database is set aside
    /// with a report; and the new queue works, new items after the old.
    fn survives_or_reports(damage: impl Fn(&Path)) {
        let dir = tempfile::tempdir().unwrap();
        {
            let q = Queue::open(dir.path(), &["a"]).unwrap();
            q.enqueue_blocking(&listen(1)).unwrap();
            q.enqueue_blocking(&listen(2)).unwrap();
        }
        damage(&dir.path().join("queue").join("db"));
        let q = Queue::open(dir.path(), &["a"]).unwrap();
        let kept = queued_titles(&q, "a");
        let copies = damaged_copies(dir.path());
        if kept.len() < 2 {
            assert_eq!(copies.len(), 1, "lost {kept:?} without a report");
            let report = copies[0].1.as_deref().unwrap_or_default();
            assert!(report.contains("set aside"), "{report}");
        }
        q.enqueue_blocking(&listen(3)).unwrap();
        let after = queued_titles(&q, "a");
        assert_eq!(after.last(), Some(&listen(3).track.title), "{after:?}");
        assert_eq!(after.len(), kept.len() + 1);
        drop(q);
        // The fresh database is not mistaken for a damaged one.
        let q = Queue::open(dir.path(), &["a"]).unwrap();
        assert_eq!(damaged_copies(dir.path()).len(), copies.len());
        assert_eq!(queued_titles(&q, "a"), after);
    }

    fn overwrite(path: &Path, at: u64, bytes: &[u8]) {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        f.seek(SeekFrom::Start(at)).unwrap();
        f.write_all(bytes).unwrap();
    }

    #[test]
    fn a_few_damaged_bytes_are_never_a_silent_loss() {
        for at in [10, 200, 400] {
            survives_or_reports(|db| overwrite(db, at, &[0xde, 0xad, 0xbe, 0xef, 0xde, 0xad]));
        }
    }

    #[test]
    fn a_truncated_tail_is_never_a_silent_loss() {
        survives_or_reports(|db| {
            let len = std::fs::metadata(db).unwrap().len();
            std::fs::OpenOptions::new()
                .write(true)
                .open(db)
                .unwrap()
                .set_len(len / 2)
                .unwrap();
        });
    }

    #[test]
    fn garbage_over_the_whole_file_is_never_a_silent_loss() {
        survives_or_reports(|db| {
            let len = std::fs::metadata(db).unwrap().len() as usize;
            let garbage: Vec<u8> = (0..len).map(|i| (i * 7919 % 251) as u8).collect();
            std::fs::write(db, garbage).unwrap();
        });
    }

    #[test]
    fn damaged_bytes_are_reported_and_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        {
            let q = Queue::open(dir.path(), &["a"]).unwrap();
            q.enqueue_blocking(&listen(1)).unwrap();
            q.enqueue_blocking(&listen(2)).unwrap();
        }
        // sled 0.34 takes this for a torn tail and opens an empty queue.
        overwrite(&dir.path().join("queue/db"), 200, b"\xde\xad\xbe\xef");
        let _q = Queue::open(dir.path(), &["a"]).unwrap();
        let copies = damaged_copies(dir.path());
        assert_eq!(copies.len(), 1);
        assert!(
            copies[0].0.join("db").exists(),
            "the damaged database itself is kept"
        );
    }

    #[test]
    fn a_start_that_died_inside_sled_sets_the_database_aside_and_keeps_its_items() {
        let dir = tempfile::tempdir().unwrap();
        {
            let q = Queue::open(dir.path(), &["a", "b"]).unwrap();
            q.enqueue_blocking(&listen(1)).unwrap();
            q.enqueue_blocking(&listen(2)).unwrap();
        }
        // One start that died there may have been killed: opened as usual.
        std::fs::write(dir.path().join("queue/opening"), b"1").unwrap();
        drop(Queue::open(dir.path(), &["a", "b"]).unwrap());
        assert!(damaged_copies(dir.path()).is_empty());
        assert!(!open_died(dir.path()));
        // Two in a row: set aside.
        std::fs::write(dir.path().join("queue/opening"), b"2").unwrap();
        assert!(open_died(dir.path()));
        let q = Queue::open(dir.path(), &["a", "b"]).unwrap();
        assert_eq!(damaged_copies(dir.path()).len(), 1);
        assert!(!open_died(dir.path()));
        assert_eq!(queued_titles(&q, "a"), queued_titles(&q, "b"));
        assert_eq!(
            queued_titles(&q, "a").len(),
            2,
            "readable items carried over"
        );
        q.enqueue_blocking(&listen(3)).unwrap();
        let ids: Vec<u64> = q.target("a").list().unwrap().iter().map(|i| i.id).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "FIFO kept: {ids:?}");
    }

    #[test]
    fn a_rebuild_cut_short_is_finished_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        {
            let q = Queue::open(dir.path(), &["a"]).unwrap();
            for i in 0..3 {
                q.enqueue_blocking(&listen(i)).unwrap();
            }
        }
        // What a start killed between moving the database aside and
        // renaming the rebuilt one into place leaves behind.
        let aside = dir.path().join("queue.damaged-1");
        std::fs::rename(dir.path().join("queue"), &aside).unwrap();
        std::fs::write(
            dir.path().join("queue.rebuilding"),
            aside.as_os_str().as_encoded_bytes(),
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("queue.rebuild")).unwrap();
        let q = Queue::open(dir.path(), &["a"]).unwrap();
        assert_eq!(queued_titles(&q, "a").len(), 3, "nothing lost");
        assert!(!dir.path().join("queue.rebuilding").exists());
        assert!(!dir.path().join("queue.rebuild").exists());
    }

    #[test]
    fn writing_the_last_play_again_does_not_queue_it_twice() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path(), &["a"]).unwrap();
        q.enqueue_blocking(&listen(1)).unwrap();
        q.enqueue_blocking(&listen(1)).unwrap();
        assert_eq!(q.target("a").len(), 1);
        q.enqueue_blocking(&listen(2)).unwrap();
        assert_eq!(q.target("a").len(), 2);
    }

    #[test]
    fn an_undamaged_database_reopens_without_a_report() {
        let dir = tempfile::tempdir().unwrap();
        for round in 0..3 {
            let q = Queue::open(dir.path(), &["a"]).unwrap();
            q.enqueue_blocking(&listen(round)).unwrap();
            if round == 1 {
                let t = q.target("a");
                let items = t.list().unwrap();
                assert!(t.drop_item(items[0].id).unwrap());
            }
        }
        assert!(damaged_copies(dir.path()).is_empty());
        // An empty database, opened and closed, is not damage either.
        let other = tempfile::tempdir().unwrap();
        drop(Queue::open(other.path(), &["a"]).unwrap());
        drop(Queue::open(other.path(), &["a"]).unwrap());
        assert!(damaged_copies(other.path()).is_empty());
    }
}
