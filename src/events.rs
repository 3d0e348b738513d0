//! The narrow interface through which the daemon's core parts tell the
//! notifications what changed: typed events on a bounded channel. Sending
//! never blocks and never fails the caller: a full channel drops the event
//! with one log line per episode, since notifications must never hold up
//! recording or delivery.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;

use crate::target_state::TargetState;

/// How many events may wait for the notification task.
pub(crate) const CAPACITY: usize = 256;

/// Something that changed, as the part that saw it says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// A target's delivery state, as `status` shows it.
    Target {
        /// The target's name.
        name: String,
        /// Its new state.
        state: TargetState,
    },
    /// Whether plays can be written to the state directory.
    Storage(Option<StorageProblem>),
    /// Whether the daemon follows MPD.
    Mpd {
        /// Connected now.
        connected: bool,
        /// Where MPD is.
        address: String,
    },
    /// The start time of a target's oldest queued play (Unix seconds), or
    /// `None` once its queue is empty.
    Oldest {
        /// The target's name.
        target: String,
        /// When the oldest queued play started.
        started: Option<u64>,
    },
}

/// Why plays are held in memory, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StorageProblem {
    /// The write error.
    pub why: String,
    /// What the user does.
    pub fix: String,
}

/// The sending end; cheap to clone. [`Events::none`] when no notification
/// is configured, so the core parts need not know.
#[derive(Debug, Clone, Default)]
pub(crate) struct Events {
    tx: Option<mpsc::Sender<Event>>,
    /// Set while events are being dropped, so the log says so once.
    dropping: Arc<AtomicBool>,
}

impl Events {
    /// Events that go nowhere.
    pub(crate) fn none() -> Events {
        Events::default()
    }

    /// A sender and the receiving end for the notification task.
    pub(crate) fn channel() -> (Events, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel(CAPACITY);
        (
            Events {
                tx: Some(tx),
                dropping: Arc::default(),
            },
            rx,
        )
    }

    /// Whether events go anywhere.
    pub(crate) fn is_active(&self) -> bool {
        self.tx.is_some()
    }

    /// Hand `event` over without waiting.
    pub(crate) fn send(&self, event: Event) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(event) {
            Ok(()) => self.dropping.store(false, Ordering::Relaxed),
            Err(mpsc::error::TrySendError::Full(_)) => {
                if !self.dropping.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "notifications are not keeping up; some changes will not be notified"
                    );
                }
            }
            // The notification task has ended (shutdown): nothing to tell.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_channel_drops_without_blocking() {
        let (events, mut rx) = Events::channel();
        let event = |n: u64| Event::Oldest {
            target: "t".into(),
            started: Some(n),
        };
        for n in 0..(CAPACITY as u64 + 10) {
            events.send(event(n));
        }
        assert!(events.dropping.load(Ordering::Relaxed));
        let mut got = 0;
        while rx.try_recv().is_ok() {
            got += 1;
        }
        assert_eq!(got, CAPACITY);
        events.send(event(1));
        assert!(!events.dropping.load(Ordering::Relaxed), "sending again");
        Events::none().send(event(1));
    }
}
