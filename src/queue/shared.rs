//! The open database every handle on the queue shares, closed by an I/O
//! error and opened again by the next operation.

use std::path::PathBuf;
use std::sync::Arc;

use super::QueueError;
use super::disk::{self, Open};
use super::open;

/// What every handle on the queue shares: the open database, replaced
/// after an I/O error.
///
/// sled's I/O errors are sticky: after one (a full disk, say), every later
/// write on the same handle fails even once the cause is gone. So an I/O
/// error closes the database, and the next operation opens it again, which
/// clears it. sled's file lock allows one open instance, so the reopen
/// succeeds only once the operations still holding the old one are done;
/// until then operations fail and their callers retry.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) path: PathBuf,
    pub(super) names: Vec<String>,
    pub(super) open: std::sync::RwLock<Option<Arc<Open>>>,
    /// Signalled when an error closes the database.
    pub(super) closed: tokio::sync::Notify,
    /// Whether plays go to the history too (`[history] enabled`).
    pub(super) history_on: bool,
    /// Targets that ignore plays older than this many seconds.
    pub(super) max_age: Vec<(String, u64)>,
}

impl Shared {
    /// The open database, opening it again if an error closed it.
    pub(super) fn current(&self) -> Result<Arc<Open>, QueueError> {
        if let Ok(o) = self.if_open() {
            return Ok(o);
        }
        let mut slot = self.open.write().unwrap_or_else(|e| e.into_inner());
        if let Some(o) = slot.as_ref() {
            return Ok(Arc::clone(o));
        }
        let o = Arc::new(self.reopen()?);
        tracing::info!("queue database {} opened again", self.path.display());
        *slot = Some(Arc::clone(&o));
        Ok(o)
    }

    /// The open database; a closed one stays closed. Operations on a
    /// target's queue run on the runtime thread and leave reopening, which
    /// reads the whole database, to the writer's blocking thread.
    pub(super) fn if_open(&self) -> Result<Arc<Open>, QueueError> {
        self.open
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(Arc::clone)
            .ok_or_else(|| QueueError::Closed(self.path.clone()))
    }

    pub(super) fn reopen(&self) -> Result<Open, QueueError> {
        open::open(&self.path, &self.names).map_err(|e| match e {
            // Our own old handles, still held by an operation that has not
            // finished.
            disk::OpenError::Locked => QueueError::Closed(self.path.clone()),
            disk::OpenError::Io(source) => QueueError::Db {
                path: self.path.clone(),
                source,
            },
        })
    }

    /// The error for `source`; an I/O error closes the database so that the
    /// next operation opens it afresh.
    pub(super) fn fail(&self, source: sled::Error) -> QueueError {
        if matches!(source, sled::Error::Io(_))
            && self
                .open
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .is_some()
        {
            tracing::warn!(
                "queue database {}: {source}; closed, to be opened again",
                self.path.display()
            );
            self.closed.notify_one();
        }
        QueueError::Db {
            path: self.path.clone(),
            source,
        }
    }
}
