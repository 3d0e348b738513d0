//! The watch loop's one timer: the instant the current play qualifies.
//!
//! tokio's timer wheel reaches a deadline seconds away in steps, parking
//! until the start of the wheel slot that holds it, then of a finer slot,
//! then the deadline itself: three wake-ups for one timer 45 s away
//! (strace of the daemon's played minute). A timerfd set to the instant
//! wakes the runtime once.

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use rustix::time::{
    Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, timerfd_create, timerfd_settime,
};
use tokio::io::unix::AsyncFd;

/// A one-shot timer, set again before each wait.
#[derive(Debug)]
pub(super) struct Alarm {
    /// `None` when no timerfd could be made (a kernel without them).
    fd: Option<AsyncFd<OwnedFd>>,
}

impl Alarm {
    pub(super) fn new() -> Alarm {
        let fd = match timer_fd() {
            Ok(fd) => Some(fd),
            Err(e) => {
                tracing::debug!("no timerfd ({e}); deadlines use tokio's timer");
                None
            }
        };
        Alarm { fd }
    }

    /// Sleep until `deadline`. Cancel-safe: the next call sets the timer
    /// again.
    pub(super) async fn until(&mut self, deadline: Instant) {
        let Some(fd) = &self.fd else {
            return tokio::time::sleep_until(deadline.into()).await;
        };
        let left = deadline.saturating_duration_since(Instant::now());
        // A zero value disarms a timerfd rather than firing it.
        if left.is_zero() || arm(fd, left).is_err() {
            return tokio::time::sleep_until(deadline.into()).await;
        }
        loop {
            let Ok(mut ready) = fd.readable().await else {
                return tokio::time::sleep_until(deadline.into()).await;
            };
            let mut expirations = [0u8; 8];
            match rustix::io::read(fd.get_ref(), &mut expirations) {
                Ok(8) => return,
                // Not expired yet (a stale readiness): wait again.
                _ => ready.clear_ready(),
            }
        }
    }
}

fn timer_fd() -> std::io::Result<AsyncFd<OwnedFd>> {
    let fd = timerfd_create(
        TimerfdClockId::Monotonic,
        TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
    )?;
    // `new` is deprecated for `unsafe register`, whose contract is that the
    // descriptor stays open and the same while registered: an `OwnedFd`
    // owned by the `AsyncFd` guarantees that, and this crate forbids unsafe.
    #[allow(deprecated)]
    AsyncFd::with_interest(fd, tokio::io::Interest::READABLE)
}

/// Fire once, `after` from now (relative, so the timer follows
/// `CLOCK_MONOTONIC`, which `Instant` reads).
fn arm(fd: &AsyncFd<OwnedFd>, after: Duration) -> rustix::io::Result<()> {
    let zero = rustix::time::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let value = rustix::time::Timespec {
        tv_sec: i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(after.subsec_nanos()),
    };
    timerfd_settime(
        fd.get_ref(),
        TimerfdTimerFlags::empty(),
        &Itimerspec {
            it_interval: zero,
            it_value: value,
        },
    )
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn within(
        alarm: &mut Alarm,
        deadline: Instant,
    ) -> Result<(), tokio::time::error::Elapsed> {
        tokio::time::timeout(Duration::from_secs(30), alarm.until(deadline)).await
    }

    #[tokio::test]
    async fn the_kernel_alarm_fires_at_its_deadline_and_can_be_set_again() {
        let mut alarm = Alarm::new();
        assert!(alarm.fd.is_some(), "a timerfd on Linux");
        for ms in [30, 10] {
            let start = Instant::now();
            within(&mut alarm, start + Duration::from_millis(ms))
                .await
                .expect("fired");
            assert!(start.elapsed() >= Duration::from_millis(ms));
        }
        // Cancelled (as a select! in the watch loop does), then set earlier.
        let start = Instant::now();
        let far = alarm.until(start + Duration::from_secs(3600));
        assert!(
            tokio::time::timeout(Duration::from_millis(20), far)
                .await
                .is_err()
        );
        within(&mut alarm, start + Duration::from_millis(40))
            .await
            .expect("fired at the new deadline, not the old one");
        assert!(start.elapsed() >= Duration::from_millis(40));
        // A deadline already past returns at once.
        within(&mut alarm, start).await.expect("at once");
    }
}
