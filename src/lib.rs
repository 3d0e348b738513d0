//! mpd-scrobbler: watches MPD and records what is played on Last.fm-style and
//! ListenBrainz-compatible servers. The binary is a thin shell over this library.

#![forbid(unsafe_code)]

pub mod cli;
pub(crate) mod commands;
pub(crate) mod config;
pub(crate) mod control;
pub(crate) mod daemon;
pub(crate) mod delivery;
pub(crate) mod events;
pub mod history;
pub mod http;
pub(crate) mod json;
pub(crate) mod metrics;
pub mod model;
pub(crate) mod mpd;
pub(crate) mod notify;
pub(crate) mod output;
pub mod queue;
pub(crate) mod rules;
pub(crate) mod session;
pub(crate) mod store;
pub(crate) mod target_state;
pub(crate) mod targets;
pub(crate) mod time;
pub(crate) mod tracker;
