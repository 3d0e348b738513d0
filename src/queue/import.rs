//! Plays from elsewhere and from the history: importing listens (an
//! mpdscribble journal, a ListenBrainz export), backfilling a target added
//! later, and pruning old history records.

use std::collections::BTreeMap;

use sled::Transactional;

use super::open;
use super::stored::{Conflict, Stored, storage_error, stored};
use super::{Backfill, Key, Queue, QueueError};
use crate::history::{self, History, PlayInfo, Record};
use crate::scrobble::Listen;

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

impl Queue {
    /// [`Queue::import_report`], counting only what was added and skipped.
    pub fn import(&self, listens: &[Listen]) -> Result<(usize, usize), QueueError> {
        self.import_report(listens).map(|r| (r.added, r.skipped))
    }

    /// Add listens from elsewhere (an mpdscribble journal, a ListenBrainz
    /// export) to the history and to every target's queue, leaving out, per
    /// target, any play it already has: queued there with the same artist,
    /// title and start time, or, through the history, already delivered to
    /// it, or too old for it. Returns what went where.
    pub fn import_report(&self, listens: &[Listen]) -> Result<Imported, QueueError> {
        let o = self.shared.current()?;
        let err = |source| self.err(source);
        let names = &self.shared.names;
        let mut queued: Vec<Vec<Listen>> = Vec::new();
        for tree in &o.pending {
            let mut v = Vec::new();
            for item in tree {
                let (_, value) = item.map_err(err)?;
                if let Ok(s) = serde_json::from_slice::<Stored>(&value) {
                    v.push(s.listen);
                }
            }
            queued.push(v);
        }
        let history = match self.shared.history_on {
            true => Some(History::open(&o.db).map_err(err)?),
            false => None,
        };
        let now = crate::scrobble::unix_now();
        let mut report = Imported::default();
        for listen in listens {
            let known = match &history {
                Some(h) => h.find(listen).map_err(err)?,
                None => None,
            };
            let holds = |i: usize| queued[i].iter().any(|q| history::same_play(q, listen));
            let wanted: Vec<usize> = (0..o.pending.len())
                .filter(|&i| {
                    !holds(i)
                        && known.as_ref().is_none_or(|(_, r)| !r.has(&names[i]))
                        && !self.too_old(&names[i], listen.started_at, now)
                })
                .collect();
            // A play new to the history is recorded even when no target
            // takes it (none configured, or it is too old for them).
            let new_play = known.is_none() && history.is_some() && !(0..o.pending.len()).any(holds);
            for (i, name) in names.iter().enumerate() {
                if !holds(i)
                    && known.as_ref().is_none_or(|(_, r)| !r.has(name))
                    && self.too_old(name, listen.started_at, now)
                {
                    *report.too_old.entry(name.clone()).or_default() += 1;
                }
            }
            if wanted.is_empty() && !new_play {
                report.skipped += 1;
                continue;
            }
            for &i in &wanted {
                *report.queued.entry(names[i].clone()).or_default() += 1;
            }
            if known.is_none() && history.is_some() {
                report.recorded += 1;
            }
            let (id, record) = match known {
                Some((hkey, mut r)) => {
                    r.queued.extend(wanted.iter().map(|&i| names[i].clone()));
                    (history::split_key(&hkey).map_or(0, |(_, id)| id), r)
                }
                None => {
                    let holders: Vec<String> = (0..o.pending.len())
                        .filter(|&i| holds(i) || wanted.contains(&i))
                        .map(|i| names[i].clone())
                        .collect();
                    let key = o.next_key().map_err(err)?;
                    o.meta.insert(open::LAST_ID, &key).map_err(err)?;
                    (
                        u64::from_be_bytes(key),
                        Record::new(listen, &PlayInfo::default(), &holders),
                    )
                }
            };
            let value = stored(listen);
            let mut trees: Vec<sled::Tree> = wanted.iter().map(|&i| o.pending[i].clone()).collect();
            let n = trees.len();
            if let Some(h) = &history {
                trees.push(h.tree().clone());
            }
            let hkey = history::key(listen.started_at, id);
            let record = record.encode();
            trees
                .as_slice()
                .transaction(|trees| {
                    for tree in &trees[..n] {
                        tree.insert(&id.to_be_bytes(), value.as_slice())?;
                    }
                    if let Some(h) = trees.get(n) {
                        h.insert(&hkey, record.as_slice())?;
                    }
                    Ok::<_, Conflict>(())
                })
                .map_err(|e| self.err(storage_error(e)))?;
            report.added += 1;
        }
        o.db.flush().map_err(err)?;
        if let Some(last) = o.meta.get(open::LAST_ID).ok().flatten() {
            if let Ok(k) = <Key>::try_from(last.as_ref()) {
                open::record_last_write(&self.shared.path, u64::from_be_bytes(k));
            }
        }
        Ok(report)
    }

    /// Forget history records of plays that started before `before`, except
    /// those still waiting in a queue. Returns how many went.
    pub fn prune_history(&self, before: u64) -> Result<usize, QueueError> {
        let Some(h) = self.history()? else {
            return Ok(0);
        };
        let o = self.shared.current()?;
        let waiting = |id: u64| {
            let k = id.to_be_bytes();
            o.pending.iter().any(|t| t.contains_key(k).unwrap_or(true))
        };
        let removed = h.prune(before, waiting).map_err(|e| self.err(e))?;
        if removed > 0 {
            o.db.flush().map_err(|e| self.err(e))?;
        }
        Ok(removed)
    }

    /// Queue for `target` the recorded plays since `since` that it has not
    /// received, for a target added later. Plays too old for it (see
    /// [`Queue::with_max_age`]) are counted and left out.
    pub fn backfill(
        &self,
        target: &str,
        since: Option<u64>,
        now: u64,
    ) -> Result<Backfill, QueueError> {
        let Some(h) = self.history()? else {
            return Ok(Backfill::default());
        };
        let o = self.shared.current()?;
        let i = self
            .shared
            .names
            .iter()
            .position(|n| n == target)
            .expect("backfill of a configured target");
        let mut done = Backfill::default();
        for item in h.range(since, None) {
            let (hkey, mut record) = item.map_err(|e| self.err(e))?;
            if record.has(target) {
                done.already += 1;
                continue;
            }
            if self.too_old(target, record.listen.started_at, now) {
                done.too_old += 1;
                continue;
            }
            let Some((_, id)) = history::split_key(&hkey) else {
                continue;
            };
            record.queued.push(target.to_owned());
            let value = stored(&record.listen);
            let record = record.encode();
            (&o.pending[i], h.tree())
                .transaction(|(q, ht)| {
                    q.insert(&id.to_be_bytes(), value.as_slice())?;
                    ht.insert(&hkey, record.as_slice())?;
                    Ok::<_, Conflict>(())
                })
                .map_err(|e| self.err(storage_error(e)))?;
            done.queued += 1;
        }
        o.db.flush().map_err(|e| self.err(e))?;
        Ok(done)
    }
}
