//! `config init` and `config show`: the commented default config, which is
//! `config.toml.example` built into the binary, so a user who installed only
//! the binary has it too.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use super::CliError;
use crate::output::out;

/// Every key, commented; no target active (a copy made only to set `[mpd]`
/// must not get a target that can never work).
pub(super) const DEFAULT: &str = include_str!("../../config.toml.example");

/// `config show`.
pub(super) fn show() {
    out!("{DEFAULT}");
}

/// `config init`: write [`DEFAULT`] to `path`, never over an existing file.
/// Mode 0600 (and 0700 for a directory made for it): the file is where the
/// API secret and passwords go.
pub(super) fn init(path: &Path) -> Result<(), CliError> {
    let failed = |what: &str, e: std::io::Error| {
        CliError::Failed(format!("cannot {what} {}: {e}", path.display()))
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| failed("create the directory of", e))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => CliError::Failed(format!(
                "{} already exists; not overwriting it (`mpd-scrobbler config show` prints \
                 the default config)",
                path.display()
            )),
            _ => failed("create", e),
        })?;
    file.write_all(DEFAULT.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| failed("write", e))?;
    out!(
        "Wrote a commented default config to {}.\n\
         With MPD at localhost:6600 it needs no change: plays are kept in the local history.\n\
         To scrobble, uncomment and fill in [lastfm] or [listenbrainz], run \
         `mpd-scrobbler auth lastfm` (or `auth listenbrainz`), then `mpd-scrobbler check`.\n",
        path.display()
    );
    Ok(())
}
