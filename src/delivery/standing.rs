//! Standing orders: an idle flusher leaves its next step with the queue
//! writer, which takes it on the disk thread right after it has queued a
//! play. The flusher is then woken once, with its request recorded and
//! ready to send, instead of being woken to go and look (a trip to the disk
//! thread and back: two wake-ups and a sync of their own, per play).
//!
//! Every step, whether taken by the flusher or for it, runs under one lock,
//! so a play queued while a flusher decides to wait is never missed: either
//! the step sees the play, or the order is parked before the writer looks.

use std::sync::Mutex;

use tokio::sync::oneshot;

use super::step::Next;
use crate::queue::{QueueError, TargetQueue};

/// What a flusher's step found, as the flusher receives it.
pub(super) type Found = Result<Next, QueueError>;

/// The parked orders of idle flushers.
#[derive(Default)]
pub(crate) struct Standing {
    orders: Mutex<Vec<Order>>,
}

impl std::fmt::Debug for Standing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Standing").finish_non_exhaustive()
    }
}

/// One flusher's next step, to take once there is something to do.
pub(super) struct Order {
    /// Its queue, to withdraw a request recorded for a flusher that has
    /// stopped waiting.
    pub queue: TargetQueue,
    /// The step ([`super::step::next`]).
    pub step: Box<dyn FnMut() -> Found + Send>,
    /// Where the flusher waits for what the step found.
    pub reply: oneshot::Sender<Found>,
}

impl Standing {
    fn orders(&self) -> std::sync::MutexGuard<'_, Vec<Order>> {
        self.orders.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Take a step now (on the disk thread).
    pub(super) fn step(&self, step: impl FnOnce() -> Found) -> Found {
        let _orders = self.orders();
        step()
    }

    /// Take `order`'s step now; if there is nothing to do, park it for the
    /// writer (on the disk thread).
    pub(super) fn step_or_park(&self, mut order: Order) {
        let mut orders = self.orders();
        match (order.step)() {
            Ok(Next::Idle) => orders.push(order),
            found => reply(order, found),
        }
    }

    /// Take the parked steps: a play was just queued, and is on disk (the
    /// writer, on the disk thread).
    pub(crate) fn serve(&self) {
        let mut orders = self.orders();
        let parked = std::mem::take(&mut *orders);
        for mut order in parked {
            if order.reply.is_closed() {
                continue;
            }
            match (order.step)() {
                // The play was not for this target (a rule left it out).
                Ok(Next::Idle) => orders.push(order),
                found => reply(order, found),
            }
        }
    }
}

/// Hand `found` to the flusher. One that stopped waiting meanwhile (a love
/// to send, new credentials, shutdown) takes its own next step: a request
/// recorded for it is withdrawn, or it would wait out the request timeout
/// and ask the server about a request never sent.
fn reply(order: Order, found: Found) {
    let Order { queue, reply, .. } = order;
    if let Err(Ok(Next::Send(batch))) = reply.send(found) {
        if let Err(e) = queue.clear_in_flight(batch.first_flight) {
            tracing::debug!("cannot withdraw an unsent request's record: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::reconcile;
    use crate::delivery::step::Batch;
    use crate::queue::Queue;
    use crate::scrobble::test_listen as listen;

    /// An order whose step sends whatever is queued.
    fn order(queue: &TargetQueue) -> (Order, oneshot::Receiver<Found>) {
        let (reply, answer) = oneshot::channel();
        let q = queue.clone();
        let step = Box::new(move || {
            let items = q.peek(50)?;
            if items.is_empty() {
                return Ok(Next::Idle);
            }
            let first_flight = q.mark_in_flight(&reconcile::flight(&items))?;
            Ok(Next::Send(Batch {
                requests: std::iter::once(0..items.len()).collect(),
                items,
                first_flight,
                full: false,
            }))
        });
        let order = Order {
            queue: queue.clone(),
            step,
            reply,
        };
        (order, answer)
    }

    #[tokio::test]
    async fn a_parked_order_is_served_once_a_play_is_queued() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path(), &["a"]).unwrap();
        let t = q.target("a");
        let standing = Standing::default();
        let (o, mut answer) = order(&t);
        standing.step_or_park(o);
        assert!(answer.try_recv().is_err(), "nothing queued: parked");
        standing.serve();
        assert!(answer.try_recv().is_err(), "still nothing queued");
        q.enqueue(&listen(1)).await.unwrap();
        standing.serve();
        let Ok(Ok(Next::Send(batch))) = answer.try_recv() else {
            panic!("the play was not handed over");
        };
        assert_eq!(batch.items[0].1, listen(1));
        let (id, _) = t.in_flight().unwrap().expect("recorded before the send");
        assert_eq!(id, batch.first_flight);
        assert!(standing.orders().is_empty(), "served orders are gone");
    }

    #[tokio::test]
    async fn a_request_prepared_for_a_flusher_that_stopped_waiting_is_withdrawn() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path(), &["a"]).unwrap();
        let t = q.target("a");
        q.enqueue(&listen(1)).await.unwrap();
        let standing = Standing::default();
        let (o, answer) = order(&t);
        drop(answer);
        standing.step_or_park(o);
        assert!(
            t.in_flight().unwrap().is_none(),
            "no record of a request never sent"
        );
        assert_eq!(t.len(), 1, "the play stays queued");
        // A parked order nobody waits for any more is dropped unrun.
        let (o, answer) = order(&q.target("a"));
        t.finish_in_flight([0; 8], &[t.peek(1).unwrap()[0].0], &[])
            .unwrap();
        standing.step_or_park(o);
        drop(answer);
        q.enqueue(&listen(2)).await.unwrap();
        standing.serve();
        assert!(t.in_flight().unwrap().is_none());
        assert!(standing.orders().is_empty());
    }
}
