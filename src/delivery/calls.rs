//! The flusher's calls to the storage thread ([`crate::store`]): its
//! steps, its standing order while idle, and settling writes left to
//! finish on their own.

use std::sync::Arc;

use tokio::sync::watch;

use super::Flusher;
use super::policy::Stop;
use crate::config::Secret;
use crate::queue::QueueError;
use crate::store::{Next, Step};

impl Flusher {
    /// Find and prepare the next step.
    pub(super) async fn step(&self) -> Result<Next, Stop> {
        self.settled().await?;
        self.store.step(self.next_step()).await.map_err(Stop::Queue)
    }

    fn next_step(&self) -> Step {
        Step::new(&self.handle.name, Arc::clone(&self.handle.target))
    }

    /// The queue was empty: leave a standing order with the storage thread
    /// and wait for its answer, a wake-up (a love, an import), new
    /// credentials or shutdown. The order is taken at once first, in case a
    /// play came in since the queue was read.
    pub(super) async fn wait_for_work(
        &self,
        session: &mut watch::Receiver<Option<Secret>>,
    ) -> Woken {
        let answer = self.store.standing_order(self.next_step());
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

    /// Run `call` once the settling writes started before have finished,
    /// so that a failure of theirs is reported first.
    pub(super) async fn after_settled<T>(
        &self,
        call: impl Future<Output = Result<T, QueueError>>,
    ) -> Result<T, Stop> {
        self.settled().await?;
        call.await.map_err(Stop::Queue)
    }

    /// Wait for the settling writes started by [`Flusher::settle`], if any.
    /// They were done long ago, as a rule: the runtime thread was not woken
    /// when they ended.
    pub(super) async fn settled(&self) -> Result<(), Stop> {
        let jobs = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        let mut outcome = Ok(());
        for job in jobs {
            let result = match job.await {
                Ok(result) => result.map_err(Stop::Queue),
                // Only a storage thread that died drops a request unserved.
                Err(_) => Err(Stop::Shutdown),
            };
            if outcome.is_ok() {
                outcome = result;
            }
        }
        outcome
    }

    /// Items waiting, for log lines.
    pub(super) async fn queued(&self) -> usize {
        self.store.len(&self.handle.name).await
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
