//! Test harness: stand-in servers and process wrappers shared by the tests.

#![allow(dead_code)]

pub mod daemon;
pub mod fake_lastfm;
pub mod fake_listenbrainz;
pub mod hostile_server;
pub mod http_server;
pub mod mpd;
