//! The watch loop: follows MPD until shutdown, reconnecting whenever it goes
//! away, feeds each state it reads to the tracker and carries out the
//! tracker's actions. It never waits for the disk: a play to scrobble goes
//! to the spool.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use super::alarm::Alarm;
use super::notify;
use super::route::Router;
use super::spool::Spool;
use super::watchdog::Beat;
use crate::delivery::TargetHandle;
use crate::events::{Event as Told, Events};
use crate::history::PlayInfo;
use crate::model::describe;
use crate::model::{Listen, unix_now};
use crate::mpd::{Closed, Event, Message, MpdConnection, MpdSource};
use crate::rules::RuleSet;
use crate::tracker::{Action, Tracker};

/// Longest wait between attempts to reach MPD.
const RECONNECT_MAX: Duration = Duration::from_secs(30);
/// First wait after MPD could not be reached.
const RECONNECT_MIN: Duration = Duration::from_millis(250);

/// What the watch loop shares with `status` and love.
#[derive(Debug)]
pub(super) struct Player {
    /// Locked only for a synchronous step, never across an await.
    tracker: std::sync::Mutex<Tracker>,
    pub(super) connected: AtomicBool,
    /// The current play once it counted, with its file: when it ends, its
    /// history record gets its whole play time.
    counted: std::sync::Mutex<Option<(Listen, Option<String>)>>,
}

impl Player {
    pub(super) fn new(tracker: Tracker) -> Player {
        Player {
            tracker: std::sync::Mutex::new(tracker),
            connected: AtomicBool::new(false),
            counted: std::sync::Mutex::new(None),
        }
    }

    /// The counted play and its play time now, if it is still the current
    /// play; forgets it either way. For the end of the daemon.
    pub(super) fn take_counted(&self) -> Option<(Listen, PlayInfo)> {
        let counted = self
            .counted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()?;
        let tracker = self.tracker();
        let started = tracker.current_play().map(|(_, s)| s);
        let (played, _) = tracker.progress(Instant::now())?;
        (started == Some(counted.0.started_at)).then(|| ended(counted, played.as_secs()))
    }

    pub(super) fn tracker(&self) -> std::sync::MutexGuard<'_, Tracker> {
        self.tracker.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The watch loop's parts.
pub(super) struct Watcher<'a> {
    pub(super) player: &'a Player,
    /// Loves (`true`) and unloves asked for by MPD messages.
    pub(super) loves: &'a UnboundedSender<bool>,
    pub(super) spool: &'a Spool,
    pub(super) targets: &'a [Arc<TargetHandle>],
    pub(super) rules: &'a RuleSet,
    pub(super) beat: &'a Beat,
    /// Told when MPD is reached or lost.
    pub(super) events: &'a Events,
}

/// Why following one connection ended.
enum End {
    Shutdown,
    Lost,
}

impl Watcher<'_> {
    /// Follow `mpd` until `shutdown` is cancelled.
    pub(super) async fn run(&self, mpd: &impl MpdSource, shutdown: &CancellationToken) {
        let mut retry = RECONNECT_MIN;
        let mut last_error = None;
        let mut router = Router::new(self.rules);
        let mut alarm = Alarm::new();
        loop {
            let connecting = mpd.connect();
            tokio::pin!(connecting);
            let connected = loop {
                tokio::select! {
                    c = &mut connecting => break c,
                    () = self.beat.asked() => self.beat.answer(),
                    () = shutdown.cancelled() => return,
                }
            };
            let mut connection = match connected {
                Ok(c) => c,
                Err(e) => {
                    // Up and retrying is ready enough: waiting for MPD here
                    // would make systemd time the start out and restart us
                    // in a loop.
                    notify::ready();
                    let message = e.to_string();
                    if last_error.is_none() {
                        self.mpd_link(mpd, false);
                    }
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
                            () = self.beat.asked() => self.beat.answer(),
                            () = shutdown.cancelled() => return,
                        }
                    }
                    retry = (retry * 2).min(RECONNECT_MAX);
                    continue;
                }
            };
            tracing::info!("connected to MPD at {}", mpd.address());
            self.player.connected.store(true, Ordering::Relaxed);
            self.mpd_link(mpd, true);
            if let Err(e) = connection.subscribe().await {
                tracing::warn!(
                    "cannot subscribe to MPD channels, love messages will not work: {e}"
                );
            }
            retry = RECONNECT_MIN;
            last_error = None;
            let end = self
                .follow(&mut connection, &mut router, &mut alarm, shutdown)
                .await;
            // Whether MPD kept playing while unreachable is unknown: stop the clock.
            self.player.tracker().suspend(Instant::now());
            self.player.connected.store(false, Ordering::Relaxed);
            if let End::Shutdown = end {
                return;
            }
            self.mpd_link(mpd, false);
        }
    }

    fn mpd_link(&self, mpd: &impl MpdSource, connected: bool) {
        self.events.send(Told::Mpd {
            connected,
            address: mpd.address(),
        });
    }

    /// Follow one connection until it is lost or shutdown.
    async fn follow(
        &self,
        connection: &mut impl MpdConnection,
        router: &mut Router<'_>,
        alarm: &mut Alarm,
        shutdown: &CancellationToken,
    ) -> End {
        let mut resync = true;
        loop {
            if resync {
                resync = false;
                match connection.snapshot().await {
                    Ok(snap) => {
                        let before = self.progress();
                        let actions =
                            self.player
                                .tracker()
                                .observe(snap, Instant::now(), unix_now());
                        self.perform(actions, router);
                        self.after(before);
                        notify::ready();
                    }
                    Err(e) => {
                        tracing::warn!("lost MPD: {e}");
                        return End::Lost;
                    }
                }
                // Every wake-up, not only "message" ones: the MPD client
                // reports only the first subsystem of a wake-up.
                match connection.messages().await {
                    Ok(messages) => self.on_messages(messages),
                    Err(e) => {
                        tracing::warn!("lost MPD: {e}");
                        return End::Lost;
                    }
                }
            }
            let deadline = self.player.tracker().next_deadline();
            tokio::select! {
                event = connection.next_event() => match event {
                    Event::Changed => resync = true,
                    Event::Closed(Closed::Eof) => {
                        tracing::warn!("MPD closed the connection");
                        return End::Lost;
                    }
                    Event::Closed(why) => {
                        tracing::warn!("MPD connection closed: {why}");
                        return End::Lost;
                    }
                },
                () = sleep_until(alarm, deadline), if deadline.is_some() => {
                    let before = self.progress();
                    let actions = self.player.tracker().tick(Instant::now());
                    self.perform(actions, router);
                    self.after(before);
                }
                () = self.beat.asked() => self.beat.answer(),
                () = shutdown.cancelled() => return End::Shutdown,
            }
        }
    }

    /// The current play's start and play time, before the tracker sees
    /// what MPD does now: if the play ends there, this was its whole time.
    fn progress(&self) -> Option<(u64, Duration)> {
        let tracker = self.player.tracker();
        let started = tracker.current_play()?.1;
        Some((started, tracker.progress(Instant::now())?.0))
    }

    /// Once the tracker has moved on from the play that counted (another
    /// song, a replay, stop), record its whole play time, measured `before`.
    fn after(&self, before: Option<(u64, Duration)>) {
        let mut counted = self
            .player
            .counted
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let Some((listen, _)) = counted.as_ref() else {
            return;
        };
        let current = self.player.tracker().current_play().map(|(_, s)| s);
        if current == Some(listen.started_at) {
            return;
        }
        let Some(c) = counted.take() else { return };
        if let Some((_, played)) = before.filter(|(s, _)| *s == c.0.started_at) {
            let (listen, info) = ended(c, played.as_secs());
            self.spool.push(listen, info);
        }
    }

    fn on_messages(&self, messages: Vec<Message>) {
        for Message { channel, text } in messages {
            match (channel.as_str(), text.trim()) {
                ("mpdscribble" | "mpd-scrobbler", "love") => {
                    let _ = self.loves.send(true);
                }
                ("mpd-scrobbler", "unlove") => {
                    let _ = self.loves.send(false);
                }
                _ => tracing::info!("ignoring message {text:?} on channel {channel:?}"),
            }
        }
    }

    /// Carry out the tracker's actions. Never waits: a play to scrobble
    /// goes to the spool.
    fn perform(&self, actions: impl IntoIterator<Item = Action>, router: &mut Router<'_>) {
        for action in actions {
            match action {
                Action::NowPlaying(track) => {
                    let routed = router.route(&track, self.targets);
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
                    if router.ignores_everywhere(&listen.track, self.targets) {
                        continue;
                    }
                    tracing::debug!("{} qualified", describe(&listen.track));
                    let info = play_info(self.player, &listen);
                    if info.uri.is_some() {
                        *self
                            .player
                            .counted
                            .lock()
                            .unwrap_or_else(|e| e.into_inner()) =
                            Some((listen.clone(), info.uri.clone()));
                    }
                    self.spool.push(listen, info);
                }
                Action::Skip { uri, reason } => {
                    tracing::info!("not scrobbling {uri}: {reason}");
                }
            }
        }
    }
}

async fn sleep_until(alarm: &mut Alarm, deadline: Option<Instant>) {
    match deadline {
        Some(d) => alarm.until(d).await,
        None => std::future::pending().await,
    }
}

/// The update of a counted play's history record when it ended.
fn ended((listen, uri): (Listen, Option<String>), played_secs: u64) -> (Listen, PlayInfo) {
    let info = PlayInfo {
        uri,
        played_secs: Some(played_secs),
        ended: true,
    };
    (listen, info)
}

/// The file and play time of the play that just qualified, for its history
/// record; nothing when the tracker has moved on to another play.
fn play_info(player: &Player, listen: &Listen) -> PlayInfo {
    let tracker = player.tracker();
    match (tracker.current_play(), tracker.progress(Instant::now())) {
        (Some((uri, started_at)), Some((played, _))) if started_at == listen.started_at => {
            PlayInfo {
                uri: Some(uri.to_owned()),
                played_secs: Some(played.as_secs()),
                ended: false,
            }
        }
        _ => PlayInfo::default(),
    }
}
