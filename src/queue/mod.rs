//! The durable scrobble queue: one sled database in the state directory, one
//! FIFO tree per target (`queue/<target>`), one tree of items a server
//! rejected for good (`rejected/<target>`), and one of the requests sent but
//! not yet answered (`inflight/<target>`), so that a crash or a timeout
//! mid-request leaves a record of what the server may have stored.
//!
//! An enqueue writes the listen to every target's tree and its record to the
//! listening history ([`crate::history`]) in one transaction and waits for
//! the fsync before returning, so a play that qualified survives a crash and
//! is never in a queue without being in the history, or the other way round.
//! Items leave a queue only through [`TargetQueue::finish_in_flight`] (the
//! server took them, or refused them for good) or [`TargetQueue::set_aside`]
//! (refused for good before sending).
//!
//! An I/O error closes the database and the next operation opens it again
//! (sled's errors are sticky); opening checks for damage (`open.rs`)
//! and sets a damaged database aside (`salvage.rs`).
//!
//! Files: `enqueue.rs` writes plays and loves, `import.rs` imports and
//! backfills, `target.rs` is one target's view, `stored.rs` the stored forms,
//! `shared.rs` the handle every clone shares.

mod disk;
mod enqueue;
mod import;
mod open;
mod outbox;
mod salvage;
mod shared;
mod stored;
mod target;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::model::Listen;
pub use import::{Imported, Known};
pub use outbox::{Entry as OutboxEntry, MIGRATION_BATCH};
pub use salvage::{DAMAGED_PREFIX, REPORT_FILE, damaged_copies, open_died};
use shared::Shared;

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
    /// The thread running a write ended before it.
    #[error("queue database {0}: the write was cut off by the shutdown")]
    Interrupted(PathBuf),
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

/// A love or unlove of a track, queued like a scrobble so that one made
/// while a target is unreachable still arrives.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Love {
    /// The track.
    pub track: crate::model::Track,
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

/// What `backfill` did for its target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backfill {
    /// Plays queued for the target.
    pub queued: usize,
    /// Plays the target has already (delivered, waiting or refused).
    pub already: usize,
    /// Plays too old for the target, left out.
    pub too_old: usize,
}

/// A play written by [`Queue::write_play`], to be made durable by
/// [`Queue::make_durable`]: its key, or `None` when it was already the
/// last play written (a retry).
#[derive(Debug)]
#[must_use = "a play written is not durable until `make_durable`"]
pub struct WrittenPlay(Option<u64>);

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

impl Queue {
    /// Open (or create) the queue under `state_dir`, with a tree per target.
    /// A damaged database is set aside and a fresh one started (see
    /// `open.rs`).
    pub fn open(state_dir: &Path, targets: &[&str]) -> Result<Queue, QueueError> {
        let queue = Queue::unopened(state_dir, targets);
        let o = match open::open(&queue.shared.path, &queue.shared.names) {
            Ok(o) => o,
            Err(disk::OpenError::Locked) => return Err(QueueError::Locked(state_dir.to_owned())),
            Err(disk::OpenError::Io(source)) => {
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

    /// Whether another process (a running daemon) holds the queue database
    /// under `state_dir`; answered at once, without waiting for it.
    pub fn held_elsewhere(state_dir: &Path) -> bool {
        open::held_by_another(&state_dir.join("queue"))
    }

    /// Whether plays go to the history (`[history] enabled`).
    pub fn history_on(&self) -> bool {
        self.shared.history_on
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

    /// The target names the queue was opened with.
    pub fn names(&self) -> &[String] {
        &self.shared.names
    }

    /// The database's directory.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Sync everything written so far (at shutdown, and after a play and
    /// the requests it lets go out).
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
        self.shared.closed.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::PlayInfo;
    use crate::model::Track;

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
            let first = a.peek(2).unwrap();
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
                .unwrap();
            a.finish_in_flight(sent, &[first[0].0, first[1].0], &[])
                .unwrap();
            assert_eq!(a.len(), 3);
            assert_eq!(q.target("b").len(), 5, "targets are independent");
        }
        let q = Queue::open(dir.path(), &["a", "b"]).unwrap();
        let rest = q.target("a").peek(50).unwrap();
        assert_eq!(
            rest.iter().map(|(_, l)| l.clone()).collect::<Vec<_>>(),
            vec![listen(2), listen(3), listen(4)]
        );
    }

    #[tokio::test]
    async fn enqueue_each_gives_each_target_its_own_version() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path(), &["a", "b", "c"]).unwrap();
        let mut rewritten = listen(1);
        rewritten.track.title = "Rewritten".into();
        q.enqueue_each(&listen(1), &[("a", listen(1)), ("c", rewritten.clone())])
            .await
            .unwrap();
        let a = q.target("a").list().unwrap();
        let c = q.target("c").list().unwrap();
        assert_eq!(a[0].listen, listen(1));
        assert_eq!(c[0].listen, rewritten);
        assert_eq!(a[0].id, c[0].id, "one play, one key");
        assert!(q.target("b").is_empty(), "left out");
        // The same play written again (a retried write) queues nothing.
        q.enqueue_each_blocking(&listen(1), &[("a", listen(1))], &PlayInfo::default())
            .unwrap();
        assert_eq!(q.target("a").len(), 1);
    }

    #[tokio::test]
    async fn set_aside_moves_to_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path(), &["a"]).unwrap();
        q.enqueue(&listen(1)).await.unwrap();
        let t = q.target("a");
        let (k, l) = t.peek(1).unwrap().remove(0);
        t.set_aside(k, &l, "error 6: Invalid parameters").unwrap();
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
        let (k, l) = t.peek(1).unwrap().remove(0);
        t.set_aside(k, &l, "error 6").unwrap();
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
            let batch = t.peek(3).unwrap();
            let flight = InFlight {
                keys: batch.iter().map(|(k, _)| *k).collect(),
                first: batch[0].1.started_at,
                last: batch[2].1.started_at,
                sent_at_ms: 1_700_000_000_000,
            };
            t.mark_in_flight(&flight).unwrap();
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
        .unwrap();
        assert!(t.in_flight().unwrap().is_none());
        assert_eq!(t.len(), 2, "the third item and the unsent fourth stay");
        assert_eq!(t.rejected_len(), 1);
        assert_eq!(t.items(&found.keys).unwrap(), vec![items[2].clone()]);
    }

    #[tokio::test]
    async fn the_outbox_holds_the_history_changes_until_they_are_done() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path(), &["a", "b"]).unwrap();
        let info = PlayInfo {
            ended: false,
            uri: Some("x/y.flac".into()),
            played_secs: Some(120),
        };
        q.enqueue_play_blocking(&listen(1), &info).unwrap();
        let a = q.target("a");
        let (k, _) = a.peek(1).unwrap().remove(0);
        a.finish_in_flight([0; 8], &[k], &[]).unwrap();
        q.record_played_blocking(&listen(1), 200).unwrap();
        let entries = q.outbox(usize::MAX).unwrap();
        let changes: Vec<_> = entries.iter().map(|e| e.change.clone()).collect();
        let crate::history::Change::Play { key, record } = &changes[0] else {
            panic!("{changes:?}");
        };
        assert_eq!(key.to_be_bytes(), k);
        assert_eq!(record.queued, ["a", "b"]);
        assert_eq!(record.uri.as_deref(), Some("x/y.flac"));
        assert!(
            matches!(&changes[1], crate::history::Change::Delivered { target, .. } if target == "a")
        );
        assert!(matches!(
            &changes[2],
            crate::history::Change::Played { secs: 200, .. }
        ));
        q.outbox_done(&entries).unwrap();
        assert!(q.outbox(usize::MAX).unwrap().is_empty());
    }

    #[tokio::test]
    async fn no_history_when_switched_off() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path(), &["a"])
            .unwrap()
            .record_history(false);
        q.enqueue(&listen(1)).await.unwrap();
        assert!(q.outbox(usize::MAX).unwrap().is_empty());
        assert_eq!(q.target("a").len(), 1);
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
            let len = usize::try_from(std::fs::metadata(db).unwrap().len()).unwrap();
            let garbage: Vec<u8> = (0..len)
                .map(|i| u8::try_from(i * 7919 % 251).unwrap())
                .collect();
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
