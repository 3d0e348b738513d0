//! The daemon: wires MPD, the tracker, the queue, the flushers and the control
//! socket together and runs until shutdown.
//!
//! The watch loop sleeps on exactly two things besides shutdown: MPD's idle
//! events and the tracker's next deadline. Nothing polls. It never waits for
//! the disk: a qualified play goes to the spool, whose writer task puts it
//! in the queue (see [`spool`](crate::daemon::spool)).

mod spool;
mod watchdog;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use mpd_client::client::ConnectionEvent;
use tokio_util::sync::CancellationToken;

use crate::admin::QueueCmd;
use crate::config::{Config, Secret};
use crate::control::{self, Request};
use crate::delivery::{Flusher, TargetHandle, describe};
use crate::history::PlayInfo;
use crate::history::commands as history_cmd;
use crate::queue::Queue;
use crate::rules::{Outcome, RuleSet};
use crate::scrobble::{Listen, Track, unix_now};
use crate::targets::{Target, lastfm, listenbrainz};
use crate::tracker::{Action, Tracker};
use crate::{admin, http, mpd as watcher, session};
use spool::{Fault, Spool, Store, WriteError};
use watchdog::Beat;

/// Longest wait between attempts to reach MPD.
const RECONNECT_MAX: Duration = Duration::from_secs(30);
/// At shutdown, how long the writer may try to write what it holds, and
/// how long flushers may take to finish a request. Both run at once, and
/// with the final flush they keep the exit within 2 s of SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
/// At shutdown, how long the final flush of the queue may take.
const FINAL_FLUSH: Duration = Duration::from_millis(500);

/// A configured target, reduced to what the daemon needs.
struct Spec {
    name: String,
    url: String,
    target: Arc<dyn Target>,
    /// Credential written in the config file; a stored one wins.
    from_config: Option<Secret>,
    /// Where it is configured, for the fix of a configuration problem.
    config: String,
}

/// "[lastfm] of FILE", or the named section when several are configured.
fn section_of(config: &Config, kind: &str, count: usize, name: &str) -> String {
    let file = config.path.display();
    if count > 1 {
        format!("the [[{kind}]] section named {name:?} of {file}")
    } else {
        format!("[{kind}] of {file}")
    }
}

fn specs(config: &Config, http: &reqwest::Client) -> Vec<Spec> {
    let lastfm = config.lastfm.iter().map(|t| Spec {
        name: t.name.clone(),
        url: t.url.clone(),
        target: Arc::new(lastfm::Client::new(
            http.clone(),
            &t.url,
            &t.api_key,
            t.api_secret.expose(),
        )),
        from_config: t.session_key.clone(),
        config: section_of(config, "lastfm", config.lastfm.len(), &t.name),
    });
    let listenbrainz = config.listenbrainz.iter().map(|t| Spec {
        name: t.name.clone(),
        url: t.url.clone(),
        target: Arc::new(listenbrainz::Client::new(http.clone(), &t.url, t.flavor)),
        from_config: t.token.clone(),
        config: section_of(config, "listenbrainz", config.listenbrainz.len(), &t.name),
    });
    lastfm.chain(listenbrainz).collect()
}

/// Run the daemon until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    if config.target_names().is_empty() {
        if !config.history.enabled {
            anyhow::bail!(
                "{}: no scrobbling target is configured and the history is off: \
                 add a [lastfm] or [listenbrainz] section",
                config.path.display()
            );
        }
        tracing::info!(
            "running with no online target: plays are kept in the local history only \
             (see `mpd-scrobbler history` and `stats`). To scrobble, add a [lastfm] or \
             [listenbrainz] section to {} (config.toml.example shows how), run \
             `mpd-scrobbler auth lastfm` or `auth listenbrainz`, then \
             `mpd-scrobbler backfill NAME` sends the plays recorded so far",
            config.path.display()
        );
    }
    session::ensure_state_dir(&config.state_dir).with_context(|| {
        format!(
            "cannot create the state directory {}",
            config.state_dir.display()
        )
    })?;
    let queue = history_cmd::configure(
        Queue::open_or_retry_later(&config.state_dir, &config.target_names())?,
        &config,
    );
    if let Some(keep) = config.history.keep {
        match queue.prune_history(unix_now().saturating_sub(keep.as_secs())) {
            Ok(0) => {}
            Ok(n) => tracing::info!("history: forgot {n} plays older than the `keep` setting"),
            Err(e) => tracing::warn!("history: cannot forget old plays: {e}"),
        }
    }
    let env = |k: &str| std::env::var(k).ok();
    // The socket only serves the commands; scrobbling goes on without it.
    let control = match control::bind(&config.state_dir, &env) {
        Ok(bound) => {
            tracing::debug!("control socket at {}", bound.path.display());
            Some(bound)
        }
        Err(e) => {
            tracing::error!(
                "cannot create the control socket ({e}); scrobbling goes on, but `status`, \
                 `love`, `queue` and `import` cannot reach this daemon"
            );
            None
        }
    };

    let http =
        http::client(config.delivery.request_timeout).context("cannot set up the HTTP client")?;
    let specs = specs(&config, &http);
    let mut targets = Vec::new();
    let mut flushers = tokio::task::JoinSet::new();
    for spec in &specs {
        let handle = Arc::new(TargetHandle::new(
            &spec.name,
            Arc::clone(&spec.target),
            spec.config.clone(),
            config.auth_command(&spec.name),
        ));
        load_credential(&handle, &config.state_dir, spec.from_config.as_ref());
        let unusable = handle
            .credential_problem
            .lock()
            .expect("not poisoned")
            .is_some();
        if handle.session.borrow().is_none() && !unusable {
            tracing::warn!(
                "{}: not authorised yet; scrobbles are queued until you run `{}`",
                spec.name,
                handle.auth_hint()
            );
        }
        let tq = queue.target(&spec.name);
        tracing::info!(
            "{}: {} scrobbles queued, sending to {}",
            spec.name,
            tq.len(),
            spec.url
        );
        targets.push((handle, tq));
    }
    let targets: Vec<Arc<TargetHandle>> = targets
        .into_iter()
        .map(|(handle, tq)| {
            let on_delivery: Arc<dyn Fn() + Send + Sync> = {
                let queue = queue.clone();
                Arc::new(move || notify_status_names(&queue))
            };
            flushers.spawn(
                Flusher::new(Arc::clone(&handle), tq, config.delivery, shutdown.clone())
                    .on_delivery(on_delivery)
                    .run(),
            );
            handle
        })
        .collect();

    let reload = {
        let state_dir = config.state_dir.clone();
        let targets = targets.clone();
        let from_config: Vec<Option<Secret>> =
            specs.iter().map(|s| s.from_config.clone()).collect();
        move || {
            for (handle, from_config) in targets.iter().zip(&from_config) {
                load_credential(handle, &state_dir, from_config.as_ref());
            }
            "ok".to_owned()
        }
    };
    let player = Arc::new(Player {
        tracker: std::sync::Mutex::new(Tracker::with_streams(config.rules, config.streams.clone())),
        connected: AtomicBool::new(false),
    });
    let spool = Arc::new(Spool::new());
    let (watch_beat, writer_beat) = (Beat::new(), Beat::new());
    let writer = tokio::spawn({
        let targets = targets.clone();
        let written_queue = queue.clone();
        let reopen_queue = queue.clone();
        spool::run_writer(
            Arc::clone(&spool),
            Arc::new(RoutedQueue {
                queue: queue.clone(),
                rules: config.rule_set.clone(),
            }),
            move || {
                notify_status_names(&written_queue);
                for t in &targets {
                    t.wake.notify_one();
                }
            },
            move || {
                let _ = reopen_queue.reopen_blocking();
            },
            shutdown.clone(),
            writer_beat.clone(),
            SHUTDOWN_GRACE,
        )
    });
    // An error a flusher meets closes the database; the writer's thread
    // opens it again, so delivery resumes without waiting for a play.
    let reopener = tokio::spawn({
        let queue = queue.clone();
        let targets = targets.clone();
        async move {
            loop {
                queue.closed().await;
                let mut wait = Duration::from_millis(250);
                loop {
                    let q = queue.clone();
                    let reopened = tokio::task::spawn_blocking(move || q.reopen_blocking().is_ok());
                    if reopened.await.unwrap_or(false) {
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
    });
    let watchdog_task = sd_notify::watchdog_enabled().map(|period| {
        tokio::spawn(watchdog::run(
            period,
            vec![watch_beat.clone(), writer_beat],
            shutdown.clone(),
        ))
    });
    let control_task = control.map(|bound| {
        let handler = Handler {
            reload: Arc::new(reload.clone()),
            queue: queue.clone(),
            targets: targets.clone(),
            player: Arc::clone(&player),
            spool: Arc::clone(&spool),
            state_dir: config.state_dir.clone(),
            address: config.mpd.address.to_string(),
        };
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
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
                    () = shutdown.cancelled() => break,
                }
            }
            bound
        })
    });

    let signal_task = tokio::spawn({
        let targets = targets.clone();
        async move { on_signals(reload, &targets).await }
    });

    let (love_tx, love_rx) = tokio::sync::mpsc::unbounded_channel();
    let love_task = tokio::spawn(love_messages(
        love_rx,
        Arc::clone(&player),
        queue.clone(),
        targets.clone(),
    ));
    watch_mpd(
        &config,
        &player,
        &love_tx,
        &spool,
        &targets,
        &shutdown,
        &watch_beat,
    )
    .await;
    // Loves already asked for are queued while the flushers finish.
    drop(love_tx);

    tracing::info!("shutting down");
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    // The writer makes its last attempt while the flushers finish; a flusher
    // waiting on a slow server is cut off (its batch stays queued).
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
    signal_task.abort();
    reopener.abort();
    if let Some(w) = watchdog_task {
        w.abort();
    }
    if let Some(task) = control_task {
        if let Ok(bound) = task.await {
            bound.remove();
        }
    }
    let flushed = tokio::time::timeout(
        FINAL_FLUSH,
        tokio::task::spawn_blocking(move || queue.flush()),
    )
    .await;
    match flushed {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::error!("final flush of the queue failed: {e}"),
        _ => tracing::error!(
            "the final flush of the queue did not finish within {} ms",
            FINAL_FLUSH.as_millis()
        ),
    }
    Ok(())
}

/// Load `handle`'s credential (at start and on reload). An unreadable or
/// damaged session file pauses only this target, with one log line saying
/// how to fix it; a credential already in use is kept.
fn load_credential(
    handle: &TargetHandle,
    state_dir: &std::path::Path,
    from_config: Option<&Secret>,
) {
    let set_problem = |p: Option<String>| {
        *handle.credential_problem.lock().expect("not poisoned") = p;
    };
    match session::credential(state_dir, &handle.name, from_config) {
        Ok(credential) => {
            set_problem(None);
            handle.session.send_replace(credential);
        }
        Err(e) if handle.session.borrow().is_some() => tracing::error!(
            "{}: {e}; the daemon goes on with the credential it read before. Run `{}` to replace the file",
            handle.name,
            handle.auth_hint()
        ),
        Err(e) => {
            tracing::error!(
                "{}: {e}; delivery to it is paused and its scrobbles stay queued. Run `{}` \
                 to store a new one (the running daemon picks it up)",
                handle.name,
                handle.auth_hint()
            );
            set_problem(Some(e.to_string()));
            // Wakes a flusher waiting for credentials, so `status` shows why.
            handle.session.send_replace(None);
        }
    }
}

/// Answers control-socket requests. Whatever may wait on the disk (sled
/// flushes, session files) runs on the blocking pool, so that a slow fsync
/// never holds up the runtime thread that follows MPD.
#[derive(Clone)]
struct Handler {
    reload: Arc<dyn Fn() -> String + Send + Sync>,
    queue: Queue,
    targets: Vec<Arc<TargetHandle>>,
    player: Arc<Player>,
    spool: Arc<Spool>,
    state_dir: std::path::PathBuf,
    address: String,
}

impl Handler {
    async fn handle(self, req: Request) -> String {
        match req {
            Request::Reload => {
                let reload = Arc::clone(&self.reload);
                blocking(move || reload()).await
            }
            // Counting queues and the history walks sled trees: not on the
            // thread that follows MPD.
            Request::Status => {
                let this = self.clone();
                blocking(move || {
                    status(
                        &this.address,
                        &this.player,
                        &this.queue,
                        &this.targets,
                        &this.spool,
                        &this.state_dir,
                    )
                    .to_string()
                })
                .await
            }
            Request::Love(l) => {
                let this = self.clone();
                blocking(move || love(&this.player, &this.queue, &this.targets, l).to_string())
                    .await
            }
            Request::Queue(QueueCmd::Flush) => {
                for t in &self.targets {
                    t.flush_now.notify_one();
                    t.wake.notify_one();
                }
                serde_json::json!({"flushed": self.targets.len()}).to_string()
            }
            Request::Queue(cmd) => {
                let queue = self.queue.clone();
                blocking(move || admin::execute(&queue, &cmd).to_string()).await
            }
            Request::Import(listens) => {
                let queue = self.queue.clone();
                let answer = blocking(move || admin::import(&queue, &listens).to_string()).await;
                for t in &self.targets {
                    t.wake.notify_one();
                }
                answer
            }
            Request::History(filter) => {
                let queue = self.queue.clone();
                blocking(move || history_cmd::select(&queue, &filter).to_string()).await
            }
            Request::Stats(since) => {
                let queue = self.queue.clone();
                blocking(move || history_cmd::compute_stats(&queue, since).to_string()).await
            }
            Request::Backfill(req) => {
                let queue = self.queue.clone();
                let target = req.target.clone();
                let answer =
                    blocking(move || history_cmd::backfill(&queue, &req).to_string()).await;
                for t in self.targets.iter().filter(|t| t.name == target) {
                    t.wake.notify_one();
                }
                answer
            }
        }
    }
}

/// Run `f` on the blocking pool; its answer, or an error answer.
async fn blocking(f: impl FnOnce() -> String + Send + 'static) -> String {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        serde_json::json!({"error": format!("the request failed: {e}")}).to_string()
    })
}

/// Tell systemd (Type=notify) that start-up is done; only the first call
/// sends anything.
fn notify_ready() {
    static SENT: std::sync::Once = std::sync::Once::new();
    SENT.call_once(|| {
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    });
}

/// Show the queue depth per target in `systemctl status`. Counting reads
/// the queue, which can wait on the disk, so it runs on the blocking pool.
fn notify_status_names(queue: &Queue) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    let queue = queue.clone();
    tokio::task::spawn_blocking(move || {
        let text: Vec<String> = queue
            .names()
            .iter()
            .map(|name| format!("{name}: {} queued", queue.target(name).len()))
            .collect();
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Status(&text.join(", "))]);
    });
}

/// Queue the loves and unloves asked for by MPD messages (`true` is a
/// love), one after the other and each on the blocking pool: queueing one
/// waits for an fsync, which the watch loop must not.
async fn love_messages(
    mut asked: tokio::sync::mpsc::UnboundedReceiver<bool>,
    player: Arc<Player>,
    queue: Queue,
    targets: Vec<Arc<TargetHandle>>,
) {
    let targets: Arc<[Arc<TargetHandle>]> = targets.into();
    while let Some(l) = asked.recv().await {
        let (player, queue, targets) = (Arc::clone(&player), queue.clone(), Arc::clone(&targets));
        let _ = tokio::task::spawn_blocking(move || love(&player, &queue, &targets, l)).await;
    }
}

/// What the watch loop shares with `status`.
struct Player {
    /// Locked only for a synchronous step, never across an await.
    tracker: std::sync::Mutex<Tracker>,
    connected: AtomicBool,
}

impl Player {
    fn tracker(&self) -> std::sync::MutexGuard<'_, Tracker> {
        self.tracker.lock().expect("not poisoned")
    }
}

/// Love or unlove the current play's track on every target, durably.
/// Returns the answer for the control socket.
fn love(
    player: &Player,
    queue: &Queue,
    targets: &[Arc<TargetHandle>],
    love: bool,
) -> serde_json::Value {
    let verb = if love { "love" } else { "unlove" };
    let Some(track) = player.tracker().current().map(|(t, _)| t.clone()) else {
        tracing::info!("nothing is playing; {verb} ignored");
        return serde_json::json!({"error": format!("nothing is playing to {verb}")});
    };
    if track.artist.is_empty() || track.title.is_empty() {
        return serde_json::json!({"error": "the current song has no artist or title tag"});
    }
    match queue.enqueue_love(&crate::queue::Love {
        track: track.clone(),
        love,
    }) {
        Ok(()) => {
            tracing::info!("queued {verb} of {}", describe(&track));
            for t in targets {
                t.wake.notify_one();
            }
            serde_json::json!({"queued": verb, "artist": track.artist, "title": track.title})
        }
        Err(e) => {
            tracing::error!("cannot queue {verb} of {}: {e}", describe(&track));
            serde_json::json!({"error": e.to_string()})
        }
    }
}

/// The answer to `status`.
fn status(
    address: &str,
    player: &Player,
    queue: &Queue,
    targets: &[Arc<TargetHandle>],
    spool: &Spool,
    state_dir: &std::path::Path,
) -> serde_json::Value {
    let now = unix_now();
    let playing = {
        let tracker = player.tracker();
        tracker.current().map(|(track, qualified)| {
            let (played, needed) = tracker.progress(Instant::now()).unwrap_or_default();
            serde_json::json!({
                "artist": track.artist,
                "title": track.title,
                "played_secs": played.as_secs(),
                "needed_secs": needed.map(|n| n.as_secs()),
                "qualified": qualified,
            })
        })
    };
    let targets: Vec<serde_json::Value> = targets
        .iter()
        .map(|t| {
            let q = queue.target(&t.name);
            let mut v = serde_json::to_value(&*t.health.lock().expect("not poisoned"))
                .expect("serialisable");
            v["name"] = t.name.clone().into();
            v["queued"] = q.len().into();
            v["rejected"] = q.rejected_len().into();
            v["oldest_secs"] = q.oldest().map(|o| now.saturating_sub(o)).into();
            v
        })
        .collect();
    serde_json::json!({
        "mpd": {"address": address, "connected": player.connected.load(Ordering::Relaxed)},
        "playing": playing,
        "storage": storage(spool, queue, state_dir),
        "targets": targets,
        "history": history_cmd::summary(queue),
    })
}

/// The state directory's part of `status`: whether plays can be written,
/// how many wait in memory, and what to do.
fn storage(spool: &Spool, queue: &Queue, state_dir: &std::path::Path) -> serde_json::Value {
    let s = spool.state();
    let dir = state_dir.display();
    let (state, fix) = match s.fault {
        None if queue.is_open() => ("ok", None),
        None => (
            "closed",
            Some("the queue database is being opened again after an error; see the log".into()),
        ),
        Some(Fault::Full) => (
            "full",
            Some(format!(
                "free some space on the file system of {dir} (`df -h {dir}`); \
                 held plays are written as soon as there is room"
            )),
        ),
        Some(Fault::Unwritable) => (
            "unwritable",
            Some(format!(
                "make {dir} writable for the user that runs the daemon (or remount it \
                 read-write); held plays are written as soon as it is"
            )),
        ),
        Some(Fault::Failing) => (
            "failing",
            Some("see the daemon's log; held plays are written as soon as writing works".into()),
        ),
    };
    serde_json::json!({
        "state": state,
        "dir": state_dir,
        "held": s.held,
        "dropped": s.dropped,
        "why": s.why,
        "fix": fix,
    })
}

/// SIGHUP re-reads credentials; SIGUSR1 delivers now, skipping any backoff
/// (as mpdscribble does).
async fn on_signals(reload: impl Fn() -> String, targets: &[Arc<TargetHandle>]) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut hup), Ok(mut usr1)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::user_defined1()),
    ) else {
        tracing::warn!("cannot install SIGHUP/SIGUSR1 handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = hup.recv() => {
                tracing::info!("SIGHUP: re-reading credentials");
                reload();
            }
            _ = usr1.recv() => {
                tracing::info!("SIGUSR1: delivering now");
                for t in targets {
                    t.flush_now.notify_one();
                }
            }
        }
    }
}

/// Follow MPD until shutdown, reconnecting whenever it goes away.
async fn watch_mpd(
    config: &Config,
    player: &Player,
    loves: &tokio::sync::mpsc::UnboundedSender<bool>,
    spool: &Spool,
    targets: &[Arc<TargetHandle>],
    shutdown: &CancellationToken,
    beat: &Beat,
) {
    let mut retry = Duration::from_millis(250);
    let mut last_error = None;
    let mut router = Router {
        rules: &config.rule_set,
        reported: None,
    };
    loop {
        let connecting = watcher::connect(&config.mpd);
        tokio::pin!(connecting);
        let connected = loop {
            tokio::select! {
                c = &mut connecting => break c,
                () = beat.asked() => beat.answer(),
                () = shutdown.cancelled() => return,
            }
        };
        let (client, mut events) = match connected {
            Ok(c) => c,
            Err(e) => {
                // Up and retrying is ready enough: waiting for MPD here would
                // make systemd time the start out and restart us in a loop.
                notify_ready();
                let message = e.to_string();
                if last_error.as_ref() != Some(&message) {
                    tracing::warn!(
                        "{message}; retrying (up to every {} s)",
                        RECONNECT_MAX.as_secs()
                    );
                    last_error = Some(message);
                }
                let pause = tokio::time::sleep(retry);
                tokio::pin!(pause);
                loop {
                    tokio::select! {
                        () = &mut pause => break,
                        () = beat.asked() => beat.answer(),
                        () = shutdown.cancelled() => return,
                    }
                }
                retry = (retry * 2).min(RECONNECT_MAX);
                continue;
            }
        };
        tracing::info!("connected to MPD at {}", config.mpd.address);
        player.connected.store(true, Ordering::Relaxed);
        if let Err(e) = watcher::subscribe(&client).await {
            tracing::warn!("cannot subscribe to MPD channels, love messages will not work: {e}");
        }
        retry = Duration::from_millis(250);
        last_error = None;

        let mut resync = true;
        loop {
            if resync {
                resync = false;
                match watcher::snapshot(&client).await {
                    Ok(snap) => {
                        let actions = player.tracker().observe(snap, Instant::now(), unix_now());
                        perform(actions, player, spool, targets, &mut router);
                        notify_ready();
                    }
                    Err(e) => {
                        tracing::warn!("lost MPD: {e}");
                        break;
                    }
                }
                // Every wake-up, not only "message" ones: mpd_client reports
                // only the first subsystem of a wake-up.
                match watcher::messages(&client).await {
                    Ok(messages) => {
                        for (channel, message) in messages {
                            match (channel.as_str(), message.trim()) {
                                ("mpdscribble" | "mpd-scrobbler", "love") => {
                                    let _ = loves.send(true);
                                }
                                ("mpd-scrobbler", "unlove") => {
                                    let _ = loves.send(false);
                                }
                                _ => tracing::info!(
                                    "ignoring message {message:?} on channel {channel:?}"
                                ),
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!("lost MPD: {e}");
                        break;
                    }
                }
            }
            let deadline = player.tracker().next_deadline();
            tokio::select! {
                event = events.next() => match event {
                    Some(ConnectionEvent::SubsystemChange(_)) => resync = true,
                    Some(ConnectionEvent::ConnectionClosed(e)) => {
                        tracing::warn!("MPD connection closed: {}", watcher::describe_closed(&e));
                        break;
                    }
                    None => {
                        tracing::warn!("MPD closed the connection");
                        break;
                    }
                },
                () = sleep_until(deadline), if deadline.is_some() => {
                    let actions = player.tracker().tick(Instant::now());
                    perform(actions, player, spool, targets, &mut router);
                }
                () = beat.asked() => beat.answer(),
                () = shutdown.cancelled() => return,
            }
        }
        // Whether MPD kept playing while unreachable is unknown: stop the clock.
        player.tracker().suspend(Instant::now());
        player.connected.store(false, Ordering::Relaxed);
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// The rules between the tracker and the targets: each target gets its own
/// version of a play, or nothing.
struct Router<'a> {
    rules: &'a RuleSet,
    /// The last track reported as ignored, so that a play gets one line
    /// rather than one per event (now playing, resume, queueing).
    reported: Option<Track>,
}

impl Router<'_> {
    fn route<'t>(
        &mut self,
        track: &Track,
        targets: &'t [Arc<TargetHandle>],
    ) -> Vec<(&'t Arc<TargetHandle>, Track)> {
        let mut send = Vec::new();
        let mut ignored = Vec::new();
        for t in targets {
            match self.rules.apply(track, &t.name) {
                Outcome::Send(track) => send.push((t, track)),
                Outcome::Ignored(rule) => ignored.push(format!("{} (rule[{rule}])", t.name)),
            }
        }
        if !ignored.is_empty() && self.reported.as_ref() != Some(track) {
            tracing::debug!("ignoring {} for {}", describe(track), ignored.join(", "));
            self.reported = Some(track.clone());
        }
        send
    }

    fn ignores_everywhere(&mut self, track: &Track, targets: &[Arc<TargetHandle>]) -> bool {
        if targets.is_empty() {
            matches!(self.rules.apply(track, ""), Outcome::Ignored(_))
        } else {
            self.route(track, targets).is_empty()
        }
    }
}

/// The queue as the spool's writer sees it: each play goes to each target
/// as the rules make it for that target (rules are pure, so this is what
/// "now playing" got).
struct RoutedQueue {
    queue: Queue,
    rules: RuleSet,
}

impl Store for RoutedQueue {
    fn write(&self, play: &Listen, info: &PlayInfo) -> Result<(), WriteError> {
        let routed: Vec<(&str, Listen)> = self
            .queue
            .names()
            .iter()
            .filter_map(|name| match self.rules.apply(&play.track, name) {
                Outcome::Send(track) => Some((
                    name.as_str(),
                    Listen {
                        track,
                        started_at: play.started_at,
                    },
                )),
                Outcome::Ignored(_) => None,
            })
            .collect();
        self.queue
            .enqueue_each_blocking(play, &routed, info)
            .map_err(|e| WriteError::from(&e))
    }
}

/// Carry out the tracker's actions. Never waits: a play to scrobble goes to
/// the spool.
fn perform(
    actions: impl IntoIterator<Item = Action>,
    player: &Player,
    spool: &Spool,
    targets: &[Arc<TargetHandle>],
    router: &mut Router<'_>,
) {
    for action in actions {
        match action {
            Action::NowPlaying(track) => {
                let routed = router.route(&track, targets);
                if !routed.is_empty() {
                    tracing::info!("now playing {}", describe(&track));
                }
                for (t, track) in routed {
                    t.now_playing(&track);
                }
            }
            Action::Scrobble(listen) => {
                // Ignored for every target (or, with none, by a global
                // rule): nothing to queue, nothing for the history.
                if router.ignores_everywhere(&listen.track, targets) {
                    continue;
                }
                tracing::debug!("{} qualified", describe(&listen.track));
                let info = play_info(player, &listen);
                spool.push(listen, info);
            }
            Action::Skip { uri, reason } => {
                tracing::info!("not scrobbling {uri}: {reason}");
            }
        }
    }
}

/// The file and play time of the play that just qualified, for its history
/// record; nothing when the tracker has moved on to another play.
fn play_info(player: &Player, listen: &crate::scrobble::Listen) -> PlayInfo {
    let tracker = player.tracker();
    match (tracker.current_play(), tracker.progress(Instant::now())) {
        (Some((uri, started_at)), Some((played, _))) if started_at == listen.started_at => {
            PlayInfo {
                uri: Some(uri.to_owned()),
                played_secs: Some(played.as_secs()),
            }
        }
        _ => PlayInfo::default(),
    }
}
