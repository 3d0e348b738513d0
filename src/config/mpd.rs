//! The `[mpd]` section with MPD_HOST and MPD_PORT: where MPD listens and its
//! password, following mpc's rules for the environment.

use std::fmt;
use std::path::PathBuf;

use super::raw::RawMpd;
use super::secret::{SecretKeys, Secrets, Written};
use super::{ConfigError, Secret, Source, non_empty};

/// Where MPD listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MpdAddress {
    /// TCP host name or address, and port.
    Tcp(String, u16),
    /// Unix socket path.
    Unix(PathBuf),
    /// Linux abstract socket name (without the leading `@`).
    Abstract(String),
}

impl fmt::Display for MpdAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MpdAddress::Tcp(host, port) if host.contains(':') => write!(f, "[{host}]:{port}"),
            MpdAddress::Tcp(host, port) => write!(f, "{host}:{port}"),
            MpdAddress::Unix(path) => write!(f, "{}", path.display()),
            MpdAddress::Abstract(name) => write!(f, "@{name}"),
        }
    }
}

/// How to reach MPD.
#[derive(Debug, Clone)]
pub(crate) struct MpdConfig {
    /// Address after MPD_HOST/MPD_PORT overrides.
    pub address: MpdAddress,
    /// Password, if any.
    pub password: Option<Secret>,
}

/// `[mpd]`, overridden by MPD_HOST (which may carry the password, and then
/// wins over every other way of giving it) and MPD_PORT.
pub(super) fn section(
    source: &Source<'_>,
    secrets: &Secrets<'_>,
    raw: RawMpd,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<MpdConfig, ConfigError> {
    let keys = SecretKeys {
        key: "mpd.password".into(),
        file_key: Some("mpd.password_file".into()),
        credential: "mpd.password".into(),
        written: Written::Verbatim,
    };
    let config_password = secrets.resolve(&keys, raw.password, raw.password_file)?;
    let env_host = non_empty(env("MPD_HOST"));
    let (host, env_password) = match &env_host {
        Some(h) => split_mpd_host(h),
        None => (raw.host.unwrap_or_else(|| "localhost".into()), None),
    };
    let port = match non_empty(env("MPD_PORT")) {
        Some(p) => {
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| ConfigError::Invalid {
                    path: "environment".into(),
                    key: "MPD_PORT".into(),
                    problem: format!("not a port number: {p:?}"),
                })?
        }
        None => raw.port.unwrap_or(6600),
    };
    if host.is_empty() {
        return Err(source.invalid("mpd.host", "must not be empty".into()));
    }
    Ok(MpdConfig {
        address: parse_address(&host, port),
        password: env_password.map(Secret::new).or(config_password),
    })
}

/// Split MPD_HOST the way mpc (libmpdclient) does: `password@host`, except
/// that a leading `@` names an abstract socket rather than an empty password.
fn split_mpd_host(value: &str) -> (String, Option<String>) {
    if value.starts_with('@') {
        return (value.to_owned(), None);
    }
    match value.split_once('@') {
        Some((password, host)) => (host.to_owned(), Some(password.to_owned())),
        None => (value.to_owned(), None),
    }
}

fn parse_address(host: &str, port: u16) -> MpdAddress {
    if let Some(name) = host.strip_prefix('@') {
        MpdAddress::Abstract(name.to_owned())
    } else if host.starts_with('/') {
        MpdAddress::Unix(PathBuf::from(host))
    } else {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        MpdAddress::Tcp(host.to_owned(), port)
    }
}
