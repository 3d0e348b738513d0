//! The stored forms of queue items (versioned JSON), and the helpers for
//! sled transactions that never abort.

use serde::{Deserialize, Serialize};
use sled::Transactional;

use super::{InFlight, Key};
use crate::model::Listen;

/// Version of the stored item format, so a later release can read old queues.
pub(super) const FORMAT_VERSION: u32 = 1;
/// The last listen enqueued, in the `meta` tree: a retried enqueue whose
/// first attempt reached the disk after all finds it there.
pub(super) const LAST_LISTEN: &[u8] = b"last_listen";

#[derive(Serialize, Deserialize)]
pub(super) struct Stored {
    pub(super) v: u32,
    pub(super) listen: Listen,
}

#[derive(Serialize, Deserialize)]
pub(super) struct Rejected {
    pub(super) v: u32,
    pub(super) listen: Listen,
    pub(super) reason: String,
    pub(super) at: u64,
}

#[derive(Serialize, Deserialize)]
pub(super) struct StoredFlight {
    pub(super) v: u32,
    pub(super) flight: InFlight,
}

/// The stored form of an item set aside for `reason`.
pub(super) fn rejected_value(listen: &Listen, reason: &str) -> Vec<u8> {
    serde_json::to_vec(&Rejected {
        v: FORMAT_VERSION,
        listen: listen.clone(),
        reason: reason.to_owned(),
        at: crate::model::unix_now(),
    })
    .expect("a listen always serialises")
}

/// What a queue transaction body can fail with: only storage errors, since
/// none of them aborts.
pub(super) type Conflict =
    sled::transaction::ConflictableTransactionError<std::convert::Infallible>;

/// The storage error of a transaction that cannot abort.
pub(super) fn storage_error(
    e: sled::transaction::TransactionError<std::convert::Infallible>,
) -> sled::Error {
    match e {
        sled::transaction::TransactionError::Storage(e) => e,
        sled::transaction::TransactionError::Abort(never) => match never {},
    }
}

/// The stored form of a queued listen.
pub(super) fn stored(listen: &Listen) -> Vec<u8> {
    serde_json::to_vec(&Stored {
        v: FORMAT_VERSION,
        listen: listen.clone(),
    })
    .expect("a listen always serialises")
}

/// Insert `value` under `key` in every tree, atomically.
pub(super) fn insert_all(trees: &[sled::Tree], key: &Key, value: &[u8]) -> Result<(), sled::Error> {
    trees
        .transaction(|trees| {
            for tree in trees {
                tree.insert(key, value)?;
            }
            Ok::<_, Conflict>(())
        })
        .map_err(storage_error)
}
