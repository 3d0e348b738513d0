//! The daemon: wires MPD, the tracker, the queue, the flushers and the control
//! socket together and runs until shutdown.
//!
//! The watch loop sleeps on exactly two things besides shutdown: MPD's idle
//! events and the tracker's next deadline. Nothing polls.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use mpd_client::client::ConnectionEvent;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::admin::QueueCmd;
use crate::config::{Config, Secret};
use crate::control::{self, Request};
use crate::delivery::{Flusher, Health, TargetHandle, describe};
use crate::history::PlayInfo;
use crate::queue::Queue;
use crate::scrobble::unix_now;
use crate::target::Service;
use crate::tracker::{Action, Tracker};
use crate::{admin, history_cmd, http, lastfm, listenbrainz, session, watcher};

/// Longest wait between attempts to reach MPD.
const RECONNECT_MAX: Duration = Duration::from_secs(30);

/// A configured target, reduced to what the daemon needs.
struct Spec {
    name: String,
    url: String,
    service: Service,
    /// Credential written in the config file; a stored one wins.
    from_config: Option<Secret>,
}

fn specs(config: &Config, http: &reqwest::Client) -> Vec<Spec> {
    let lastfm = config.lastfm.iter().map(|t| Spec {
        name: t.name.clone(),
        url: t.url.clone(),
        service: Service::LastFm(lastfm::Client::new(
            http.clone(),
            &t.url,
            &t.api_key,
            t.api_secret.expose(),
        )),
        from_config: t.session_key.clone(),
    });
    let listenbrainz = config.listenbrainz.iter().map(|t| Spec {
        name: t.name.clone(),
        url: t.url.clone(),
        service: Service::ListenBrainz(listenbrainz::Client::new(http.clone(), &t.url, t.flavor)),
        from_config: t.token.clone(),
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
        Queue::open(&config.state_dir, &config.target_names())?,
        &config,
    );
    if let Some(keep) = config.history.keep {
        match queue.prune_history(unix_now().saturating_sub(keep.as_secs())) {
            Ok(0) => {}
            Ok(n) => tracing::info!("history: forgot {n} plays older than the `keep` setting"),
            Err(e) => tracing::warn!("history: cannot forget old plays: {e}"),
        }
    }
    let listener = control::bind(&config.state_dir).with_context(|| {
        format!(
            "cannot create the control socket {}",
            control::socket_path(&config.state_dir).display()
        )
    })?;

    let http =
        http::client(config.delivery.request_timeout).context("cannot set up the HTTP client")?;
    let specs = specs(&config, &http);
    let mut targets = Vec::new();
    let mut flushers = tokio::task::JoinSet::new();
    for spec in &specs {
        let credential =
            session::credential(&config.state_dir, &spec.name, spec.from_config.as_ref())?;
        let handle = Arc::new(TargetHandle {
            name: spec.name.clone(),
            service: spec.service.clone(),
            session: watch::Sender::new(credential),
            wake: Notify::new(),
            flush_now: Notify::new(),
            paused: AtomicBool::new(false),
            health: std::sync::Mutex::new(Health {
                state: "ok",
                ..Health::default()
            }),
        });
        if handle.session.borrow().is_none() {
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
                match session::credential(&state_dir, &handle.name, from_config.as_ref()) {
                    Ok(credential) => {
                        handle.session.send_replace(credential);
                    }
                    Err(e) => tracing::error!("{}: cannot read the credentials: {e}", handle.name),
                }
            }
            "ok".to_owned()
        }
    };
    let player = Arc::new(Player {
        tracker: std::sync::Mutex::new(Tracker::new(config.rules)),
        connected: AtomicBool::new(false),
    });
    let reload_control = reload.clone();
    let control_task = tokio::spawn({
        let shutdown = shutdown.clone();
        let queue = queue.clone();
        let targets = targets.clone();
        let player = Arc::clone(&player);
        let address = config.mpd.address.to_string();
        async move {
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => {
                            let reload = reload_control.clone();
                            let queue = queue.clone();
                            let targets = targets.clone();
                            let player = Arc::clone(&player);
                            let address = address.clone();
                            tokio::spawn(control::serve(stream, move |req| match req {
                                Request::Reload => reload(),
                                Request::Status => status(&address, &player, &queue, &targets).to_string(),
                                Request::Love(l) => love(&player, &queue, &targets, l).to_string(),
                                Request::Queue(QueueCmd::Flush) => {
                                    for t in &targets {
                                        t.flush_now.notify_one();
                                        t.wake.notify_one();
                                    }
                                    serde_json::json!({"flushed": targets.len()}).to_string()
                                }
                                Request::Queue(cmd) => admin::execute(&queue, &cmd).to_string(),
                                Request::Import(listens) => {
                                    let answer = admin::import(&queue, &listens);
                                    for t in &targets {
                                        t.wake.notify_one();
                                    }
                                    answer.to_string()
                                }
                                Request::History(filter) => history_cmd::select(&queue, &filter).to_string(),
                                Request::Stats(since) => history_cmd::compute_stats(&queue, since).to_string(),
                                Request::Backfill(req) => {
                                    let answer = history_cmd::backfill(&queue, &req);
                                    for t in targets.iter().filter(|t| t.name == req.target) {
                                        t.wake.notify_one();
                                    }
                                    answer.to_string()
                                }
                            }));
                        }
                        Err(e) => tracing::warn!("control socket: {e}"),
                    },
                    () = shutdown.cancelled() => break,
                }
            }
        }
    });

    let signal_task = tokio::spawn({
        let targets = targets.clone();
        async move { on_signals(reload, &targets).await }
    });

    watch_mpd(&config, &player, &queue, &targets, &shutdown).await;

    tracing::info!("shutting down");
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    while flushers.join_next().await.is_some() {}
    control_task.abort();
    signal_task.abort();
    let _ = std::fs::remove_file(control::socket_path(&config.state_dir));
    queue.flush()?;
    Ok(())
}

/// Tell systemd (Type=notify) that start-up is done; only the first call
/// sends anything.
fn notify_ready() {
    static SENT: std::sync::Once = std::sync::Once::new();
    SENT.call_once(|| {
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    });
}

/// Show the queue depth per target in `systemctl status`.
fn notify_status_names(queue: &Queue) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    let text: Vec<String> = queue
        .names()
        .iter()
        .map(|name| format!("{name}: {} queued", queue.target(name).len()))
        .collect();
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Status(&text.join(", "))]);
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
        "targets": targets,
        "history": history_cmd::summary(queue),
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
    queue: &Queue,
    targets: &[Arc<TargetHandle>],
    shutdown: &CancellationToken,
) {
    let mut retry = Duration::from_millis(250);
    let mut last_error = None;
    loop {
        let connected = tokio::select! {
            c = watcher::connect(&config.mpd) => c,
            () = shutdown.cancelled() => return,
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
                tokio::select! {
                    () = tokio::time::sleep(retry) => {}
                    () = shutdown.cancelled() => return,
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
                        perform(actions, player, queue, targets).await;
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
                                    love(player, queue, targets, true);
                                }
                                ("mpd-scrobbler", "unlove") => {
                                    love(player, queue, targets, false);
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
                    perform(actions, player, queue, targets).await;
                }
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

async fn perform(
    actions: impl IntoIterator<Item = Action>,
    player: &Player,
    queue: &Queue,
    targets: &[Arc<TargetHandle>],
) {
    for action in actions {
        match action {
            Action::NowPlaying(track) => {
                tracing::info!("now playing {}", describe(&track));
                for t in targets {
                    t.now_playing(&track);
                }
            }
            Action::Scrobble(listen) => {
                let info = play_info(player, &listen);
                // A failed write is retried rather than dropped: the play
                // must not be lost because the disk hiccuped.
                let mut wait = Duration::from_millis(100);
                loop {
                    match queue.enqueue_play(&listen, &info).await {
                        Ok(()) => break,
                        Err(e) => {
                            tracing::error!(
                                "cannot queue {}: {e}; retrying",
                                describe(&listen.track)
                            );
                            tokio::time::sleep(wait).await;
                            wait = (wait * 2).min(Duration::from_secs(10));
                        }
                    }
                }
                notify_status_names(queue);
                tracing::info!(
                    "queued {} (started at {})",
                    describe(&listen.track),
                    listen.started_at
                );
                for t in targets {
                    t.wake.notify_one();
                }
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
