//! The systemd watchdog: `WATCHDOG=1` goes out only while the daemon's loops
//! make progress.
//!
//! Each loop holds a [`Beat`]. A third of the way through each watchdog
//! period the watchdog asks every beat; a loop answers when it next waits
//! (for MPD, for its deadline, for plays to write), which a loop that keeps
//! working does within moments. The ping is sent only if every beat
//! answered the previous question, so a loop stuck in a call stops the
//! pings and systemd restarts the daemon. A synchronous call blocking the
//! runtime thread stops the watchdog task itself, with the same result.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// One loop's side of the watchdog.
#[derive(Debug, Clone, Default)]
pub(super) struct Beat {
    inner: Arc<BeatInner>,
}

#[derive(Debug, Default)]
struct BeatInner {
    ask: Notify,
    answered: AtomicBool,
}

impl Beat {
    /// A beat that has answered (a fresh loop counts as alive).
    pub(super) fn new() -> Beat {
        let beat = Beat::default();
        beat.inner.answered.store(true, Ordering::Relaxed);
        beat
    }

    /// Resolves when the watchdog asks; the loop then calls [`Beat::answer`].
    pub(super) async fn asked(&self) {
        self.inner.ask.notified().await;
    }

    /// Say the loop is alive.
    pub(super) fn answer(&self) {
        self.inner.answered.store(true, Ordering::Relaxed);
    }

    /// Ask again; returns whether the last question was answered.
    fn ask(&self) -> bool {
        let answered = self.inner.answered.swap(false, Ordering::Relaxed);
        self.inner.ask.notify_one();
        answered
    }
}

/// Ping systemd's watchdog every third of `period` while all `beats`
/// answer; stops at shutdown.
pub(super) async fn run(period: Duration, beats: Vec<Beat>, shutdown: CancellationToken) {
    let every = period / 3;
    let mut silent = false;
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.cancelled() => return,
        }
        // Ask every beat, even after the first silent one.
        let answers: Vec<bool> = beats.iter().map(Beat::ask).collect();
        let all = answers.iter().all(|a| *a);
        if all {
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
            silent = false;
        } else if !silent {
            tracing::error!(
                "a loop of the daemon has made no progress for {} s; the systemd watchdog \
                 is no longer fed",
                every.as_secs()
            );
            silent = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_beat_counts_only_answers_to_the_last_question() {
        let b = Beat::new();
        assert!(b.ask(), "alive at start");
        assert!(!b.ask(), "no answer since");
        b.answer();
        assert!(b.ask());
    }

    #[tokio::test(start_paused = true)]
    async fn a_loop_that_waits_answers() {
        let b = Beat::new();
        let looping = {
            let b = b.clone();
            tokio::spawn(async move {
                loop {
                    b.asked().await;
                    b.answer();
                }
            })
        };
        b.ask();
        tokio::task::yield_now().await;
        tokio::task::yield_now().await;
        assert!(b.ask(), "answered while waiting");
        looping.abort();
        b.ask();
        assert!(!b.ask(), "a stopped loop does not answer");
    }
}
