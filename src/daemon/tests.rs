//! The daemon loop under paused time: a scripted MPD, the real tracker, a
//! queue in a temporary directory.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
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
}

struct ScriptedConnection {
    state: watch::Receiver<Snapshot>,
}

impl MpdSource for ScriptedMpd {
    type Connection = ScriptedConnection;

    fn address(&self) -> String {
        "scripted".into()
    }

    fn connect(&self) -> impl Future<Output = Result<ScriptedConnection, ConnectError>> + Send {
        let state = self.state.clone();
        async move { Ok(ScriptedConnection { state }) }
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
        Ok(Vec::new())
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

#[tokio::test(start_paused = true)]
async fn a_play_is_queued_once_a_pause_stops_the_clock_and_shutdown_is_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Queue::open(dir.path(), &["fake"]).unwrap();
    let first = song(1, "First");
    let (mpd, state) = {
        let (tx, rx) = watch::channel(Snapshot {
            state: PlayState::Stopped,
            song: None,
            elapsed: Duration::ZERO,
        });
        (ScriptedMpd { state: rx }, tx)
    };
    let daemon = Daemon {
        queue: queue.clone(),
        tracker: Tracker::new(Rules::default()),
        rules: RuleSet::default(),
        delivery: Delivery {
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            request_timeout: Duration::from_secs(5),
        },
        state_dir: dir.path().to_owned(),
        control: None,
        reload: Arc::new(|| "ok".into()),
    };
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
    state.send_replace(Snapshot {
        state: PlayState::Stopped,
        song: None,
        elapsed: Duration::ZERO,
    });
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
