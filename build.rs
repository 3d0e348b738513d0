//! Build script: the version string `--version` prints.
//!
//! `MPD_SCROBBLER_VERSION` is the crate's version, followed by the commit it
//! was built from when the source is a git checkout of its own
//! (`0.1.0 (commit 8ca709d1a2b3)`), so a bug report says exactly which code
//! ran. Without git, outside a checkout, or inside someone else's repository
//! (the crate copied into another project), it is the version alone; nothing
//! here can fail the build. (A tree that becomes a checkout later, by
//! `git init`, keeps the bare version until this script runs again:
//! `touch build.rs`.)
//!
//! Nothing here touches the link: the binary links with the platform's
//! default linker, or any other (ld, lld, mold; `.ci/linkers.sh` checks all
//! three), and no generated file has to follow the code.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    version(Path::new(&dir));
}

/// Set `MPD_SCROBBLER_VERSION`, and tell cargo which git files to watch so
/// that a new commit rebuilds with the new hash (and only then: the hash is
/// in the library, so every rebuild of it costs a link).
fn version(dir: &Path) {
    let pkg = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let version = match checkout(dir) {
        Some(commit) => format!("{pkg} (commit {commit})"),
        None => pkg,
    };
    println!("cargo:rustc-env=MPD_SCROBBLER_VERSION={version}");
}

/// The short hash of HEAD when `dir` is the top of a git work tree, after
/// telling cargo to rerun this script when HEAD moves.
fn checkout(dir: &Path) -> Option<String> {
    let top = git(dir, &["rev-parse", "--show-toplevel"])?;
    // Compared as canonical paths: the manifest dir may be reached through a
    // symlink. Another repository's commit would be a wrong answer.
    if std::fs::canonicalize(&top).ok()? != std::fs::canonicalize(dir).ok()? {
        return None;
    }
    // HEAD names the branch; the branch's file (or packed-refs, after a gc)
    // names the commit. A worktree has its own HEAD and shares the refs.
    let git_dir = PathBuf::from(git(dir, &["rev-parse", "--absolute-git-dir"])?);
    let common = git(
        dir,
        &["rev-parse", "--path-format=absolute", "--git-common-dir"],
    )
    .map_or_else(|| git_dir.clone(), PathBuf::from);
    let mut watched = vec![git_dir.join("HEAD"), common.join("packed-refs")];
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        watched.push(common.join(branch));
    }
    for path in watched.iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    git(dir, &["rev-parse", "--short=12", "HEAD"])
}

/// One line of a git command's output; `None` when git is missing or fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    let line = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !line.is_empty()).then_some(line)
}
