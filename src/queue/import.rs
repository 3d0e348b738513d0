//! Plays from elsewhere and from the history: importing listens (an
//! mpdscribble journal, a ListenBrainz export) and backfilling a target
//! added later (the history's selection, imported for that target only).

use std::collections::BTreeMap;

use sled::Transactional;

use super::stored::{Conflict, Stored, storage_error, stored};
use super::{Key, Queue, QueueError};
use super::{disk, outbox};
use crate::history::{self, Change, PlayInfo, Record};
use crate::model::Listen;

/// What an import did, for its report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Imported {
    /// Listens that went somewhere (the history, a queue or both).
    pub added: usize,
    /// Listens every target and the history had already.
    pub skipped: usize,
    /// Plays new to the history.
    pub recorded: usize,
    /// Per target: plays queued for it.
    pub queued: BTreeMap<String, usize>,
    /// Per target: plays left out as too old for it.
    pub too_old: BTreeMap<String, usize>,
}

/// What the history knows of a listen about to be imported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Known {
    /// The key its queue entries carry, if it was ever queued.
    pub queue_key: Option<u64>,
    /// The targets it was queued for or delivered to.
    pub holders: Vec<String>,
}

impl Queue {
    /// [`Queue::import_report`] into every target, with nothing known of
    /// the listens, counting only what was added and skipped.
    pub fn import(&self, listens: &[Listen]) -> Result<(usize, usize), QueueError> {
        let known = vec![None; listens.len()];
        self.import_report(listens, &known, None)
            .map(|r| (r.added, r.skipped))
    }

    /// Add listens from elsewhere (an mpdscribble journal, a ListenBrainz
    /// export, the history for a backfill) to the history's outbox and to
    /// the queues of every target (or of `only`), leaving out, per target,
    /// any play it already has: queued there with the same artist, title
    /// and start time, or, by `known` (what the history knows of each
    /// listen, in order), queued or delivered before, or too old for it.
    /// Flushed. Returns what went where.
    pub fn import_report(
        &self,
        listens: &[Listen],
        known: &[Option<Known>],
        only: Option<&str>,
    ) -> Result<Imported, QueueError> {
        let o = self.shared.current()?;
        let err = |source| self.err(source);
        let names = &self.shared.names;
        let targets: Vec<usize> = (0..names.len())
            .filter(|&i| only.is_none_or(|t| names[i] == t))
            .collect();
        // The queues hold what is still owed: few plays, read per batch.
        let mut queued: Vec<Vec<Listen>> = vec![Vec::new(); names.len()];
        for &i in &targets {
            for item in &o.pending[i] {
                let (_, value) = item.map_err(err)?;
                if let Ok(s) = serde_json::from_slice::<Stored>(&value) {
                    queued[i].push(s.listen);
                }
            }
        }
        let outbox = o.db.open_tree(outbox::OUTBOX).map_err(err)?;
        let history_on = self.shared.history_on;
        let now = crate::model::unix_now();
        let mut report = Imported::default();
        for (listen, known) in listens.iter().zip(known) {
            let holds = |i: usize| queued[i].iter().any(|q| history::same_play(q, listen));
            let has = |i: usize| {
                known
                    .as_ref()
                    .is_some_and(|k| k.holders.contains(&names[i]))
            };
            let wanted: Vec<usize> = targets
                .iter()
                .copied()
                .filter(|&i| {
                    !holds(i) && !has(i) && !self.too_old(&names[i], listen.started_at, now)
                })
                .collect();
            for &i in &targets {
                if !holds(i) && !has(i) && self.too_old(&names[i], listen.started_at, now) {
                    *report.too_old.entry(names[i].clone()).or_default() += 1;
                }
            }
            // A play new to the history is recorded even when no target
            // takes it (none configured, or it is too old for them).
            let new_play = known.is_none() && history_on && !targets.iter().any(|&i| holds(i));
            if wanted.is_empty() && !new_play {
                report.skipped += 1;
                continue;
            }
            for &i in &wanted {
                *report.queued.entry(names[i].clone()).or_default() += 1;
            }
            if new_play {
                report.recorded += 1;
            }
            let id = match known.as_ref().and_then(|k| k.queue_key) {
                Some(id) => id,
                None => {
                    let key = o.next_key().map_err(err)?;
                    o.meta.insert(disk::LAST_ID, &key).map_err(err)?;
                    u64::from_be_bytes(key)
                }
            };
            let holders: Vec<String> = targets
                .iter()
                .filter(|&&i| holds(i) || wanted.contains(&i))
                .map(|&i| names[i].clone())
                .collect();
            let change = Change::Play {
                key: id,
                record: Box::new(Record::new(listen, &PlayInfo::default(), &holders)),
            };
            let value = stored(listen);
            let mut trees: Vec<sled::Tree> = wanted.iter().map(|&i| o.pending[i].clone()).collect();
            let n = trees.len();
            if history_on {
                trees.push(outbox.clone());
            }
            let (okey, ovalue) = (outbox::key(&change), outbox::value(&change));
            trees
                .as_slice()
                .transaction(|trees| {
                    for tree in &trees[..n] {
                        tree.insert(&id.to_be_bytes(), value.as_slice())?;
                    }
                    if let Some(h) = trees.get(n) {
                        h.insert(okey.as_slice(), ovalue.as_slice())?;
                    }
                    Ok::<_, Conflict>(())
                })
                .map_err(|e| self.err(storage_error(e)))?;
            report.added += 1;
        }
        o.db.flush().map_err(err)?;
        if let Some(last) = o.meta.get(disk::LAST_ID).ok().flatten() {
            if let Ok(k) = <Key>::try_from(last.as_ref()) {
                disk::record_last_write(&self.shared.path, u64::from_be_bytes(k));
            }
        }
        Ok(report)
    }

    /// Whether the item with this key waits in a queue (the history keeps
    /// every play a queue holds).
    pub fn waiting(&self, key: u64) -> bool {
        let k = key.to_be_bytes();
        match self.shared.current() {
            Ok(o) => o.pending.iter().any(|t| t.contains_key(k).unwrap_or(true)),
            Err(_) => true,
        }
    }
}
