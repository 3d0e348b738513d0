//! Test harness: stand-in servers and process wrappers shared by the tests.

#![allow(dead_code)]

pub mod daemon;
pub mod fake_lastfm;
pub mod fake_listenbrainz;
pub mod fake_notify;
pub mod hostile_server;
pub mod http_server;
pub mod icy_station;
pub mod mpd;
pub mod powercut;

/// Whether a test (or the rest of it) that needs root can run: as root, yes;
/// otherwise the test fails, unless MPD_SCROBBLER_SKIP_ROOT_TESTS=1 skips it
/// knowingly outside CI (docs/testing.md, "Tests that need root"). `what` says
/// what needs root.
pub fn runs_as_root(what: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
    let skip = std::env::var("MPD_SCROBBLER_SKIP_ROOT_TESTS").is_ok_and(|v| v == "1");
    assert!(
        skip && !ci,
        "{what} needs root: run the tests as root (CI does), or set \
         MPD_SCROBBLER_SKIP_ROOT_TESTS=1 to skip it knowingly (not in CI)"
    );
    eprintln!("SKIPPED by MPD_SCROBBLER_SKIP_ROOT_TESTS=1: {what} needs root");
    false
}
