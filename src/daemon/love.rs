//! Love and unlove of the current play's track, asked for by `mpd-scrobbler
//! love` or an MPD message: queued durably for every target.

use std::sync::Arc;

use tokio::sync::mpsc::UnboundedReceiver;

use super::watch::Player;
use crate::control::{Loved, Reply};
use crate::delivery::{TargetHandle, describe};
use crate::queue::Queue;

/// Love (`true`) or unlove the current play's track on every target,
/// durably. Waits for an fsync: call it on the blocking pool.
pub(super) fn love(
    player: &Player,
    queue: &Queue,
    targets: &[Arc<TargetHandle>],
    love: bool,
) -> Reply {
    let verb = if love { "love" } else { "unlove" };
    let Some(track) = player.tracker().current().map(|(t, _)| t.clone()) else {
        tracing::info!("nothing is playing; {verb} ignored");
        return Reply::Error(format!("nothing is playing to {verb}"));
    };
    if track.artist.is_empty() || track.title.is_empty() {
        return Reply::Error("the current song has no artist or title tag".into());
    }
    match queue.enqueue_love(&crate::queue::Love {
        track: track.clone(),
        love,
    }) {
        Ok(()) => {
            tracing::info!("queued {verb} of {}", describe(&track));
            for t in targets {
                t.wake.notify_one();
            }
            Reply::Loved(Loved {
                queued: verb.into(),
                artist: track.artist,
                title: track.title,
            })
        }
        Err(e) => {
            tracing::error!("cannot queue {verb} of {}: {e}", describe(&track));
            Reply::Error(e.to_string())
        }
    }
}

/// Queue the loves and unloves asked for by MPD messages (`true` is a
/// love), one after the other and each on the blocking pool: queueing one
/// waits for an fsync, which the watch loop must not.
pub(super) async fn from_messages(
    mut asked: UnboundedReceiver<bool>,
    player: Arc<Player>,
    queue: Queue,
    targets: Vec<Arc<TargetHandle>>,
) {
    let targets: Arc<[Arc<TargetHandle>]> = targets.into();
    while let Some(l) = asked.recv().await {
        let (player, queue, targets) = (Arc::clone(&player), queue.clone(), Arc::clone(&targets));
        let _ = tokio::task::spawn_blocking(move || love(&player, &queue, &targets, l)).await;
    }
}
