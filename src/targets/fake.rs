//! A stand-in target for the tests of the parts above the targets: it
//! records every request and answers from a script.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;

use super::{BoxFuture, Failure, Heard, ItemOutcome, Target};
use crate::model::{Listen, Track};

/// How long a test waits for what it expects (a busy machine is slow).
const PATIENCE: Duration = Duration::from_secs(30);

/// What the stand-in answers to one submit.
pub(crate) enum Answer {
    Outcomes(Vec<ItemOutcome>),
    Fail(Failure),
}

/// One submit as the stand-in received it.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(crate) credential: String,
    pub(crate) titles: Vec<String>,
}

/// A target that records every request and answers from a script; once
/// the script is used up, it accepts everything.
#[derive(Debug, Default)]
pub(crate) struct Fake {
    pub(crate) max_batch: usize,
    pub(crate) max_age: Option<Duration>,
    /// Listens per request, when the target splits batches.
    pub(crate) per_request: Option<usize>,
    pub(crate) script: Mutex<VecDeque<Answer>>,
    pub(crate) calls: Mutex<Vec<Call>>,
    pub(crate) count: watch::Sender<usize>,
    pub(crate) now_playing: Mutex<Vec<String>>,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Outcomes(o) => write!(f, "{o:?}"),
            Answer::Fail(e) => write!(f, "{e:?}"),
        }
    }
}

impl Fake {
    pub(crate) fn new(max_batch: usize) -> Fake {
        Fake {
            max_batch,
            ..Fake::default()
        }
    }

    pub(crate) fn answers(self, script: impl IntoIterator<Item = Answer>) -> Fake {
        *self.script.lock().unwrap() = script.into_iter().collect();
        self
    }

    pub(crate) fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    pub(crate) fn sizes(&self) -> Vec<usize> {
        self.calls().iter().map(|c| c.titles.len()).collect()
    }

    /// Wait until `n` submits arrived.
    pub(crate) async fn wait_calls(&self, n: usize) {
        let mut count = self.count.subscribe();
        let waited = tokio::time::timeout(PATIENCE, count.wait_for(|c| *c >= n));
        assert!(
            waited.await.is_ok(),
            "{n} submits expected, got {:?}",
            self.sizes()
        );
    }
}

impl Target for Fake {
    fn url(&self) -> &str {
        "http://fake.invalid/"
    }

    fn max_batch(&self) -> usize {
        self.max_batch
    }

    fn max_age(&self) -> Option<Duration> {
        self.max_age
    }

    fn requests(&self, listens: &[Listen]) -> Vec<Range<usize>> {
        let step = self.per_request.unwrap_or(listens.len()).max(1);
        (0..listens.len())
            .step_by(step)
            .map(|i| i..(i + step).min(listens.len()))
            .collect()
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
        credential: &'a str,
        listens: &'a [Listen],
    ) -> BoxFuture<'a, Result<Vec<ItemOutcome>, Failure>> {
        Box::pin(async move {
            self.calls.lock().unwrap().push(Call {
                credential: credential.to_owned(),
                titles: listens.iter().map(|l| l.track.title.clone()).collect(),
            });
            self.count.send_modify(|c| *c += 1);
            match self.script.lock().unwrap().pop_front() {
                Some(Answer::Outcomes(o)) => Ok(o),
                Some(Answer::Fail(e)) => Err(e),
                None => Ok(vec![ItemOutcome::Accepted; listens.len()]),
            }
        })
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
