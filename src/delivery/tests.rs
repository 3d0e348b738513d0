//! The flusher against a stand-in target, on a real queue in a temporary
//! directory behind the real storage thread, in real time: what went out
//! in which requests, what left the queue or was set aside, how long each
//! wait was to be, and what `status` would show meanwhile. A wait that
//! would last minutes is cut short as SIGUSR1 does (`flush_now`) once its
//! length is checked; the policy's own tests check each length's rule.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Flusher, TargetHandle, TargetState};
use crate::config::{Delivery, Secret};
use crate::model::{Listen, Track, unix_now};
use crate::queue::Queue;
use crate::store::Store;
use crate::targets::fake::{Answer, Fake};
use crate::targets::{Failure, ItemOutcome, Target, lastfm, listenbrainz};

const NAME: &str = "t";
const DAY: u64 = 24 * 3600;
/// How long a test waits for what it expects (a busy machine is slow).
const PATIENCE: Duration = Duration::from_secs(30);

/// A flusher running over a real queue, delivering to a [`Fake`].
struct Rig {
    _dir: tempfile::TempDir,
    queue: Queue,
    fake: Arc<Fake>,
    handle: Arc<TargetHandle>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

fn listen(title: &str, started_at: u64) -> Listen {
    Listen {
        track: Track {
            artist: "Artist".into(),
            title: title.into(),
            ..Track::default()
        },
        started_at,
    }
}

/// `n` listens titled "0", "1", ... that started in the last few hours.
fn listens(n: usize) -> Vec<Listen> {
    let start = unix_now() - 4 * 3600;
    (0..n)
        .map(|i| listen(&i.to_string(), start + 60 * i as u64))
        .collect()
}

fn titles(range: Range<usize>) -> Vec<String> {
    range.map(|i| i.to_string()).collect()
}

impl Rig {
    /// Queue `queued`, then start delivering to `fake` with a credential.
    fn start(fake: Fake, queued: &[Listen]) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let queue = Queue::open(dir.path(), &[NAME]).unwrap();
        queue.import(queued).unwrap();
        assert_eq!(queue.target(NAME).len(), queued.len());
        let fake = Arc::new(fake);
        let handle = Arc::new(TargetHandle::new(
            NAME,
            Arc::clone(&fake) as Arc<dyn Target>,
            "[lastfm] of /etc/mpd-scrobbler.toml".into(),
            "mpd-scrobbler auth lastfm".into(),
        ));
        handle.session.send_replace(Some(Secret::new("sk-1")));
        let shutdown = CancellationToken::new();
        // Short, so that a backoff passes quickly in real time.
        let timing = Delivery {
            retry_min: Duration::from_millis(20),
            retry_max: Duration::from_millis(200),
            request_timeout: Duration::from_secs(1),
        };
        let store = Store::start(queue.clone(), None).unwrap();
        let task =
            tokio::spawn(Flusher::new(Arc::clone(&handle), store, timing, shutdown.clone()).run());
        Rig {
            _dir: dir,
            queue,
            fake,
            handle,
            shutdown,
            task,
        }
    }

    /// Wait until the state is one `done` accepts, and return it.
    async fn wait_state(&self, done: impl Fn(&TargetState) -> bool) -> TargetState {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let state = self.handle.state();
            if done(&state) {
                return state;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "state stayed {state:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn wait_queued(&self, n: usize) {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let queued = self.queue.target(NAME).len();
            if queued == n {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{queued} queued, expected {n}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Cut the flusher's wait short, as SIGUSR1 does.
    fn flush_now(&self) {
        self.handle.flush_now.notify_one();
    }

    /// Wait until "now playing" of `title` reached the stand-in; what it
    /// got by then.
    async fn wait_now_playing(&self, title: &str) -> Vec<String> {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let sent = self.fake.now_playing.lock().unwrap().clone();
            if sent.iter().any(|t| t == title) {
                return sent;
            }
            assert!(std::time::Instant::now() < deadline, "{sent:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn rejected(&self) -> Vec<(String, String)> {
        self.queue
            .target(NAME)
            .list_rejected()
            .unwrap()
            .into_iter()
            .map(|i| (i.listen.track.title, i.reason.unwrap_or_default()))
            .collect()
    }

    async fn stop(self) -> Arc<Fake> {
        self.shutdown.cancel();
        self.task.await.unwrap();
        self.fake
    }
}

#[tokio::test]
async fn a_backlog_over_50_goes_in_requests_of_50_in_queue_order() {
    let rig = Rig::start(Fake::new(lastfm::MAX_BATCH), &listens(120));
    rig.fake.wait_calls(3).await;
    rig.wait_queued(0).await;
    assert_eq!(rig.handle.state(), TargetState::Ok);
    assert!(rig.handle.health.lock().unwrap().last_success.is_some());
    let fake = rig.stop().await;
    assert_eq!(fake.sizes(), [50, 50, 20]);
    let sent: Vec<String> = fake.calls().into_iter().flat_map(|c| c.titles).collect();
    assert_eq!(sent, titles(0..120));
}

#[tokio::test]
async fn a_batch_goes_in_the_requests_the_target_splits_it_into() {
    let fake = Fake {
        per_request: Some(20),
        ..Fake::new(50)
    };
    let rig = Rig::start(fake, &listens(60));
    rig.fake.wait_calls(4).await;
    rig.wait_queued(0).await;
    let fake = rig.stop().await;
    // A batch of 50 in three requests, then the last 10.
    assert_eq!(fake.sizes(), [20, 20, 10, 10]);
    assert_eq!(fake.calls()[2].titles, titles(40..50));
}

#[tokio::test]
async fn an_item_the_server_ignores_is_set_aside_and_the_rest_leave_the_queue() {
    let fake = Fake::new(50).answers([Answer::Outcomes(vec![
        ItemOutcome::Accepted,
        ItemOutcome::Ignored {
            code: 1,
            message: "Artist name failed filter".into(),
        },
        ItemOutcome::Accepted,
    ])]);
    let rig = Rig::start(fake, &listens(3));
    rig.fake.wait_calls(1).await;
    rig.wait_queued(0).await;
    assert_eq!(
        rig.rejected(),
        [(
            "1".to_owned(),
            "ignored, code 1: Artist name failed filter".to_owned()
        )]
    );
    assert_eq!(
        rig.wait_state(|s| *s == TargetState::Ok).await,
        TargetState::Ok
    );
    let fake = rig.stop().await;
    assert_eq!(fake.sizes(), [3], "sent once, not again");
}

#[tokio::test]
async fn the_daily_limit_keeps_the_rest_until_a_minute_past_utc_midnight() {
    let fake = Fake::new(50).answers([Answer::Outcomes(vec![
        ItemOutcome::Accepted,
        ItemOutcome::DailyLimitExceeded,
        ItemOutcome::DailyLimitExceeded,
    ])]);
    let rig = Rig::start(fake, &listens(3));
    rig.fake.wait_calls(1).await;
    let state = rig
        .wait_state(|s| matches!(s, TargetState::Retrying { .. }))
        .await;
    let TargetState::Retrying { at, why } = state else {
        unreachable!()
    };
    assert_eq!(why, "daily scrobble limit reached");
    assert_eq!(at % DAY, 60, "a minute past midnight UTC: {at}");
    assert!(at > unix_now() && at <= unix_now() + DAY + 60, "{at}");
    // The first one leaves the queue; the other two stay.
    rig.wait_queued(2).await;
    rig.flush_now();
    rig.fake.wait_calls(2).await;
    rig.wait_queued(0).await;
    let fake = rig.stop().await;
    assert_eq!(fake.calls()[1].titles, titles(1..3));
}

#[tokio::test]
async fn scrobbles_older_than_the_targets_limit_are_set_aside_never_sent() {
    let fake = Fake {
        max_age: Some(lastfm::MAX_AGE),
        ..Fake::new(50)
    };
    let now = unix_now();
    let queued = [
        listen("15 days", now - 15 * DAY),
        listen("an hour", now - 3600),
        listen("20 days", now - 20 * DAY),
        listen("13 days", now - 13 * DAY),
    ];
    let rig = Rig::start(fake, &queued);
    rig.fake.wait_calls(1).await;
    rig.wait_queued(0).await;
    let mut rejected = rig.rejected();
    rejected.sort();
    let too_old = "too old for this service".to_owned();
    assert_eq!(
        rejected,
        [
            ("15 days".to_owned(), too_old.clone()),
            ("20 days".to_owned(), too_old)
        ]
    );
    let fake = rig.stop().await;
    assert_eq!(fake.sizes(), [2]);
    let mut sent = fake.calls()[0].titles.clone();
    sent.sort();
    assert_eq!(sent, ["13 days", "an hour"]);
}

#[tokio::test]
async fn a_configuration_refusal_pauses_with_the_config_fix() {
    let refusal = lastfm::Error::Api {
        code: 10,
        message: "Invalid API key".into(),
    };
    let fake = Fake::new(50).answers([Answer::Fail(refusal.into())]);
    let rig = Rig::start(fake, &listens(2));
    rig.fake.wait_calls(1).await;
    let state = rig.wait_state(TargetState::is_paused).await;
    let TargetState::Paused { why, fix } = state else {
        unreachable!()
    };
    assert!(why.contains("Invalid API key"), "{why}");
    assert_eq!(
        fix,
        "fix `api_key` in [lastfm] of /etc/mpd-scrobbler.toml and restart mpd-scrobbler"
    );
    assert!(!fix.contains("auth"), "{fix}");
    // Paused: neither now playing, nor a flush or a wake-up sends anything;
    // only new credentials (a reload) do.
    rig.handle.now_playing(&listen("np", unix_now()).track);
    rig.flush_now();
    rig.handle.wake.notify_one();
    assert_eq!(rig.queue.target(NAME).len(), 2, "kept");
    rig.handle.session.send_replace(Some(Secret::new("sk-2")));
    rig.fake.wait_calls(2).await;
    rig.wait_queued(0).await;
    rig.handle.now_playing(&listen("np2", unix_now()).track);
    assert_eq!(rig.wait_now_playing("np2").await, ["np2"]);
    let fake = rig.stop().await;
    let credentials: Vec<String> = fake.calls().into_iter().map(|c| c.credential).collect();
    assert_eq!(
        credentials,
        ["sk-1", "sk-2"],
        "nothing went out while paused"
    );
}

#[tokio::test]
async fn error_29_waits_a_minute_at_least() {
    let limited = lastfm::Error::Api {
        code: 29,
        message: "Rate Limit Exceeded".into(),
    };
    let fake = Fake::new(50).answers([Answer::Fail(limited.into())]);
    let rig = Rig::start(fake, &listens(2));
    rig.fake.wait_calls(1).await;
    let state = rig
        .wait_state(|s| matches!(s, TargetState::Retrying { .. }))
        .await;
    let TargetState::Retrying { at, why } = state else {
        unreachable!()
    };
    assert!(why.contains("Rate Limit Exceeded"), "{why}");
    // retry_min is 20 ms: the minute is the rate limit's, not the backoff's.
    assert!(at >= unix_now() + 58 && at <= unix_now() + 61, "{at}");
    rig.flush_now();
    rig.fake.wait_calls(2).await;
    rig.wait_queued(0).await;
    let fake = rig.stop().await;
    assert_eq!(fake.sizes(), [2, 2]);
}

/// A ListenBrainz 429 asking to wait `secs` (X-RateLimit-Reset-In).
fn too_many_requests(secs: u64) -> Failure {
    listenbrainz::Error::Http {
        status: 429,
        message: "slow down".into(),
        reset_in: Some(Duration::from_secs(secs)),
    }
    .into()
}

#[tokio::test]
async fn http_429_waits_what_the_server_asks_up_to_an_hour() {
    let fake = Fake::new(50).answers([
        Answer::Fail(too_many_requests(120)),
        Answer::Fail(too_many_requests(5 * 3600)),
    ]);
    let rig = Rig::start(fake, &listens(1));
    // What the server asked, and a second more to clear the window's edge;
    // then the capped wait, an hour and that second.
    for (call, wait) in [(1, 121), (2, 3601)] {
        rig.fake.wait_calls(call).await;
        let state = rig
            .wait_state(|s| match s {
                TargetState::Retrying { at, .. } => *at > unix_now() + wait - 10,
                _ => false,
            })
            .await;
        let TargetState::Retrying { at, .. } = state else {
            unreachable!()
        };
        assert!(at <= unix_now() + wait, "{at}, expected {wait} s from now");
        rig.flush_now();
    }
    rig.fake.wait_calls(3).await;
    rig.wait_queued(0).await;
    let fake = rig.stop().await;
    assert_eq!(fake.sizes(), [1, 1, 1]);
}

#[tokio::test]
async fn a_401_pauses_for_new_credentials_and_they_resume_delivery() {
    let refused = listenbrainz::Error::Http {
        status: 401,
        message: "Invalid authorization token.".into(),
        reset_in: None,
    };
    let fake = Fake::new(50).answers([Answer::Fail(refused.into())]);
    let rig = Rig::start(fake, &listens(2));
    rig.fake.wait_calls(1).await;
    let state = rig.wait_state(TargetState::is_paused).await;
    let TargetState::Paused { why, fix } = state else {
        unreachable!()
    };
    assert!(why.contains("refused the credentials"), "{why}");
    assert_eq!(fix, "run `mpd-scrobbler auth lastfm`");
    rig.flush_now();

    rig.handle.session.send_replace(Some(Secret::new("sk-2")));
    rig.fake.wait_calls(2).await;
    rig.wait_queued(0).await;
    rig.wait_state(|s| *s == TargetState::Ok).await;
    rig.handle.now_playing(&listen("np", unix_now()).track);
    assert_eq!(rig.wait_now_playing("np").await, ["np"]);
    let fake = rig.stop().await;
    let credentials: Vec<String> = fake.calls().into_iter().map(|c| c.credential).collect();
    assert_eq!(credentials, ["sk-1", "sk-2"], "nothing sent while paused");
}
