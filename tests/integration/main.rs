//! End-to-end tests: a real `mpd`, the stand-in servers in `common`, and the
//! real `mpd-scrobbler` binary. One test binary, as ripgrep does.

mod auth;
mod check;
mod common;
mod control_socket;
mod harness_lastfm;
mod harness_listenbrainz;
mod harness_mpd;
mod history;
mod hostile;
mod import;
mod info;
mod listenbrainz;
mod love;
mod queue;
mod radio;
mod rules;
mod scrobbling;
mod storage;
mod systemd;
mod torture;
