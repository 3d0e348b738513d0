//! The reply to `status`, built from the daemon's parts.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::now;
use super::spool::{Fault, Spool};
use super::watch::Player;
use crate::control::{MpdLink, Playing, Status, Storage, StorageState, TargetStatus};
use crate::delivery::TargetHandle;
use crate::history::commands;
use crate::queue::Queue;
use crate::scrobble::unix_now;

/// The daemon's state. Reads the queue: call it on the blocking pool.
pub(super) fn status(
    address: &str,
    player: &Player,
    queue: &Queue,
    targets: &[Arc<TargetHandle>],
    spool: &Spool,
    state_dir: &Path,
) -> Status {
    let unix = unix_now();
    let playing = {
        let tracker = player.tracker();
        tracker.current().map(|(track, qualified)| {
            let (played, needed) = tracker.progress(now()).unwrap_or_default();
            Playing {
                artist: track.artist.clone(),
                needed_secs: needed.map(|n| n.as_secs()),
                played_secs: played.as_secs(),
                qualified,
                title: track.title.clone(),
                counts_at_end_secs: track
                    .stream_url
                    .is_some()
                    .then(|| tracker.rules().min_track.as_secs()),
                recorded: false,
                queued_for: Vec::new(),
                delivered_to: Vec::new(),
            }
        })
    };
    let started = player.tracker().current_play().map(|(_, s)| s);
    let playing = playing.map(|mut p| {
        if let (true, Some(started)) = (p.qualified, started) {
            fate(&mut p, queue, started);
        }
        p
    });
    let targets = targets
        .iter()
        .map(|t| {
            let q = queue.target(&t.name);
            let health = t.health.lock().unwrap_or_else(|e| e.into_inner()).clone();
            TargetStatus {
                last_success: health.last_success,
                name: t.name.clone(),
                oldest_secs: q.oldest().map(|o| unix.saturating_sub(o)),
                queued: q.len() as u64,
                rejected: q.rejected_len() as u64,
                state: health.state,
            }
        })
        .collect();
    Status {
        history: commands::summary(queue),
        mpd: MpdLink {
            address: address.to_owned(),
            connected: player.connected.load(Ordering::Relaxed),
        },
        playing,
        storage: storage(spool, queue, state_dir),
        targets,
    }
}

/// The state directory's part of `status`: whether plays can be written,
/// how many wait in memory, and what to do.
fn storage(spool: &Spool, queue: &Queue, state_dir: &Path) -> Storage {
    let s = spool.state();
    let dir = state_dir.display();
    let (state, fix) = match s.fault {
        None if queue.is_open() => (StorageState::Ok, None),
        None => (
            StorageState::Closed,
            Some("the queue database is being opened again after an error; see the log".into()),
        ),
        Some(Fault::Full) => (
            StorageState::Full,
            Some(format!(
                "free some space on the file system of {dir} (`df -h {dir}`); \
                 held plays are written as soon as there is room"
            )),
        ),
        Some(Fault::Unwritable) => (
            StorageState::Unwritable,
            Some(format!(
                "make {dir} writable for the user that runs the daemon (or remount it \
                 read-write); held plays are written as soon as it is"
            )),
        ),
        Some(Fault::Failing) => (
            StorageState::Failing,
            Some("see the daemon's log; held plays are written as soon as writing works".into()),
        ),
    };
    Storage {
        dir: state_dir.to_owned(),
        dropped: s.dropped,
        fix,
        held: s.held as u64,
        state,
        why: s.why,
    }
}

/// Where a play that counted went, from its history record: recorded,
/// waiting in which queues, accepted by which targets.
fn fate(p: &mut Playing, queue: &Queue, started: u64) {
    let Ok(Some(history)) = queue.history() else {
        return;
    };
    let record = history
        .range(Some(started), Some(started + 1))
        .filter_map(Result::ok)
        .map(|(_, r)| r)
        .find(|r| r.listen.track.title == p.title);
    if let Some(r) = record {
        p.recorded = true;
        p.delivered_to = r.delivered.keys().cloned().collect();
        p.queued_for = r
            .queued
            .iter()
            .filter(|t| !r.delivered.contains_key(*t))
            .cloned()
            .collect();
    }
}
