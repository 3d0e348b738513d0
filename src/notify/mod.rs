//! Notifications: the `[[notify]]` sinks told when a target pauses or keeps
//! failing, plays are held in memory, MPD stays unreachable, or a queue
//! goes stale, and when each of these ends.
//!
//! The daemon's parts send typed events ([`crate::events`]) without waiting;
//! [`run`] feeds them, with the clock, to one pure [`Monitor`] and [`Gate`]
//! per sink, and hands each message to that sink's own worker task, so a
//! sink that hangs delays neither recording, nor delivery, nor the other
//! sinks. A message that cannot be delivered is logged once per failing
//! spell and retried with backoff. Nothing wakes while no problem holds:
//! the only timer is the next deadline of a problem that does.

mod monitor;
mod send;

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{NotifySink, SinkKind};
use crate::events::Event;
use crate::model::unix_now;
pub(crate) use monitor::{Gate, Kind, Monitor, Notice};
pub(crate) use send::{host_name, send};

/// Messages waiting for one sink's worker.
const SINK_QUEUE: usize = 32;
/// First wait after a message could not be delivered.
const RETRY_MIN: Duration = Duration::from_secs(5);
/// Longest wait between attempts.
const RETRY_MAX: Duration = Duration::from_secs(300);
/// Attempts at one message before it is given up.
const ATTEMPTS: u32 = 8;

/// One sink's state and its worker.
struct Sink {
    name: String,
    monitor: Monitor,
    gate: Gate,
    worker: mpsc::Sender<Notice>,
    /// Set while messages are dropped because the worker is behind.
    dropping: bool,
}

/// Tell `sinks` about `events` until shutdown.
pub(crate) async fn run(
    sinks: Vec<NotifySink>,
    mut events: mpsc::Receiver<Event>,
    client: reqwest::Client,
    shutdown: CancellationToken,
) {
    let host = host_name();
    let mut state: Vec<Sink> = sinks
        .into_iter()
        .map(|s| {
            let (tx, rx) = mpsc::channel(SINK_QUEUE);
            tokio::spawn(worker(
                s.name.clone(),
                s.kind.clone(),
                rx,
                client.clone(),
                host.clone(),
                shutdown.clone(),
            ));
            Sink {
                name: s.name.clone(),
                monitor: Monitor::new(&s),
                gate: Gate::new(s.min_interval.as_secs()),
                worker: tx,
                dropping: false,
            }
        })
        .collect();
    loop {
        let deadline = state
            .iter()
            .flat_map(|s| [s.monitor.deadline(), s.gate.deadline()])
            .flatten()
            .min();
        // Armed only while a problem holds or a message waits.
        let sleep = async {
            match deadline {
                Some(at) => {
                    let wait = at.saturating_sub(unix_now());
                    tokio::time::sleep(Duration::from_secs(wait)).await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { return };
                let now = unix_now();
                for s in &mut state {
                    let notices = s.monitor.observe(&event, now);
                    let ready = s.gate.offer(notices, now);
                    s.hand_over(ready);
                }
            }
            () = sleep => {
                let now = unix_now();
                for s in &mut state {
                    let notices = s.monitor.due(now);
                    let mut ready = s.gate.offer(notices, now);
                    ready.extend(s.gate.due(now));
                    s.hand_over(ready);
                }
            }
            () = shutdown.cancelled() => return,
        }
    }
}

impl Sink {
    fn hand_over(&mut self, notices: Vec<Notice>) {
        for n in notices {
            match self.worker.try_send(n) {
                Ok(()) => self.dropping = false,
                Err(_) if self.dropping => {}
                Err(_) => {
                    self.dropping = true;
                    tracing::warn!(
                        "notify {}: messages are waiting for earlier ones; dropping some",
                        self.name
                    );
                }
            }
        }
    }
}

/// Deliver one sink's messages in order, each retried with backoff; one
/// log line when the sink starts failing and one when it works again.
async fn worker(
    name: String,
    kind: SinkKind,
    mut rx: mpsc::Receiver<Notice>,
    client: reqwest::Client,
    host: String,
    shutdown: CancellationToken,
) {
    let mut failing = false;
    while let Some(notice) = tokio::select! {
        n = rx.recv() => n,
        () = shutdown.cancelled() => None,
    } {
        let mut wait = RETRY_MIN;
        for attempt in 1..=ATTEMPTS {
            let sent = tokio::select! {
                r = send(&kind, &notice, &host, &client) => r,
                () = shutdown.cancelled() => return,
            };
            match sent {
                Ok(()) => {
                    if std::mem::take(&mut failing) {
                        tracing::info!("notify {name}: delivering messages again");
                    }
                    tracing::debug!("notify {name}: sent {}", notice.kind.event());
                    break;
                }
                Err(e) => {
                    if !std::mem::replace(&mut failing, true) {
                        tracing::warn!(
                            "notify {name}: cannot deliver a message: {e}; retrying with backoff"
                        );
                    }
                    if attempt == ATTEMPTS {
                        tracing::warn!(
                            "notify {name}: gave up a {:?} message after {ATTEMPTS} attempts",
                            notice.kind.event()
                        );
                        break;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = shutdown.cancelled() => return,
                    }
                    wait = (wait * 2).min(RETRY_MAX);
                }
            }
        }
    }
}
