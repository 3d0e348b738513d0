//! Love and unlove of the current play's track, asked for by `mpd-scrobbler
//! love` or an MPD message: queued durably for every target.

use std::sync::Arc;

use tokio::sync::mpsc::UnboundedReceiver;

use super::watch::Player;
use crate::control::{Loved, Reply};
use crate::delivery::TargetHandle;
use crate::model::describe;
use crate::store::Store;

/// Love (`true`) or unlove the current play's track on every target,
/// durably: the reply comes once it is on disk.
pub(super) async fn love(
    player: &Player,
    store: &Store,
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
    let queued = store
        .love(crate::queue::Love {
            track: track.clone(),
            love,
        })
        .await;
    match queued {
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
/// love), one after the other, on a task of their own: queueing one waits
/// for a sync, which the watch loop must not.
pub(super) async fn from_messages(
    mut asked: UnboundedReceiver<bool>,
    player: Arc<Player>,
    store: Store,
    targets: Vec<Arc<TargetHandle>>,
) {
    while let Some(l) = asked.recv().await {
        love(&player, &store, &targets, l).await;
    }
}
