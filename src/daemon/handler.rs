//! Answers control-socket requests. Whatever reads or writes the queue or
//! the history is a request to the storage thread ([`crate::store`]), so a
//! slow sync never holds up the runtime thread that follows MPD.

use std::path::PathBuf;
use std::sync::Arc;

use super::spool::Spool;
use super::watch::Player;
use super::{Reload, love, status};
use crate::control::{QueueCmd, QueueReply, Reply, Request};
use crate::delivery::TargetHandle;
use crate::store::Store;

/// What answering needs of the daemon.
#[derive(Clone)]
pub(super) struct Handler {
    pub(super) reload: Reload,
    pub(super) store: Store,
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
            // Reads a session file per target, as SIGHUP does on this
            // thread: small files the `auth` that wrote them left cached.
            Request::Reload => {
                (self.reload)();
                Reply::Reloaded
            }
            Request::Status => {
                let play = {
                    let tracker = self.player.tracker();
                    match (tracker.current(), tracker.current_play()) {
                        (Some((track, true)), Some((_, started))) => {
                            Some((started, track.title.clone()))
                        }
                        _ => None,
                    }
                };
                let counts = self.store.counts(play).await;
                Reply::Status(Box::new(status::status(
                    &self.address,
                    &self.player,
                    counts,
                    &self.targets,
                    &self.spool,
                    &self.state_dir,
                )))
            }
            Request::Love(l) => love::love(&self.player, &self.store, &self.targets, l).await,
            Request::Queue(QueueCmd::Flush) => {
                for t in &self.targets {
                    t.flush_now.notify_one();
                    t.wake.notify_one();
                }
                Reply::Queue(QueueReply::Flushed(self.targets.len()))
            }
            Request::Queue(cmd) => self.store.queue_command(cmd).await,
            Request::Import { listens, only } => {
                let answer = self.store.import(listens, only).await;
                for t in &self.targets {
                    t.wake.notify_one();
                }
                match answer {
                    Ok(r) => crate::admin::imported(&r),
                    Err(e) => Reply::Error(e.to_string()),
                }
            }
        }
    }
}
