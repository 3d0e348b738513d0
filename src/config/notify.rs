//! The `[[notify]]` sections (where to say that something broke) and the
//! `[metrics]` section (the Prometheus endpoint), checked into what the
//! daemon uses. Every token goes through the one secret resolver.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::secret::{SecretKeys, Secrets, Written};
use super::{ConfigError, Secret, Source, duration};

/// What a notification is about; also the names in a sink's `events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Problem {
    /// A target waits for the user: credentials refused, a wrong URL, a
    /// suspended API key.
    Paused,
    /// A target has been retrying for longer than `retrying_after`.
    Retrying,
    /// Plays are held in memory: the state directory is full or unwritable.
    Held,
    /// MPD has been unreachable for longer than `mpd_after`.
    MpdUnreachable,
    /// A target's oldest queued play is older than `queued_after`.
    QueueStale,
}

impl Problem {
    /// Every problem, in the order of the docs.
    pub(crate) const ALL: [Problem; 5] = [
        Problem::Paused,
        Problem::Retrying,
        Problem::Held,
        Problem::MpdUnreachable,
        Problem::QueueStale,
    ];

    /// Its name in `events`, in a webhook's `event` and a command's
    /// `MPD_SCROBBLER_EVENT`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Problem::Paused => "paused",
            Problem::Retrying => "retrying",
            Problem::Held => "held",
            Problem::MpdUnreachable => "mpd_unreachable",
            Problem::QueueStale => "queue_stale",
        }
    }
}

/// Where one `[[notify]]` section sends.
#[derive(Debug, Clone)]
pub(crate) enum SinkKind {
    /// An ntfy topic: POST the message to its URL.
    Ntfy {
        /// The topic's URL (`https://ntfy.sh/my-topic`).
        url: String,
        /// An access token, for a protected topic.
        token: Option<Secret>,
    },
    /// A Gotify server: POST to `/message` with an application token.
    Gotify {
        /// The server's URL.
        url: String,
        /// The application's token.
        token: Secret,
    },
    /// A JSON POST; the URL may hold a token, so it is a secret.
    Webhook {
        /// Where to POST.
        url: Secret,
    },
    /// A program run with the message in its environment, never through a
    /// shell.
    Command {
        /// The program and its arguments.
        argv: Vec<String>,
    },
}

/// One `[[notify]]` section.
#[derive(Debug, Clone)]
pub(crate) struct NotifySink {
    /// Its name, for `notify test NAME` and the log.
    pub name: String,
    /// Where it sends.
    pub kind: SinkKind,
    /// The problems it is told about (and their recovery).
    pub events: Vec<Problem>,
    /// Least time between two messages; those due sooner wait for it.
    pub min_interval: Duration,
    /// How long a target retries before it is news.
    pub retrying_after: Duration,
    /// How long MPD is unreachable before it is news.
    pub mpd_after: Duration,
    /// How old the oldest queued play gets before it is news.
    pub queued_after: Duration,
}

/// `[metrics]`: where the endpoint listens, when it is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MetricsConfig {
    /// The address to bind.
    pub listen: SocketAddr,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    name: Option<String>,
    kind: Option<String>,
    url: Option<String>,
    url_file: Option<PathBuf>,
    token: Option<String>,
    token_file: Option<PathBuf>,
    command: Option<Vec<String>>,
    events: Option<Vec<String>>,
    min_interval: Option<String>,
    retrying_after: Option<String>,
    mpd_after: Option<String>,
    queued_after: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    listen: Option<String>,
    allow_remote: Option<bool>,
}

/// The `[[notify]]` sections.
pub(super) fn sinks(
    source: &Source<'_>,
    secrets: &Secrets<'_>,
    raw: Vec<RawNotify>,
) -> Result<Vec<NotifySink>, ConfigError> {
    let mut sinks: Vec<NotifySink> = Vec::with_capacity(raw.len());
    for (i, n) in raw.into_iter().enumerate() {
        let key = |k: &str| format!("notify[{i}].{k}");
        let kind_name = n.kind.clone().ok_or_else(|| {
            source.invalid(
                &key("kind"),
                "is required: \"ntfy\", \"gotify\", \"webhook\" or \"command\"".into(),
            )
        })?;
        let name = n.name.clone().unwrap_or_else(|| kind_name.clone());
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(source.invalid(
                &key("name"),
                format!("{name:?} must be letters, digits, '-' or '_'"),
            ));
        }
        if sinks.iter().any(|s| s.name == name) {
            return Err(source.invalid(
                &key("name"),
                format!("another [[notify]] section is named {name:?}; give each a distinct name"),
            ));
        }
        let secret = |k: &str, written| SecretKeys {
            key: key(k),
            file_key: Some(key(&format!("{k}_file"))),
            credential: format!("notify.{name}.{k}"),
            written,
        };
        let check_url = |k: &str, url: &str| {
            if url.starts_with("https://") || url.starts_with("http://") {
                Ok(())
            } else {
                // The value is left out: a webhook's URL may hold a token.
                Err(source.invalid(&key(k), "is not an http:// or https:// URL".into()))
            }
        };
        let needs = |k: &str, what: &str| source.invalid(&key(k), format!("is required {what}"));
        let refuse = |k: &str| {
            source.invalid(
                &key(k),
                format!("does not apply to kind = {kind_name:?}; remove it"),
            )
        };
        let kind = match kind_name.as_str() {
            "ntfy" | "gotify" => {
                if n.url_file.is_some() {
                    return Err(refuse("url_file"));
                }
                if n.command.is_some() {
                    return Err(refuse("command"));
                }
                let url = n
                    .url
                    .clone()
                    .ok_or_else(|| needs("url", "(the server's URL)"))?;
                check_url("url", &url)?;
                let token = secrets.resolve(
                    &secret("token", Written::Trimmed),
                    n.token.clone(),
                    n.token_file.clone(),
                )?;
                if kind_name == "ntfy" {
                    SinkKind::Ntfy { url, token }
                } else {
                    let token = token.ok_or_else(|| {
                        needs("token", "(the Gotify application's token), or token_file")
                    })?;
                    SinkKind::Gotify { url, token }
                }
            }
            "webhook" => {
                if n.token.is_some() || n.token_file.is_some() {
                    return Err(refuse("token"));
                }
                if n.command.is_some() {
                    return Err(refuse("command"));
                }
                let url = secrets
                    .resolve(
                        &secret("url", Written::Trimmed),
                        n.url.clone(),
                        n.url_file.clone(),
                    )?
                    .ok_or_else(|| needs("url", "(or url_file)"))?;
                check_url("url", url.expose())?;
                SinkKind::Webhook { url }
            }
            "command" => {
                for (k, set) in [
                    ("url", n.url.is_some() || n.url_file.is_some()),
                    ("token", n.token.is_some() || n.token_file.is_some()),
                ] {
                    if set {
                        return Err(refuse(k));
                    }
                }
                let argv = n
                    .command
                    .clone()
                    .filter(|a| a.first().is_some_and(|p| !p.is_empty()))
                    .ok_or_else(|| {
                        needs(
                            "command",
                            "(the program and its arguments, as [\"/path/to/program\", \"arg\"])",
                        )
                    })?;
                SinkKind::Command { argv }
            }
            other => {
                return Err(source.invalid(
                    &key("kind"),
                    format!(
                        "{other:?} is not one of \"ntfy\", \"gotify\", \"webhook\", \"command\""
                    ),
                ));
            }
        };
        let events = match &n.events {
            None => Problem::ALL.to_vec(),
            Some(names) => {
                let mut events = Vec::new();
                for e in names {
                    let p = Problem::ALL
                        .into_iter()
                        .find(|p| p.name() == e)
                        .ok_or_else(|| {
                            let all: Vec<&str> = Problem::ALL.iter().map(|p| p.name()).collect();
                            source.invalid(
                                &key("events"),
                                format!("{e:?} is not one of {}", all.join(", ")),
                            )
                        })?;
                    if !events.contains(&p) {
                        events.push(p);
                    }
                }
                events
            }
        };
        let min_interval = match n.min_interval.as_deref() {
            None | Some("0") | Some("0s") => Duration::ZERO,
            Some(v) => duration(
                source,
                &key("min_interval"),
                Some(v.to_owned()),
                Duration::ZERO,
            )?,
        };
        sinks.push(NotifySink {
            name,
            kind,
            events,
            min_interval,
            retrying_after: duration(
                source,
                &key("retrying_after"),
                n.retrying_after,
                Duration::from_secs(3600),
            )?,
            mpd_after: duration(
                source,
                &key("mpd_after"),
                n.mpd_after,
                Duration::from_secs(600),
            )?,
            queued_after: duration(
                source,
                &key("queued_after"),
                n.queued_after,
                Duration::from_secs(24 * 3600),
            )?,
        });
    }
    Ok(sinks)
}

/// `[metrics]`: off without `listen`; a non-loopback address needs
/// `allow_remote = true`.
pub(super) fn metrics(
    source: &Source<'_>,
    raw: RawMetrics,
) -> Result<Option<MetricsConfig>, ConfigError> {
    let Some(listen) = raw.listen else {
        if raw.allow_remote.is_some() {
            return Err(source.invalid(
                "metrics.allow_remote",
                "needs metrics.listen (the endpoint is off without it)".into(),
            ));
        }
        return Ok(None);
    };
    let addr: SocketAddr = listen.parse().map_err(|_| {
        source.invalid(
            "metrics.listen",
            format!("{listen:?} is not an address and port such as \"127.0.0.1:9101\""),
        )
    })?;
    if !addr.ip().is_loopback() && raw.allow_remote != Some(true) {
        return Err(source.invalid(
            "metrics.listen",
            format!(
                "{addr} is not a loopback address; set metrics.allow_remote = true to serve \
                 the metrics to other machines"
            ),
        ));
    }
    Ok(Some(MetricsConfig { listen: addr }))
}
