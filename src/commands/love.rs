//! `mpd-scrobbler love|unlove`.

use super::unexpected;
use crate::config::Config;
use crate::control::{self, Reply, Request};
use crate::output::outln;

/// `mpd-scrobbler love|unlove`: the running daemon knows what is playing and
/// queues it durably for every target.
pub(crate) async fn love(config: &Config, love: bool) -> anyhow::Result<()> {
    let verb = if love { "love" } else { "unlove" };
    let reply = control::request(&config.state_dir, Request::Love(love))
        .await
        .map_err(anyhow::Error::from)?
        .ok_or_else(|| {
            anyhow::anyhow!("the daemon is not running; start it to {verb} what MPD plays")
        })?;
    let Reply::Loved(loved) = reply else {
        return Err(unexpected(reply));
    };
    outln!("Queued {verb} of {} – {}.", loved.artist, loved.title);
    Ok(())
}
