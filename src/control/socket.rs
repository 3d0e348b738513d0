//! Where the control socket lives and who may use it.
//!
//! In the runtime directory (`$RUNTIME_DIRECTORY`, which systemd's
//! `RuntimeDirectory=` sets, else `$XDG_RUNTIME_DIR/mpd-scrobbler/`) as
//! `control-<hash>.sock`, the hash being of the canonical state directory
//! so that daemons with different state directories do not collide; and
//! `control.sock` in the state directory, a symlink to it, for clients whose
//! environment names no runtime directory (`sudo`). Without a usable runtime
//! directory the socket itself is `control.sock` in the state directory.
//!
//! Only the daemon's own user and root may talk to it: the socket is mode
//! 0600 and the peer's uid is checked.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};
use tokio::net::UnixListener;

/// `sun_path` holds 108 bytes, the terminating NUL included.
pub(super) const SUN_PATH_MAX: usize = 107;
/// The socket, or a symlink to it, in the state directory.
const IN_STATE_DIR: &str = "control.sock";
/// The runtime directory's subdirectory under `$XDG_RUNTIME_DIR`.
const APP_DIR: &str = "mpd-scrobbler";

/// The runtime directory the environment names for this program: systemd's
/// `$RUNTIME_DIRECTORY` as it is, or `$XDG_RUNTIME_DIR/mpd-scrobbler`.
/// Relative paths are ignored, as the XDG spec asks.
pub(crate) fn runtime_dir(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let absolute = |v: Option<String>| v.map(PathBuf::from).filter(|p| p.is_absolute());
    // systemd joins several RuntimeDirectory= entries with ':'.
    let systemd = env("RUNTIME_DIRECTORY")
        .and_then(|v| v.split(':').next().map(str::to_owned))
        .filter(|v| !v.is_empty());
    absolute(systemd).or_else(|| absolute(env("XDG_RUNTIME_DIR")).map(|d| d.join(APP_DIR)))
}

/// The socket's name in the runtime directory for the state directory
/// `canonical` (already canonical: two spellings of one directory share a
/// daemon, since they share the queue's lock).
fn socket_name(canonical: &Path) -> String {
    let digest = hex::encode(Md5::digest(canonical.as_os_str().as_bytes()));
    format!("control-{}.sock", &digest[..12])
}

/// [`socket_name`] for `state_dir`, canonicalised when it exists.
fn socket_name_for(state_dir: &Path) -> String {
    let canonical = std::fs::canonicalize(state_dir)
        .or_else(|_| std::path::absolute(state_dir))
        .unwrap_or_else(|_| state_dir.to_owned());
    socket_name(&canonical)
}

/// Where a client looks for the daemon of `state_dir`, in order: the
/// runtime directory its environment names, then the state directory's
/// entry (the socket, or a symlink the daemon left to it).
pub(super) fn client_paths(state_dir: &Path, env: &dyn Fn(&str) -> Option<String>) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some(dir) = runtime_dir(env) {
        paths.push(dir.join(socket_name_for(state_dir)));
    }
    let entry = state_dir.join(IN_STATE_DIR);
    // Followed here rather than by connect(): the link's own path may be too
    // long for a socket address when its target is not.
    let target = match std::fs::read_link(&entry) {
        Ok(t) => state_dir.join(t),
        Err(_) => entry,
    };
    if !paths.contains(&target) {
        paths.push(target);
    }
    paths
}

/// The daemon's socket, bound and listening.
#[derive(Debug)]
pub(crate) struct Bound {
    /// The listener.
    pub listener: UnixListener,
    /// The socket file.
    pub path: PathBuf,
    /// The symlink to it in the state directory, if there is one.
    link: Option<PathBuf>,
}

impl Bound {
    /// Remove the socket file and its symlink (at shutdown).
    pub(crate) fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
        if let Some(link) = &self.link {
            let _ = std::fs::remove_file(link);
        }
    }
}

/// Bind the socket: in the runtime directory when the environment names a
/// usable one, else in the state directory. A runtime directory that cannot
/// be used is logged and passed over; the error says why neither worked.
/// Only call this while holding the queue lock: a socket file left by a
/// crashed daemon with this state directory is then known to be stale.
pub(crate) fn bind(
    state_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> std::io::Result<Bound> {
    let entry = state_dir.join(IN_STATE_DIR);
    if let Some(dir) = runtime_dir(env) {
        let path = dir.join(socket_name_for(state_dir));
        match private_dir(&dir).and_then(|()| bind_at(&path)) {
            Ok(listener) => {
                let _ = std::fs::remove_file(&entry);
                let link = match std::os::unix::fs::symlink(&path, &entry) {
                    Ok(()) => Some(entry),
                    Err(e) => {
                        tracing::warn!(
                            "cannot link {} to the control socket: {e}; commands run \
                             without {} in their environment will not find the daemon",
                            entry.display(),
                            if env("RUNTIME_DIRECTORY").is_some() {
                                "RUNTIME_DIRECTORY"
                            } else {
                                "XDG_RUNTIME_DIR"
                            }
                        );
                        None
                    }
                };
                return Ok(Bound {
                    listener,
                    path,
                    link,
                });
            }
            Err(e) => tracing::warn!(
                "cannot create the control socket {}: {e}; trying the state directory",
                path.display()
            ),
        }
    }
    bind_at(&entry)
        .map(|listener| Bound {
            listener,
            path: entry.clone(),
            link: None,
        })
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", entry.display())))
}

/// Make sure `dir` exists, is a directory and is ours; create it 0700.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    // Not recursive: $XDG_RUNTIME_DIR is the session's to create.
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = std::fs::symlink_metadata(dir)?;
    let me = rustix::process::geteuid().as_raw();
    if !meta.is_dir() {
        Err(std::io::Error::other(format!(
            "{} is not a directory",
            dir.display()
        )))
    } else if meta.uid() != me {
        Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("{} belongs to uid {}, not {me}", dir.display(), meta.uid()),
        ))
    } else {
        Ok(())
    }
}

/// Bind and listen at `path`, replacing what is there, mode 0600.
fn bind_at(path: &Path) -> std::io::Result<UnixListener> {
    use socket2::{Domain, SockAddr, Socket, Type};
    let len = path.as_os_str().len();
    if len > SUN_PATH_MAX {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "the path is {len} bytes long, and a socket's may be at most {SUN_PATH_MAX}: \
                 set XDG_RUNTIME_DIR or choose a shorter state_dir"
            ),
        ));
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.bind(&SockAddr::unix(path)?)?;
    // bind() made the file with the umask's mode. No one can connect until
    // listen(), so narrowing it first leaves no moment in which another
    // user could (and the directory is private besides).
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    socket.listen(16)?;
    socket.set_nonblocking(true)?;
    UnixListener::from_std(socket.into())
}

/// Whether a peer running as `peer` may use the socket of a daemon running
/// as `me`: the same user, or root.
pub(super) fn peer_allowed(peer: u32, me: u32) -> bool {
    peer == me || peer == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn runtime_dir_prefers_systemds_then_xdg_and_ignores_relative_paths() {
        assert_eq!(
            runtime_dir(&env(&[
                ("RUNTIME_DIRECTORY", "/run/mpd-scrobbler:/run/other"),
                ("XDG_RUNTIME_DIR", "/run/user/1000"),
            ])),
            Some(PathBuf::from("/run/mpd-scrobbler"))
        );
        assert_eq!(
            runtime_dir(&env(&[("XDG_RUNTIME_DIR", "/run/user/1000")])),
            Some(PathBuf::from("/run/user/1000/mpd-scrobbler"))
        );
        assert_eq!(
            runtime_dir(&env(&[
                ("RUNTIME_DIRECTORY", ""),
                ("XDG_RUNTIME_DIR", "/run/user/7")
            ])),
            Some(PathBuf::from("/run/user/7/mpd-scrobbler"))
        );
        assert_eq!(runtime_dir(&env(&[("XDG_RUNTIME_DIR", "run/user")])), None);
        assert_eq!(runtime_dir(&env(&[("XDG_RUNTIME_DIR", "")])), None);
        assert_eq!(runtime_dir(&env(&[])), None);
    }

    #[test]
    fn socket_names_differ_per_state_dir_and_stay_short() {
        let a = socket_name(Path::new("/home/a/.local/state/mpd-scrobbler"));
        let b = socket_name(Path::new("/home/b/.local/state/mpd-scrobbler"));
        assert_ne!(a, b);
        assert_eq!(
            a,
            socket_name(Path::new("/home/a/.local/state/mpd-scrobbler"))
        );
        let long = socket_name(&Path::new("/").join("x".repeat(300)));
        assert_eq!(long.len(), "control-0123456789ab.sock".len());
        assert!(
            long.starts_with("control-") && long.ends_with(".sock"),
            "{long}"
        );
    }

    #[test]
    fn clients_look_in_the_runtime_dir_then_the_state_dir() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        let e = env(&[("XDG_RUNTIME_DIR", "/run/user/1000")]);
        let paths = client_paths(&state, &e);
        let name = socket_name(&std::fs::canonicalize(&state).unwrap());
        assert_eq!(
            paths,
            [
                PathBuf::from("/run/user/1000/mpd-scrobbler").join(&name),
                state.join("control.sock")
            ]
        );
        // The daemon's symlink is followed, and not tried twice.
        let target = PathBuf::from("/run/user/1000/mpd-scrobbler").join(&name);
        std::os::unix::fs::symlink(&target, state.join("control.sock")).unwrap();
        assert_eq!(client_paths(&state, &e), std::slice::from_ref(&target));
        assert_eq!(client_paths(&state, &env(&[])), [target]);
    }

    #[tokio::test]
    async fn binds_in_the_runtime_dir_mode_0600_with_a_link_in_the_state_dir() {
        let dir = tempfile::tempdir().unwrap();
        let (state, runtime) = (dir.path().join("state"), dir.path().join("run"));
        std::fs::create_dir(&state).unwrap();
        std::fs::create_dir(&runtime).unwrap();
        let runtime_str = runtime.to_str().unwrap().to_owned();
        let e = move |k: &str| (k == "XDG_RUNTIME_DIR").then(|| runtime_str.clone());
        let bound = bind(&state, &e).unwrap();
        assert_eq!(bound.path.parent().unwrap(), runtime.join("mpd-scrobbler"));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&bound.path), 0o600);
        assert_eq!(mode(&runtime.join("mpd-scrobbler")), 0o700);
        assert_eq!(
            std::fs::read_link(state.join("control.sock")).unwrap(),
            bound.path
        );
        bound.remove();
        assert!(!bound.path.exists());
        assert!(std::fs::symlink_metadata(state.join("control.sock")).is_err());
    }

    #[tokio::test]
    async fn a_path_too_long_for_a_socket_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("s".repeat(120));
        std::fs::create_dir(&state).unwrap();
        let err = bind(&state, &env(&[])).unwrap_err().to_string();
        assert!(err.contains("at most 107"), "{err}");
        assert!(err.contains(&state.display().to_string()), "{err}");
    }

    #[test]
    fn only_the_same_user_or_root_may_connect() {
        assert!(peer_allowed(1000, 1000));
        assert!(peer_allowed(0, 1000));
        assert!(peer_allowed(0, 0));
        assert!(!peer_allowed(65534, 1000));
        assert!(!peer_allowed(1000, 0));
    }
}
