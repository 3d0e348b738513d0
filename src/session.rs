//! Credentials (Last.fm session keys, ListenBrainz tokens) stored in the
//! state directory by `mpd-scrobbler auth`, one mode-0600 file per target
//! (`<target>.session`), and the state directory itself (mode 0700).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::Secret;

#[derive(Serialize, Deserialize)]
struct Stored {
    user: String,
    key: String,
}

/// A stored session.
#[derive(Debug, Clone)]
pub struct Session {
    /// The account it belongs to.
    pub user: String,
    /// The session key.
    pub key: Secret,
}

/// Create the state directory (and parents) private to the user.
pub fn ensure_state_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Where the session of `target` lives.
pub fn path(state_dir: &Path, target: &str) -> PathBuf {
    state_dir.join(format!("{target}.session"))
}

/// Read the stored session of `target`, if there is one.
pub fn load(state_dir: &Path, target: &str) -> std::io::Result<Option<Session>> {
    let path = path(state_dir, target);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let stored: Stored = serde_json::from_str(&text).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{} is damaged ({e}); run `mpd-scrobbler auth` again",
                path.display()
            ),
        )
    })?;
    Ok(Some(Session {
        user: stored.user,
        key: Secret::new(stored.key),
    }))
}

/// The credential to use for a target: the stored one, else the config's.
pub fn credential(
    state_dir: &Path,
    target: &str,
    from_config: Option<&Secret>,
) -> std::io::Result<Option<Secret>> {
    Ok(load(state_dir, target)?
        .map(|s| s.key)
        .or_else(|| from_config.cloned()))
}

/// Store a session for `target`, atomically and readable only by the user.
pub fn store(state_dir: &Path, target: &str, user: &str, key: &str) -> std::io::Result<PathBuf> {
    ensure_state_dir(state_dir)?;
    let path = path(state_dir, target);
    let tmp = path.with_extension("session.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    // The umask cannot widen 0600, but an existing ACL default could; be explicit.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    // `sudo mpd-scrobbler auth` into a service's state directory: the file
    // must belong to the service's user, who owns the directory, or the
    // daemon could not read it.
    let dir = std::fs::metadata(state_dir)?;
    if rustix::process::geteuid().is_root() && dir.uid() != 0 {
        std::os::unix::fs::fchown(&file, Some(dir.uid()), Some(dir.gid()))?;
    }
    let body = serde_json::to_string(&Stored {
        user: user.to_owned(),
        key: key.to_owned(),
    })
    .expect("strings serialise");
    file.write_all(body.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_and_load_private() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let p = store(&state, "lastfm", "alice", "sk123").unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(&state).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let s = load(&state, "lastfm").unwrap().unwrap();
        assert_eq!((s.user.as_str(), s.key.expose()), ("alice", "sk123"));
        store(&state, "lastfm", "alice", "sk456").unwrap();
        assert_eq!(
            load(&state, "lastfm").unwrap().unwrap().key.expose(),
            "sk456"
        );
        assert!(load(&state, "other").unwrap().is_none());
    }

    #[test]
    fn root_stores_for_the_owner_of_the_state_dir() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: only root can store a file for another user");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        ensure_state_dir(&state).unwrap();
        std::os::unix::fs::chown(&state, Some(65534), Some(65534)).unwrap();
        let p = store(&state, "lastfm", "alice", "sk").unwrap();
        let meta = std::fs::metadata(&p).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
}
