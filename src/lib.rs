//! mpd-scrobbler: watches MPD and records what is played on Last.fm-style and
//! ListenBrainz-compatible servers. The binary is a thin shell over this library.

#![forbid(unsafe_code)]

pub mod config;
pub mod lastfm;
pub mod queue;
pub mod scrobble;
pub mod tracker;
pub mod watcher;
