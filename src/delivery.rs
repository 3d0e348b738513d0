//! Delivery to one Last.fm-style target: the flusher task that drains the
//! target's queue in batches, and the policy for each kind of failure.
//!
//! Transient failures back off exponentially with jitter; authentication and
//! configuration failures pause the target (one log line saying what to run)
//! until new credentials arrive; a batch the server refuses as a whole is
//! split until the bad item is found and set aside, so it never blocks the
//! rest. Items leave the queue only after a definite answer.

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::config::{Delivery, Secret};
use crate::lastfm::ItemOutcome;
use crate::queue::{Key, Love, QueueError, TargetQueue};
use crate::scrobble::{Listen, Track, unix_now};
use crate::target::{ErrorKind, Failure, Service};

/// Wait after a rate-limit answer that says nothing of how long to wait
/// (Last.fm error 29: at least a minute, protocols.md §1.10).
const RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);

/// What the rest of the daemon shares with a target's flusher.
#[derive(Debug)]
pub struct TargetHandle {
    /// Target name.
    pub name: String,
    /// The target's client.
    pub service: Service,
    /// Current session key or token; a new value resumes a paused target.
    pub session: watch::Sender<Option<Secret>>,
    /// Signalled after each enqueue.
    pub wake: Notify,
    /// Signalled to deliver now, cutting any backoff short (SIGUSR1).
    pub flush_now: Notify,
    /// Set while the target waits for the user to fix credentials.
    pub paused: AtomicBool,
    /// What `status` reports.
    pub health: std::sync::Mutex<Health>,
}

/// A target's delivery state, for `mpd-scrobbler status`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Health {
    /// "ok", "retrying" or "paused".
    pub state: &'static str,
    /// Why it is not ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// When the next attempt is due (Unix seconds), while retrying.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<u64>,
    /// The command that fixes a pause.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// Time of the last successful delivery (Unix seconds).
    pub last_success: Option<u64>,
}

impl TargetHandle {
    fn set_health(
        &self,
        state: &'static str,
        why: Option<String>,
        retry_at: Option<u64>,
        fix: bool,
    ) {
        let mut h = self.health.lock().expect("not poisoned");
        h.state = state;
        h.why = why;
        h.retry_at = retry_at;
        h.fix = fix.then(|| self.auth_hint());
    }

    /// Send "now playing" unless the target is paused or has no credential.
    /// Failures are only logged: a stale now-playing is worse than none.
    pub fn now_playing(self: &Arc<Self>, track: &Track) {
        if self.paused.load(Ordering::Relaxed) {
            return;
        }
        let Some(credential) = self.session.borrow().clone() else {
            return;
        };
        let this = Arc::clone(self);
        let track = track.clone();
        tokio::spawn(async move {
            match this.service.now_playing(credential.expose(), &track).await {
                Ok(()) => tracing::debug!("{}: now playing {}", this.name, describe(&track)),
                Err(e) => tracing::info!("{}: now playing not sent: {}", this.name, e.message),
            }
        });
    }

    /// The command that renews this target's credentials.
    pub fn auth_hint(&self) -> String {
        let service = self.service.auth_command();
        if self.name == service {
            format!("mpd-scrobbler auth {service}")
        } else {
            format!("mpd-scrobbler auth {service} --name {}", self.name)
        }
    }
}

/// How a delivery attempt ended, when it did not simply succeed.
enum Stop {
    /// Try again later; the server may have said when.
    Retry {
        rate_limited: bool,
        after: Option<Duration>,
        why: String,
    },
    Pause(String),
    DailyLimit,
    Queue(QueueError),
}

impl From<Failure> for Stop {
    /// The failures that stop delivery for a while; callers handle
    /// [`ErrorKind::Rejected`] themselves, item by item.
    fn from(e: Failure) -> Stop {
        match e.kind {
            ErrorKind::Auth => Stop::Pause(format!(
                "the server refused the credentials ({})",
                e.message
            )),
            ErrorKind::Config => Stop::Pause(format!(
                "the server refused the configuration ({}); check the target's url and keys in the config",
                e.message
            )),
            kind => Stop::Retry {
                rate_limited: kind == ErrorKind::RateLimited,
                after: e.retry_after,
                why: e.message,
            },
        }
    }
}

/// The flusher of one target.
pub struct Flusher {
    handle: Arc<TargetHandle>,
    queue: TargetQueue,
    timing: Delivery,
    shutdown: CancellationToken,
    on_delivery: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl std::fmt::Debug for Flusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flusher")
            .field("target", &self.handle.name)
            .finish_non_exhaustive()
    }
}

impl Flusher {
    /// A flusher for `handle`'s target over its queue.
    pub fn new(
        handle: Arc<TargetHandle>,
        queue: TargetQueue,
        timing: Delivery,
        shutdown: CancellationToken,
    ) -> Flusher {
        Flusher {
            handle,
            queue,
            timing,
            shutdown,
            on_delivery: None,
        }
    }

    /// Call `f` after every delivery (the daemon reports queue depths to systemd).
    pub fn on_delivery(mut self, f: Arc<dyn Fn() + Send + Sync>) -> Flusher {
        self.on_delivery = Some(f);
        self
    }

    /// Deliver until shutdown. Never returns early: every failure is
    /// handled by waiting, backing off or pausing.
    pub async fn run(self) {
        let name = &self.handle.name;
        let mut session = self.handle.session.subscribe();
        let mut failures: u32 = 0;
        let mut failing: Option<String> = None;
        loop {
            let Some(credential) = session.borrow_and_update().clone() else {
                self.handle
                    .set_health("paused", Some("no credentials".into()), None, true);
                if !self.queue.is_empty() {
                    tracing::warn!(
                        "{name}: no credentials; {} scrobbles wait in the queue. Run `{}`",
                        self.queue.len(),
                        self.handle.auth_hint()
                    );
                }
                if !self.wait_session(&mut session).await {
                    return;
                }
                continue;
            };
            let result = match self.queue.peek_love() {
                Ok(Some((key, love))) => self.deliver_love(key, &love, &credential).await,
                Ok(None) => {
                    let batch = match self.queue.peek(self.handle.service.max_batch()).await {
                        Ok(b) => b,
                        Err(e) => {
                            tracing::error!("{name}: cannot read the queue: {e}");
                            if !self.sleep(self.backoff(&mut failures)).await {
                                return;
                            }
                            continue;
                        }
                    };
                    if batch.is_empty() {
                        tokio::select! {
                            () = self.handle.wake.notified() => continue,
                            changed = session.changed() => if changed.is_err() { return } else { continue },
                            () = self.shutdown.cancelled() => return,
                        }
                    }
                    self.deliver(&batch, &credential).await
                }
                Err(e) => Err(Stop::Queue(e)),
            };
            match result {
                Ok(()) => {
                    self.handle.set_health("ok", None, None, false);
                    self.handle
                        .health
                        .lock()
                        .expect("not poisoned")
                        .last_success = Some(unix_now());
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
                    let backoff = self.backoff(&mut failures);
                    let wait = match after {
                        // The server said when; a second more avoids landing
                        // exactly on the window's edge.
                        Some(after) => after + Duration::from_secs(1),
                        None if rate_limited => backoff.max(RATE_LIMIT_WAIT),
                        None => backoff,
                    };
                    self.handle.set_health(
                        "retrying",
                        Some(why.clone()),
                        Some(unix_now() + wait.as_secs()),
                        false,
                    );
                    if failing.as_deref() != Some(why.as_str()) {
                        tracing::warn!(
                            "{name}: {why}; {} scrobbles stay queued, retrying in {} s",
                            self.queue.len(),
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
                Err(Stop::Pause(why)) => {
                    self.handle.paused.store(true, Ordering::Relaxed);
                    self.handle
                        .set_health("paused", Some(why.clone()), None, true);
                    tracing::error!(
                        "{name}: {why}. Delivery is paused and {} scrobbles stay queued; \
                         run `{}` (the daemon resumes by itself afterwards)",
                        self.queue.len(),
                        self.handle.auth_hint()
                    );
                    if !self.wait_session(&mut session).await {
                        return;
                    }
                    self.handle.paused.store(false, Ordering::Relaxed);
                    tracing::info!("{name}: new credentials, resuming delivery");
                    failures = 0;
                }
                Err(Stop::DailyLimit) => {
                    let wait = until_next_utc_day();
                    self.handle.set_health(
                        "retrying",
                        Some("daily scrobble limit reached".into()),
                        Some(unix_now() + wait.as_secs()),
                        false,
                    );
                    tracing::warn!(
                        "{name}: daily scrobble limit reached; {} scrobbles stay queued until {} h from now",
                        self.queue.len(),
                        wait.as_secs() / 3600
                    );
                    if !self.sleep(wait).await {
                        return;
                    }
                }
                Err(Stop::Queue(e)) => {
                    tracing::error!("{name}: queue write failed: {e}");
                    if !self.sleep(self.backoff(&mut failures)).await {
                        return;
                    }
                }
            }
        }
    }

    /// Send one queued love or unlove; refused ones are dropped with a log line.
    async fn deliver_love(&self, key: Key, love: &Love, credential: &Secret) -> Result<(), Stop> {
        let name = &self.handle.name;
        let verb = if love.love { "love" } else { "unlove" };
        match self.handle.service.love(credential.expose(), love).await {
            Ok(()) => tracing::info!("{name}: {verb}d {}", describe(&love.track)),
            Err(e) => match e.kind {
                ErrorKind::Rejected => tracing::warn!(
                    "{name}: cannot {verb} {}: {}; dropped",
                    describe(&love.track),
                    e.message
                ),
                _ => return Err(Stop::from(e)),
            },
        }
        self.queue.remove_love(key).await.map_err(Stop::Queue)
    }

    /// Send `batch`, splitting it when the server refuses it as a whole so
    /// that one bad item cannot hold back the others.
    async fn deliver(&self, batch: &[(Key, Listen)], credential: &Secret) -> Result<(), Stop> {
        let name = &self.handle.name;
        let service = &self.handle.service;
        let now = unix_now();
        let mut fresh = Vec::with_capacity(batch.len());
        for (key, listen) in batch {
            match service.max_age() {
                Some(max) if now.saturating_sub(listen.started_at) > max.as_secs() => {
                    tracing::warn!(
                        "{name}: not sending {}: it is more than {} days old and the service would ignore it",
                        describe(&listen.track),
                        max.as_secs() / 86400
                    );
                    self.queue
                        .set_aside(*key, listen, "too old for this service")
                        .await
                        .map_err(Stop::Queue)?;
                }
                _ => fresh.push((*key, listen.clone())),
            }
        }
        let listens: Vec<Listen> = fresh.iter().map(|(_, l)| l.clone()).collect();
        // Requests go out in queue order: the stack holds them last first.
        let mut pending: Vec<&[(Key, Listen)]> = service
            .requests(&listens)
            .into_iter()
            .rev()
            .map(|r| &fresh[r])
            .collect();
        while let Some(chunk) = pending.pop() {
            if chunk.is_empty() {
                continue;
            }
            let listens: Vec<Listen> = chunk.iter().map(|(_, l)| l.clone()).collect();
            match service.submit(credential.expose(), &listens).await {
                Ok(outcomes) => self.settle(chunk, outcomes).await?,
                Err(e) => match e.kind {
                    ErrorKind::Rejected if chunk.len() > 1 => {
                        tracing::debug!(
                            "{name}: batch of {} refused ({}); splitting it",
                            chunk.len(),
                            e.message
                        );
                        let (a, b) = chunk.split_at(chunk.len() / 2);
                        pending.push(b);
                        pending.push(a);
                    }
                    ErrorKind::Rejected => {
                        let (key, listen) = &chunk[0];
                        tracing::warn!(
                            "{name}: the server refused {} ({}); it is set aside",
                            describe(&listen.track),
                            e.message
                        );
                        self.queue
                            .set_aside(*key, listen, &e.message)
                            .await
                            .map_err(Stop::Queue)?;
                    }
                    _ => return Err(Stop::from(e)),
                },
            }
        }
        Ok(())
    }

    /// Act on the per-item answers of one accepted request.
    async fn settle(
        &self,
        chunk: &[(Key, Listen)],
        outcomes: Vec<ItemOutcome>,
    ) -> Result<(), Stop> {
        let name = &self.handle.name;
        let mut done = Vec::with_capacity(chunk.len());
        let mut limited = false;
        for ((key, listen), outcome) in chunk.iter().zip(outcomes) {
            match outcome {
                ItemOutcome::Accepted => done.push((*key, listen.started_at)),
                ItemOutcome::Ignored { code, message } => {
                    tracing::warn!(
                        "{name}: the server ignored {} (code {code}: {message}); dropped from the queue",
                        describe(&listen.track)
                    );
                    self.queue
                        .set_aside(*key, listen, &format!("ignored, code {code}: {message}"))
                        .await
                        .map_err(Stop::Queue)?;
                }
                ItemOutcome::DailyLimitExceeded => limited = true,
            }
        }
        let accepted = done.len();
        self.queue
            .remove_delivered(&done)
            .await
            .map_err(Stop::Queue)?;
        if let Some(f) = &self.on_delivery {
            f();
        }
        tracing::info!(
            "{name}: delivered {accepted} scrobble(s), {} queued",
            self.queue.len()
        );
        if limited {
            Err(Stop::DailyLimit)
        } else {
            Ok(())
        }
    }

    fn backoff(&self, failures: &mut u32) -> Duration {
        let exp = self
            .timing
            .retry_min
            .saturating_mul(1u32 << (*failures).min(16))
            .min(self.timing.retry_max);
        *failures = failures.saturating_add(1);
        jitter(exp)
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

/// Between 75% and 125% of `d`, so many daemons behind one outage do not
/// retry in lockstep.
fn jitter(d: Duration) -> Duration {
    let r = RandomState::new().hash_one(SystemTime::now()) % 1000;
    d.mul_f64(0.75 + r as f64 / 2000.0)
}

fn until_next_utc_day() -> Duration {
    let day = 24 * 3600;
    Duration::from_secs(day - unix_now() % day + 60)
}

/// "Artist – Title" for log lines.
pub fn describe(t: &Track) -> String {
    format!("\"{} – {}\"", t.artist, t.title)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_in_band() {
        for _ in 0..100 {
            let d = jitter(Duration::from_secs(100));
            assert!(
                d >= Duration::from_secs(75) && d <= Duration::from_secs(125),
                "{d:?}"
            );
        }
    }

    #[test]
    fn next_day_is_within_a_day() {
        let d = until_next_utc_day();
        assert!(d > Duration::from_secs(60) && d <= Duration::from_secs(24 * 3600 + 60));
    }
}
