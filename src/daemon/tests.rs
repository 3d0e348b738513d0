//! The daemon loop under paused time: a scripted MPD, the real tracker, a
//! queue in a temporary directory.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::Daemon;
use crate::config::Delivery;
use crate::delivery::{Health, TargetHandle};
use crate::mpd::{Closed, ConnectError, Event, Message, MpdConnection, MpdSource, ReadError};
use crate::queue::Queue;
use crate::rules::RuleSet;
use crate::scrobble::{Track, unix_now};
use crate::targets::{Service, lastfm};
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

/// A Last.fm target with no credential: its flusher waits for one, so
/// whatever is queued for it stays in the queue for the test to read.
fn unauthorised_target(name: &str) -> Arc<TargetHandle> {
    let client = lastfm::Client::new(
        crate::http::client(Duration::from_secs(5)).unwrap(),
        "http://127.0.0.1:9/",
        "key",
        "secret",
    );
    Arc::new(TargetHandle {
        name: name.into(),
        service: Service::LastFm(client),
        session: watch::Sender::new(None),
        wake: Notify::new(),
        flush_now: Notify::new(),
        paused: AtomicBool::new(false),
        config: format!("[lastfm] {name}"),
        credential_problem: std::sync::Mutex::new(None),
        auth: "mpd-scrobbler auth lastfm".into(),
        health: std::sync::Mutex::new(Health {
            state: "ok",
            ..Health::default()
        }),
    })
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
    let run = tokio::spawn(daemon.run(mpd, vec![unauthorised_target("fake")], shutdown.clone()));
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

    let items = queue.target("fake").list().unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    let listen = &items[0].listen;
    assert_eq!(listen.track.title, "Second");
    assert!(
        listen.started_at.abs_diff(started) <= 2,
        "started at {}, expected about {started}",
        listen.started_at
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
        vec![unauthorised_target("fake")],
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
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let love = loop {
        if let Some((_, love)) = queue.target("fake").peek_love().unwrap() {
            break love;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no love queued within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(love.love);
    assert_eq!(love.track.title, "Loved");
    shutdown.cancel();
    run.await.unwrap();
}

/// Real time: the control socket is real I/O.
#[tokio::test]
async fn status_and_love_through_the_control_socket_speak_the_typed_protocol() {
    use crate::control::{self, DeliveryState, Reply, Request};
    let dir = tempfile::tempdir().unwrap();
    let queue = Queue::open(dir.path(), &["fake"]).unwrap();
    let bound = control::bind(dir.path(), &|_: &str| None).unwrap();
    let (mpd, state, _) = scripted();
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(daemon(&queue, dir.path(), Some(bound)).run(
        mpd,
        vec![unauthorised_target("fake")],
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
        if status.playing.is_some() && status.targets[0].state == DeliveryState::Paused {
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
    let fix = status.targets[0].fix.as_deref().unwrap_or_default();
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
