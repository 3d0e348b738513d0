//! Standing orders: an idle flusher leaves its next step with the storage
//! thread ([`crate::store`]), which takes it right after it has queued a
//! play. The flusher is then woken once, with its request recorded and
//! ready to send, instead of being woken to go and look (a trip to the
//! storage thread and back: two wake-ups and a sync of their own, per play).
//!
//! The storage thread serves one request at a time, so a play queued while
//! a flusher decides to wait is never missed: either the flusher's step
//! sees the play, or its order is parked before the play is written.

use std::sync::Arc;

use tokio::sync::oneshot;

use super::step::{self, Next};
use crate::model::unix_now;
use crate::queue::{Queue, QueueError};
use crate::targets::Target;

/// What a flusher's step found, as the flusher receives it.
pub(crate) type Found = Result<Next, QueueError>;

/// A flusher's next step ([`step::next`]), to take on the storage thread.
pub(crate) struct Step {
    name: String,
    target: Arc<dyn Target>,
}

impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Step").field("target", &self.name).finish()
    }
}

impl Step {
    /// The next step of the flusher of the target `name`, served by `target`.
    pub(crate) fn new(name: &str, target: Arc<dyn Target>) -> Step {
        Step {
            name: name.to_owned(),
            target,
        }
    }

    /// Find and prepare the next step on `queue`; a request it records is
    /// on disk.
    pub(crate) fn take(&self, queue: &Queue) -> Found {
        self.take_as(queue, step::Record::Synced)
    }

    fn take_as(&self, queue: &Queue, record: step::Record) -> Found {
        step::next(
            &queue.target(&self.name),
            &*self.target,
            &self.name,
            unix_now(),
            record,
        )
    }
}

/// The parked orders of idle flushers, held by the storage thread.
#[derive(Default)]
pub(crate) struct Standing {
    orders: Vec<(Step, oneshot::Sender<Found>)>,
}

impl Standing {
    /// Take `step` now; if there is nothing to do, park it until a play is
    /// queued.
    pub(crate) fn step_or_park(
        &mut self,
        queue: &Queue,
        step: Step,
        reply: oneshot::Sender<Found>,
    ) {
        // Orders whose flushers stopped waiting (woken by a love, say) go
        // now, rather than pile up until the next play.
        self.orders.retain(|(_, reply)| !reply.is_closed());
        match step.take(queue) {
            Ok(Next::Idle) => self.orders.push((step, reply)),
            found => answer(queue, &step, reply, found),
        }
    }

    /// Take the parked steps: a play was just written. The requests they
    /// record are not synced yet: the caller syncs the database, with the
    /// play, and then hands them out with [`Prepared::hand_out`] (or
    /// withdraws them with [`Prepared::withdraw`] if the sync failed).
    pub(crate) fn serve(&mut self, queue: &Queue) -> Prepared {
        let mut prepared = Vec::new();
        for (step, reply) in std::mem::take(&mut self.orders) {
            if reply.is_closed() {
                continue;
            }
            match step.take_as(queue, step::Record::Unsynced) {
                // The play was not for this target (a rule left it out).
                Ok(Next::Idle) => self.orders.push((step, reply)),
                found => prepared.push((step, reply, found)),
            }
        }
        Prepared(prepared)
    }
}

/// Steps taken for parked orders, to hand out once their in-flight
/// records are on disk.
#[must_use = "the flushers wait for these"]
pub(crate) struct Prepared(Vec<(Step, oneshot::Sender<Found>, Found)>);

impl Prepared {
    /// The database was synced: hand each step to its flusher.
    pub(crate) fn hand_out(self, queue: &Queue) {
        for (step, reply, found) in self.0 {
            answer(queue, &step, reply, found);
        }
    }

    /// The sync failed: no request may go out on a record that may not be
    /// on disk. The records are withdrawn and the flushers, their orders
    /// dropped, look again on their own.
    pub(crate) fn withdraw(self, queue: &Queue) {
        for (step, _, found) in self.0 {
            if let Ok(Next::Send(batch)) = found {
                if let Err(e) = queue.target(&step.name).clear_in_flight(batch.first_flight) {
                    tracing::debug!("cannot withdraw an unsent request's record: {e}");
                }
            }
        }
    }
}

/// Hand `found` to the flusher. One that stopped waiting meanwhile (a love
/// to send, new credentials, shutdown) takes its own next step: a request
/// recorded for it is withdrawn, or it would wait out the request timeout
/// and ask the server about a request never sent.
fn answer(queue: &Queue, step: &Step, reply: oneshot::Sender<Found>, found: Found) {
    if let Err(Ok(Next::Send(batch))) = reply.send(found) {
        if let Err(e) = queue.target(&step.name).clear_in_flight(batch.first_flight) {
            tracing::debug!("cannot withdraw an unsent request's record: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_listen as listen;
    use crate::targets::fake::Fake;

    fn step() -> Step {
        Step::new("a", Arc::new(Fake::new(50)))
    }

    #[tokio::test]
    async fn a_parked_order_is_served_once_a_play_is_queued() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path(), &["a"]).unwrap();
        let mut standing = Standing::default();
        let (reply, mut answer) = oneshot::channel();
        standing.step_or_park(&q, step(), reply);
        assert!(answer.try_recv().is_err(), "nothing queued: parked");
        standing.serve(&q).hand_out(&q);
        assert!(answer.try_recv().is_err(), "still nothing queued");
        q.enqueue(&listen(1)).await.unwrap();
        let prepared = standing.serve(&q);
        assert!(answer.try_recv().is_err(), "handed out only after the sync");
        q.flush().unwrap();
        prepared.hand_out(&q);
        let Ok(Ok(Next::Send(batch))) = answer.try_recv() else {
            panic!("the play was not handed over");
        };
        assert_eq!(batch.items[0].1, listen(1));
        let (id, _) = q
            .target("a")
            .in_flight()
            .unwrap()
            .expect("recorded before the send");
        assert_eq!(id, batch.first_flight);
        assert!(standing.orders.is_empty(), "served orders are gone");
    }

    #[tokio::test]
    async fn a_request_prepared_for_a_flusher_that_stopped_waiting_is_withdrawn() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path(), &["a"]).unwrap();
        let t = q.target("a");
        q.enqueue(&listen(1)).await.unwrap();
        let mut standing = Standing::default();
        let (reply, answer) = oneshot::channel();
        drop(answer);
        standing.step_or_park(&q, step(), reply);
        assert!(
            t.in_flight().unwrap().is_none(),
            "no record of a request never sent"
        );
        assert_eq!(t.len(), 1, "the play stays queued");
        // A parked order nobody waits for any more is dropped unrun.
        t.finish_in_flight([0; 8], &[t.peek(1).unwrap()[0].0], &[])
            .unwrap();
        let (reply, answer) = oneshot::channel();
        standing.step_or_park(&q, step(), reply);
        drop(answer);
        q.enqueue(&listen(2)).await.unwrap();
        standing.serve(&q).hand_out(&q);
        assert!(t.in_flight().unwrap().is_none());
        assert!(standing.orders.is_empty());
    }
}
