//! The daemon loop under paused time: a scripted MPD, the real tracker, a
//! queue in a temporary directory.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Daemon, Waits};
use crate::config::Delivery;
use crate::config::Secret;
use crate::delivery::{TargetHandle, TargetState};
use crate::mpd::{Closed, ConnectError, Event, Message, MpdConnection, MpdSource, ReadError};
use crate::queue::Queue;
use crate::rules::RuleSet;
use crate::scrobble::{Listen, Track, unix_now};
use crate::targets::{BoxFuture, Failure, Heard, ItemOutcome, Target};
use crate::tracker::{PlayState, Rules, Snapshot, Song, Tracker};

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

fn song(id: u64, title: &str) -> Song {
    Song {
        id,
        uri: format!("{title}.flac"),
        track: Track {
            artist: "Artist".into(),
            title: title.into(),
            duration_secs: Some(60),
            ..Track::default()
        },
        duration: Some(Duration::from_secs(60)),
        station: None,
    }
}

fn at(state: PlayState, song: &Song, elapsed: u64) -> Snapshot {
    Snapshot {
        state,
        song: Some(song.clone()),
        elapsed: Duration::from_secs(elapsed),
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

/// Wait (in the test's time) until `done`, for at most `secs`.
async fn until(secs: u64, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn daemon(queue: &Queue, state_dir: &Path, control: Option<crate::control::Bound>) -> Daemon {
    Daemon {
        queue: queue.clone(),
        tracker: Tracker::new(Rules::default()),
        rules: RuleSet::default(),
        delivery: Delivery {
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            request_timeout: Duration::from_secs(5),
        },
        state_dir: state_dir.to_owned(),
        control,
        reload: Arc::new(|| "ok".into()),
        waits: Waits::Tokio,
    }
}

#[tokio::test(start_paused = true)]
async fn a_play_is_queued_once_a_pause_stops_the_clock_and_shutdown_is_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Queue::open(dir.path(), &["fake"]).unwrap();
    let first = song(1, "First");
    let (mpd, state, _) = scripted();
    let daemon = daemon(&queue, dir.path(), None);
    let shutdown = CancellationToken::new();
    let (handle, recorder) = target("fake", Some("session-key"));
    let run = tokio::spawn(daemon.run(mpd, vec![handle], shutdown.clone()));
    let wait = |secs| tokio::time::sleep(Duration::from_secs(secs));

    // The first song needs 30 s of its 60. It plays 10 s, pauses for far
    // longer than that, plays 10 s more and stops: 20 s played, no scrobble.
    state.send_replace(at(PlayState::Playing, &first, 0));
    wait(10).await;
    state.send_replace(at(PlayState::Paused, &first, 10));
    wait(100).await;
    state.send_replace(at(PlayState::Playing, &first, 10));
    wait(10).await;
    state.send_replace(stopped());
    wait(1).await;

    // The second plays past its threshold, then pauses.
    let second = song(2, "Second");
    let started = unix_now();
    state.send_replace(at(PlayState::Playing, &second, 0));
    wait(35).await;
    state.send_replace(at(PlayState::Paused, &second, 35));
    until(30, "delivery of the second song", || {
        !recorder.submitted.lock().unwrap().is_empty()
    })
    .await;
    wait(30).await;

    shutdown.cancel();
    let stopping = tokio::time::Instant::now();
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

#[tokio::test(start_paused = true)]
async fn a_love_message_from_mpd_queues_a_love_of_the_playing_track() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Queue::open(dir.path(), &["fake"]).unwrap();
    let (mpd, state, messages) = scripted();
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(daemon(&queue, dir.path(), None).run(
        mpd,
        vec![target("fake", None).0],
        shutdown.clone(),
    ));
    let playing = song(1, "Loved");
    state.send_replace(at(PlayState::Playing, &playing, 0));
    tokio::time::sleep(Duration::from_secs(5)).await;
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
    // MPD wakes its idlers when a message arrives.
    state.send_replace(at(PlayState::Playing, &playing, 5));
    let fake = queue.target("fake");
    until(30, "a love queued", || fake.peek_love().unwrap().is_some()).await;
    let (_, love) = fake.peek_love().unwrap().unwrap();
    assert!(love.love);
    assert_eq!(love.track.title, "Loved");
    shutdown.cancel();
    run.await.unwrap();
}

/// Real time: the control socket is real I/O.
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
    state.send_replace(at(PlayState::Playing, &song(1, "Now"), 3));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        let reply = control::request(dir.path(), Request::Status).await.unwrap();
        let Some(Reply::Status(status)) = reply else {
            panic!("{reply:?}");
        };
        // The flusher finds no credential and pauses at its own pace.
        if status.playing.is_some() && status.targets[0].state.is_paused() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "{status:?}");
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
