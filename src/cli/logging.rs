//! Logging set-up: the level from `-v`/`-q` or `MPD_SCROBBLER_LOG`, colours
//! that follow the terminal, `NO_COLOR` and `CLICOLOR_FORCE`, and plain lines
//! with syslog priority prefixes when stderr is the systemd journal.

use std::io::IsTerminal;

use tracing::Level;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Install the global subscriber; `quiet` and `verbose` come from `-q`/`-v`.
pub(crate) fn init(quiet: bool, verbose: u8) {
    let level = match (quiet, verbose) {
        (true, _) => LevelFilter::WARN,
        (false, 0) => LevelFilter::INFO,
        (false, 1) => LevelFilter::DEBUG,
        (false, _) => LevelFilter::TRACE,
    };
    // Libraries are chatty at debug level; unless the user asks for their
    // output by MPD_SCROBBLER_LOG, only their warnings show.
    let directives = std::env::var("MPD_SCROBBLER_LOG").unwrap_or_else(|_| {
        format!(
            "{level},sled=warn,{},hyper_util=warn,reqwest=warn",
            crate::mpd::QUIET_LOG_TARGETS
        )
    });
    let filter = EnvFilter::builder()
        .with_default_directive(level.into())
        .parse_lossy(directives);
    let journal = stderr_is_journal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if journal {
        // journald adds its own timestamps and reads the priority from the
        // `<N>` prefix (SyslogLevelPrefix=, on by default).
        builder.with_ansi(false).event_format(JournalFormat).init();
    } else {
        builder
            .with_ansi(use_colour(std::io::stderr().is_terminal(), &|k| {
                std::env::var_os(k)
            }))
            .with_target(false)
            .init();
    }
}

/// Colours on a terminal, unless NO_COLOR is set (no-color.org); always
/// with CLICOLOR_FORCE set to something other than "0".
fn use_colour(terminal: bool, env: &dyn Fn(&str) -> Option<std::ffi::OsString>) -> bool {
    let set = |k: &str| env(k).is_some_and(|v| !v.is_empty());
    if set("NO_COLOR") {
        false
    } else if env("CLICOLOR_FORCE").is_some_and(|v| !v.is_empty() && v != "0") {
        true
    } else {
        terminal
    }
}

/// One line per event for the journal: `<priority>message fields`, with
/// no timestamp and no colour.
struct JournalFormat;

impl<S, N> FormatEvent<S, N> for JournalFormat
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let priority = match *event.metadata().level() {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 6,
            Level::DEBUG | Level::TRACE => 7,
        };
        write!(writer, "<{priority}>")?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Whether stderr is connected to the systemd journal, which adds its own
/// timestamps (JOURNAL_STREAM holds "device:inode" of that stream).
fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Some(expected) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    let Ok(meta) = std::fs::File::from(fd).metadata() else {
        return false;
    };
    expected.to_string_lossy() == format!("{}:{}", meta.dev(), meta.ino())
}

#[cfg(test)]
mod tests {
    use super::use_colour;
    use std::ffi::OsString;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<OsString> {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.into())
    }

    #[test]
    fn colour_follows_the_terminal_no_color_and_clicolor_force() {
        assert!(use_colour(true, &env(&[])));
        assert!(!use_colour(false, &env(&[])));
        assert!(!use_colour(true, &env(&[("NO_COLOR", "1")])));
        // An empty NO_COLOR does not count (no-color.org).
        assert!(use_colour(true, &env(&[("NO_COLOR", "")])));
        assert!(use_colour(false, &env(&[("CLICOLOR_FORCE", "1")])));
        assert!(!use_colour(false, &env(&[("CLICOLOR_FORCE", "0")])));
        assert!(!use_colour(
            true,
            &env(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")])
        ));
    }
}
