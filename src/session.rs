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
pub(crate) struct Session {
    /// The account it belongs to.
    pub user: String,
    /// The session key.
    pub key: Secret,
}

/// Create the state directory (and parents) private to the user.
pub(crate) fn ensure_state_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Where the session of `target` lives.
pub(crate) fn path(state_dir: &Path, target: &str) -> PathBuf {
    state_dir.join(format!("{target}.session"))
}

/// Why a stored session cannot be used. Neither variant quotes the file's
/// contents: a damaged file may still hold most of a key.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoadError {
    /// It exists but cannot be read (permissions, a directory in its place,
    /// an I/O error).
    #[error("cannot read the session file {}: {source}", path.display())]
    Unreadable {
        /// The session file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// It was read but does not hold a session.
    #[error("the session file {} is damaged ({problem})", path.display())]
    Damaged {
        /// The session file.
        path: PathBuf,
        /// What is wrong, without its contents.
        problem: Damage,
    },
}

/// What is wrong with a session file, in words that do not repeat its
/// contents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Damage {
    /// Nothing but white space.
    #[error("it is empty")]
    Empty,
    /// The JSON stops early.
    #[error("it is cut short")]
    CutShort,
    /// Not JSON.
    #[error("not JSON at line {line}, column {column}")]
    NotJson {
        /// Where it stops being JSON.
        line: usize,
        /// The column there.
        column: usize,
    },
    /// JSON, but not the session's fields.
    #[error("it is JSON but not a session (expected user and key)")]
    NotASession,
    /// The key is blank.
    #[error("its key is empty")]
    EmptyKey,
}

/// Read the stored session of `target`, if there is one.
pub(crate) fn load(state_dir: &Path, target: &str) -> Result<Option<Session>, LoadError> {
    let path = path(state_dir, target);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(LoadError::Unreadable { path, source }),
    };
    match parse(&bytes) {
        Ok(stored) => Ok(Some(Session {
            user: stored.user,
            key: Secret::new(stored.key),
        })),
        Err(problem) => Err(LoadError::Damaged { path, problem }),
    }
}

/// A session file's contents, or what is wrong with them in words that do
/// not repeat them (serde's messages quote the offending value).
fn parse(bytes: &[u8]) -> Result<Stored, Damage> {
    use serde_json::error::Category;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Damage::Empty);
    }
    let stored: Stored = serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        Category::Eof => Damage::CutShort,
        Category::Syntax | Category::Io => Damage::NotJson {
            line: e.line(),
            column: e.column(),
        },
        Category::Data => Damage::NotASession,
    })?;
    if stored.key.trim().is_empty() {
        return Err(Damage::EmptyKey);
    }
    Ok(stored)
}

/// The credential to use for a target: the stored one, else the config's.
pub(crate) fn credential(
    state_dir: &Path,
    target: &str,
    from_config: Option<&Secret>,
) -> Result<Option<Secret>, LoadError> {
    Ok(load(state_dir, target)?
        .map(|s| s.key)
        .or_else(|| from_config.cloned()))
}

/// Store a session for `target`, atomically and readable only by the user.
pub(crate) fn store(
    state_dir: &Path,
    target: &str,
    user: &str,
    key: &str,
) -> std::io::Result<PathBuf> {
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
    let euid = rustix::process::geteuid().as_raw();
    if let Some((uid, gid)) = owner_for(euid, (dir.uid(), dir.gid())) {
        std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
    }
    let body = serde_json::to_string(&Stored {
        user: user.to_owned(),
        key: key.to_owned(),
    })
    .expect("strings serialise");
    file.write_all(body.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    // The rename is durable only once the directory is: without this, a
    // power cut can bring back the old session (or none) after `auth` said
    // the new one was stored.
    std::fs::File::open(state_dir)?.sync_all()?;
    Ok(path)
}

/// The owner (uid, gid) to give a session file stored by `euid` into a
/// directory owned by `dir_owner`, when it must not keep the creator's:
/// root storing into another user's directory hands the file to that user.
fn owner_for(euid: u32, dir_owner: (u32, u32)) -> Option<(u32, u32)> {
    (euid == 0 && dir_owner.0 != 0).then_some(dir_owner)
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
    fn a_damaged_session_file_is_named_without_its_contents() {
        let dir = tempfile::tempdir().unwrap();
        let cases: [(&[u8], &str); 6] = [
            (b"", "empty"),
            (b"  \n", "empty"),
            (b"{\"user\":\"a\",\"key\":\"sk-secret", "cut short"),
            (b"\xff\xfe sk-secret \x00", "not JSON at line 1"),
            (b"\"sk-secret\"", "not a session"),
            (b"{\"user\":\"a\",\"key\":\" \"}", "key is empty"),
        ];
        for (bytes, problem) in cases {
            std::fs::write(path(dir.path(), "lastfm"), bytes).unwrap();
            let err = load(dir.path(), "lastfm").unwrap_err();
            assert!(matches!(err, LoadError::Damaged { .. }), "{err}");
            let text = err.to_string();
            assert!(text.contains(problem), "{bytes:?}: {text}");
            assert!(text.contains("lastfm.session"), "{text}");
            assert!(!text.contains("sk-secret"), "{text}");
        }
        std::fs::remove_file(path(dir.path(), "lastfm")).unwrap();
        std::fs::create_dir(path(dir.path(), "lastfm")).unwrap();
        let err = load(dir.path(), "lastfm").unwrap_err();
        assert!(matches!(err, LoadError::Unreadable { .. }), "{err}");
        assert!(err.to_string().contains("lastfm.session"), "{err}");
    }

    #[test]
    fn only_root_hands_the_file_to_the_owner_of_the_state_dir() {
        assert_eq!(owner_for(0, (65534, 65533)), Some((65534, 65533)));
        assert_eq!(owner_for(0, (0, 0)), None, "root's own directory");
        assert_eq!(owner_for(0, (0, 100)), None, "owned by root, another group");
        assert_eq!(
            owner_for(1000, (1000, 1000)),
            None,
            "a user's own directory"
        );
        assert_eq!(
            owner_for(1000, (65534, 65534)),
            None,
            "a user cannot give files away"
        );
    }

    /// Whether a test that needs root can run: as root, yes; otherwise the
    /// test fails, unless MPD_SCROBBLER_SKIP_ROOT_TESTS=1 skips it knowingly
    /// outside CI (docs/testing.md, "Tests that need root").
    fn runs_as_root(what: &str) -> bool {
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

    #[test]
    fn root_stores_for_the_owner_of_the_state_dir() {
        if !runs_as_root("storing a session file for another user") {
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
