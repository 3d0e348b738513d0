//! The flusher's next step, found and prepared in one call on the storage
//! thread ([`crate::store`]): an unanswered request to settle, a love to send, or the next
//! batch with its first request already recorded as in flight. One trip off
//! the runtime thread per request instead of four (look for a record, look
//! for a love, peek, record): each trip costs the storage thread's wake-up
//! and the runtime's.

use std::ops::Range;

use crate::model::Listen;
use crate::queue::{InFlight, Key, Love, QueueError, TargetQueue};
use crate::targets::Target;

use crate::model::describe;

/// What the flusher does next.
#[derive(Debug)]
pub(crate) enum Next {
    /// A request left without an answer: settle it before anything else.
    Unanswered(Key, InFlight),
    /// A queued love or unlove.
    Love(Key, Box<Love>),
    /// Listens to send.
    Send(Batch),
    /// Nothing is queued.
    Idle,
}

/// A batch ready to go.
#[derive(Debug)]
pub(crate) struct Batch {
    /// The listens, oldest first.
    pub items: Vec<(Key, Listen)>,
    /// The server's requests, as ranges of `items`, none empty.
    pub requests: Vec<Range<usize>>,
    /// The in-flight record of the first request, on disk.
    pub first_flight: Key,
    /// More may be queued behind this batch.
    pub full: bool,
}

/// Whether [`next`] syncs the in-flight record of the batch it prepares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Record {
    /// On disk before `next` returns.
    Synced,
    /// Written only: the caller syncs the database before the batch is
    /// handed to the flusher (one sync for a play and the requests it lets
    /// go out).
    Unsynced,
}

/// Find and prepare what `target`'s flusher does next. Listens too old for
/// the service are set aside on the way (with a log line each).
pub(crate) fn next(
    queue: &TargetQueue,
    target: &dyn Target,
    name: &str,
    now: u64,
    record: Record,
) -> Result<Next, QueueError> {
    if let Some((id, flight)) = queue.in_flight()? {
        return Ok(Next::Unanswered(id, flight));
    }
    if let Some((key, love)) = queue.peek_love()? {
        return Ok(Next::Love(key, Box::new(love)));
    }
    let n = target.max_batch();
    loop {
        let batch = queue.peek(n)?;
        let full = batch.len() == n;
        let mut items = Vec::with_capacity(batch.len());
        for (key, listen) in batch {
            match target.max_age() {
                Some(max) if now.saturating_sub(listen.started_at) > max.as_secs() => {
                    tracing::warn!(
                        "{name}: not sending {}: it is more than {} days old and the service would ignore it",
                        describe(&listen.track),
                        max.as_secs() / 86400
                    );
                    queue.set_aside(key, &listen, "too old for this service")?;
                }
                _ => items.push((key, listen)),
            }
        }
        if items.is_empty() {
            if full {
                continue;
            }
            return Ok(Next::Idle);
        }
        let listens: Vec<Listen> = items.iter().map(|(_, l)| l.clone()).collect();
        let requests: Vec<Range<usize>> = target
            .requests(&listens)
            .into_iter()
            .filter(|r| !r.is_empty() && r.end <= items.len())
            .collect();
        let Some(first) = requests.first() else {
            return Ok(Next::Idle);
        };
        let flight = flight(&items[first.clone()]);
        let first_flight = match record {
            Record::Synced => queue.mark_in_flight(&flight)?,
            Record::Unsynced => queue.record_in_flight(&flight)?,
        };
        return Ok(Next::Send(Batch {
            items,
            requests,
            first_flight,
            full,
        }));
    }
}

/// The record of a request about to carry `batch` (never empty), sent now.
pub(crate) fn flight(batch: &[(Key, Listen)]) -> InFlight {
    let times = batch.iter().map(|(_, l)| l.started_at);
    InFlight {
        keys: batch.iter().map(|(k, _)| *k).collect(),
        first: times.clone().min().unwrap_or_default(),
        last: times.max().unwrap_or_default(),
        sent_at_ms: crate::model::unix_now_ms(),
    }
}
