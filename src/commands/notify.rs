//! `mpd-scrobbler notify test [NAME]`: one test message through each
//! `[[notify]]` sink (or the one named), without retries, so the user sees
//! at once whether a sink works.

use crate::config::Config;
use crate::model::unix_now;
use crate::notify::{Kind, Notice, host_name, send};
use crate::output::outln;

/// Why `notify test` failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NotifyTestError {
    /// No `[[notify]]` section, or none of that name.
    #[error("{0}")]
    NoSink(String),
    /// The HTTP client could not be set up.
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
    /// Some sinks did not take the message (each is printed).
    #[error("{failed} of {tried} sinks did not take the test message")]
    Failed {
        /// How many failed.
        failed: usize,
        /// How many were tried.
        tried: usize,
    },
}

/// Send a test message through the sink `name`, or every sink.
///
/// # Errors
///
/// No such sink, or a sink failed.
pub(crate) async fn test(config: &Config, name: Option<&str>) -> Result<(), NotifyTestError> {
    let sinks: Vec<_> = config
        .notify
        .iter()
        .filter(|s| name.is_none_or(|n| s.name == n))
        .collect();
    if sinks.is_empty() {
        let names: Vec<&str> = config.notify.iter().map(|s| s.name.as_str()).collect();
        return Err(NotifyTestError::NoSink(match name {
            Some(n) if !names.is_empty() => format!(
                "no [[notify]] section is named {n:?}; the names are: {}",
                names.join(", ")
            ),
            _ => format!(
                "{} has no [[notify]] section (see `mpd-scrobbler config show`)",
                config.path.display()
            ),
        }));
    }
    let client = crate::http::client(config.delivery.request_timeout)
        .map_err(|e| NotifyTestError::Client(crate::http::describe_error(&e)))?;
    let host = host_name();
    let notice = Notice {
        kind: Kind::Test,
        target: None,
        message: format!("a test message from mpd-scrobbler on {host}"),
        fix: None,
        since: unix_now(),
    };
    let mut failed = 0;
    for sink in &sinks {
        match send(&sink.kind, &notice, &host, &client).await {
            Ok(()) => outln!("{}: sent", sink.name),
            Err(e) => {
                failed += 1;
                outln!("{}: FAILED: {e}", sink.name);
            }
        }
    }
    if failed == 0 {
        Ok(())
    } else {
        Err(NotifyTestError::Failed {
            failed,
            tried: sinks.len(),
        })
    }
}
