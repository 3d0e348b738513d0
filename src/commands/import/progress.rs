//! What an import shows while it runs: on a terminal (stderr), one line
//! redrawn in place with a bar, the count, the share done and an ETA; when
//! stderr is not a terminal, a plain line on stdout now and then (stdout's
//! writer ends quietly on a closed pipe).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use crate::output::out;

/// Least time between two redraws of the bar.
const REDRAW: Duration = Duration::from_millis(200);
/// Least time between two plain lines.
const PLAIN_EVERY: Duration = Duration::from_secs(5);
/// Width of the bar in characters.
const BAR: usize = 24;

pub(crate) struct Progress {
    terminal: bool,
    started: Instant,
    last: Option<Instant>,
    drawn: bool,
}

impl Progress {
    pub(crate) fn new() -> Progress {
        Progress {
            terminal: std::io::stderr().is_terminal(),
            started: Instant::now(),
            last: None,
            drawn: false,
        }
    }

    /// `done` plays read so far in this run, `fraction` of the work done
    /// when known.
    pub(crate) fn update(&mut self, done: u64, fraction: Option<f64>) {
        let now = Instant::now();
        let every = if self.terminal { REDRAW } else { PLAIN_EVERY };
        if self.last.is_some_and(|t| now.duration_since(t) < every) {
            return;
        }
        self.last = Some(now);
        let line = line(done, fraction, now.duration_since(self.started));
        if self.terminal {
            let bar = bar(fraction.unwrap_or(0.0));
            // A failed write to the terminal only costs the bar.
            let _ = write!(std::io::stderr(), "\r\x1b[2K[{bar}] {line}");
            self.drawn = true;
        } else {
            out!("{line}\n");
        }
    }

    /// A message that interrupts the bar (a wait after a refusal).
    pub(crate) fn note(&mut self, message: &str) {
        self.clear();
        tracing::warn!("{message}");
    }

    /// Ends the bar's line.
    pub(crate) fn clear(&mut self) {
        if self.drawn {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
            self.drawn = false;
            self.last = None;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}

fn bar(fraction: f64) -> String {
    let filled = fraction * BAR as f64;
    let full = (1..=BAR).take_while(|i| *i as f64 <= filled).count();
    format!("{}{}", "#".repeat(full), "-".repeat(BAR - full))
}

/// "12,345 plays, 37%, about 4m 10s left".
fn line(done: u64, fraction: Option<f64>, elapsed: Duration) -> String {
    let mut s = format!("{} read", crate::output::count(done, "play", "plays"));
    if let Some(f) = fraction.filter(|f| f.is_finite()) {
        let f = f.clamp(0.0, 1.0);
        s.push_str(&format!(", {:.0}%", f * 100.0));
        if let Some(left) = eta(f, elapsed) {
            s.push_str(&format!(
                ", about {} left",
                humantime::format_duration(left)
            ));
        }
    }
    s
}

/// The time left at the rate so far, to the second; none before 1% is done
/// or a second has passed (too early to tell).
fn eta(fraction: f64, elapsed: Duration) -> Option<Duration> {
    if fraction < 0.01 || elapsed < Duration::from_secs(1) {
        return None;
    }
    let left = elapsed.as_secs_f64() * (1.0 - fraction) / fraction;
    Duration::try_from_secs_f64(left.round()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_has_the_count_share_and_time_left() {
        assert_eq!(
            line(1234, Some(0.25), Duration::from_secs(10)),
            "1234 plays read, 25%, about 30s left"
        );
        assert_eq!(line(1, None, Duration::from_secs(10)), "1 play read");
        assert_eq!(
            line(5, Some(0.001), Duration::from_secs(10)),
            "5 plays read, 0%"
        );
        assert_eq!(
            line(5, Some(f64::NAN), Duration::from_secs(10)),
            "5 plays read"
        );
        assert_eq!(
            line(5, Some(1.0), Duration::from_secs(10)),
            "5 plays read, 100%, about 0s left"
        );
    }

    #[test]
    fn the_bar_fills_with_the_share_done() {
        assert_eq!(bar(0.0), "-".repeat(BAR));
        assert_eq!(bar(0.5), format!("{}{}", "#".repeat(12), "-".repeat(12)));
        assert_eq!(bar(7.0), "#".repeat(BAR));
        assert_eq!(bar(-1.0), "-".repeat(BAR));
    }
}
