//! Answers control-socket requests. Whatever may wait on the disk (sled
//! flushes, session files) runs on the blocking pool, so that a slow fsync
//! never holds up the runtime thread that follows MPD.

use std::path::PathBuf;
use std::sync::Arc;

use super::spool::Spool;
use super::watch::Player;
use super::{Reload, love, status};
use crate::admin;
use crate::control::{QueueCmd, QueueReply, Reply, Request};
use crate::delivery::TargetHandle;
use crate::history::commands;
use crate::queue::Queue;

/// What answering needs of the daemon.
#[derive(Clone)]
pub(super) struct Handler {
    pub(super) reload: Reload,
    pub(super) queue: Queue,
    pub(super) targets: Vec<Arc<TargetHandle>>,
    pub(super) player: Arc<Player>,
    pub(super) spool: Arc<Spool>,
    pub(super) state_dir: PathBuf,
    pub(super) address: String,
}

impl Handler {
    /// The reply to `req`.
    pub(super) async fn handle(self, req: Request) -> Reply {
        match req {
            Request::Reload => {
                let reload = Arc::clone(&self.reload);
                blocking(move || {
                    reload();
                    Reply::Reloaded
                })
                .await
            }
            // Counting queues and the history walks sled trees: not on the
            // thread that follows MPD.
            Request::Status => {
                let this = self.clone();
                blocking(move || {
                    Reply::Status(Box::new(status::status(
                        &this.address,
                        &this.player,
                        &this.queue,
                        &this.targets,
                        &this.spool,
                        &this.state_dir,
                    )))
                })
                .await
            }
            Request::Love(l) => {
                let this = self.clone();
                blocking(move || love::love(&this.player, &this.queue, &this.targets, l)).await
            }
            Request::Queue(QueueCmd::Flush) => {
                for t in &self.targets {
                    t.flush_now.notify_one();
                    t.wake.notify_one();
                }
                Reply::Queue(QueueReply::Flushed(self.targets.len()))
            }
            Request::Queue(cmd) => {
                let queue = self.queue.clone();
                blocking(move || admin::execute(&queue, &cmd)).await
            }
            Request::Import(listens) => {
                let queue = self.queue.clone();
                let answer = blocking(move || admin::import(&queue, &listens)).await;
                for t in &self.targets {
                    t.wake.notify_one();
                }
                answer
            }
            Request::History(filter) => {
                let queue = self.queue.clone();
                blocking(move || Reply::History(commands::select(&queue, &filter))).await
            }
            Request::Stats(since) => {
                let queue = self.queue.clone();
                blocking(move || Reply::Stats(commands::compute_stats(&queue, since))).await
            }
            Request::Backfill(req) => {
                let queue = self.queue.clone();
                let target = req.target.clone();
                let answer =
                    blocking(move || Reply::Backfill(commands::backfill(&queue, &req))).await;
                for t in self.targets.iter().filter(|t| t.name == target) {
                    t.wake.notify_one();
                }
                answer
            }
        }
    }
}

/// Run `f` on the blocking pool; its reply, or an error reply.
async fn blocking(f: impl FnOnce() -> Reply + Send + 'static) -> Reply {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Reply::Error(format!("the request failed: {e}")))
}
