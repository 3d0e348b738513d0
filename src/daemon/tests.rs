//! The daemon loop in real time, on the storage thread and the alarm the
//! release build runs: a scripted MPD, the real tracker (with songs of a
//! few seconds), a queue in a temporary directory.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::Daemon;
use crate::config::Delivery;
use crate::config::Secret;
use crate::delivery::TargetHandle;
use crate::model::{Listen, Track, unix_now};
use crate::model::{PlayState, Snapshot, Song, Thresholds};
use crate::mpd::{Closed, ConnectError, Event, Message, MpdConnection, MpdSource, ReadError};
use crate::queue::Queue;
use crate::rules::RuleSet;
use crate::store::Store;
use crate::target_state::TargetState;
use crate::targets::{BoxFuture, Failure, Heard, ItemOutcome, Target};
use crate::tracker::Tracker;

/// An MPD whose state the test sets; each change wakes the daemon as an
/// idle event would.
struct ScriptedMpd {
    state: watch::Receiver<Snapshot>,
    /// Messages for the next read of the channels.
    messages: Arc<Mutex<Vec<Message>>>,
}

struct ScriptedConnection {
    state: watch::Receiver<Snapshot>,
    messages: Arc<Mutex<Vec<Message>>>,
}

/// The scripted MPD, and the test's ends of it: its state, and the
/// messages sent to its channels.
fn scripted() -> (
    ScriptedMpd,
    watch::Sender<Snapshot>,
    Arc<Mutex<Vec<Message>>>,
) {
    let (tx, rx) = watch::channel(stopped());
    let messages = Arc::default();
    let mpd = ScriptedMpd {
        state: rx,
        messages: Arc::clone(&messages),
    };
    (mpd, tx, messages)
}

fn stopped() -> Snapshot {
    Snapshot {
        state: PlayState::Stopped,
        song: None,
        elapsed: Duration::ZERO,
    }
}

impl MpdSource for ScriptedMpd {
    type Connection = ScriptedConnection;

    fn address(&self) -> String {
        "scripted".into()
    }

    fn connect(&self) -> impl Future<Output = Result<ScriptedConnection, ConnectError>> + Send {
        let (state, messages) = (self.state.clone(), Arc::clone(&self.messages));
        async move { Ok(ScriptedConnection { state, messages }) }
    }
}

impl MpdConnection for ScriptedConnection {
    async fn subscribe(&mut self) -> Result<(), ReadError> {
        Ok(())
    }

    fn snapshot(&mut self) -> impl Future<Output = Result<Snapshot, ReadError>> + Send {
        let snapshot = self.state.borrow_and_update().clone();
        async move { Ok(snapshot) }
    }

    async fn messages(&mut self) -> Result<Vec<Message>, ReadError> {
        Ok(std::mem::take(&mut *self.messages.lock().unwrap()))
    }

    async fn next_event(&mut self) -> Event {
        match self.state.changed().await {
            Ok(()) => Event::Changed,
            Err(_) => Event::Closed(Closed::Eof),
        }
    }
}

/// A song of [`SONG_SECS`]: it qualifies after half of that played.
fn song(id: u64, title: &str) -> Song {
    Song {
        id,
        uri: format!("{title}.flac"),
        track: Track {
            artist: "Artist".into(),
            title: title.into(),
            duration_secs: Some(SONG_SECS),
            ..Track::default()
        },
        duration: Some(Duration::from_secs(SONG_SECS)),
        station: None,
    }
}

/// Songs this short keep the tests quick in real time; the tracker is
/// told that a track longer than a second may be scrobbled.
const SONG_SECS: u64 = 4;

fn at(state: PlayState, song: &Song, elapsed: Duration) -> Snapshot {
    Snapshot {
        state,
        song: Some(song.clone()),
        elapsed,
    }
}

/// A stand-in target that records what reaches it and accepts everything.
#[derive(Debug, Default)]
struct Recorder {
    now_playing: Mutex<Vec<String>>,
    submitted: Mutex<Vec<Listen>>,
}

impl Target for Recorder {
    fn url(&self) -> &str {
        "http://recorder.invalid/"
    }

    fn max_batch(&self) -> usize {
        50
    }

    fn now_playing<'a>(
        &'a self,
        _credential: &'a str,
        track: &'a Track,
    ) -> BoxFuture<'a, Result<(), Failure>> {
        self.now_playing.lock().unwrap().push(track.title.clone());
        Box::pin(async { Ok(()) })
    }

    fn submit<'a>(
        &'a self,
        _credential: &'a str,
        listens: &'a [Listen],
    ) -> BoxFuture<'a, Result<Vec<ItemOutcome>, Failure>> {
        self.submitted.lock().unwrap().extend_from_slice(listens);
        Box::pin(async move { Ok(vec![ItemOutcome::Accepted; listens.len()]) })
    }

    fn love<'a>(
        &'a self,
        _credential: &'a str,
        _track: &'a Track,
        _love: bool,
    ) -> BoxFuture<'a, Result<(), Failure>> {
        Box::pin(async { Ok(()) })
    }

    fn account<'a>(
        &'a self,
        _credential: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, Failure>> {
        Box::pin(async { Ok(None) })
    }

    fn heard<'a>(
        &'a self,
        _credential: &'a str,
        _user: &'a str,
        _first: u64,
        _last: u64,
    ) -> BoxFuture<'a, Result<Vec<Heard>, Failure>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

/// A recorder as the target `name`, with a credential or without one (then
/// its flusher waits, and what is queued for it stays in the queue).
fn target(name: &str, credential: Option<&str>) -> (Arc<TargetHandle>, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let handle = Arc::new(TargetHandle::new(
        name,
        Arc::clone(&recorder) as Arc<dyn Target>,
        format!("[lastfm] {name}"),
        "mpd-scrobbler auth lastfm".into(),
    ));
    handle.session.send_replace(credential.map(Secret::new));
    (handle, recorder)
}

/// Wait until `done`, for at most `secs`.
async fn until(secs: u64, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn daemon(queue: &Queue, state_dir: &Path, control: Option<crate::control::Bound>) -> Daemon {
    Daemon {
        store: Store::start(queue.clone(), None).unwrap(),
        tracker: Tracker::new(Thresholds {
            min_track: Duration::from_secs(1),
            ..Thresholds::default()
        }),
        rules: RuleSet::default(),
        delivery: Delivery {
            retry_min: Duration::from_millis(20),
            retry_max: Duration::from_millis(200),
            request_timeout: Duration::from_secs(1),
        },
        state_dir: state_dir.to_owned(),
        control,
        reload: Arc::new(|| "ok".into()),
        events: crate::events::Events::none(),
        metrics: None,
    }
}

#[tokio::test]
async fn a_play_is_queued_once_a_pause_stops_the_clock_and_shutdown_is_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Queue::open(dir.path(), &["fake"]).unwrap();
    let first = song(1, "First");
    let (mpd, state, _) = scripted();
    let daemon = daemon(&queue, dir.path(), None);
    let shutdown = CancellationToken::new();
    let (handle, recorder) = target("fake", Some("session-key"));
    let run = tokio::spawn(daemon.run(mpd, vec![handle], shutdown.clone()));
    // These sleeps are the listening, not waits for the daemon: with the
    // margins below, a late event moves no play across its threshold.
    let listen = |d| tokio::time::sleep(Duration::from_millis(d));

    // The first song needs 2 s of its 4. It plays 0.3 s, pauses for longer
    // than it needs, plays 0.3 s more and stops: 0.6 s played, no scrobble.
    state.send_replace(at(PlayState::Playing, &first, Duration::ZERO));
    listen(300).await;
    state.send_replace(at(PlayState::Paused, &first, Duration::from_millis(300)));
    listen(2500).await;
    state.send_replace(at(PlayState::Playing, &first, Duration::from_millis(300)));
    listen(300).await;
    state.send_replace(stopped());

    // The second plays past its threshold (the alarm's deadline), then
    // pauses.
    let second = song(2, "Second");
    let started = unix_now();
    let playing = Instant::now();
    state.send_replace(at(PlayState::Playing, &second, Duration::ZERO));
    until(30, "delivery of the second song", || {
        !recorder.submitted.lock().unwrap().is_empty()
    })
    .await;
    state.send_replace(at(PlayState::Paused, &second, playing.elapsed()));

    shutdown.cancel();
    let stopping = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("run ends within 5 s of shutdown")
        .unwrap();
    assert!(
        stopping.elapsed() <= Duration::from_secs(3),
        "{:?}",
        stopping.elapsed()
    );

    // Delivered once, with its start time, and gone from the queue.
    let submitted = recorder.submitted.lock().unwrap().clone();
    assert_eq!(submitted.len(), 1, "{submitted:?}");
    assert_eq!(submitted[0].track.title, "Second");
    assert!(
        submitted[0].started_at.abs_diff(started) <= 2,
        "started at {}, expected about {started}",
        submitted[0].started_at
    );
    assert_eq!(queue.target("fake").len(), 0);
    // Announced at start, again on resume; not after the pause of the second.
    assert_eq!(
        *recorder.now_playing.lock().unwrap(),
        ["First", "First", "Second"]
    );
}

#[tokio::test]
async fn a_love_message_from_mpd_queues_a_love_of_the_playing_track() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Queue::open(dir.path(), &["fake"]).unwrap();
    let (mpd, state, messages) = scripted();
    // The daemon's first look at MPD finds the song playing and the
    // messages: it reads the state, then the channels.
    let playing = song(1, "Loved");
    state.send_replace(at(PlayState::Playing, &playing, Duration::ZERO));
    messages.lock().unwrap().extend([
        Message {
            channel: "elsewhere".into(),
            text: "love".into(),
        },
        Message {
            channel: "mpdscribble".into(),
            text: "love\n".into(),
        },
    ]);
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(daemon(&queue, dir.path(), None).run(
        mpd,
        vec![target("fake", None).0],
        shutdown.clone(),
    ));
    let fake = queue.target("fake");
    until(30, "a love queued", || fake.peek_love().unwrap().is_some()).await;
    let (_, love) = fake.peek_love().unwrap().unwrap();
    assert!(love.love);
    assert_eq!(love.track.title, "Loved");
    shutdown.cancel();
    run.await.unwrap();
}

#[tokio::test]
async fn status_and_love_through_the_control_socket_speak_the_typed_protocol() {
    use crate::control::{self, Reply, Request};
    let dir = tempfile::tempdir().unwrap();
    let queue = Queue::open(dir.path(), &["fake"]).unwrap();
    let bound = control::bind(dir.path(), &|_: &str| None).unwrap();
    let (mpd, state, _) = scripted();
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(daemon(&queue, dir.path(), Some(bound)).run(
        mpd,
        vec![target("fake", None).0],
        shutdown.clone(),
    ));
    // Long enough not to qualify while the test looks at it.
    let long = Song {
        duration: Some(Duration::from_secs(60)),
        ..song(1, "Now")
    };
    state.send_replace(at(PlayState::Playing, &long, Duration::ZERO));
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let reply = control::request(dir.path(), Request::Status).await.unwrap();
        let Some(Reply::Status(status)) = reply else {
            panic!("{reply:?}");
        };
        // The flusher finds no credential and pauses at its own pace.
        if status.playing.is_some() && status.targets[0].state.is_paused() {
            break status;
        }
        assert!(Instant::now() < deadline, "{status:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.mpd.connected);
    assert_eq!(status.mpd.address, "scripted");
    let playing = status.playing.unwrap();
    assert_eq!((playing.title.as_str(), playing.qualified), ("Now", false));
    assert_eq!(playing.needed_secs, Some(30));
    assert_eq!(status.targets.len(), 1);
    assert_eq!(status.targets[0].name, "fake");
    let TargetState::Paused { fix, .. } = &status.targets[0].state else {
        panic!("{:?}", status.targets[0]);
    };
    assert!(fix.contains("mpd-scrobbler auth lastfm"), "{fix}");
    assert_eq!(status.storage.dir, dir.path());

    let reply = control::request(dir.path(), Request::Love(true))
        .await
        .unwrap();
    let Some(Reply::Loved(loved)) = reply else {
        panic!("{reply:?}");
    };
    assert_eq!(
        (loved.queued.as_str(), loved.title.as_str()),
        ("love", "Now")
    );
    assert!(queue.target("fake").peek_love().unwrap().is_some());
    let reply = control::request(dir.path(), Request::Reload).await.unwrap();
    assert_eq!(reply, Some(Reply::Reloaded));

    shutdown.cancel();
    run.await.unwrap();
    assert!(
        !dir.path().join("control.sock").exists(),
        "the socket is removed at shutdown"
    );
    assert_eq!(
        control::request(dir.path(), Request::Status).await.unwrap(),
        None
    );
}
