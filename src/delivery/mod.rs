//! Delivery to one target: the flusher task that drains the
//! target's queue in batches, and the policy for each kind of failure.
//!
//! Transient failures back off exponentially with jitter, and a wait a
//! server asks for is capped at an hour; authentication and configuration
//! failures pause the target (one log line saying what to fix) until new
//! credentials arrive or the daemon restarts with a fixed config; a batch the
//! server refuses for its content is split until the bad item is found and
//! set aside, so it never blocks the rest. Items leave the queue only after a
//! definite answer. Each request is recorded as in flight before it goes out;
//! one left without an answer is settled by asking the server before anything
//! is resent (`crate::delivery::reconcile`).
//!
//! `policy` decides what each failure means and how long to wait,
//! `send` makes and settles the requests, and `state` is what
//! `status` shows.

mod calls;
mod policy;
pub(crate) mod reconcile;
mod send;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::target_state::{Health, Tally, TargetState};

use crate::config::{Delivery, Secret};
use crate::events::{Event, Events};
use crate::model::{Track, describe, unix_now};
use crate::output::count;
use crate::queue::QueueError;
use crate::store::{Next, Store};
use crate::targets::Target;
use calls::Woken;
use policy::{Fix, Stop, random_permille, retry_wait, until_next_utc_day};
use reconcile::Account;

/// What the rest of the daemon shares with a target's flusher.
#[derive(Debug)]
pub(crate) struct TargetHandle {
    /// Target name.
    pub name: String,
    /// The target's client.
    pub target: Arc<dyn Target>,
    /// Current session key or token; a new value resumes a paused target.
    pub session: watch::Sender<Option<Secret>>,
    /// Signalled after each enqueue.
    pub wake: Notify,
    /// Signalled to deliver now, cutting any backoff short (SIGUSR1).
    pub flush_now: Notify,
    /// Where the target is configured, for the fix of a configuration
    /// problem: "[lastfm] in /etc/mpd-scrobbler.toml".
    pub config: String,
    /// Why the stored credential could not be used (an unreadable or
    /// damaged session file), when that is why there is none; the daemon
    /// has logged it.
    pub credential_problem: std::sync::Mutex<Option<String>>,
    /// The command that renews its credentials ([`Config::auth_command`](crate::config::Config::auth_command)).
    pub auth: String,
    /// What `status` reports.
    pub health: std::sync::Mutex<Health>,
    /// How deliveries ended, for `status --json` and the metrics.
    pub tally: Tally,
    /// Where changes of state are told (the notifications).
    pub events: Events,
}

impl TargetHandle {
    /// A handle for the target `name` served by `target`, in the
    /// [`TargetState::Ok`] state, without a credential yet.
    pub(crate) fn new(
        name: &str,
        target: Arc<dyn Target>,
        config: String,
        auth: String,
    ) -> TargetHandle {
        TargetHandle {
            name: name.to_owned(),
            target,
            session: watch::Sender::new(None),
            wake: Notify::new(),
            flush_now: Notify::new(),
            config,
            credential_problem: std::sync::Mutex::new(None),
            auth,
            health: std::sync::Mutex::new(Health::default()),
            tally: Tally::default(),
            events: Events::none(),
        }
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_state(&self, state: TargetState) {
        self.set_health(state, None);
    }

    /// Set the state (and the last success, when given); a change is told
    /// to the notifications, a retry for the same reason is not.
    fn set_health(&self, state: TargetState, success: Option<u64>) {
        let mut health = self.health();
        let changed = !health.state.same_as(&state);
        if changed {
            self.events.send(Event::Target {
                name: self.name.clone(),
                state: state.clone(),
            });
        }
        health.state = state;
        if success.is_some() {
            health.last_success = success;
        }
    }

    /// What delivery is doing now.
    #[cfg(test)]
    pub(crate) fn state(&self) -> TargetState {
        self.health().state.clone()
    }

    /// Send "now playing" unless the target is paused or has no credential.
    /// Failures are only logged: a stale now-playing is worse than none.
    pub(crate) fn now_playing(self: &Arc<Self>, track: &Track) {
        if self.health().state.is_paused() {
            return;
        }
        let Some(credential) = self.session.borrow().clone() else {
            return;
        };
        let this = Arc::clone(self);
        let track = track.clone();
        tokio::spawn(async move {
            match this.target.now_playing(credential.expose(), &track).await {
                Ok(()) => tracing::debug!("{}: now playing {}", this.name, describe(&track)),
                Err(e) => tracing::info!("{}: now playing not sent: {}", this.name, e.message),
            }
        });
    }

    /// What the user does about `fix`.
    fn fix_text(&self, fix: Fix) -> String {
        fix.text(&self.auth, &self.config)
    }

    /// The command that renews this target's credentials.
    pub(crate) fn auth_hint(&self) -> String {
        self.auth.clone()
    }
}

/// The flusher of one target.
pub(crate) struct Flusher {
    handle: Arc<TargetHandle>,
    store: Store,
    timing: Delivery,
    shutdown: CancellationToken,
    account: Account,
    /// Settling writes left to finish on their own ([`Flusher::settle`]);
    /// awaited before the next call.
    pending: std::sync::Mutex<Vec<oneshot::Receiver<Result<(), QueueError>>>>,
}

impl std::fmt::Debug for Flusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flusher")
            .field("target", &self.handle.name)
            .finish_non_exhaustive()
    }
}

impl Flusher {
    /// A flusher for `handle`'s target over its queue in `store`.
    pub(crate) fn new(
        handle: Arc<TargetHandle>,
        store: Store,
        timing: Delivery,
        shutdown: CancellationToken,
    ) -> Flusher {
        Flusher {
            handle,
            store,
            timing,
            shutdown,
            account: Account::default(),
            pending: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Deliver until shutdown. Never returns early: every failure is
    /// handled by waiting, backing off or pausing. The last settling write
    /// is finished before it returns, so the daemon's final flush has it.
    pub(crate) async fn run(self) {
        self.deliver_until_shutdown().await;
        if let Err(Stop::Queue(e)) = self.settled().await {
            tracing::error!("{}: the queue failed: {e}", self.handle.name);
        }
    }

    async fn deliver_until_shutdown(&self) {
        let name = &self.handle.name;
        let mut session = self.handle.session.subscribe();
        let mut failures: u32 = 0;
        let mut failing: Option<String> = None;
        let mut failed_asks: u32 = 0;
        // Set when the queue was found empty: wait for a play to be queued.
        let mut idle = false;
        loop {
            let Some(credential) = session.borrow_and_update().clone() else {
                let problem = self
                    .handle
                    .credential_problem
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                let logged = problem.is_some();
                let why = problem.unwrap_or_else(|| "no credentials".into());
                self.handle.set_state(TargetState::Paused {
                    why,
                    fix: self.handle.fix_text(Fix::Auth),
                });
                let queued = self.queued().await;
                if !logged && queued > 0 {
                    tracing::warn!(
                        "{name}: no credentials; {} in the queue. Run `{}`",
                        count(queued as u64, "scrobble waits", "scrobbles wait"),
                        self.handle.auth_hint()
                    );
                }
                if !self.wait_session(&mut session).await {
                    return;
                }
                continue;
            };
            let step = if idle {
                idle = false;
                match self.wait_for_work(&mut session).await {
                    Woken::Found(found) => found.map_err(Stop::Queue),
                    Woken::Look => self.step().await,
                    Woken::Session => continue,
                    Woken::Shutdown => return,
                }
            } else {
                self.step().await
            };
            let result = match step {
                Ok(Next::Unanswered(id, flight)) => {
                    self.settle_in_flight(id, &flight, &credential, &mut failed_asks)
                        .await
                }
                Ok(Next::Love(key, love)) => self.deliver_love(key, &love, &credential).await,
                Ok(Next::Send(batch)) => {
                    let full = batch.full;
                    let sent = self.deliver(batch, &credential).await;
                    // A batch short of the limit took all there was: wait
                    // for the next play rather than look again.
                    idle = sent.is_ok() && !full;
                    sent
                }
                Ok(Next::Idle) => {
                    idle = true;
                    continue;
                }
                Err(stop) => Err(stop),
            };
            match result {
                Ok(()) => {
                    self.handle.set_health(TargetState::Ok, Some(unix_now()));
                    if let Some(why) = failing.take() {
                        tracing::info!("{name}: delivering again (after: {why})");
                    }
                    failures = 0;
                }
                Err(Stop::Retry {
                    rate_limited,
                    after,
                    why,
                }) => {
                    let (wait, capped) =
                        retry_wait(after, rate_limited, self.backoff(&mut failures));
                    if let Some(note) = capped {
                        tracing::warn!("{name}: {note}");
                    }
                    self.handle.set_state(TargetState::Retrying {
                        at: unix_now().saturating_add(wait.as_secs()),
                        why: why.clone(),
                    });
                    if failing.as_deref() != Some(why.as_str()) {
                        tracing::warn!(
                            "{name}: {why}; {} queued, retrying in {} s",
                            count(
                                self.queued().await as u64,
                                "scrobble stays",
                                "scrobbles stay"
                            ),
                            wait.as_secs_f32().ceil()
                        );
                        failing = Some(why);
                    } else {
                        tracing::debug!("{name}: still failing: {why}; retry in {wait:?}");
                    }
                    if !self.sleep(wait).await {
                        return;
                    }
                }
                Err(Stop::Pause { why, fix }) => {
                    let fix_text = self.handle.fix_text(fix);
                    self.handle.set_state(TargetState::Paused {
                        why: why.clone(),
                        fix: fix_text.clone(),
                    });
                    let after = match fix {
                        Fix::Auth => " (the daemon resumes by itself afterwards)",
                        Fix::Config(_) => "",
                    };
                    tracing::error!(
                        "{name}: {} {why}. Delivery is paused and {} queued; \
                         {fix_text}{after}",
                        self.handle.target.url(),
                        count(
                            self.queued().await as u64,
                            "scrobble stays",
                            "scrobbles stay"
                        ),
                    );
                    if !self.wait_session(&mut session).await {
                        return;
                    }
                    match fix {
                        Fix::Auth => {
                            tracing::info!("{name}: credentials re-read, resuming delivery");
                        }
                        Fix::Config(_) => tracing::info!("{name}: reloaded, trying again"),
                    }
                    failures = 0;
                }
                Err(Stop::DailyLimit) => {
                    let wait = until_next_utc_day(unix_now());
                    self.handle.set_state(TargetState::Retrying {
                        at: unix_now().saturating_add(wait.as_secs()),
                        why: "daily scrobble limit reached".into(),
                    });
                    tracing::warn!(
                        "{name}: daily scrobble limit reached; {} queued until {} h from now",
                        count(
                            self.queued().await as u64,
                            "scrobble stays",
                            "scrobbles stay"
                        ),
                        wait.as_secs() / 3600
                    );
                    if !self.sleep(wait).await {
                        return;
                    }
                }
                Err(Stop::Shutdown) => return,
                Err(Stop::Queue(e)) => {
                    tracing::error!("{name}: the queue failed: {e}");
                    if !self.sleep(self.backoff(&mut failures)).await {
                        return;
                    }
                }
            }
        }
    }

    fn backoff(&self, failures: &mut u32) -> Duration {
        policy::backoff(&self.timing, failures, random_permille())
    }

    /// Sleep unless a flush request or shutdown comes first; `false` means
    /// shut down.
    async fn sleep(&self, d: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(d) => true,
            () = self.handle.flush_now.notified() => true,
            () = self.shutdown.cancelled() => false,
        }
    }

    /// Wait for new credentials; `false` means shut down.
    async fn wait_session(&self, session: &mut watch::Receiver<Option<Secret>>) -> bool {
        tokio::select! {
            changed = session.changed() => changed.is_ok(),
            () = self.shutdown.cancelled() => false,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
