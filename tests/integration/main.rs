//! End-to-end tests: a real `mpd`, the stand-in servers in `common`, and the
//! real `mpd-scrobbler` binary. One test binary, as ripgrep does.

// The harness in tests/integration/common is shared by path between the
// test and bench crates; its `pub` items are reachable from neither.
#![allow(unreachable_pub)]
// Test fixtures and figures: sizes and times made by the tests themselves.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

mod auth;
mod check;
mod cli;
mod common;
mod control_socket;
mod harness_lastfm;
mod harness_listenbrainz;
mod harness_mpd;
mod history;
mod hostile;
mod import;
mod import_api;
mod info;
mod listenbrainz;
mod love;
mod notify;
mod powercut;
mod powercut_fs;
mod queue;
mod radio;
mod rules;
mod scrobbling;
mod storage;
mod systemd;
mod torture;
