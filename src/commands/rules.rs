//! `mpd-scrobbler rules test`: the track to try the rules on (the options
//! given, or what MPD plays now, a stream title split as the daemon would)
//! and the report of [`RuleSet::report`](crate::rules::RuleSet::report).

use anyhow::Context;

use crate::config::Config;
use crate::model::PlayState;
use crate::model::Track;
use crate::mpd;
use crate::rules::stream;

/// The track given on the command line; all `None` means "ask MPD".
#[derive(Debug, Clone, Default)]
pub(crate) struct Given {
    /// `--artist`.
    pub artist: Option<String>,
    /// `--title`.
    pub title: Option<String>,
    /// `--album`.
    pub album: Option<String>,
    /// `--file`: a path, or a URL for a stream.
    pub file: Option<String>,
}

impl Given {
    fn is_empty(&self) -> bool {
        self.artist.is_none() && self.title.is_none() && self.album.is_none() && self.file.is_none()
    }

    fn track(self) -> Track {
        let stream_url = self.file.clone().filter(|f| f.contains("://"));
        Track {
            artist: self.artist.unwrap_or_default(),
            title: self.title.unwrap_or_default(),
            album: self.album,
            file: self.file,
            stream_url,
            ..Track::default()
        }
    }
}

/// The report for the given track, or for the one MPD plays.
///
/// # Errors
///
/// MPD cannot be reached or plays nothing.
pub(crate) async fn run(config: &Config, given: Given) -> anyhow::Result<String> {
    let targets = config.target_names();
    if !given.is_empty() {
        return Ok(config.rule_set.report(&given.track(), &targets));
    }
    let client = mpd::connect(&config.mpd).await?;
    let snapshot = client
        .snapshot()
        .await
        .context("cannot read what MPD plays")?;
    let song = snapshot
        .song
        .filter(|_| snapshot.state != PlayState::Stopped)
        .context("MPD plays nothing: play a song, or give --artist and --title")?;
    if !stream::is_stream(&song) {
        return Ok(config.rule_set.report(&song.track, &targets));
    }
    match config.streams.read(&song) {
        Ok(track) => Ok(format!(
            "stream:      {}\n{}",
            song.station.as_deref().unwrap_or(&song.uri),
            config.rule_set.report(&track, &targets)
        )),
        Err(reason) => Ok(format!(
            "stream:      {}\ntitle:       {}\n\nnot scrobbled before any rule: {reason}\n",
            song.station.as_deref().unwrap_or(&song.uri),
            song.track.title
        )),
    }
}
