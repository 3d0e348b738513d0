//! mpd-scrobbler: watches MPD and records what is played on Last.fm-style and
//! ListenBrainz-compatible servers. The binary is a thin shell over this library.

#![forbid(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod cache;
pub mod check;
pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
pub mod delivery;
pub mod history;
pub mod history_cmd;
pub mod http;
pub mod info;
pub mod journal;
pub mod mpd;
pub mod query;
pub mod queue;
pub mod scrobble;
pub mod session;
pub mod stats;
pub mod targets;
pub mod tracker;
