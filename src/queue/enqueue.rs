//! Writing plays and loves: each play goes to every target's queue and to
//! the history's outbox in one transaction, on disk before the call returns, and a
//! retried write of the last play does nothing.

use sled::Transactional;

use super::disk::{self, Open};
use super::outbox;
use super::stored::{Conflict, LAST_LISTEN, insert_all, storage_error, stored};
use super::{Love, Queue, QueueError, WrittenPlay};
use crate::history::{Change, PlayInfo, Record};
use crate::model::Listen;

impl Queue {
    /// Append `listen` to every target's queue atomically and wait until it is
    /// on disk.
    pub async fn enqueue(&self, listen: &Listen) -> Result<(), QueueError> {
        self.enqueue_each(listen, &self.everywhere(listen)).await
    }

    /// One play's own version for each target (the rules may rewrite it
    /// per target, or leave a target out), queued under one key in one
    /// transaction with its history record; on disk before this returns.
    /// `play` is the play before the rules: the history records it, and it
    /// tells a repeated write apart. Names the queue was not opened with are
    /// left out.
    pub async fn enqueue_each(
        &self,
        play: &Listen,
        listens: &[(&str, Listen)],
    ) -> Result<(), QueueError> {
        let o = self.shared.current()?;
        let Some(key) = self.insert_listens(&o, play, listens, &PlayInfo::default())? else {
            return Ok(());
        };
        o.db.flush_async().await.map_err(|e| self.err(e))?;
        disk::record_last_write(&self.shared.path, key);
        Ok(())
    }

    /// [`Queue::enqueue`] for a blocking thread (the daemon's writer runs it
    /// off the runtime). Writing a listen that is already the last one
    /// written (an attempt whose fsync failed after sled kept it) does
    /// nothing, so retrying never queues a play twice.
    pub fn enqueue_blocking(&self, listen: &Listen) -> Result<(), QueueError> {
        self.enqueue_play_blocking(listen, &PlayInfo::default())
    }

    /// [`Queue::enqueue_blocking`], with what the daemon knows of the play
    /// beyond the listen (file, play time) for its history record.
    pub fn enqueue_play_blocking(
        &self,
        listen: &Listen,
        info: &PlayInfo,
    ) -> Result<(), QueueError> {
        self.enqueue_each_blocking(listen, &self.everywhere(listen), info)
    }

    /// [`Queue::enqueue_each`] for a blocking thread, with the guarantee of
    /// [`Queue::enqueue_blocking`]. The thread writes sled's log buffers
    /// itself from then on (vendor/sled/PATCHED.md).
    pub fn enqueue_each_blocking(
        &self,
        play: &Listen,
        listens: &[(&str, Listen)],
        info: &PlayInfo,
    ) -> Result<(), QueueError> {
        let written = self.write_play(play, listens, info)?;
        self.make_durable(written)
    }

    /// [`Queue::enqueue_each_blocking`] without waiting for the disk: the
    /// play is written but not durable until [`Queue::make_durable`], which
    /// also covers whatever else was written in between (the daemon's
    /// storage thread records the requests the play lets go out, so that
    /// the play and their in-flight records take one sync).
    pub fn write_play(
        &self,
        play: &Listen,
        listens: &[(&str, Listen)],
        info: &PlayInfo,
    ) -> Result<WrittenPlay, QueueError> {
        sled::write_log_on_this_thread();
        let o = self.shared.current()?;
        Ok(WrittenPlay(self.insert_listens(&o, play, listens, info)?))
    }

    /// Sync everything written so far, then note `written` as the last
    /// durable enqueue for the damage check (`open.rs`).
    pub fn make_durable(&self, written: WrittenPlay) -> Result<(), QueueError> {
        self.flush()?;
        if let Some(key) = written.0 {
            disk::record_last_write(&self.shared.path, key);
        }
        Ok(())
    }

    /// Set the play time of `play`'s history record once the play has
    /// ended (an outbox entry); nothing is queued. Left to the next flush: a
    /// crash loses only this figure, and the record keeps the play time at
    /// which it counted.
    pub fn record_played_blocking(
        &self,
        play: &Listen,
        played_secs: u64,
    ) -> Result<(), QueueError> {
        if !self.shared.history_on {
            return Ok(());
        }
        let o = self.shared.current()?;
        let change = Change::Played {
            started_at: play.started_at,
            artist: play.track.artist.clone(),
            title: play.track.title.clone(),
            secs: played_secs,
        };
        o.db.open_tree(outbox::OUTBOX)
            .and_then(|t| t.insert(outbox::key(&change), outbox::value(&change)))
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The same listen for every target.
    fn everywhere<'a>(&'a self, listen: &Listen) -> Vec<(&'a str, Listen)> {
        self.shared
            .names
            .iter()
            .map(|n| (n.as_str(), listen.clone()))
            .collect()
    }

    /// Insert each target's listen into its tree and `play` into the
    /// history, and note `play` as the last one written; `None` if it
    /// already is.
    pub(super) fn insert_listens(
        &self,
        o: &Open,
        play: &Listen,
        listens: &[(&str, Listen)],
        info: &PlayInfo,
    ) -> Result<Option<u64>, QueueError> {
        let value = stored(play);
        let last = o.meta.get(LAST_LISTEN).map_err(|e| self.err(e))?;
        if last.as_deref() == Some(value.as_slice()) {
            return Ok(None);
        }
        let mut trees = Vec::with_capacity(listens.len() + 2);
        let mut values = Vec::with_capacity(listens.len());
        let mut queued = Vec::with_capacity(listens.len());
        for (name, listen) in listens {
            if let Some(i) = self.shared.names.iter().position(|n| n == name) {
                trees.push(o.pending[i].clone());
                values.push(stored(listen));
                queued.push((*name).to_owned());
            }
        }
        let key = o.next_key().map_err(|e| self.err(e))?;
        let n = trees.len();
        let record = if self.shared.history_on {
            trees.push(o.db.open_tree(outbox::OUTBOX).map_err(|e| self.err(e))?);
            let change = Change::Play {
                key: u64::from_be_bytes(key),
                record: Box::new(Record::new(play, info, &queued)),
            };
            Some((outbox::key(&change), outbox::value(&change)))
        } else {
            None
        };
        trees.push(o.meta.clone());
        trees
            .as_slice()
            .transaction(|trees| {
                let (meta, rest) = trees.split_last().expect("meta is last");
                for (tree, value) in rest[..n].iter().zip(&values) {
                    tree.insert(&key, value.as_slice())?;
                }
                if let (Some(h), Some((hkey, record))) = (rest.get(n), &record) {
                    h.insert(hkey.as_slice(), record.as_slice())?;
                }
                meta.insert(disk::LAST_ID, &key)?;
                meta.insert(LAST_LISTEN, value.as_slice())?;
                Ok::<_, Conflict>(())
            })
            .map_err(|e| self.err(storage_error(e)))?;
        Ok(Some(u64::from_be_bytes(key)))
    }

    /// Queue a love for every target in one transaction, on disk before
    /// this returns.
    pub fn enqueue_love(&self, love: &Love) -> Result<(), QueueError> {
        let o = self.shared.current()?;
        let err = |source| self.err(source);
        let trees: Vec<sled::Tree> = self
            .shared
            .names
            .iter()
            .map(|t| o.db.open_tree(format!("loves/{t}")))
            .collect::<Result<_, _>>()
            .map_err(err)?;
        let value = serde_json::to_vec(love).expect("a love always serialises");
        let key = o.next_key().map_err(err)?;
        insert_all(&trees, &key, &value).map_err(err)?;
        o.db.flush().map_err(err)?;
        Ok(())
    }
}
