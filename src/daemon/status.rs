//! The reply to `status`, built from the daemon's parts.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::spool::{Fault, Spool};
use super::watch::Player;
use crate::control::{MpdLink, Playing, Status, Storage, StorageState, TargetStatus};
use crate::delivery::TargetHandle;
use crate::model::unix_now;
use crate::store::Counts;

/// The daemon's state, with the queue's `counts`.
pub(super) fn status(
    address: &str,
    player: &Player,
    counts: Counts,
    targets: &[Arc<TargetHandle>],
    spool: &Spool,
    state_dir: &Path,
) -> Status {
    let unix = unix_now();
    let playing = {
        let tracker = player.tracker();
        tracker.current().map(|(track, qualified)| {
            let (played, needed) = tracker.progress(Instant::now()).unwrap_or_default();
            Playing {
                artist: track.artist.clone(),
                needed_secs: needed.map(|n| n.as_secs()),
                played_secs: played.as_secs(),
                qualified,
                title: track.title.clone(),
                counts_at_end_secs: track
                    .stream_url
                    .is_some()
                    .then(|| tracker.thresholds().min_track.as_secs()),
                recorded: false,
                queued_for: Vec::new(),
                delivered_to: Vec::new(),
            }
        })
    };
    let playing = playing.map(|mut p| {
        if let (true, Some(fate)) = (p.qualified, &counts.fate) {
            p.recorded = true;
            p.queued_for.clone_from(&fate.queued_for);
            p.delivered_to.clone_from(&fate.delivered_to);
        }
        p
    });
    let targets = targets
        .iter()
        .map(|t| {
            let q = counts.targets.get(&t.name).copied().unwrap_or_default();
            let health = t.health.lock().unwrap_or_else(|e| e.into_inner()).clone();
            TargetStatus {
                deliveries: t.tally.read(),
                last_success: health.last_success,
                name: t.name.clone(),
                oldest_started: q.oldest,
                oldest_secs: q.oldest.map(|o| unix.saturating_sub(o)),
                queued: q.queued as u64,
                rejected: q.rejected as u64,
                state: health.state,
            }
        })
        .collect();
    Status {
        history: counts.history,
        mpd: MpdLink {
            address: address.to_owned(),
            connected: player.connected.load(Ordering::Relaxed),
        },
        playing,
        plays_recorded: spool.recorded(),
        storage: storage(spool, counts.open, state_dir),
        targets,
    }
}

/// The state directory's part of `status`: whether plays can be written,
/// how many wait in memory, and what to do.
fn storage(spool: &Spool, open: bool, state_dir: &Path) -> Storage {
    let s = spool.state();
    let (state, fix) = match s.fault {
        None if open => (StorageState::Ok, None),
        None => (
            StorageState::Closed,
            Some("the queue database is being opened again after an error; see the log".into()),
        ),
        Some(fault) => (
            match fault {
                Fault::Full => StorageState::Full,
                Fault::Unwritable => StorageState::Unwritable,
                Fault::Failing => StorageState::Failing,
            },
            Some(fault.fix(state_dir)),
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
