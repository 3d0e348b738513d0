//! The owner of the queue database (sled) and of the history's writer
//! (SQLite, [`history`]): a thread of its own that takes typed requests
//! ([`Request`]), serves them one at a time in the order they were sent
//! ([`Owner::serve`]), and answers each on a oneshot channel. The daemon
//! reads and writes the queue and the history only through [`Store`], its
//! handle; nothing else in the daemon calls sled or writes the history.
//! The history commands read `history.sqlite` themselves (WAL lets them
//! read while this thread writes).
//!
//! Why a thread: any sled call can wait on the disk. Once a transaction has
//! run, sled guards every operation with one process-wide lock, which a
//! flush holds until its sync returns. On the runtime thread that froze the
//! MPD watcher for as long as a sync took (seconds on an SD card), so song
//! changes were seen late and short plays were missed. tokio's blocking
//! pool costs more wake-ups than the work needs (its idle thread is woken
//! while the pool's lock is still held, and two jobs at once take a second
//! thread, with its own stack and malloc arena). This thread sleeps on a
//! channel, wakes once per request, and writes sled's log buffers itself
//! (`sled::write_log_on_this_thread`, vendor/sled/PATCHED.md) rather than
//! handing each write to sled's pool and waiting for it.
//!
//! # What is on disk, and when
//!
//! "Flushed" means sled's `flush()` returned, which in vendor/sled means
//! the log was written and fdatasynced. Requests are served in the order
//! they were sent, so a request sees the effect of every one sent before
//! it, answered or not.
//!
//! History changes go through the queue's outbox (a sled tree written in
//! the same transaction as the queue change they go with, `crate::queue`'s
//! `outbox.rs`): this thread applies it to SQLite and removes entries only
//! after a synced SQLite commit covers them ("history-synced" below); an
//! unsynced commit lets readers see a change at once, and leaves its
//! entries in the outbox. At start, a sled history of an older release is
//! moved to SQLite ([`migrate`]) and the outbox is replayed.
//!
//! - [`Request::Enqueue`]: each play goes to the queues of the targets the
//!   rules route it to and its record to the outbox, in one transaction,
//!   flushed; only then is it logged `queued`. After the batch, the outbox is
//!   applied to SQLite unsynced (readers see it at once; the outbox, on
//!   disk, covers a cut), and history-synced once it holds
//!   `OUTBOX_SYNC_AT` entries, so a play costs one sync. A play already the last one written (a
//!   retry after a failed flush) is not queued twice. After the last play is
//!   written, and before its flush, the parked standing orders are taken:
//!   the in-flight records of the requests they prepare are written, and
//!   the one flush makes the play and those records durable together (one
//!   wait on the disk per play); the requests are handed out only after it
//!   (and withdrawn if it failed). Then the writer hears how many plays are
//!   written.
//! - [`Request::Step`], [`Request::StandingOrder`] (`store::step`): an
//!   item too old for the target is set aside, flushed; the first request
//!   of a batch is recorded as in flight, flushed, before the answer: a
//!   request never goes out before its record is on disk. An order with
//!   nothing to do is parked and served after the next `Enqueue`. (An
//!   unreadable item or record met on the way is moved aside or dropped
//!   unflushed: losing that move only meets it again.)
//! - [`Request::MarkInFlight`]: flushed before the answer (the same
//!   guarantee for the later requests of a batch).
//! - [`Request::Settle`], [`Request::FinishInFlight`]: one transaction
//!   removes what the server took (its "delivered" marks to the outbox,
//!   applied to SQLite unsynced),
//!   sets aside what it refused and forgets the record. Not flushed: it
//!   reaches the disk with the next flushed write, or the final
//!   [`Request::Flush`]. A cut before then leaves the record, which was on
//!   disk before the request went out, so the server is asked what it
//!   stored rather than sent the batch again; this saves a sync per request.
//! - [`Request::ClearInFlight`]: not flushed; a record that survives only
//!   makes the server be asked again.
//! - [`Request::RemoveLove`], [`Request::Love`]: flushed before the answer.
//! - [`Request::Queue`] (drop, retry), [`Request::Import`] (a batch of an
//!   import or a backfill; then history-synced), [`Request::PruneHistory`]
//!   (one synced SQLite transaction): flushed before the answer, so a
//!   command reports success only for what is on disk.
//! - [`Request::Flush`]: the outbox history-synced, then everything
//!   written so far (the daemon's last request, at shutdown).
//! - [`Request::Ended`]: the time really played, an outbox entry applied
//!   unsynced, not flushed (losing it leaves the time at which the play
//!   counted).
//! - [`Request::Items`], [`Request::Len`], [`Request::Counts`] (the
//!   history's size from a trigger-kept count), `queue list`: read only.
//!
//! An I/O error closes the database (`crate::queue`); [`Request::Reopen`],
//! or the next play written, opens it again.

pub(crate) mod history;
mod queue_cmd;
mod standing;
mod step;

use std::collections::{BTreeMap, HashSet};
use std::sync::mpsc;

use std::path::PathBuf;

use tokio::sync::oneshot;

use crate::config::Config;
use crate::history::{Filter, PlayInfo};
use crate::model::{Listen, describe};
use crate::output::count;
use crate::queue::{Imported, InFlight, Key, Known, Love, OutboxEntry, Queue, QueueError};
use crate::time::local_time;
pub(crate) use history::HistorySummary;
use history::{HistoryDb, HistoryError};
pub(crate) use queue_cmd::{QueueCmd, QueueCmdError, QueueReply, execute};
use standing::Standing;
pub(crate) use standing::{Found, Step};
pub(crate) use step::{Batch, Next, flight};

/// Last.fm ignores plays older than this (14 days).
pub(crate) const LASTFM_MAX_AGE: u64 = 14 * 86_400;

/// The history switch and the targets' age limits from `config`.
pub(crate) fn configure(queue: Queue, config: &Config) -> Queue {
    config
        .lastfm
        .iter()
        .fold(queue.record_history(config.history.enabled), |q, t| {
            q.with_max_age(&t.name, LASTFM_MAX_AGE)
        })
}

/// Where a request's answer goes.
type Answer<T> = oneshot::Sender<T>;

/// Reports the queue depth per target after a write changed it (the
/// daemon's status line for systemd, the notifications' oldest queued
/// play); runs on the storage thread.
pub(crate) type DepthReport = Box<dyn Fn(&[Depth<'_>]) + Send>;

/// One target's queue, as a [`DepthReport`] hears it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Depth<'a> {
    /// The target's name.
    pub name: &'a str,
    /// Items waiting.
    pub queued: usize,
    /// When the oldest waiting play started (Unix seconds).
    pub oldest: Option<u64>,
}

/// One play for the queue.
#[derive(Debug, Clone)]
pub(crate) struct Play {
    /// As played: what the history records, and what tells a repeated
    /// write apart.
    pub listen: Listen,
    /// Each target's version of it (the rules may rewrite it, or leave a
    /// target out).
    pub routed: Vec<(String, Listen)>,
    /// What the history keeps beyond the listen.
    pub info: PlayInfo,
}

/// How far an [`Request::Enqueue`] got.
#[derive(Debug)]
pub(crate) struct Written {
    /// Plays written, from the front.
    pub count: usize,
    /// What stopped the rest.
    pub failed: Option<QueueError>,
}

/// Where a play that counted went (`status`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Fate {
    /// Targets still owed it.
    pub queued_for: Vec<String>,
    /// Targets that accepted it.
    pub delivered_to: Vec<String>,
}

/// One target's figures for `status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TargetCounts {
    /// Items waiting.
    pub queued: usize,
    /// Items set aside.
    pub rejected: usize,
    /// Start time of the oldest waiting item.
    pub oldest: Option<u64>,
}

/// The queue's part of `status`.
#[derive(Debug, Clone)]
pub(crate) struct Counts {
    /// Per target name.
    pub targets: BTreeMap<String, TargetCounts>,
    /// The history's size.
    pub history: HistorySummary,
    /// Whether the database is open (an I/O error closes it).
    pub open: bool,
    /// The fate of the play asked about, if it is in the history.
    pub fate: Option<Fate>,
}

/// What the storage thread does; one variant per operation. The effect of
/// each on the disk is in the module's documentation.
pub(crate) enum Request {
    /// Write plays, in order, stopping at the first failure.
    Enqueue {
        plays: Vec<Play>,
        reply: Answer<Written>,
    },
    /// Take a flusher's next step now.
    Step { step: Step, reply: Answer<Found> },
    /// Take a flusher's next step now, or once a play is queued.
    StandingOrder { step: Step, reply: Answer<Found> },
    /// Record a request as sent.
    MarkInFlight {
        target: String,
        flight: InFlight,
        reply: Answer<Result<Key, QueueError>>,
    },
    /// Act on the answer to a request the server accepted, and log it.
    Settle {
        target: String,
        id: Key,
        delivered: Vec<Key>,
        refused: Vec<(Key, Listen, String)>,
        reply: Answer<Result<(), QueueError>>,
    },
    /// Act on what is known of a request and forget its record.
    FinishInFlight {
        target: String,
        id: Key,
        delivered: Vec<Key>,
        refused: Vec<(Key, Listen, String)>,
        reply: Answer<Result<(), QueueError>>,
    },
    /// Forget a request's record; the queue is unchanged.
    ClearInFlight {
        target: String,
        id: Key,
        reply: Answer<Result<(), QueueError>>,
    },
    /// Those of `keys` still queued for `target`.
    Items {
        target: String,
        keys: Vec<Key>,
        reply: Answer<Result<Vec<(Key, Listen)>, QueueError>>,
    },
    /// Remove a love once delivered or refused for good.
    RemoveLove {
        target: String,
        key: Key,
        reply: Answer<Result<(), QueueError>>,
    },
    /// Items waiting for `target`.
    Len {
        target: String,
        reply: Answer<usize>,
    },
    /// Queue a love or unlove for every target.
    Love {
        love: Box<Love>,
        reply: Answer<Result<(), QueueError>>,
    },
    /// `queue list`, `queue drop`, `queue retry`.
    Queue {
        cmd: QueueCmd,
        reply: Answer<Result<QueueReply, QueueCmdError>>,
    },
    /// A batch of `import`, or of `backfill` (`only` that target).
    Import {
        listens: Vec<Listen>,
        only: Option<String>,
        reply: Answer<Result<Imported, StoreError>>,
    },
    /// The queue's part of `status`, and the fate of the play that
    /// started at this time with this title, if it counted.
    Counts {
        play: Option<(u64, String)>,
        reply: Answer<Counts>,
    },
    /// A play that counted has ended: its history record gets the time
    /// really played. Not flushed: the next flushed write carries it.
    Ended {
        play: Box<Listen>,
        played_secs: u64,
        reply: Answer<Result<(), QueueError>>,
    },
    /// Forget history records of plays older than `before`.
    PruneHistory {
        before: u64,
        reply: Answer<Result<usize, StoreError>>,
    },
    /// Write everything to disk.
    Flush {
        reply: Answer<Result<(), QueueError>>,
    },
    /// Open the database again if an error closed it.
    Reopen {
        reply: Answer<Result<(), QueueError>>,
    },
}

/// A handle on the storage thread; cheap to clone. The thread ends when
/// the last handle is dropped.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    requests: mpsc::Sender<Request>,
    /// Only for what needs no disk: the target names, the path for an
    /// error, and the signal that an error closed the database.
    queue: Queue,
}

impl Store {
    /// Start the storage thread, the owner of `queue` from now on.
    /// `report` hears the queue depths at once, then after each write that
    /// changes them.
    pub(crate) fn start(queue: Queue, report: Option<DepthReport>) -> std::io::Result<Store> {
        let (requests, incoming) = mpsc::channel::<Request>();
        let mut owner = Owner {
            queue: queue.clone(),
            history: None,
            applied: HashSet::new(),
            state_dir: queue
                .path()
                .parent()
                .map(std::path::Path::to_owned)
                .unwrap_or_default(),
            standing: Standing::default(),
            report,
        };
        std::thread::Builder::new()
            .name("store".into())
            .spawn(move || {
                sled::write_log_on_this_thread();
                owner.start();
                owner.report_depths();
                while let Ok(request) = incoming.recv() {
                    owner.serve(request);
                }
            })?;
        Ok(Store { requests, queue })
    }

    /// Send a request; its answer, unless the thread is gone (a panic).
    async fn ask<T>(&self, request: impl FnOnce(Answer<T>) -> Request) -> Result<T, QueueError> {
        self.send(request).await.map_err(|_| self.gone())
    }

    /// Send a request; its answer will be on the receiver.
    fn send<T>(&self, request: impl FnOnce(Answer<T>) -> Request) -> oneshot::Receiver<T> {
        let (reply, answer) = oneshot::channel();
        // A request the thread can no longer take is dropped with its
        // reply, which the receiver sees.
        let _ = self.requests.send(request(reply));
        answer
    }

    fn gone(&self) -> QueueError {
        QueueError::Interrupted(self.queue.path().to_owned())
    }

    /// The target names the queue was opened with.
    pub(crate) fn names(&self) -> &[String] {
        self.queue.names()
    }

    /// Wait until an I/O error closes the database.
    pub(crate) async fn closed(&self) {
        self.queue.closed().await;
    }

    /// Write `plays` in order; how many were, and what stopped the rest.
    pub(crate) async fn enqueue(&self, plays: Vec<Play>) -> Written {
        self.ask(|reply| Request::Enqueue { plays, reply })
            .await
            .unwrap_or_else(|e| Written {
                count: 0,
                failed: Some(e),
            })
    }

    /// Take a flusher's next step.
    pub(crate) async fn step(&self, step: Step) -> Found {
        self.ask(|reply| Request::Step { step, reply }).await?
    }

    /// Leave a flusher's next step to be taken now, or after the next play
    /// is queued; dropping the receiver withdraws it.
    pub(crate) fn standing_order(&self, step: Step) -> oneshot::Receiver<Found> {
        self.send(|reply| Request::StandingOrder { step, reply })
    }

    /// Record a request to `target` as sent; its record's id.
    pub(crate) async fn mark_in_flight(
        &self,
        target: &str,
        flight: InFlight,
    ) -> Result<Key, QueueError> {
        let target = target.to_owned();
        self.ask(|reply| Request::MarkInFlight {
            target,
            flight,
            reply,
        })
        .await?
    }

    /// Act on the answer to the accepted request `id`, without waiting: the
    /// runtime is not woken when it is done. Await the receiver for the
    /// outcome.
    pub(crate) fn settle(
        &self,
        target: &str,
        id: Key,
        delivered: Vec<Key>,
        refused: Vec<(Key, Listen, String)>,
    ) -> oneshot::Receiver<Result<(), QueueError>> {
        let target = target.to_owned();
        self.send(|reply| Request::Settle {
            target,
            id,
            delivered,
            refused,
            reply,
        })
    }

    /// Remove `delivered`, set `refused` aside and forget the record `id`.
    pub(crate) async fn finish_in_flight(
        &self,
        target: &str,
        id: Key,
        delivered: Vec<Key>,
        refused: Vec<(Key, Listen, String)>,
    ) -> Result<(), QueueError> {
        let target = target.to_owned();
        self.ask(|reply| Request::FinishInFlight {
            target,
            id,
            delivered,
            refused,
            reply,
        })
        .await?
    }

    /// Forget the record `id`.
    pub(crate) async fn clear_in_flight(&self, target: &str, id: Key) -> Result<(), QueueError> {
        let target = target.to_owned();
        self.ask(|reply| Request::ClearInFlight { target, id, reply })
            .await?
    }

    /// Those of `keys` still queued for `target`, in queue order.
    pub(crate) async fn items(
        &self,
        target: &str,
        keys: Vec<Key>,
    ) -> Result<Vec<(Key, Listen)>, QueueError> {
        let target = target.to_owned();
        self.ask(|reply| Request::Items {
            target,
            keys,
            reply,
        })
        .await?
    }

    /// Remove a delivered (or refused) love.
    pub(crate) async fn remove_love(&self, target: &str, key: Key) -> Result<(), QueueError> {
        let target = target.to_owned();
        self.ask(|reply| Request::RemoveLove { target, key, reply })
            .await?
    }

    /// Items waiting for `target`; 0 when they cannot be counted.
    pub(crate) async fn len(&self, target: &str) -> usize {
        let target = target.to_owned();
        self.ask(|reply| Request::Len { target, reply })
            .await
            .unwrap_or(0)
    }

    /// Queue a love or unlove for every target.
    pub(crate) async fn love(&self, love: Love) -> Result<(), QueueError> {
        let love = Box::new(love);
        self.ask(|reply| Request::Love { love, reply }).await?
    }

    /// Run a `queue` command (list, drop, retry).
    pub(crate) async fn queue_command(&self, cmd: QueueCmd) -> Result<QueueReply, QueueCmdError> {
        self.ask(|reply| Request::Queue { cmd, reply }).await?
    }

    /// Import a batch of listens into the history and the queues (of
    /// `only`, for a backfill); flushed before the answer.
    pub(crate) async fn import(
        &self,
        listens: Vec<Listen>,
        only: Option<String>,
    ) -> Result<Imported, StoreError> {
        self.ask(|reply| Request::Import {
            listens,
            only,
            reply,
        })
        .await?
    }

    /// The queue's part of `status`, with the fate of `play` (its start
    /// time and title) if it counted.
    pub(crate) async fn counts(&self, play: Option<(u64, String)>) -> Counts {
        self.ask(|reply| Request::Counts { play, reply })
            .await
            .unwrap_or_else(|e| Counts {
                targets: BTreeMap::new(),
                history: HistorySummary::Error {
                    error: e.to_string(),
                },
                open: false,
                fate: None,
            })
    }

    /// Record the time really played of `play`, which counted and ended.
    pub(crate) async fn ended(&self, play: Listen, played_secs: u64) -> Result<(), QueueError> {
        self.ask(|reply| Request::Ended {
            play: Box::new(play),
            played_secs,
            reply,
        })
        .await?
    }

    /// Forget history records of plays that started before `before`;
    /// how many went.
    pub(crate) async fn prune_history(&self, before: u64) -> Result<usize, StoreError> {
        self.ask(|reply| Request::PruneHistory { before, reply })
            .await?
    }

    /// Write everything to disk.
    pub(crate) async fn flush(&self) -> Result<(), QueueError> {
        self.ask(|reply| Request::Flush { reply }).await?
    }

    /// Open the database again if an error closed it.
    pub(crate) async fn reopen(&self) -> Result<(), QueueError> {
        self.ask(|reply| Request::Reopen { reply }).await?
    }
}

/// Move a sled history left by an older release (the tree `history` of the
/// queue database) into the history database, in batches: each is synced
/// there before its records leave sled, so a crash midway only repeats a
/// batch, to no effect. The tree is dropped at the end. How many plays
/// moved.
pub(crate) fn migrate(queue: &Queue, db: &mut HistoryDb) -> Result<usize, StoreError> {
    let mut moved = 0usize;
    loop {
        let batch = queue.old_history()?;
        if batch.is_empty() {
            break;
        }
        let changes: Vec<_> = batch.iter().filter_map(|(_, c)| c.clone()).collect();
        db.apply(&changes, true)?;
        let keys: Vec<_> = batch.into_iter().map(|(k, _)| k).collect();
        moved += changes.len();
        queue.old_history_done(&keys)?;
    }
    if moved > 0 {
        tracing::info!(
            "history: moved {} from the queue database to {}",
            count(moved as u64, "play", "plays"),
            history::FILE
        );
    }
    Ok(moved)
}

/// Bring the history database up to date with the queue database when no
/// daemon does: move an old sled history ([`migrate`]) and apply what the
/// outbox holds (a cut between a play's sled sync and its SQLite commit
/// leaves it there), synced, then empty the outbox.
pub(crate) fn catch_up(queue: &Queue, db: &mut HistoryDb) -> Result<(), StoreError> {
    migrate(queue, db)?;
    let mut last = None;
    loop {
        let entries = queue.outbox(OUTBOX_SYNC_AT)?;
        // An entry rewritten since it was read stays; met first again, it
        // would be read for ever.
        let first = entries.first().map(OutboxEntry::ident);
        if entries.is_empty() || first == last {
            return Ok(());
        }
        let changes: Vec<_> = entries.iter().map(|e| e.change.clone()).collect();
        db.apply(&changes, true)?;
        queue.outbox_done(&entries)?;
        queue.flush()?;
        last = first;
    }
}

/// A failure of the queue or of the history database.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// The queue failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The history database failed.
    #[error(transparent)]
    History(#[from] HistoryError),
}

/// Outbox entries at which the history's commit is synced even though
/// nothing asks for it: a handful of plays' worth (each play brings an
/// entry, one per target queued, and its delivery and end), so the outbox
/// stays small and a start replays little.
const OUTBOX_SYNC_AT: usize = 256;

/// What the storage thread holds: the queue, the history database, and
/// the idle flushers' orders.
struct Owner {
    queue: Queue,
    /// Opened at the first need, and again after an error.
    history: Option<HistoryDb>,
    /// Outbox entries applied to the history in commits not yet synced:
    /// they stay in the outbox, and are not applied again, until a synced
    /// commit covers them.
    applied: HashSet<(sled::IVec, sled::IVec)>,
    state_dir: PathBuf,
    standing: Standing,
    report: Option<DepthReport>,
}

impl Owner {
    /// Serve one request and send its answer. A receiver that is gone
    /// (its task ended) does not undo what was done.
    fn serve(&mut self, request: Request) {
        let q = &self.queue.clone();
        match request {
            Request::Enqueue { plays, reply } => {
                let written = self.enqueue(&plays);
                if written.count > 0 {
                    self.history_sync(false);
                    self.report_depths();
                }
                let _ = reply.send(written);
            }
            Request::Step { step, reply } => {
                let _ = reply.send(step.take(q));
            }
            Request::StandingOrder { step, reply } => {
                self.standing.step_or_park(q, step, reply);
            }
            Request::MarkInFlight {
                target,
                flight,
                reply,
            } => {
                let _ = reply.send(q.target(&target).mark_in_flight(&flight));
            }
            Request::Settle {
                target,
                id,
                delivered,
                refused,
                reply,
            } => {
                let t = q.target(&target);
                let done = t.finish_in_flight(id, &delivered, &refused);
                self.history_sync(false);
                if done.is_ok() {
                    tracing::info!(
                        "{target}: delivered {}, {} queued",
                        count(delivered.len() as u64, "scrobble", "scrobbles"),
                        t.len()
                    );
                    self.report_depths();
                }
                let _ = reply.send(done);
            }
            Request::FinishInFlight {
                target,
                id,
                delivered,
                refused,
                reply,
            } => {
                let done = q.target(&target).finish_in_flight(id, &delivered, &refused);
                self.history_sync(false);
                if done.is_ok() && !delivered.is_empty() {
                    self.report_depths();
                }
                let _ = reply.send(done);
            }
            Request::ClearInFlight { target, id, reply } => {
                let _ = reply.send(q.target(&target).clear_in_flight(id));
            }
            Request::Items {
                target,
                keys,
                reply,
            } => {
                let _ = reply.send(q.target(&target).items(&keys));
            }
            Request::RemoveLove { target, key, reply } => {
                let _ = reply.send(q.target(&target).remove_love(key));
            }
            Request::Len { target, reply } => {
                let _ = reply.send(q.target(&target).len());
            }
            Request::Love { love, reply } => {
                let _ = reply.send(q.enqueue_love(&love));
            }
            Request::Queue { cmd, reply } => {
                let answer = execute(q, &cmd);
                self.report_depths();
                let _ = reply.send(answer);
            }
            Request::Import {
                listens,
                only,
                reply,
            } => {
                let _ = reply.send(self.import(&listens, only.as_deref()));
            }
            Request::Counts { play, reply } => {
                let _ = reply.send(self.counts(play));
            }
            Request::Ended {
                play,
                played_secs,
                reply,
            } => {
                let done = q.record_played_blocking(&play, played_secs);
                self.history_sync(false);
                let _ = reply.send(done);
            }
            Request::PruneHistory { before, reply } => {
                let _ = reply.send(self.prune(before));
            }
            Request::Flush { reply } => {
                self.history_sync(true);
                let _ = reply.send(self.queue.flush());
            }
            Request::Reopen { reply } => {
                let _ = reply.send(q.reopen_blocking());
            }
        }
    }

    /// Write each play, logging it as queued once it is on disk. The
    /// flushers need no wake-up of their own: after the last play their
    /// standing orders are taken, and the requests they record are synced
    /// with that play, one wait on the disk for both, before the play is
    /// logged and the requests handed out. A busy flusher looks again when
    /// it is done.
    fn enqueue(&mut self, plays: &[Play]) -> Written {
        let mut count = 0;
        let ends = |play: &Play| play.info.ended && play.info.played_secs.is_some();
        // The standing orders wait for the last new play, not for the end
        // of an earlier one that may follow it.
        let last_new = plays.iter().rposition(|p| !ends(p));
        for (i, play) in plays.iter().enumerate() {
            if let (true, Some(secs)) = (ends(play), play.info.played_secs) {
                // Not a new play: the end of one written before.
                if let Err(e) = self.queue.record_played_blocking(&play.listen, secs) {
                    return Written {
                        count,
                        failed: Some(e),
                    };
                }
                tracing::debug!("{} played {secs} s in all", describe(&play.listen.track));
                count += 1;
                continue;
            }
            let routed: Vec<(&str, Listen)> = play
                .routed
                .iter()
                .map(|(name, listen)| (name.as_str(), listen.clone()))
                .collect();
            let last = Some(i) == last_new;
            let done = self
                .queue
                .write_play(&play.listen, &routed, &play.info)
                .and_then(|written| {
                    // Plays held through a failure are synced one by one:
                    // a retry skips only the last play written.
                    let prepared = last.then(|| self.standing.serve(&self.queue));
                    match self.queue.make_durable(written) {
                        Ok(()) => Ok(prepared),
                        Err(e) => {
                            if let Some(p) = prepared {
                                p.withdraw(&self.queue);
                            }
                            Err(e)
                        }
                    }
                });
            match done {
                Ok(prepared) => {
                    tracing::info!(
                        "queued {} (started at {})",
                        describe(&play.listen.track),
                        local_time(play.listen.started_at)
                    );
                    count += 1;
                    if let Some(p) = prepared {
                        p.hand_out(&self.queue);
                    }
                }
                Err(e) => {
                    return Written {
                        count,
                        failed: Some(e),
                    };
                }
            }
        }
        Written {
            count,
            failed: None,
        }
    }

    fn counts(&mut self, play: Option<(u64, String)>) -> Counts {
        let targets = self
            .queue
            .names()
            .iter()
            .map(|name| {
                let t = self.queue.target(name);
                let counts = TargetCounts {
                    queued: t.len(),
                    rejected: t.rejected_len(),
                    oldest: t.oldest(),
                };
                (name.clone(), counts)
            })
            .collect();
        let history = match self.history_db() {
            None => HistorySummary::Off { enabled: false },
            Some(Err(e)) => HistorySummary::Error {
                error: e.to_string(),
            },
            Some(Ok(db)) => match db.len().and_then(|n| Ok((n, db.first_started()?))) {
                Ok((plays, first_started)) => HistorySummary::Plays {
                    plays,
                    first_started,
                },
                Err(e) => HistorySummary::Error {
                    error: e.to_string(),
                },
            },
        };
        Counts {
            targets,
            history,
            open: self.queue.is_open(),
            fate: play.and_then(|(started, title)| self.fate(started, &title)),
        }
    }

    /// Where the play that started at `started` went, from its history
    /// record: waiting in which queues, accepted by which targets.
    fn fate(&mut self, started: u64, title: &str) -> Option<Fate> {
        let db = self.history_db()?.ok()?;
        let filter = Filter {
            since: Some(started),
            until: Some(started + 1),
            ..Filter::default()
        };
        let mut found = None;
        db.select(&filter, true, |row| {
            if row.record.listen.track.title == title {
                found = Some(row.record);
                return std::ops::ControlFlow::Break(());
            }
            std::ops::ControlFlow::Continue(())
        })
        .ok()?;
        let record = found?;
        Some(Fate {
            queued_for: record
                .queued
                .iter()
                .filter(|t| !record.delivered.contains_key(*t))
                .cloned()
                .collect(),
            delivered_to: record.delivered.keys().cloned().collect(),
        })
    }

    /// The history database, opened if need be; `None` when the history
    /// is off.
    fn history_db(&mut self) -> Option<Result<&mut HistoryDb, HistoryError>> {
        if !self.queue.history_on() {
            return None;
        }
        if self.history.is_none() {
            match HistoryDb::open_writer(&self.state_dir) {
                Ok(db) => self.history = Some(db),
                Err(e) => return Some(Err(e)),
            }
        }
        self.history.as_mut().map(Ok)
    }

    /// At the start: move a sled history left by an older release into the
    /// history database, then apply what the outbox holds (what a crash
    /// left there). Neither reads the history itself.
    fn start(&mut self) {
        if let Err(e) = self.migrate() {
            tracing::error!(
                "history: cannot move the old history to {}: {e}",
                history::FILE
            );
        }
        self.history_sync(true);
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let queue = self.queue.clone();
        if let Some(db) = self.history_db() {
            migrate(&queue, db?)?;
        }
        Ok(())
    }

    /// Apply the outbox to the history database. `durable`: the commit is
    /// synced, and then the entries leave the outbox; otherwise they stay
    /// until a synced commit covers them. Readers see an unsynced commit at
    /// once, and the outbox, on disk with the play, covers a cut, so a play
    /// costs no sync of its own here: the commit is synced once the outbox
    /// holds [`OUTBOX_SYNC_AT`] entries, and at shutdown. A failure leaves
    /// the entries there for the next attempt: the history never stops the
    /// plays.
    fn history_sync(&mut self, durable: bool) {
        if let Err(e) = self.try_history_sync(durable) {
            tracing::warn!("history: {e}; kept in the queue database until it can be written");
            // A broken connection is opened afresh next time, and applies
            // everything again.
            self.history = None;
            self.applied.clear();
        }
    }

    fn try_history_sync(&mut self, durable: bool) -> Result<(), StoreError> {
        let queue = self.queue.clone();
        let mut last = None;
        loop {
            // A full batch is synced and leaves the outbox; then the next.
            let entries = queue.outbox(OUTBOX_SYNC_AT)?;
            let full = entries.len() >= OUTBOX_SYNC_AT;
            let durable = durable || full;
            let fresh: Vec<_> = entries
                .iter()
                .filter(|e| durable || !self.applied.contains(&e.ident()))
                .collect();
            // An entry rewritten since it was read stays; met first again,
            // it would be read for ever.
            let first = entries.first().map(OutboxEntry::ident);
            if fresh.is_empty() || first == last {
                return Ok(());
            }
            let Some(db) = self.history_db() else {
                return Ok(());
            };
            // A synced commit writes every entry again (to no effect on those
            // applied before): its sync is what makes them all durable.
            let changes: Vec<_> = fresh.iter().map(|e| e.change.clone()).collect();
            db?.apply(&changes, durable)?;
            if !durable {
                self.applied.extend(fresh.iter().map(|e| e.ident()));
                return Ok(());
            }
            queue.outbox_done(&entries)?;
            self.applied.clear();
            if !full {
                return Ok(());
            }
            last = first;
        }
    }

    /// A batch of an import or a backfill: what the history knows of each
    /// listen decides which targets still need it.
    fn import(&mut self, listens: &[Listen], only: Option<&str>) -> Result<Imported, StoreError> {
        let mut known = Vec::with_capacity(listens.len());
        if let Some(db) = self.history_db() {
            let db = db?;
            for l in listens {
                known.push(db.known(l)?);
            }
        } else {
            known.resize(listens.len(), None::<Known>);
        }
        let report = self.queue.import_report(listens, &known, only)?;
        self.try_history_sync(true)?;
        self.report_depths();
        Ok(report)
    }

    /// Forget plays older than `before` but those a queue holds.
    fn prune(&mut self, before: u64) -> Result<usize, StoreError> {
        let queue = self.queue.clone();
        match self.history_db() {
            None => Ok(0),
            Some(db) => Ok(db?.prune(before, |k| queue.waiting(k))?),
        }
    }

    fn report_depths(&self) {
        let Some(report) = &self.report else { return };
        let depths: Vec<Depth<'_>> = self
            .queue
            .names()
            .iter()
            .map(|name| {
                let t = self.queue.target(name);
                Depth {
                    name,
                    queued: t.len(),
                    oldest: t.oldest(),
                }
            })
            .collect();
        report(&depths);
    }
}

#[cfg(test)]
mod tests;
