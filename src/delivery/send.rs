//! The flusher's requests: a batch split into the server's requests and
//! settled item by item, a love, and a request left without an answer.

use std::ops::Range;

use super::Flusher;
use super::policy::Stop;
use super::reconcile::{self, Settled};
use crate::config::Secret;
use crate::model::Listen;
use crate::model::describe;
use crate::output::count;
use crate::queue::{Key, Love};
use crate::store::Batch;
use crate::targets::{ErrorKind, ItemOutcome};

/// Failed attempts at asking the server about an unanswered request before
/// its items are simply sent again (at least once rather than never).
const MAX_FAILED_ASKS: u32 = 3;

impl Flusher {
    /// Send one queued love or unlove; refused ones are dropped with a log line.
    pub(super) async fn deliver_love(
        &self,
        key: Key,
        love: &Love,
        credential: &Secret,
    ) -> Result<(), Stop> {
        let name = &self.handle.name;
        let verb = if love.love { "love" } else { "unlove" };
        match self
            .handle
            .target
            .love(credential.expose(), &love.track, love.love)
            .await
        {
            Ok(()) => tracing::info!("{name}: {verb}d {}", describe(&love.track)),
            Err(e) => match e.kind {
                ErrorKind::Rejected | ErrorKind::Unsupported => tracing::warn!(
                    "{name}: cannot {verb} {}: {}; dropped",
                    describe(&love.track),
                    e.message
                ),
                _ => return Err(Stop::from(e)),
            },
        }
        self.after_settled(self.store.remove_love(name, key)).await
    }

    /// Send `batch`, splitting a request when the server refuses it as a
    /// whole so that one bad item cannot hold back the others.
    pub(super) async fn deliver(&self, batch: Batch, credential: &Secret) -> Result<(), Stop> {
        let name = &self.handle.name;
        let target = &*self.handle.target;
        let Batch {
            items,
            requests,
            first_flight,
            ..
        } = batch;
        // Requests go out in queue order: the stack holds them last first.
        let mut pending: Vec<(Range<usize>, Option<Key>)> =
            requests.into_iter().rev().map(|r| (r, None)).collect();
        if let Some(first) = pending.last_mut() {
            first.1 = Some(first_flight);
        }
        while let Some((range, flight)) = pending.pop() {
            let chunk = &items[range.clone()];
            let flight = match flight {
                Some(id) => id,
                None => {
                    let record = crate::store::flight(chunk);
                    self.after_settled(self.store.mark_in_flight(name, record))
                        .await?
                }
            };
            let listens: Vec<Listen> = chunk.iter().map(|(_, l)| l.clone()).collect();
            match target.submit(credential.expose(), &listens).await {
                Ok(outcomes) => self.settle(chunk, outcomes, flight)?,
                Err(mut e) => match e.kind {
                    // The record stays: the server is asked what it stored
                    // before any of it is sent again.
                    ErrorKind::Unknown => {
                        self.handle.tally.failed(e.kind);
                        e.message = format!(
                            "{} (no answer to a request of {}; the server will be asked what it stored)",
                            e.message,
                            chunk.len()
                        );
                        return Err(Stop::from(e));
                    }
                    ErrorKind::Rejected if chunk.len() > 1 => {
                        self.after_settled(self.store.clear_in_flight(name, flight))
                            .await?;
                        tracing::debug!(
                            "{name}: batch of {} refused ({}); splitting it",
                            chunk.len(),
                            e.message
                        );
                        let mid = range.start + chunk.len() / 2;
                        pending.push((mid..range.end, None));
                        pending.push((range.start..mid, None));
                    }
                    ErrorKind::Rejected => {
                        self.handle.tally.rejected();
                        let (key, listen) = &chunk[0];
                        tracing::warn!(
                            "{name}: the server refused {} ({}); it is set aside",
                            describe(&listen.track),
                            e.message
                        );
                        let refused = vec![(*key, listen.clone(), e.message)];
                        self.after_settled(self.store.finish_in_flight(
                            name,
                            flight,
                            Vec::new(),
                            refused,
                        ))
                        .await?;
                    }
                    _ => {
                        self.handle.tally.failed(e.kind);
                        self.after_settled(self.store.clear_in_flight(name, flight))
                            .await?;
                        return Err(Stop::from(e));
                    }
                },
            }
        }
        Ok(())
    }

    /// Act on the per-item answers of one accepted request, in one write
    /// that also clears its in-flight record. The write and its log line
    /// are left to the storage thread, unawaited: the next queue call waits
    /// for it ([`Flusher::settled`]).
    fn settle(
        &self,
        chunk: &[(Key, Listen)],
        outcomes: Vec<ItemOutcome>,
        flight: Key,
    ) -> Result<(), Stop> {
        let name = &self.handle.name;
        let mut done = Vec::with_capacity(chunk.len());
        let mut refused = Vec::new();
        let mut limited = false;
        for ((key, listen), outcome) in chunk.iter().zip(outcomes) {
            match outcome {
                ItemOutcome::Accepted => done.push(*key),
                ItemOutcome::Ignored { code, message } => {
                    self.handle.tally.ignored();
                    tracing::warn!(
                        "{name}: the server ignored {} (code {code}: {message}); dropped from the queue",
                        describe(&listen.track)
                    );
                    refused.push((
                        *key,
                        listen.clone(),
                        format!("ignored, code {code}: {message}"),
                    ));
                }
                ItemOutcome::DailyLimitExceeded => limited = true,
            }
        }
        self.handle.tally.accepted(done.len());
        let settling = self.store.settle(name, flight, done, refused);
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(settling);
        if limited {
            Err(Stop::DailyLimit)
        } else {
            Ok(())
        }
    }

    /// Settle a request that got no answer: once the request timeout has
    /// passed since it was sent, ask the server what it stored, drop that
    /// from the queue and leave the rest to be sent again. When the server
    /// cannot be asked, or asking keeps failing, everything is sent again.
    pub(super) async fn settle_in_flight(
        &self,
        id: Key,
        flight: &crate::queue::InFlight,
        credential: &Secret,
        failed_asks: &mut u32,
    ) -> Result<(), Stop> {
        let name = &self.handle.name;
        if !reconcile::wait_to_ask(
            flight.sent_at_ms,
            self.timing.request_timeout,
            &self.shutdown,
        )
        .await
        {
            return Err(Stop::Shutdown);
        }
        let settled = tokio::select! {
            s = reconcile::settle(
                &*self.handle.target,
                &self.store,
                name,
                &self.account,
                credential.expose(),
                id,
                flight,
            ) => s,
            () = self.shutdown.cancelled() => return Err(Stop::Shutdown),
        };
        match settled {
            Ok(Settled::Checked { found, missing }) => {
                *failed_asks = 0;
                tracing::info!(
                    "{name}: the server has {found} of the {} of an unanswered request; \
                     {missing} will be sent again",
                    count((found + missing) as u64, "scrobble", "scrobbles")
                );
                Ok(())
            }
            Ok(Settled::Unaskable(why)) => {
                *failed_asks = 0;
                tracing::debug!(
                    "{name}: cannot ask the server what it stored of an unanswered request ({why}); \
                     sending it again"
                );
                Ok(())
            }
            Err(reconcile::Error::Queue(e)) => Err(Stop::Queue(e)),
            Err(reconcile::Error::Ask(e)) if e.kind == ErrorKind::Auth => Err(Stop::from(e)),
            Err(reconcile::Error::Ask(e)) => {
                *failed_asks += 1;
                if *failed_asks < MAX_FAILED_ASKS {
                    return Err(Stop::from(e));
                }
                *failed_asks = 0;
                tracing::debug!(
                    "{name}: asking the server what it stored failed {MAX_FAILED_ASKS} times ({}); \
                     sending the request again",
                    e.message
                );
                self.after_settled(self.store.clear_in_flight(name, id))
                    .await
            }
        }
    }
}
