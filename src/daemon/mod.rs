//! The daemon: follows MPD, turns what plays into scrobbles, and hands them
//! to the queue and the targets' flushers until shutdown.
//!
//! [`run`] is the thin start-up (`start.rs`): it opens the queue and starts
//! its storage thread ([`crate::store`]), builds the targets from the
//! config, binds the control socket, installs the signal handlers and calls
//! [`Daemon::run`] with the real MPD. [`Daemon::run`] takes its MPD source,
//! its targets and its shutdown as parameters, so the loop runs under test
//! with a scripted MPD, on the same storage thread and timers.
//!
//! The parts: the watch loop (`watch.rs`), which sleeps on exactly two
//! things besides shutdown, MPD's idle events and the tracker's next
//! deadline, and never waits for the disk: a qualified play goes to the
//! spool (`spool.rs`), whose writer task hands it to the storage thread, as
//! the rules route it (`route.rs`). Control requests are answered by `handler.rs`,
//! `status` by `status.rs`, love by `love.rs`; systemd hears from
//! `notify.rs` and `watchdog.rs`.

mod alarm;
mod handler;
mod love;
mod notify;
mod route;
mod spool;
mod start;
mod status;
mod watch;
mod watchdog;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::Delivery;
use crate::control::{self, Bound};
use crate::delivery::{Flusher, TargetHandle};
use crate::events::Events;
use crate::mpd::MpdSource;
use crate::rules::RuleSet;
use crate::store::Store;
use crate::tracker::Tracker;
use handler::Handler;
use route::RoutedQueue;
use spool::Spool;
use watch::Player;
use watchdog::Beat;

pub(crate) use start::run;

/// At shutdown, how long the writer may try to write what it holds, and
/// how long flushers may take to finish a request. Both run at once, and
/// with the final flush they keep the exit within 2 s of SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
/// At shutdown, how long the final flush of the queue may take.
const FINAL_FLUSH: Duration = Duration::from_millis(500);

/// Re-read the targets' credentials (SIGHUP, `reload`); the answer for the
/// control socket.
pub(crate) type Reload = Arc<dyn Fn() -> String + Send + Sync>;

/// Everything the daemon runs on besides MPD and the targets.
pub(crate) struct Daemon {
    /// The queue (and history), through its storage thread.
    pub store: Store,
    /// The scrobble rules and stream settings, as a fresh tracker.
    pub tracker: Tracker,
    /// The `[[rule]]` sections.
    pub rules: RuleSet,
    /// Retry timing for the flushers.
    pub delivery: Delivery,
    /// The state directory, for `status`.
    pub state_dir: PathBuf,
    /// The control socket, when one could be bound; removed at shutdown.
    pub control: Option<Bound>,
    /// What `reload` does.
    pub reload: Reload,
    /// Where changes are told (the notifications).
    pub events: Events,
    /// The metrics endpoint, when `[metrics]` is on and it could be bound.
    pub metrics: Option<tokio::net::TcpListener>,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("state_dir", &self.state_dir)
            .field("control", &self.control)
            .finish_non_exhaustive()
    }
}

impl Daemon {
    /// Follow `mpd` and deliver to `targets` until `shutdown` is cancelled;
    /// then let the writer and the flushers finish (briefly) and flush the
    /// queue. The storage thread ends once the last handle on it is gone.
    pub(crate) async fn run<S: MpdSource>(
        self,
        mpd: S,
        targets: Vec<Arc<TargetHandle>>,
        shutdown: CancellationToken,
    ) {
        let Daemon {
            store,
            tracker,
            rules,
            delivery,
            state_dir,
            control,
            reload,
            events,
            metrics,
        } = self;
        let mut flushers = tokio::task::JoinSet::new();
        for handle in &targets {
            flushers.spawn(
                Flusher::new(
                    Arc::clone(handle),
                    store.clone(),
                    delivery,
                    shutdown.clone(),
                )
                .run(),
            );
        }
        let player = Arc::new(Player::new(tracker));
        let spool = Arc::new(Spool::observed(events.clone(), state_dir.clone()));
        let (watch_beat, writer_beat) = (Beat::new(), Beat::new());
        let writer = tokio::spawn(spool::run_writer(
            Arc::clone(&spool),
            Arc::new(RoutedQueue {
                store: store.clone(),
                rules: rules.clone(),
            }),
            shutdown.clone(),
            writer_beat.clone(),
            SHUTDOWN_GRACE,
        ));
        let reopener = tokio::spawn(reopen(store.clone(), targets.clone()));
        let watchdog_task = sd_notify::watchdog_enabled().map(|period| {
            tokio::spawn(watchdog::run(
                period,
                vec![watch_beat.clone(), writer_beat],
                shutdown.clone(),
            ))
        });
        let handler = Handler {
            reload,
            store: store.clone(),
            targets: targets.clone(),
            player: Arc::clone(&player),
            spool: Arc::clone(&spool),
            state_dir,
            address: mpd.address(),
        };
        let metrics_task = metrics.map(|listener| {
            tokio::spawn(crate::metrics::serve(
                listener,
                Arc::new(handler.clone()),
                shutdown.clone(),
            ))
        });
        let control_task =
            control.map(|bound| tokio::spawn(serve_control(bound, handler, shutdown.clone())));
        let (love_tx, love_rx) = tokio::sync::mpsc::unbounded_channel();
        let love_task = tokio::spawn(love::from_messages(
            love_rx,
            Arc::clone(&player),
            store.clone(),
            targets.clone(),
        ));
        watch::Watcher {
            player: &player,
            loves: &love_tx,
            spool: &spool,
            targets: &targets,
            rules: &rules,
            beat: &watch_beat,
            events: &events,
        }
        .run(&mpd, &shutdown)
        .await;
        // The play under way ends with the daemon: its whole play time is
        // written once the writer is done, on the database still open.
        let last_play = player.take_counted();
        // Loves already asked for are queued while the flushers finish.
        drop(love_tx);

        tracing::info!("shutting down");
        notify::stopping();
        // The writer makes its last attempt while the flushers finish; a
        // flusher waiting on a slow server is cut off (its batch stays queued).
        let flushers_done = async {
            let all = async { while flushers.join_next().await.is_some() {} };
            if tokio::time::timeout(SHUTDOWN_GRACE, all).await.is_err() {
                tracing::info!("stopping deliveries still under way (they stay queued)");
                flushers.abort_all();
                while flushers.join_next().await.is_some() {}
            }
        };
        let loves_done = tokio::time::timeout(SHUTDOWN_GRACE, love_task);
        let (_, _, _) = tokio::join!(flushers_done, writer, loves_done);
        if let Some((listen, info)) = last_play {
            let secs = info.played_secs.unwrap_or(0);
            let write = store.ended(listen, secs);
            if let Ok(Err(e)) = tokio::time::timeout(SHUTDOWN_GRACE, write).await {
                tracing::warn!("cannot record the play time of the last play: {e}");
            }
        }
        reopener.abort();
        if let Some(w) = watchdog_task {
            w.abort();
        }
        if let Some(m) = metrics_task {
            m.abort();
        }
        if let Some(task) = control_task {
            if let Ok(bound) = task.await {
                bound.remove();
            }
        }
        // The last request: every write sent before it is served first.
        match tokio::time::timeout(FINAL_FLUSH, store.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("final flush of the queue failed: {e}"),
            Err(_) => tracing::error!(
                "the final flush of the queue did not finish within {} ms",
                FINAL_FLUSH.as_millis()
            ),
        }
    }
}

/// An error a flusher meets closes the database; this opens it again, so
/// delivery resumes without waiting for a play.
async fn reopen(store: Store, targets: Vec<Arc<TargetHandle>>) {
    loop {
        store.closed().await;
        let mut wait = Duration::from_millis(250);
        loop {
            if store.reopen().await.is_ok() {
                break;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(10));
        }
        for t in &targets {
            t.wake.notify_one();
        }
    }
}

/// Accept control connections until shutdown, each served on its own task;
/// gives the socket back for removal.
async fn serve_control(bound: Bound, handler: Handler, shutdown: CancellationToken) -> Bound {
    loop {
        tokio::select! {
            accepted = bound.listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let handler = handler.clone();
                    tokio::spawn(control::serve(stream, control::Limits::default(), move |req| {
                        let handler = handler.clone();
                        async move { handler.handle(req).await }
                    }));
                }
                Err(e) => tracing::warn!("control socket: {e}"),
            },
            () = shutdown.cancelled() => return bound,
        }
    }
}

#[cfg(test)]
mod tests;
