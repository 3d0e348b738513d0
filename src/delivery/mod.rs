//! Delivery to one Last.fm-style target: the flusher task that drains the
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

pub mod reconcile;

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::config::{Delivery, Secret};
use crate::http;
use crate::queue::{Key, Love, QueueError, TargetQueue};
use crate::scrobble::{Listen, Track, unix_now};
use crate::targets::lastfm::ItemOutcome;
use crate::targets::{ErrorKind, Failure, Service};
use reconcile::{Account, Settled};

/// Wait after a rate-limit answer that says nothing of how long to wait
/// (Last.fm error 29: at least a minute, protocols.md §1.10).
const RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);

/// Failed attempts at asking the server about an unanswered request before
/// its items are simply sent again (at least once rather than never).
const MAX_FAILED_ASKS: u32 = 3;

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
    /// What fixes a pause: a command to run, or a config key to correct.
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
        fix: Option<String>,
    ) {
        let mut h = self.health.lock().unwrap_or_else(|e| e.into_inner());
        h.state = state;
        h.why = why;
        h.retry_at = retry_at;
        h.fix = fix;
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

    /// What the user does about `fix`.
    fn fix_text(&self, fix: Fix) -> String {
        match fix {
            Fix::Auth => format!("run `{}`", self.auth_hint()),
            Fix::Config(setting) => {
                format!(
                    "fix `{setting}` in {} and restart mpd-scrobbler",
                    self.config
                )
            }
        }
    }

    /// The command that renews this target's credentials.
    pub fn auth_hint(&self) -> String {
        self.auth.clone()
    }
}

/// What ends a pause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fix {
    /// New credentials (`mpd-scrobbler auth`); the daemon resumes by itself.
    Auth,
    /// A corrected config key, then a restart.
    Config(&'static str),
}

/// How a delivery attempt ended, when it did not simply succeed.
enum Stop {
    /// Try again later; the server may have said when.
    Retry {
        rate_limited: bool,
        after: Option<Duration>,
        why: String,
    },
    Pause {
        why: String,
        fix: Fix,
    },
    DailyLimit,
    Queue(QueueError),
    Shutdown,
}

impl From<Failure> for Stop {
    /// The failures that stop delivery for a while; callers handle
    /// [`ErrorKind::Rejected`] themselves, item by item.
    fn from(e: Failure) -> Stop {
        match e.kind {
            ErrorKind::Auth => Stop::Pause {
                why: format!(
                    "the server refused the credentials ({})",
                    one_line(&e.message)
                ),
                fix: Fix::Auth,
            },
            ErrorKind::Config | ErrorKind::Unsupported | ErrorKind::Rejected => Stop::Pause {
                why: format!("the server refused the request ({})", one_line(&e.message)),
                fix: Fix::Config(e.setting),
            },
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
    account: Account,
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
            account: Account::default(),
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
        let mut failed_asks: u32 = 0;
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
                self.handle.set_health(
                    "paused",
                    Some(why),
                    None,
                    Some(self.handle.fix_text(Fix::Auth)),
                );
                let queued = self.queued().await;
                if !logged && queued > 0 {
                    tracing::warn!(
                        "{name}: no credentials; {queued} scrobbles wait in the queue. Run `{}`",
                        self.handle.auth_hint()
                    );
                }
                if !self.wait_session(&mut session).await {
                    return;
                }
                continue;
            };
            let next = self.on_disk(|q| Ok((q.in_flight()?, q.peek_love()?))).await;
            let result = match next {
                Ok((Some((id, flight)), _)) => {
                    self.settle_in_flight(id, &flight, &credential, &mut failed_asks)
                        .await
                }
                Err(stop) => Err(stop),
                Ok((None, Some((key, love)))) => self.deliver_love(key, &love, &credential).await,
                Ok((None, None)) => {
                    let n = self.handle.service.max_batch();
                    let batch = match self.on_disk(move |q| block_on(q.peek(n))).await {
                        Ok(b) => b,
                        Err(Stop::Queue(e)) => {
                            tracing::error!("{name}: cannot read the queue: {e}");
                            if !self.sleep(self.backoff(&mut failures)).await {
                                return;
                            }
                            continue;
                        }
                        Err(_) => return,
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
            };
            match result {
                Ok(()) => {
                    self.handle.set_health("ok", None, None, None);
                    self.handle
                        .health
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
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
                    let (wait, capped) =
                        retry_wait(after, rate_limited, self.backoff(&mut failures));
                    if let Some(note) = capped {
                        tracing::warn!("{name}: {note}");
                    }
                    self.handle.set_health(
                        "retrying",
                        Some(why.clone()),
                        Some(unix_now().saturating_add(wait.as_secs())),
                        None,
                    );
                    if failing.as_deref() != Some(why.as_str()) {
                        tracing::warn!(
                            "{name}: {why}; {} scrobbles stay queued, retrying in {} s",
                            self.queued().await,
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
                    self.handle.paused.store(true, Ordering::Relaxed);
                    let fix_text = self.handle.fix_text(fix);
                    self.handle.set_health(
                        "paused",
                        Some(why.clone()),
                        None,
                        Some(fix_text.clone()),
                    );
                    let after = match fix {
                        Fix::Auth => " (the daemon resumes by itself afterwards)",
                        Fix::Config(_) => "",
                    };
                    tracing::error!(
                        "{name}: {} {why}. Delivery is paused and {} scrobbles stay queued; \
                         {fix_text}{after}",
                        self.handle.service.url(),
                        self.queued().await,
                    );
                    if !self.wait_session(&mut session).await {
                        return;
                    }
                    self.handle.paused.store(false, Ordering::Relaxed);
                    tracing::info!("{name}: credentials re-read, resuming delivery");
                    failures = 0;
                }
                Err(Stop::DailyLimit) => {
                    let wait = until_next_utc_day(unix_now());
                    self.handle.set_health(
                        "retrying",
                        Some("daily scrobble limit reached".into()),
                        Some(unix_now().saturating_add(wait.as_secs())),
                        None,
                    );
                    tracing::warn!(
                        "{name}: daily scrobble limit reached; {} scrobbles stay queued until {} h from now",
                        self.queued().await,
                        wait.as_secs() / 3600
                    );
                    if !self.sleep(wait).await {
                        return;
                    }
                }
                Err(Stop::Shutdown) => return,
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
                ErrorKind::Rejected | ErrorKind::Unsupported => tracing::warn!(
                    "{name}: cannot {verb} {}: {}; dropped",
                    describe(&love.track),
                    e.message
                ),
                _ => return Err(Stop::from(e)),
            },
        }
        self.on_disk(move |q| block_on(q.remove_love(key))).await
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
                    let (key, listen) = (*key, listen.clone());
                    self.on_disk(move |q| {
                        block_on(q.set_aside(key, &listen, "too old for this service"))
                    })
                    .await?;
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
            let record = reconcile::flight(chunk);
            let flight = self
                .on_disk(move |q| block_on(q.mark_in_flight(&record)))
                .await?;
            match service.submit(credential.expose(), &listens).await {
                Ok(outcomes) => self.settle(chunk, outcomes, flight).await?,
                Err(mut e) => match e.kind {
                    // The record stays: the server is asked what it stored
                    // before any of it is sent again.
                    ErrorKind::Unknown => {
                        e.message = format!(
                            "{} (no answer to a request of {}; the server will be asked what it stored)",
                            e.message,
                            chunk.len()
                        );
                        return Err(Stop::from(e));
                    }
                    ErrorKind::Rejected if chunk.len() > 1 => {
                        self.on_disk(move |q| q.clear_in_flight(flight)).await?;
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
                        let refused = [(*key, listen.clone(), e.message)];
                        self.on_disk(move |q| block_on(q.finish_in_flight(flight, &[], &refused)))
                            .await?;
                    }
                    _ => {
                        self.on_disk(move |q| q.clear_in_flight(flight)).await?;
                        return Err(Stop::from(e));
                    }
                },
            }
        }
        Ok(())
    }

    /// Act on the per-item answers of one accepted request, in one write
    /// that also clears its in-flight record.
    async fn settle(
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
        let accepted = done.len();
        self.on_disk(move |q| block_on(q.finish_in_flight(flight, &done, &refused)))
            .await?;
        if let Some(f) = &self.on_delivery {
            f();
        }
        tracing::info!(
            "{name}: delivered {accepted} scrobble(s), {} queued",
            self.queued().await
        );
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
    async fn settle_in_flight(
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
                &self.handle.service,
                &self.queue,
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
                if found > 0 {
                    if let Some(f) = &self.on_delivery {
                        f();
                    }
                }
                tracing::info!(
                    "{name}: the server has {found} of the {} scrobble(s) of an unanswered request; \
                     {missing} will be sent again",
                    found + missing
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
                self.on_disk(move |q| q.clear_in_flight(id)).await
            }
        }
    }

    /// Run `f` on this target's queue on the blocking pool. Any sled call
    /// may wait for the disk: once a transaction has run, sled guards every
    /// operation with one process-wide read-write lock, a flush holds it
    /// for reading until its fsync returns, and a transaction waits for it
    /// while every later reader waits behind the transaction. On the
    /// runtime thread that froze the MPD watcher for as long as an fsync
    /// took (seconds on an SD card or a busy disk), so song changes were
    /// seen late and short plays were missed.
    async fn on_disk<T: Send + 'static>(
        &self,
        f: impl FnOnce(TargetQueue) -> Result<T, QueueError> + Send + 'static,
    ) -> Result<T, Stop> {
        let queue = self.queue.clone();
        match tokio::task::spawn_blocking(move || f(queue)).await {
            Ok(result) => result.map_err(Stop::Queue),
            // Only a runtime shutting down cancels it (a panic aborts).
            Err(_) => Err(Stop::Shutdown),
        }
    }

    /// Items waiting, for log lines (read off the runtime thread, as
    /// [`Flusher::on_disk`] explains).
    async fn queued(&self) -> usize {
        self.on_disk(|q| Ok(q.len())).await.unwrap_or(0)
    }

    fn backoff(&self, failures: &mut u32) -> Duration {
        let exp = self
            .timing
            .retry_min
            .saturating_mul(1u32 << (*failures).min(16))
            .min(self.timing.retry_max);
        *failures = failures.saturating_add(1);
        jitter(exp, random_permille())
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

/// How long to wait before retrying: what the server asked for, capped at
/// [`http::MAX_SERVER_WAIT`] (then also a note for the log saying so), else
/// `backoff`, and at least a minute after a rate-limit answer.
fn retry_wait(
    asked: Option<Duration>,
    rate_limited: bool,
    backoff: Duration,
) -> (Duration, Option<String>) {
    match asked {
        Some(asked) => {
            let (wait, capped) = http::cap_wait(asked);
            let note = capped.then(|| {
                format!(
                    "the server asks to wait {} s; waiting {} s instead, the most a server can ask for",
                    asked.as_secs(),
                    wait.as_secs()
                )
            });
            // A second more avoids landing exactly on the window's edge.
            (wait.saturating_add(Duration::from_secs(1)), note)
        }
        None if rate_limited => (backoff.max(RATE_LIMIT_WAIT), None),
        None => (backoff, None),
    }
}

/// Run a queue future to its end on a blocking-pool thread (see
/// [`Flusher::on_disk`]); what it awaits is sled's own flush thread.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Handle::current().block_on(f)
}

/// Between 75% (`permille` 0) and 125% (`permille` 1000 or more) of `d`, so
/// many daemons behind one outage do not retry in lockstep. A `d` too long
/// to scale (a configured `retry_max` of centuries) is kept as is.
fn jitter(d: Duration, permille: u32) -> Duration {
    let r = f64::from(permille.min(1000));
    Duration::try_from_secs_f64(d.as_secs_f64() * (0.75 + r / 2000.0)).unwrap_or(d)
}

/// A random number from 0 to 1000 for [`jitter`].
fn random_permille() -> u32 {
    let r = RandomState::new().hash_one(SystemTime::now()) % 1001;
    u32::try_from(r).unwrap_or(1000)
}

/// A server's message on one log line: a proxy's error page is HTML over
/// many lines.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// How long from `now` (Unix seconds) until a minute past the next UTC
/// midnight, when Last.fm's daily scrobble count starts again; the minute
/// allows for the server's clock being a little behind ours.
fn until_next_utc_day(now: u64) -> Duration {
    let day = 24 * 3600;
    Duration::from_secs(day - now % day + 60)
}

/// "Artist – Title" for log lines.
pub fn describe(t: &Track) -> String {
    format!("\"{} – {}\"", t.artist, t.title)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_spans_75_to_125_percent() {
        let d = Duration::from_secs(100);
        assert_eq!(jitter(d, 0), Duration::from_secs(75));
        assert_eq!(jitter(d, 500), Duration::from_secs(100));
        assert_eq!(jitter(d, 1000), Duration::from_secs(125));
        assert_eq!(jitter(d, u32::MAX), Duration::from_secs(125), "clamped");
        assert_eq!(
            jitter(Duration::from_millis(200), 250),
            Duration::from_millis(175)
        );
    }

    #[test]
    fn random_permille_covers_its_range() {
        let draws: Vec<u32> = (0..2000).map(|_| random_permille()).collect();
        assert!(draws.iter().all(|r| *r <= 1000), "{draws:?}");
        // Not stuck on one value: 2000 draws from 1001 values.
        let distinct: std::collections::BTreeSet<_> = draws.iter().collect();
        assert!(distinct.len() > 100, "{} distinct values", distinct.len());
    }

    #[test]
    fn jitter_survives_absurd_durations() {
        // 125% of these does not fit in a Duration: no panic, kept as is.
        assert_eq!(jitter(Duration::MAX, 1000), Duration::MAX);
        assert_eq!(jitter(Duration::MAX, 0), Duration::MAX.mul_f64(0.75));
        let big = Duration::from_secs(u64::MAX);
        assert_eq!(jitter(big, 1000), big);
        assert_eq!(jitter(Duration::ZERO, 1000), Duration::ZERO);
    }

    #[test]
    fn a_server_asking_for_more_than_an_hour_gets_an_hour_and_the_log_says_so() {
        let backoff = Duration::from_secs(5);
        for asked in [
            Duration::from_secs(3601),
            Duration::from_secs(u64::MAX),
            Duration::MAX,
        ] {
            let (wait, note) = retry_wait(Some(asked), true, backoff);
            assert_eq!(wait, Duration::from_secs(3601), "{asked:?}");
            let note = note.expect("a capped wait is logged");
            assert!(
                note.contains(&format!("asks to wait {} s", asked.as_secs()))
                    && note.contains("waiting 3600 s instead"),
                "{note}"
            );
        }
        let (wait, note) = retry_wait(Some(Duration::from_secs(3600)), false, backoff);
        assert_eq!((wait, note), (Duration::from_secs(3601), None));
        let (wait, note) = retry_wait(Some(Duration::ZERO), true, backoff);
        assert_eq!((wait, note), (Duration::from_secs(1), None));
        assert_eq!(retry_wait(None, true, backoff), (RATE_LIMIT_WAIT, None));
        assert_eq!(retry_wait(None, false, backoff), (backoff, None));
    }

    fn failure(kind: ErrorKind, setting: &'static str) -> Failure {
        Failure {
            kind,
            message: "HTTP 404:\n<html>\n  Not Found</html>".into(),
            retry_after: None,
            setting,
        }
    }

    #[test]
    fn refusals_of_the_request_pause_with_the_config_fix() {
        for kind in [ErrorKind::Config, ErrorKind::Unsupported] {
            match Stop::from(failure(kind, "url")) {
                Stop::Pause { why, fix } => {
                    assert_eq!(fix, Fix::Config("url"), "{kind:?}");
                    assert!(why.contains("HTTP 404: <html> Not Found</html>"), "{why}");
                    assert!(!why.contains('\n'), "one log line: {why:?}");
                }
                _ => panic!("{kind:?} must pause"),
            }
        }
        assert!(matches!(
            Stop::from(failure(ErrorKind::Auth, "url")),
            Stop::Pause { fix: Fix::Auth, .. }
        ));
        assert!(matches!(
            Stop::from(failure(ErrorKind::Transient, "url")),
            Stop::Retry {
                rate_limited: false,
                ..
            }
        ));
    }

    #[test]
    fn the_fix_names_the_config_key_or_the_auth_command() {
        let handle = TargetHandle {
            name: "lastfm".into(),
            service: Service::LastFm(crate::targets::lastfm::Client::new(
                http::client(Duration::from_secs(1)).unwrap(),
                "http://127.0.0.1:9/2.0/",
                "k",
                "s",
            )),
            session: watch::Sender::new(None),
            wake: Notify::new(),
            flush_now: Notify::new(),
            paused: AtomicBool::new(false),
            config: "[lastfm] of /etc/mpd-scrobbler.toml".into(),
            credential_problem: std::sync::Mutex::new(None),
            auth: "mpd-scrobbler auth lastfm".into(),
            health: std::sync::Mutex::new(Health::default()),
        };
        assert_eq!(
            handle.fix_text(Fix::Config("url")),
            "fix `url` in [lastfm] of /etc/mpd-scrobbler.toml and restart mpd-scrobbler"
        );
        assert_eq!(
            handle.fix_text(Fix::Auth),
            "run `mpd-scrobbler auth lastfm`"
        );
    }

    #[test]
    fn the_daily_limit_waits_until_a_minute_past_utc_midnight() {
        const DAY: u64 = 24 * 3600;
        // 2024-06-11 (a multiple of a day: midnight UTC) and around it.
        let midnight = 1_718_064_000;
        assert_eq!(midnight % DAY, 0);
        let wait = |now| until_next_utc_day(now).as_secs();
        assert_eq!(wait(midnight - 1), 61, "23:59:59");
        assert_eq!(wait(midnight), DAY + 60, "00:00:00 counts for the new day");
        assert_eq!(wait(midnight + 1), DAY + 59, "00:00:01");
        assert_eq!(wait(midnight + 12 * 3600), 12 * 3600 + 60, "noon");
        assert_eq!(wait(0), DAY + 60, "the epoch");
    }
}
