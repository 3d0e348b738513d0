//! One target's view of the queue: peeking the oldest items, in-flight
//! records, settling a request's answer, set-aside items, loves, and the
//! listing and editing behind `queue list/drop/retry`.

use sled::Transactional;

use super::outbox;
use super::stored::{
    Conflict, FORMAT_VERSION, Rejected, Stored, StoredFlight, rejected_value, storage_error,
};
use super::{InFlight, Item, Key, Love, QueueError, TargetQueue};
use crate::history::Change;
use crate::model::Listen;

/// A target's trees in the currently open database.
struct Trees {
    db: sled::Db,
    pending: sled::Tree,
    rejected: sled::Tree,
    loves: sled::Tree,
    inflight: sled::Tree,
}

impl TargetQueue {
    fn err(&self, source: sled::Error) -> QueueError {
        self.shared.fail(source)
    }

    /// This target's trees in the open database.
    fn trees(&self) -> Result<Trees, QueueError> {
        let o = self.shared.if_open()?;
        let i = self
            .shared
            .names
            .iter()
            .position(|n| *n == self.name)
            .expect("checked by Queue::target");
        let open = |prefix: &str| {
            o.db.open_tree(format!("{prefix}/{}", self.name))
                .map_err(|e| self.err(e))
        };
        Ok(Trees {
            db: o.db.clone(),
            pending: o.pending[i].clone(),
            rejected: open("rejected")?,
            loves: open("loves")?,
            inflight: open("inflight")?,
        })
    }

    /// The oldest `n` items, oldest first, without removing them. An item that
    /// cannot be decoded is set aside (with a log line) rather than blocking
    /// the queue.
    ///
    /// This and the other calls that write (or may wait behind a write)
    /// block on the disk: the daemon makes them on its storage thread
    /// (`crate::store`), never on the runtime thread.
    pub fn peek(&self, n: usize) -> Result<Vec<(Key, Listen)>, QueueError> {
        let t = self.trees()?;
        let mut out = Vec::with_capacity(n);
        let mut unreadable = Vec::new();
        for item in &t.pending {
            if out.len() == n {
                break;
            }
            let (k, v) = item.map_err(|e| self.err(e))?;
            let key: Key = k.as_ref().try_into().unwrap_or_default();
            match serde_json::from_slice::<Stored>(&v) {
                Ok(s) => out.push((key, s.listen)),
                Err(e) => unreadable.push((k, v, e)),
            }
        }
        for (k, v, e) in unreadable {
            tracing::error!(
                "queue item {} cannot be read ({e}); moved out of the way",
                hex::encode(&k)
            );
            let mut kept = b"unreadable:".to_vec();
            kept.extend_from_slice(&v);
            self.move_to_rejected(&k, &kept)?;
        }
        Ok(out)
    }

    /// Move an item the server refused for good to the rejected list.
    pub fn set_aside(&self, key: Key, listen: &Listen, reason: &str) -> Result<(), QueueError> {
        sled::write_log_on_this_thread();
        self.move_to_rejected(&key, &rejected_value(listen, reason))?;
        self.trees()?.db.flush().map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Atomically take `key` out of the pending queue and keep `value` for
    /// it in the rejected list.
    fn move_to_rejected(&self, key: &[u8], value: &[u8]) -> Result<(), QueueError> {
        let t = self.trees()?;
        (&t.pending, &t.rejected)
            .transaction(|(p, r)| {
                p.remove(key)?;
                r.insert(key, value)?;
                Ok::<_, Conflict>(())
            })
            .map_err(|e| self.err(storage_error(e)))
    }

    /// The oldest queued love, if any.
    pub fn peek_love(&self) -> Result<Option<(Key, Love)>, QueueError> {
        let t = self.trees()?;
        let Some((k, v)) = t.loves.first().map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        let key: Key = k.as_ref().try_into().unwrap_or_default();
        match serde_json::from_slice(&v) {
            Ok(love) => Ok(Some((key, love))),
            Err(e) => {
                tracing::error!("a queued love cannot be read ({e}); dropped");
                t.loves.remove(k).map_err(|e| self.err(e))?;
                self.peek_love()
            }
        }
    }

    /// Remove a love once delivered or refused for good.
    pub fn remove_love(&self, key: Key) -> Result<(), QueueError> {
        sled::write_log_on_this_thread();
        let t = self.trees()?;
        t.loves.remove(key).map_err(|e| self.err(e))?;
        t.db.flush().map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Record `flight` as sent, on disk before this returns: one fsync per
    /// request. Returns the record's id.
    pub fn mark_in_flight(&self, flight: &InFlight) -> Result<Key, QueueError> {
        let id = self.record_in_flight(flight)?;
        self.trees()?.db.flush().map_err(|e| self.err(e))?;
        Ok(id)
    }

    /// [`TargetQueue::mark_in_flight`] without the sync: the record must
    /// be made durable (a flush of the database) before its request goes
    /// out.
    pub fn record_in_flight(&self, flight: &InFlight) -> Result<Key, QueueError> {
        sled::write_log_on_this_thread();
        let value = serde_json::to_vec(&StoredFlight {
            v: FORMAT_VERSION,
            flight: flight.clone(),
        })
        .expect("a record always serialises");
        let t = self.trees()?;
        let id = t.db.generate_id().map_err(|e| self.err(e))?.to_be_bytes();
        t.inflight.insert(id, value).map_err(|e| self.err(e))?;
        Ok(id)
    }

    /// The oldest request whose outcome is not known, if any. A record that
    /// cannot be read is dropped with a log line: its items are still
    /// queued and are simply sent again.
    pub fn in_flight(&self) -> Result<Option<(Key, InFlight)>, QueueError> {
        let t = self.trees()?;
        for item in &t.inflight {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let key: Key = k.as_ref().try_into().unwrap_or_default();
            match serde_json::from_slice::<StoredFlight>(&v) {
                Ok(s) => return Ok(Some((key, s.flight))),
                Err(e) => {
                    tracing::error!(
                        "in-flight record {} cannot be read ({e}); its scrobbles are sent again",
                        hex::encode(&k)
                    );
                    t.inflight.remove(&k).map_err(|e| self.err(e))?;
                }
            }
        }
        Ok(None)
    }

    /// Forget an in-flight record after an answer that changes nothing in
    /// the queue (a refusal before anything was stored). Not flushed: a
    /// record that survives a crash only makes the server be asked again.
    pub fn clear_in_flight(&self, id: Key) -> Result<(), QueueError> {
        self.trees()?.inflight.remove(id).map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Settle an in-flight request in one transaction: remove what the
    /// server has, set aside what it refused for good, and forget the
    /// record.
    ///
    /// Not flushed: it reaches the disk with the next write that is (the
    /// next play queued, the next request's record) or at shutdown. A crash
    /// before then leaves the record, which was on disk before the request
    /// went out, so the server is asked what it stored rather than sent the
    /// batch again; skipping this fsync saves a disk wait per request.
    pub fn finish_in_flight(
        &self,
        id: Key,
        delivered: &[Key],
        refused: &[(Key, Listen, String)],
    ) -> Result<(), QueueError> {
        sled::write_log_on_this_thread();
        let refused: Vec<(Key, Vec<u8>)> = refused
            .iter()
            .map(|(k, listen, reason)| (*k, rejected_value(listen, reason)))
            .collect();
        let t = self.trees()?;
        // With the history off, a tree nothing is written to.
        let outbox =
            t.db.open_tree(match self.shared.history_on {
                true => outbox::OUTBOX,
                false => "history-off",
            })
            .map_err(|e| self.err(e))?;
        let now = crate::model::unix_now();
        let name = &self.name;
        let history_on = self.shared.history_on;
        (&t.pending, &t.rejected, &t.inflight, &outbox)
            .transaction(|(p, r, f, h)| {
                for k in delivered {
                    if p.remove(k)?.is_none() || !history_on {
                        continue;
                    }
                    // Record, in this transaction, that this target
                    // accepted the play now.
                    let change = Change::Delivered {
                        key: u64::from_be_bytes(*k),
                        target: name.clone(),
                        at: now,
                    };
                    h.insert(outbox::key(&change), outbox::value(&change))?;
                }
                for (k, value) in &refused {
                    p.remove(k)?;
                    r.insert(k, value.as_slice())?;
                }
                f.remove(&id)?;
                Ok::<_, Conflict>(())
            })
            .map_err(|e| self.err(storage_error(e)))?;
        Ok(())
    }

    /// Those of `keys` still queued, with their listens, in queue order.
    pub fn items(&self, keys: &[Key]) -> Result<Vec<(Key, Listen)>, QueueError> {
        let t = self.trees()?;
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            if let Some(v) = t.pending.get(k).map_err(|e| self.err(e))? {
                if let Ok(s) = serde_json::from_slice::<Stored>(&v) {
                    out.push((*k, s.listen));
                }
            }
        }
        out.sort_by_key(|(k, _)| *k);
        Ok(out)
    }

    /// Start time of the oldest waiting item.
    pub fn oldest(&self) -> Option<u64> {
        let t = self.trees().ok()?;
        let (_, v) = t.pending.first().ok()??;
        serde_json::from_slice::<Stored>(&v)
            .ok()
            .map(|s| s.listen.started_at)
    }

    /// Every waiting item, oldest first (unreadable ones are skipped).
    pub fn list(&self) -> Result<Vec<Item>, QueueError> {
        let t = self.trees()?;
        let mut out = Vec::new();
        for item in &t.pending {
            let (k, v) = item.map_err(|e| self.err(e))?;
            if let (Ok(key), Ok(s)) = (
                <Key>::try_from(k.as_ref()),
                serde_json::from_slice::<Stored>(&v),
            ) {
                out.push(Item {
                    id: u64::from_be_bytes(key),
                    listen: s.listen,
                    reason: None,
                });
            }
        }
        Ok(out)
    }

    /// Every item set aside, with the reason.
    pub fn list_rejected(&self) -> Result<Vec<Item>, QueueError> {
        let t = self.trees()?;
        let mut out = Vec::new();
        for item in &t.rejected {
            let (k, v) = item.map_err(|e| self.err(e))?;
            if let (Ok(key), Ok(r)) = (
                <Key>::try_from(k.as_ref()),
                serde_json::from_slice::<Rejected>(&v),
            ) {
                out.push(Item {
                    id: u64::from_be_bytes(key),
                    listen: r.listen,
                    reason: Some(r.reason),
                });
            }
        }
        Ok(out)
    }

    /// Drop one waiting item for good; `false` when there is no such item.
    pub fn drop_item(&self, id: u64) -> Result<bool, QueueError> {
        let t = self.trees()?;
        let found = t
            .pending
            .remove(id.to_be_bytes())
            .map_err(|e| self.err(e))?
            .is_some();
        t.db.flush().map_err(|e| self.err(e))?;
        Ok(found)
    }

    /// Put every rejected item back in the queue, in its old place.
    pub fn retry_rejected(&self) -> Result<usize, QueueError> {
        let t = self.trees()?;
        let mut moved = 0;
        for item in &t.rejected {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let Ok(r) = serde_json::from_slice::<Rejected>(&v) else {
                continue;
            };
            let value = serde_json::to_vec(&Stored {
                v: FORMAT_VERSION,
                listen: r.listen,
            })
            .expect("a listen always serialises");
            (&t.pending, &t.rejected)
                .transaction(|(p, rj)| {
                    rj.remove(&k)?;
                    p.insert(&k, value.as_slice())?;
                    Ok::<_, Conflict>(())
                })
                .map_err(|e| self.err(storage_error(e)))?;
            moved += 1;
        }
        t.db.flush().map_err(|e| self.err(e))?;
        Ok(moved)
    }

    /// Number of items waiting.
    pub fn len(&self) -> usize {
        let Ok(t) = self.trees() else { return 0 };
        t.pending.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        let Ok(t) = self.trees() else { return true };
        t.pending.is_empty()
    }

    /// Number of items set aside.
    pub fn rejected_len(&self) -> usize {
        let Ok(t) = self.trees() else { return 0 };
        t.rejected.len()
    }
}
