//! Where the daemon's queue writes run: one thread of its own, fed in order.
//!
//! Every sled call can wait on the disk, which the runtime thread must never
//! do (it would freeze the MPD watcher for as long as an fsync takes). tokio's
//! blocking pool would do, but each task there costs more wake-ups than the
//! work needs: the idle thread is woken while the pool's lock is still held,
//! so it wakes, blocks on the lock and is woken again; and two writes in
//! flight at once take a second thread, with its own stack and malloc arena.
//! A thread of our own sleeps on a channel, wakes once per job, runs the jobs
//! in the order they were sent (a write started and not awaited is done
//! before the next one starts), and writes sled's log buffers itself
//! (vendor/sled/PATCHED.md).
//!
//! The unit tests run the daemon on tokio's paused clock, which jumps ahead
//! whenever the runtime has nothing to do unless a blocking-pool task is
//! running: they use [`Disk::pool`], where each job is such a task.

use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// A handle on the daemon's disk thread (or the blocking pool); cheap to
/// clone.
#[derive(Debug, Clone)]
pub(crate) struct Disk {
    /// `None`: tokio's blocking pool.
    thread: Option<mpsc::Sender<Job>>,
}

impl Disk {
    /// Start the disk thread. It ends when the last handle is dropped.
    pub(crate) fn thread() -> std::io::Result<Disk> {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("disk".into())
            .spawn(move || {
                sled::write_log_on_this_thread();
                while let Ok(job) = rx.recv() {
                    job();
                }
            })?;
        Ok(Disk { thread: Some(tx) })
    }

    /// Run jobs on tokio's blocking pool instead (tests on a paused clock).
    #[cfg_attr(not(test), allow(dead_code, reason = "the unit tests' executor"))]
    pub(crate) fn pool() -> Disk {
        Disk { thread: None }
    }

    /// Start `f` now, after every job started before it. Await the result,
    /// or drop it: the job runs either way, and nothing is woken when it
    /// ends unless someone is waiting for it.
    pub(crate) fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Pending<R> {
        let (tx, rx) = oneshot::channel();
        let job = move || {
            let _ = tx.send(f());
        };
        match &self.thread {
            Some(thread) => {
                if let Err(mpsc::SendError(job)) = thread.send(Box::new(job)) {
                    // The thread is gone (only a panic, which aborts, ends
                    // it early): run the job where tokio can.
                    tokio::task::spawn_blocking(job);
                }
            }
            None => {
                tokio::task::spawn_blocking(job);
            }
        }
        Pending(rx)
    }
}

/// A job's result; `None` if the job was dropped unrun (the runtime is
/// shutting down).
#[derive(Debug)]
pub(crate) struct Pending<R>(oneshot::Receiver<R>);

impl<R> Future for Pending<R> {
    type Output = Option<R>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<R>> {
        Pin::new(&mut self.0).poll(cx).map(Result::ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_in_order_and_unawaited_ones_still_run() {
        let disk = Disk::thread().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let unawaited = {
            let log = log.clone();
            disk.run(move || {
                std::thread::sleep(std::time::Duration::from_millis(20));
                log.lock().unwrap().push(1);
            })
        };
        drop(unawaited);
        let log2 = log.clone();
        let seen = disk
            .run(move || {
                log2.lock().unwrap().push(2);
                log2.lock().unwrap().clone()
            })
            .await;
        assert_eq!(
            seen,
            Some(vec![1, 2]),
            "the first job ran before the second"
        );
        let name = disk.run(|| std::thread::current().name().map(String::from));
        assert_eq!(name.await, Some(Some("disk".to_string())));
    }

    #[tokio::test]
    async fn the_pool_runs_jobs_too() {
        assert_eq!(Disk::pool().run(|| 2 + 2).await, Some(4));
    }
}
