//! mpd-scrobbler: watches MPD and records what is played on Last.fm-style and
//! ListenBrainz-compatible servers. The binary is a thin shell over this library.

#![forbid(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod check;
pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
pub mod delivery;
pub mod history;
pub mod http;
pub mod metadata;
pub mod mpd;
pub mod queue;
pub mod rules;
pub mod scrobble;
pub mod session;
pub mod targets;
pub mod tracker;
