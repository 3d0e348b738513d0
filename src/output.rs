//! What the commands print on stdout, written so that a closed pipe never
//! panics the process.
//!
//! `println!` panics when stdout fails, and `mpd-scrobbler history | head -1`
//! closes stdout after one line. Output goes through [`out!`] and [`outln!`]
//! instead: after EPIPE the rest is dropped quietly and the process exits 0
//! at the end, as Unix tools do in a pipeline (ripgrep does the same); any
//! other write error (a full disk behind `>`) is reported once, exit 1.

use std::fmt;
use std::io::{self, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once stdout reported EPIPE: nothing more is written.
static CLOSED: AtomicBool = AtomicBool::new(false);
/// The first write error other than EPIPE.
static FAILED: Mutex<Option<io::Error>> = Mutex::new(None);

/// How stdout fared, for the exit status.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Everything written.
    Written,
    /// The reader went away (EPIPE): end quietly.
    Closed,
    /// Writing failed otherwise.
    Failed(io::Error),
}

/// Write formatted text to stdout; see the module doc for failures.
pub(crate) fn write_fmt(args: fmt::Arguments<'_>) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut stdout = io::stdout().lock();
    // The lock's LineWriter flushes on each newline, so a pipe sees lines
    // as they are made (`history --json | jq` while it runs).
    if let Err(e) = stdout.write_fmt(args) {
        note(e);
    }
}

/// Whether stdout is closed (its reader went away, or writing failed):
/// a command that streams stops reading.
pub(crate) fn is_closed() -> bool {
    CLOSED.load(Ordering::Relaxed)
}

/// Write bytes to stdout (a generated man page or completion script).
pub(crate) fn write_bytes(bytes: &[u8]) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    if let Err(e) = io::stdout().lock().write_all(bytes) {
        note(e);
    }
}

fn note(e: io::Error) {
    if e.kind() == io::ErrorKind::BrokenPipe {
        CLOSED.store(true, Ordering::Relaxed);
        return;
    }
    let mut failed = FAILED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if failed.is_none() {
        *failed = Some(e);
    }
    // One report is enough; stop writing.
    CLOSED.store(true, Ordering::Relaxed);
}

/// Flush stdout and say how writing went.
pub(crate) fn finish() -> Outcome {
    if !CLOSED.load(Ordering::Relaxed) {
        if let Err(e) = io::stdout().lock().flush() {
            note(e);
        }
    }
    let failed = FAILED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    match failed {
        Some(e) => Outcome::Failed(e),
        None if CLOSED.load(Ordering::Relaxed) => Outcome::Closed,
        None => Outcome::Written,
    }
}

/// Write to stderr, ignoring failure: a message about a failure must not
/// become a panic of its own (`eprintln!` panics on a closed stderr).
pub(crate) fn ewrite_fmt(args: fmt::Arguments<'_>) {
    let _ = io::stderr().lock().write_fmt(args);
}

/// `print!` that cannot panic: see [`crate::output`].
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::write_fmt(format_args!($($arg)*)) };
}

/// `println!` that cannot panic: see [`crate::output`].
macro_rules! outln {
    () => { $crate::output::write_fmt(format_args!("\n")) };
    ($($arg:tt)*) => {{
        $crate::output::write_fmt(format_args!($($arg)*));
        $crate::output::write_fmt(format_args!("\n"));
    }};
}

/// `eprintln!` that cannot panic: see [`ewrite_fmt`].
macro_rules! errln {
    ($($arg:tt)*) => {{
        $crate::output::ewrite_fmt(format_args!($($arg)*));
        $crate::output::ewrite_fmt(format_args!("\n"));
    }};
}

pub(crate) use {errln, out, outln};

/// "1 play", "2 plays": a count with its noun in the right number.
pub(crate) fn count(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn counts_agree_with_their_nouns() {
        assert_eq!(count(0u64, "play", "plays"), "0 plays");
        assert_eq!(count(1u64, "play", "plays"), "1 play");
        assert_eq!(count(2u32, "scrobble", "scrobbles"), "2 scrobbles");
    }
}
