//! The flusher's calls to the disk thread ([`crate::disk`]): its steps,
//! its standing order while idle, and writes left to finish on their own.

use std::sync::Arc;

use tokio::sync::{oneshot, watch};

use super::Flusher;
use super::policy::Stop;
use super::standing::Order;
use super::step::{self, Next};
use crate::config::Secret;
use crate::queue::{QueueError, TargetQueue};
use crate::scrobble::unix_now;

impl Flusher {
    /// Find and prepare the next step, on the disk thread.
    pub(super) async fn step(&self) -> Result<Next, Stop> {
        let step = self.step_fn();
        let standing = Arc::clone(&self.standing);
        self.on_disk(move |_| standing.step(step)).await
    }

    /// [`step::next`] for this target, to run on the disk thread.
    fn step_fn(&self) -> impl FnMut() -> Result<Next, QueueError> + Send + 'static {
        let (queue, target) = (self.queue.clone(), Arc::clone(&self.handle.target));
        let name = self.handle.name.clone();
        move || step::next(&queue, &*target, &name, unix_now())
    }

    /// The queue was empty: leave a standing order with the writer and wait
    /// for its answer, a wake-up (a love, an import), new credentials or
    /// shutdown. The order is checked once more on the disk thread first, in
    /// case a play came in since the queue was read.
    pub(super) async fn wait_for_work(
        &self,
        session: &mut watch::Receiver<Option<Secret>>,
    ) -> Woken {
        let (reply, answer) = oneshot::channel();
        let order = Order {
            queue: self.queue.clone(),
            step: Box::new(self.step_fn()),
            reply,
        };
        let standing = Arc::clone(&self.standing);
        self.on_disk_later(move |_| {
            standing.step_or_park(order);
            Ok(())
        });
        // Dropping `answer` on the other branches withdraws the order.
        tokio::select! {
            found = answer => match found {
                Ok(found) => Woken::Found(found),
                Err(_) => Woken::Look,
            },
            () = self.handle.wake.notified() => Woken::Look,
            changed = session.changed() => match changed {
                Ok(()) => Woken::Session,
                Err(_) => Woken::Shutdown,
            },
            () = self.shutdown.cancelled() => Woken::Shutdown,
        }
    }

    /// Run `f` on this target's queue on the disk thread ([`crate::disk`]).
    /// Any sled call may wait for the disk: once a transaction has run,
    /// sled guards every operation with one process-wide read-write lock, a
    /// flush holds it for reading until its fsync returns, and a transaction
    /// waits for it while every later reader waits behind the transaction.
    /// On the runtime thread that froze the MPD watcher for as long as an
    /// fsync took (seconds on an SD card or a busy disk), so song changes
    /// were seen late and short plays were missed.
    pub(super) async fn on_disk<T: Send + 'static>(
        &self,
        f: impl FnOnce(TargetQueue) -> Result<T, QueueError> + Send + 'static,
    ) -> Result<T, Stop> {
        self.settled().await?;
        let queue = self.queue.clone();
        match self.disk.run(move || f(queue)).await {
            Some(result) => result.map_err(Stop::Queue),
            // Only a runtime shutting down drops a job unrun.
            None => Err(Stop::Shutdown),
        }
    }

    /// Start `f` on the disk thread without waiting for it: the runtime
    /// thread is not woken when it ends. The next [`Flusher::on_disk`]
    /// waits for it first (so the queue is read after it on tokio's pool
    /// too) and reports its failure.
    pub(super) fn on_disk_later(
        &self,
        f: impl FnOnce(TargetQueue) -> Result<(), QueueError> + Send + 'static,
    ) {
        let queue = self.queue.clone();
        let job = self.disk.run(move || f(queue));
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(job);
    }

    /// Wait for the calls started by [`Flusher::on_disk_later`], if any.
    pub(super) async fn settled(&self) -> Result<(), Stop> {
        let jobs = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        let mut outcome = Ok(());
        for job in jobs {
            let result = match job.await {
                Some(result) => result.map_err(Stop::Queue),
                None => Err(Stop::Shutdown),
            };
            if outcome.is_ok() {
                outcome = result;
            }
        }
        outcome
    }

    /// Items waiting, for log lines (read off the runtime thread, as
    /// [`Flusher::on_disk`] explains).
    pub(super) async fn queued(&self) -> usize {
        self.on_disk(|q| Ok(q.len())).await.unwrap_or(0)
    }
}

/// Why an idle flusher woke up.
pub(super) enum Woken {
    /// Its standing order was taken: what the step found.
    Found(Result<Next, QueueError>),
    /// Something may be queued: take a step.
    Look,
    /// New credentials.
    Session,
    /// Shut down.
    Shutdown,
}
