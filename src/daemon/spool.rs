//! Plays on their way into the queue: the watch loop hands each qualified
//! play to the spool and goes straight back to MPD; the writer task hands
//! them, in order, to the storage thread ([`crate::store`]) and waits for
//! them to be on disk.
//!
//! A play that cannot be written now (a full or read-only disk) stays held
//! in memory, up to [`HOLD_LIMIT`] plays, and is written as soon as writing
//! works again: the writer retries with a capped backoff, at once when a new
//! play arrives. Past the limit the oldest held play is dropped (servers
//! refuse very old scrobbles anyway), with one log line.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::daemon::watchdog::Beat;
use crate::events::{Event, Events, StorageProblem};
use crate::history::PlayInfo;
use crate::model::Listen;
use crate::model::describe;
use crate::queue::QueueError;
use crate::time::local_time;

/// Most plays held in memory while the queue cannot be written: about three
/// weeks of continuous listening.
pub(super) const HOLD_LIMIT: usize = 10_000;
/// First wait after a failed write.
const RETRY_MIN: Duration = Duration::from_millis(250);
/// Longest wait between attempts.
const RETRY_MAX: Duration = Duration::from_secs(10);
/// Most plays written in one go.
const BATCH: usize = 100;

/// Why writing fails, as far as the user can act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Fault {
    /// No space left on the file system.
    Full,
    /// Read-only file system, or no permission.
    Unwritable,
    /// Anything else.
    Failing,
}

/// A failed write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct WriteError {
    /// What kind of failure.
    pub fault: Fault,
    /// The error, for the log and `status`.
    pub message: String,
}

impl From<&QueueError> for WriteError {
    fn from(e: &QueueError) -> WriteError {
        use std::io::ErrorKind;
        let fault = match e.io_kind() {
            Some(ErrorKind::StorageFull | ErrorKind::QuotaExceeded) => Fault::Full,
            Some(ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem) => Fault::Unwritable,
            _ => Fault::Failing,
        };
        WriteError {
            fault,
            message: e.to_string(),
        }
    }
}

/// Where the writer puts plays: the queue, through the storage thread
/// (`route.rs`); a stand-in in the tests.
pub(super) trait Sink: Send + Sync + 'static {
    /// Write `plays` durably, in order, stopping at the first failure: how
    /// many were written, and the failure. Writing the play just written
    /// again must not queue it twice.
    fn write(
        &self,
        plays: Vec<(Listen, PlayInfo)>,
    ) -> impl Future<Output = (usize, Option<WriteError>)> + Send;

    /// Start afresh after a failed write (sled's errors are sticky).
    fn reopen(&self) -> impl Future<Output = ()> + Send;
}

/// The plays waiting to be written, and how writing goes.
#[derive(Debug, Default)]
pub(super) struct Spool {
    /// Held plays in order, each with its sequence number.
    held: Mutex<VecDeque<(u64, Listen, PlayInfo)>>,
    next_seq: AtomicU64,
    wake: Notify,
    failing: Mutex<Option<WriteError>>,
    dropped: AtomicU64,
    /// Plays written since the daemon started.
    recorded: AtomicU64,
    /// Where a change of [`Spool::failing`] is told, with the fix for the
    /// state directory.
    events: Events,
    state_dir: PathBuf,
}

impl Fault {
    /// What the user does about it, for the state directory `dir`.
    pub(super) fn fix(self, dir: &Path) -> String {
        let dir = dir.display();
        match self {
            Fault::Full => format!(
                "free some space on the file system of {dir} (`df -h {dir}`); \
                 held plays are written as soon as there is room"
            ),
            Fault::Unwritable => format!(
                "make {dir} writable for the user that runs the daemon (or remount it \
                 read-write); held plays are written as soon as it is"
            ),
            Fault::Failing => {
                "see the daemon's log; held plays are written as soon as writing works".into()
            }
        }
    }
}

/// The spool's state for `status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(super) struct SpoolState {
    /// Plays in memory, not yet in the queue.
    pub held: usize,
    /// Plays dropped because the limit was reached.
    pub dropped: u64,
    /// Set while writes fail.
    pub fault: Option<Fault>,
    /// The last write error.
    pub why: Option<String>,
}

impl Spool {
    /// An empty spool.
    #[cfg(test)]
    pub(super) fn new() -> Spool {
        Spool::default()
    }

    /// An empty spool that tells `events` when plays start or stop being
    /// held because the state directory `state_dir` cannot be written.
    pub(super) fn observed(events: Events, state_dir: PathBuf) -> Spool {
        Spool {
            events,
            state_dir,
            ..Spool::default()
        }
    }

    /// Plays written since the daemon started.
    pub(super) fn recorded(&self) -> u64 {
        self.recorded.load(Ordering::Relaxed)
    }

    /// Hand a play over for writing, with what the history keeps of it
    /// beyond the listen. Never blocks.
    pub(super) fn push(&self, listen: Listen, info: PlayInfo) {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.push_back((seq, listen, info));
        if held.len() > HOLD_LIMIT {
            if let Some((_, old, _)) = held.pop_front() {
                // One line per episode: the first drop after the limit is reached.
                if self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                    tracing::error!(
                        "{HOLD_LIMIT} plays are held in memory because the queue cannot be \
                         written; from now on the oldest held play is dropped for each new one \
                         (first dropped: {} started at {})",
                        describe(&old.track),
                        local_time(old.started_at)
                    );
                }
            }
        }
        drop(held);
        self.wake.notify_one();
    }

    /// Plays held in memory.
    pub(super) fn held(&self) -> usize {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// What `status` shows.
    pub(super) fn state(&self) -> SpoolState {
        let failing = self
            .failing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        SpoolState {
            held: self.held(),
            dropped: self.dropped.load(Ordering::Relaxed),
            fault: failing.as_ref().map(|f| f.fault),
            why: failing.map(|f| f.message),
        }
    }

    fn front(&self, n: usize) -> Vec<(u64, Listen, PlayInfo)> {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.iter().take(n).cloned().collect()
    }

    /// Forget the plays up to and including `seq` (written).
    fn written(&self, seq: u64) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        while held.front().is_some_and(|(s, _, _)| *s <= seq) {
            held.pop_front();
        }
        if held.is_empty() {
            self.dropped.store(0, Ordering::Relaxed);
        }
    }

    fn set_failing(&self, e: Option<WriteError>) {
        let mut failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        let fault = |f: &Option<WriteError>| f.as_ref().map(|f| f.fault);
        if fault(&failing) != fault(&e) {
            self.events
                .send(Event::Storage(e.as_ref().map(|e| StorageProblem {
                    why: e.message.clone(),
                    fix: e.fault.fix(&self.state_dir),
                })));
        }
        *failing = e;
    }

    /// Drain what is held, for the log at exit.
    fn take_all(&self) -> Vec<Listen> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.drain(..).map(|(_, l, _)| l).collect()
    }
}

/// Write the front of the spool once. Returns the error that stopped it,
/// if any.
async fn write_some(spool: &Spool, sink: &impl Sink) -> Result<(), WriteError> {
    let batch = spool.front(BATCH);
    if batch.is_empty() {
        return Ok(());
    }
    let seqs: Vec<u64> = batch.iter().map(|(seq, _, _)| *seq).collect();
    // The end of a play already written only completes its record.
    let new: Vec<bool> = batch.iter().map(|(_, _, i)| !i.ended).collect();
    let plays = batch.into_iter().map(|(_, l, i)| (l, i)).collect();
    let (written, error) = sink.write(plays).await;
    let recorded = new.iter().take(written).filter(|n| **n).count();
    spool.recorded.fetch_add(recorded as u64, Ordering::Relaxed);
    if let Some(last) = written.checked_sub(1).and_then(|i| seqs.get(i)) {
        spool.written(*last);
    }
    match error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Write held plays until shutdown. At shutdown, one more attempt of at
/// most `final_attempt`, then every play still held is logged as lost.
pub(super) async fn run_writer(
    spool: Arc<Spool>,
    sink: Arc<impl Sink>,
    shutdown: CancellationToken,
    beat: Beat,
    final_attempt: Duration,
) {
    let mut wait = RETRY_MIN;
    let mut failing: Option<WriteError> = None;
    loop {
        match write_some(&spool, &*sink).await {
            Ok(()) => {
                if let Some(e) = failing.take() {
                    tracing::info!("the queue can be written again (after: {})", e.message);
                    spool.set_failing(None);
                }
                wait = RETRY_MIN;
                if spool.held() > 0 {
                    continue;
                }
                tokio::select! {
                    () = spool.wake.notified() => {}
                    () = beat.asked() => beat.answer(),
                    () = shutdown.cancelled() => break,
                }
            }
            Err(e) => {
                if failing.as_ref().map(|f| &f.message) != Some(&e.message) {
                    tracing::error!(
                        "cannot write to the queue: {}; {} plays are held in memory and \
                         written when it works again{}",
                        e.message,
                        spool.held(),
                        match e.fault {
                            Fault::Full => " (free some space on that file system)",
                            Fault::Unwritable => " (make the state directory writable)",
                            Fault::Failing => "",
                        }
                    );
                }
                spool.set_failing(Some(e.clone()));
                failing = Some(e);
                // The next attempt reopens the database anyway (sled's
                // errors are sticky); reopening now keeps it off the path
                // of the next play.
                sink.reopen().await;
                let sleep = tokio::time::sleep(wait);
                tokio::pin!(sleep);
                loop {
                    tokio::select! {
                        () = &mut sleep => break,
                        () = spool.wake.notified() => break,
                        () = beat.asked() => beat.answer(),
                        () = shutdown.cancelled() => {
                            finish(&spool, &*sink, final_attempt).await;
                            return;
                        }
                    }
                }
                wait = (wait * 2).min(RETRY_MAX);
            }
        }
    }
    finish(&spool, &*sink, final_attempt).await;
}

/// At shutdown: try once more, within `limit`, then log loudly what could
/// not be written.
async fn finish(spool: &Spool, sink: &impl Sink, limit: Duration) {
    if spool.held() == 0 {
        return;
    }
    let _ = tokio::time::timeout(limit, async {
        while spool.held() > 0 {
            if write_some(spool, sink).await.is_err() {
                break;
            }
        }
    })
    .await;
    let lost = spool.take_all();
    if lost.is_empty() {
        return;
    }
    tracing::error!(
        "exiting with {} plays that could not be written to the queue; they are lost:",
        lost.len()
    );
    for l in lost {
        tracing::error!(
            "  lost: {} started at {}",
            describe(&l.track),
            local_time(l.started_at)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_listen as listen;

    /// Fails its first `failures` writes, then keeps what it is given.
    #[derive(Default)]
    struct Flaky {
        failures: Mutex<u32>,
        written: Mutex<Vec<Listen>>,
        attempts: AtomicU64,
        reopened: AtomicU64,
    }

    impl Sink for Flaky {
        async fn write(&self, plays: Vec<(Listen, PlayInfo)>) -> (usize, Option<WriteError>) {
            let all = plays.len();
            for (n, (listen, _)) in plays.into_iter().enumerate() {
                self.attempts.fetch_add(1, Ordering::Relaxed);
                let mut f = self.failures.lock().unwrap();
                if *f > 0 {
                    *f -= 1;
                    let full = WriteError {
                        fault: Fault::Full,
                        message: "No space left on device".into(),
                    };
                    return (n, Some(full));
                }
                self.written.lock().unwrap().push(listen);
            }
            (all, None)
        }

        async fn reopen(&self) {
            self.reopened.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn start(store: Arc<Flaky>) -> (Arc<Spool>, CancellationToken, tokio::task::JoinHandle<()>) {
        let spool = Arc::new(Spool::new());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run_writer(
            Arc::clone(&spool),
            store,
            shutdown.clone(),
            Beat::new(),
            Duration::from_secs(1),
        ));
        (spool, shutdown, task)
    }

    /// Let the writer run until `done` holds, advancing the paused clock in
    /// small steps (the stand-in writes at once: no thread to wait for).
    async fn until(done: impl Fn() -> bool) {
        for _ in 0..10_000 {
            if done() {
                return;
            }
            tokio::task::yield_now().await;
            tokio::time::advance(Duration::from_millis(50)).await;
        }
        panic!("condition not reached");
    }

    #[tokio::test(start_paused = true)]
    async fn plays_made_while_writes_fail_are_written_in_order_once() {
        let store = Arc::new(Flaky {
            failures: Mutex::new(5),
            ..Flaky::default()
        });
        let (spool, shutdown, task) = start(Arc::clone(&store));
        for i in 0..3 {
            spool.push(listen(i), PlayInfo::default());
        }
        until(|| store.attempts.load(Ordering::Relaxed) >= 3).await;
        assert!(store.written.lock().unwrap().is_empty());
        let state = spool.state();
        assert_eq!(state.held, 3);
        assert_eq!(state.fault, Some(Fault::Full));
        assert!(
            store.reopened.load(Ordering::Relaxed) >= 1,
            "reopened after a failure"
        );
        // More plays while failing; they queue behind the first.
        for i in 3..6 {
            spool.push(listen(i), PlayInfo::default());
        }
        until(|| store.written.lock().unwrap().len() == 6).await;
        assert_eq!(
            *store.written.lock().unwrap(),
            (0..6).map(listen).collect::<Vec<_>>()
        );
        assert_eq!(spool.state().held, 0);
        assert_eq!(spool.state().fault, None);
        shutdown.cancel();
        task.await.unwrap();
        assert_eq!(store.written.lock().unwrap().len(), 6, "nothing twice");
    }

    #[tokio::test(start_paused = true)]
    async fn the_oldest_play_is_dropped_past_the_limit() {
        let store = Arc::new(Flaky {
            failures: Mutex::new(u32::MAX),
            ..Flaky::default()
        });
        let (spool, shutdown, task) = start(Arc::clone(&store));
        for i in 0..(HOLD_LIMIT as u64 + 5) {
            spool.push(listen(i), PlayInfo::default());
        }
        let state = spool.state();
        assert_eq!(state.held, HOLD_LIMIT);
        assert_eq!(state.dropped, 5);
        // The failure clears: what is held goes out, the five oldest do not.
        *store.failures.lock().unwrap() = 0;
        spool.push(listen(HOLD_LIMIT as u64 + 5), PlayInfo::default());
        until(|| spool.held() == 0).await;
        let written = store.written.lock().unwrap().clone();
        assert_eq!(written.len(), HOLD_LIMIT);
        assert_eq!(written[0], listen(6));
        assert_eq!(written.last(), Some(&listen(HOLD_LIMIT as u64 + 5)));
        assert_eq!(spool.state().dropped, 0, "reset once all is written");
        shutdown.cancel();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_while_failing_ends_promptly_and_gives_up_the_held_plays() {
        let store = Arc::new(Flaky {
            failures: Mutex::new(u32::MAX),
            ..Flaky::default()
        });
        let (spool, shutdown, task) = start(Arc::clone(&store));
        spool.push(listen(0), PlayInfo::default());
        until(|| store.attempts.load(Ordering::Relaxed) >= 2).await;
        shutdown.cancel();
        until(|| task.is_finished()).await;
        assert_eq!(spool.held(), 0, "logged as lost");
        assert!(store.written.lock().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_writes_what_it_holds_when_it_can() {
        let store = Arc::new(Flaky {
            failures: Mutex::new(1),
            ..Flaky::default()
        });
        let (spool, shutdown, task) = start(Arc::clone(&store));
        spool.push(listen(0), PlayInfo::default());
        until(|| store.attempts.load(Ordering::Relaxed) >= 1).await;
        // The writer now waits out its backoff; shutdown comes first.
        shutdown.cancel();
        until(|| task.is_finished()).await;
        assert_eq!(*store.written.lock().unwrap(), vec![listen(0)]);
    }
}
