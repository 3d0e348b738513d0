//! Start-up: builds the daemon's parts from the config (the queue and its
//! storage thread, the targets and their credentials, the control socket,
//! the signal handlers) and runs [`Daemon::run`] with the real MPD.

use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::{Daemon, Reload, notify};
use crate::config::{Config, Secret};
use crate::control;
use crate::delivery::TargetHandle;
use crate::events::Events;
use crate::model::unix_now;
use crate::mpd::Mpd;
use crate::output::count;
use crate::queue::Queue;
use crate::store::Store;
use crate::targets::{Target, lastfm, listenbrainz};
use crate::tracker::Tracker;
use crate::{http, session};

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

/// Run the daemon of `config` until `shutdown` is cancelled.
///
/// # Errors
///
/// Nothing to do (no target and no history), or the state directory, the
/// queue or the HTTP client cannot be set up.
pub(crate) async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
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
             [listenbrainz] section to {} (`mpd-scrobbler config init` writes a commented \
             config with both), run \
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
    let queue = crate::store::configure(
        Queue::open_or_retry_later(&config.state_dir, &config.target_names())?,
        &config,
    );
    let (events, event_rx) = if config.notify.is_empty() {
        (Events::none(), None)
    } else {
        let (tx, rx) = Events::channel();
        (tx, Some(rx))
    };
    let store = Store::start(queue, notify::depth_report(events.clone()))
        .context("cannot start the thread that writes the queue")?;
    if let Some(keep) = config.history.keep {
        match store
            .prune_history(unix_now().saturating_sub(keep.as_secs()))
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                "history: forgot {} older than the `keep` setting",
                count(n as u64, "play", "plays")
            ),
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
    let mut targets: Vec<Arc<TargetHandle>> = Vec::with_capacity(specs.len());
    for spec in &specs {
        targets.push(target(&config, spec, &events, store.len(&spec.name).await));
    }
    // The storage thread has told each queue's oldest play already: a
    // backlog stale at start is news.
    let notify_task = event_rx.map(|rx| {
        tokio::spawn(crate::notify::run(
            config.notify.clone(),
            rx,
            http.clone(),
            shutdown.clone(),
        ))
    });
    let metrics = match config.metrics {
        None => None,
        Some(m) => match crate::metrics::bind(m.listen).await {
            Ok(listener) => {
                tracing::info!("metrics at http://{}/metrics", m.listen);
                Some(listener)
            }
            // An auxiliary part: scrobbling goes on without it.
            Err(e) => {
                tracing::error!(
                    "cannot listen on {} for the metrics ({e}); scrobbling goes on without them",
                    m.listen
                );
                None
            }
        },
    };
    let reload: Reload = {
        let state_dir = config.state_dir.clone();
        let targets = targets.clone();
        let from_config: Vec<Option<Secret>> =
            specs.iter().map(|s| s.from_config.clone()).collect();
        Arc::new(move || {
            for (handle, from_config) in targets.iter().zip(&from_config) {
                load_credential(handle, &state_dir, from_config.as_ref());
            }
            "ok".to_owned()
        })
    };
    let signal_task = tokio::spawn({
        let (reload, targets) = (Arc::clone(&reload), targets.clone());
        async move { on_signals(reload, &targets).await }
    });
    let daemon = Daemon {
        store,
        tracker: Tracker::with_streams(config.thresholds, config.streams.clone()),
        rules: config.rule_set.clone(),
        delivery: config.delivery,
        state_dir: config.state_dir.clone(),
        control,
        reload,
        events,
        metrics,
    };
    daemon
        .run(Mpd::new(config.mpd.clone()), targets, shutdown)
        .await;
    signal_task.abort();
    if let Some(task) = notify_task {
        task.abort();
    }
    Ok(())
}

/// The handle of the target `spec`, its credential loaded; `queued`
/// scrobbles wait for it.
fn target(config: &Config, spec: &Spec, events: &Events, queued: usize) -> Arc<TargetHandle> {
    let mut handle = TargetHandle::new(
        &spec.name,
        Arc::clone(&spec.target),
        spec.config.clone(),
        config.auth_command(&spec.name),
    );
    handle.events = events.clone();
    let handle = Arc::new(handle);
    load_credential(&handle, &config.state_dir, spec.from_config.as_ref());
    let unusable = handle
        .credential_problem
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .is_some();
    if handle.session.borrow().is_none() && !unusable {
        tracing::warn!(
            "{}: not authorised yet; scrobbles are queued until you run `{}`",
            spec.name,
            handle.auth_hint()
        );
    }
    tracing::info!(
        "{}: {} queued, sending to {}",
        spec.name,
        count(queued as u64, "scrobble", "scrobbles"),
        spec.url
    );
    handle
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
        *handle
            .credential_problem
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = p;
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

/// SIGHUP re-reads credentials; SIGUSR1 delivers now, skipping any backoff
/// (as mpdscribble does).
async fn on_signals(reload: Reload, targets: &[Arc<TargetHandle>]) {
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
