//! Answers control-socket requests. Whatever reads or writes the queue or
//! the history is a request to the storage thread ([`crate::store`]), so a
//! slow sync never holds up the runtime thread that follows MPD.

use std::path::PathBuf;
use std::sync::Arc;

use super::spool::Spool;
use super::watch::Player;
use super::{Reload, love, status};
use crate::control::{Reply, Request, Status};
use crate::delivery::TargetHandle;
use crate::store::Store;
use crate::store::{QueueCmd, QueueReply};

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
    /// The daemon's status, as `status` shows it and the metrics serve it.
    async fn status(&self) -> Status {
        let play = {
            let tracker = self.player.tracker();
            match (tracker.current(), tracker.current_play()) {
                (Some((track, true)), Some((_, started))) => Some((started, track.title.clone())),
                _ => None,
            }
        };
        let counts = self.store.counts(play).await;
        status::status(
            &self.address,
            &self.player,
            counts,
            &self.targets,
            &self.spool,
            &self.state_dir,
        )
    }

    /// The reply to `req`.
    pub(super) async fn handle(self, req: Request) -> Reply {
        match req {
            // Reads a session file per target, as SIGHUP does on this
            // thread: small files the `auth` that wrote them left cached.
            Request::Reload => {
                (self.reload)();
                Reply::Reloaded
            }
            Request::Status => Reply::Status(Box::new(self.status().await)),
            Request::Love(l) => love::love(&self.player, &self.store, &self.targets, l).await,
            Request::Queue(QueueCmd::Flush) => {
                for t in &self.targets {
                    t.flush_now.notify_one();
                    t.wake.notify_one();
                }
                Reply::Queue(QueueReply::Flushed(self.targets.len()))
            }
            Request::Queue(cmd) => self
                .store
                .queue_command(cmd)
                .await
                .map_or_else(|e| Reply::Error(e.to_string()), Reply::Queue),
            Request::Import { listens, only } => {
                let answer = self.store.import(listens, only).await;
                for t in &self.targets {
                    t.wake.notify_one();
                }
                match answer {
                    Ok(r) => Reply::from(&r),
                    Err(e) => Reply::Error(e.to_string()),
                }
            }
        }
    }
}

impl crate::metrics::Figures for Handler {
    async fn status(&self) -> Status {
        Handler::status(self).await
    }
}
