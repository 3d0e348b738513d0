//! Configuration: the TOML file, the environment (MPD_HOST, MPD_PORT, XDG
//! paths), and their validation into a [`Config`] the rest of the program can
//! trust. Every error names the file, the key and the problem.
//!
//! Loading takes the environment as a lookup function so tests need no
//! process-wide `set_var`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::targets::listenbrainz::{self, Flavor};
use crate::tracker::Rules;

/// A secret string (password, API secret, session key) that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Where MPD listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MpdAddress {
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
pub struct MpdConfig {
    /// Address after MPD_HOST/MPD_PORT overrides.
    pub address: MpdAddress,
    /// Password, if any.
    pub password: Option<Secret>,
}

/// Retry timing for deliveries.
#[derive(Debug, Clone, Copy)]
pub struct Delivery {
    /// First retry delay after a transient failure.
    pub retry_min: Duration,
    /// Cap of the exponential backoff.
    pub retry_max: Duration,
    /// Deadline of each HTTP request.
    pub request_timeout: Duration,
}

/// One Last.fm-style target (Last.fm, Libre.fm, another Audioscrobbler 2.0 server).
#[derive(Debug, Clone)]
pub struct LastFmTarget {
    /// Name used in logs, commands, the queue tree and the session file.
    pub name: String,
    /// API root URL.
    pub url: String,
    /// API key.
    pub api_key: String,
    /// Shared secret for signatures.
    pub api_secret: Secret,
    /// Session key from the config file or the systemd credential
    /// `<name>.session_key`; one stored by `auth` in the state directory wins.
    pub session_key: Option<Secret>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// MPD connection.
    pub mpd: MpdConfig,
    /// Scrobble rules.
    pub rules: Rules,
    /// Retry timing.
    pub delivery: Delivery,
    /// Queue, session files, control socket.
    pub state_dir: PathBuf,
    /// Last.fm-style targets.
    pub lastfm: Vec<LastFmTarget>,
    /// ListenBrainz-compatible targets.
    pub listenbrainz: Vec<ListenBrainzTarget>,
    /// The metadata cache.
    pub cache: CacheConfig,
    /// The local listening history.
    pub history: HistoryConfig,
}

/// The local listening history (`[history]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryConfig {
    /// Record plays (the default).
    pub enabled: bool,
    /// Forget plays older than this; `None` keeps them forever (the default).
    pub keep: Option<Duration>,
}

/// The metadata cache's limits.
#[derive(Debug, Clone, Copy)]
pub struct CacheConfig {
    /// How long a reply is used without asking Last.fm again.
    pub ttl: Duration,
    /// Most replies kept; the oldest go first.
    pub max_entries: usize,
}

/// One ListenBrainz-compatible target (ListenBrainz, Maloja, ...).
#[derive(Debug, Clone)]
pub struct ListenBrainzTarget {
    /// Name used in logs, commands, the queue tree and the token file.
    pub name: String,
    /// API root (the part before `/1/`).
    pub url: String,
    /// Which server it is.
    pub flavor: Flavor,
    /// Token from the config or the systemd credential `<name>.token`;
    /// `auth listenbrainz` stores one in the state directory instead, which wins.
    pub token: Option<Secret>,
}

/// A target of either kind, for code that only needs its name.
pub trait Named {
    /// The target's name.
    fn name(&self) -> &str;
}

impl Named for LastFmTarget {
    fn name(&self) -> &str {
        &self.name
    }
}

impl Named for ListenBrainzTarget {
    fn name(&self) -> &str {
        &self.name
    }
}

/// A configuration problem, naming the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// TOML syntax, an unknown key, or a wrong type.
    #[error("{path}: {message}")]
    Parse {
        /// File.
        path: PathBuf,
        /// Line, column and the TOML parser's message, without the source
        /// line or the value (either can be a secret).
        message: String,
    },
    /// A value that parses but makes no sense.
    #[error("{path}: key `{key}`: {problem}")]
    Invalid {
        /// File, or the environment variable's name.
        path: PathBuf,
        /// Dotted key.
        key: String,
        /// What is wrong.
        problem: String,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    state_dir: Option<PathBuf>,
    #[serde(default)]
    mpd: RawMpd,
    #[serde(default)]
    scrobble: RawScrobble,
    #[serde(default)]
    delivery: RawDelivery,
    lastfm: Option<OneOrMany<RawLastFm>>,
    listenbrainz: Option<OneOrMany<RawListenBrainz>>,
    #[serde(default)]
    cache: RawCache,
    #[serde(default)]
    history: RawHistory,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHistory {
    enabled: Option<bool>,
    keep: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCache {
    ttl: Option<String>,
    max_entries: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListenBrainz {
    name: Option<String>,
    url: Option<String>,
    server: Option<String>,
    token: Option<String>,
    token_file: Option<PathBuf>,
}

#[derive(Debug)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

/// A table is one, an array of tables many. Not `#[serde(untagged)]`, which
/// buffers the value and reports only "did not match any variant" at the
/// section's header, losing the inner error and its place.
impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
        struct Visitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Visitor<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table or an array of tables")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(OneOrMany::One)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<Self::Value, A::Error> {
                Vec::deserialize(SeqAccessDeserializer::new(seq)).map(OneOrMany::Many)
            }
        }
        d.deserialize_any(Visitor(std::marker::PhantomData))
    }
}

impl<T> OneOrMany<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(t) => vec![t],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMpd {
    host: Option<String>,
    port: Option<u16>,
    password: Option<String>,
    password_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScrobble {
    min_track_secs: Option<u64>,
    played_percent: Option<u8>,
    max_required_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDelivery {
    retry_min: Option<String>,
    retry_max: Option<String>,
    request_timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLastFm {
    name: Option<String>,
    url: Option<String>,
    api_key: Option<String>,
    api_secret: Option<String>,
    api_secret_file: Option<PathBuf>,
    session_key: Option<String>,
}

/// "line L, column C: message" for a TOML error. toml's own Display quotes
/// the offending source line, and serde's "invalid type"/"invalid value"
/// messages quote the value: either may be a password.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = redact_unexpected(e.message().trim()).replace('\n', "; ");
    let Some(span) = e.span() else {
        return message;
    };
    let before = text.get(..span.start).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    // A value of the wrong type sits in a key/value pair that parsed, so
    // what precedes its `=` is a key, not part of a secret.
    let key = (message.starts_with("invalid type: ") || message.starts_with("invalid value: "))
        .then(|| key_before(before))
        .flatten()
        .map(|k| format!("key `{k}`: "))
        .unwrap_or_default();
    format!("line {line}, column {column}: {key}{message}")
}

/// The dotted key of the value that starts where `before` ends, with its
/// table's name: `[scrobble]` then `played_percent = ` gives
/// `scrobble.played_percent`.
fn key_before(before: &str) -> Option<String> {
    let mut lines = before.rsplit('\n');
    let (key, _) = lines.next()?.split_once('=')?;
    let key = key.trim();
    let plain = |k: &str| {
        !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    };
    if !plain(key) {
        return None;
    }
    let table = lines
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim())
        .filter(|t| plain(t));
    Some(match table {
        Some(t) => format!("{t}.{key}"),
        None => key.to_owned(),
    })
}

/// serde's "invalid type: integer `123`, expected a string" without the
/// value: "invalid type: integer, expected a string".
fn redact_unexpected(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        let Some(rest) = message.strip_prefix(prefix) else {
            continue;
        };
        let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        // serde writes the value after its kind: integer `1`, string "text".
        let kind = found
            .find(['`', '"', '\''])
            .map_or(found, |i| found[..i].trim_end());
        return if expected.is_empty() {
            format!("{prefix}{kind}")
        } else {
            format!("{prefix}{kind}, expected {expected}")
        };
    }
    message.to_owned()
}

/// The config file used when `-c` is not given:
/// `$XDG_CONFIG_HOME/mpd-scrobbler/config.toml`, else `~/.config/...`.
pub fn default_path(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    let base = non_empty(env("XDG_CONFIG_HOME"))
        .map(PathBuf::from)
        .unwrap_or_else(|| home(env).join(".config"));
    base.join("mpd-scrobbler").join("config.toml")
}

fn home(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    non_empty(env("HOME")).map_or_else(|| PathBuf::from("/"), PathBuf::from)
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

impl Config {
    /// Read and validate the file at `path`.
    pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(path, &text, env)
    }

    /// Validate `text` as if read from `path`.
    pub fn parse(
        path: &Path,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: describe_toml_error(text, &e),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let invalid = |key: &str, problem: String| ConfigError::Invalid {
            path: path.to_owned(),
            key: key.to_owned(),
            problem,
        };
        let read_secret = |key: &str, file: &Path| -> Result<Secret, ConfigError> {
            let file = base.join(file);
            let text = std::fs::read_to_string(&file)
                .map_err(|e| invalid(key, format!("cannot read {}: {e}", file.display())))?;
            let text = text.trim();
            if text.is_empty() {
                return Err(invalid(key, format!("{} is empty", file.display())));
            }
            Ok(Secret::new(text))
        };

        // systemd credentials (LoadCredential=, LoadCredentialEncrypted=):
        // one file per secret, named after the key it stands for, so an
        // encrypted secret never has to sit in the config or the state dir.
        let credentials = non_empty(env("CREDENTIALS_DIRECTORY")).map(PathBuf::from);
        let credential = |key: &str, name: &str| -> Result<Option<Secret>, ConfigError> {
            let Some(dir) = &credentials else {
                return Ok(None);
            };
            let file = dir.join(name);
            match std::fs::read_to_string(&file) {
                Ok(text) if text.trim().is_empty() => Err(invalid(
                    key,
                    format!("the systemd credential {} is empty", file.display()),
                )),
                Ok(text) => Ok(Some(Secret::new(text.trim()))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(invalid(
                    key,
                    format!("cannot read the systemd credential {}: {e}", file.display()),
                )),
            }
        };
        // A secret given both ways is a mistake: say which two to choose from.
        let either = |key: &str, name: &str, from_config: Option<Secret>| match (
            from_config,
            credential(key, name)?,
        ) {
            (Some(_), Some(_)) => Err(invalid(
                key,
                format!("is also given as the systemd credential {name:?}; keep only one of them"),
            )),
            (a, b) => Ok(a.or(b)),
        };

        let mpd = {
            let raw = raw.mpd;
            let config_password = match (raw.password, raw.password_file) {
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        "mpd.password_file",
                        "give either mpd.password or mpd.password_file, not both".into(),
                    ));
                }
                (Some(p), None) => Some(Secret::new(p)),
                (None, Some(f)) => Some(read_secret("mpd.password_file", &f)?),
                (None, None) => None,
            };
            let config_password = either("mpd.password", "mpd.password", config_password)?;
            let env_host = non_empty(env("MPD_HOST"));
            let (host, env_password) = match &env_host {
                Some(h) => split_mpd_host(h),
                None => (raw.host.unwrap_or_else(|| "localhost".into()), None),
            };
            let port = match non_empty(env("MPD_PORT")) {
                Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| {
                    ConfigError::Invalid {
                        path: "environment".into(),
                        key: "MPD_PORT".into(),
                        problem: format!("not a port number: {p:?}"),
                    }
                })?,
                None => raw.port.unwrap_or(6600),
            };
            if host.is_empty() {
                return Err(invalid("mpd.host", "must not be empty".into()));
            }
            MpdConfig {
                address: parse_address(&host, port),
                password: env_password.map(Secret::new).or(config_password),
            }
        };

        let rules = {
            let d = Rules::default();
            let s = raw.scrobble;
            let percent = s.played_percent.unwrap_or(d.played_percent);
            if !(1..=100).contains(&percent) {
                return Err(invalid(
                    "scrobble.played_percent",
                    format!("must be between 1 and 100 (got {percent})"),
                ));
            }
            let max_required = s
                .max_required_secs
                .map_or(d.max_required, Duration::from_secs);
            if max_required.is_zero() {
                return Err(invalid(
                    "scrobble.max_required_secs",
                    "must be at least 1".into(),
                ));
            }
            Rules {
                min_track: s.min_track_secs.map_or(d.min_track, Duration::from_secs),
                played_percent: percent,
                max_required,
            }
        };

        let duration = |key: &str, value: Option<String>, default: Duration| {
            let Some(v) = value else { return Ok(default) };
            match humantime::parse_duration(&v) {
                Ok(d) if !d.is_zero() => Ok(d),
                Ok(_) => Err(invalid(key, "must be longer than zero".into())),
                Err(e) => Err(invalid(
                    key,
                    format!("{e} in {v:?} (write for example \"30s\" or \"5m\")"),
                )),
            }
        };
        let delivery = Delivery {
            retry_min: duration(
                "delivery.retry_min",
                raw.delivery.retry_min,
                Duration::from_secs(30),
            )?,
            retry_max: duration(
                "delivery.retry_max",
                raw.delivery.retry_max,
                Duration::from_secs(30 * 60),
            )?,
            request_timeout: duration(
                "delivery.request_timeout",
                raw.delivery.request_timeout,
                Duration::from_secs(30),
            )?,
        };
        if delivery.retry_max < delivery.retry_min {
            return Err(invalid(
                "delivery.retry_max",
                "must not be shorter than delivery.retry_min".into(),
            ));
        }

        let cache = CacheConfig {
            ttl: duration("cache.ttl", raw.cache.ttl, Duration::from_secs(24 * 3600))?,
            max_entries: match raw.cache.max_entries {
                Some(0) => return Err(invalid("cache.max_entries", "must be at least 1".into())),
                Some(n) => n,
                None => 5000,
            },
        };

        let history = HistoryConfig {
            enabled: raw.history.enabled.unwrap_or(true),
            keep: match raw.history.keep.as_deref() {
                None | Some("forever") => None,
                Some(v) => Some(
                    duration("history.keep", Some(v.to_owned()), Duration::ZERO).map_err(|_| {
                        invalid(
                            "history.keep",
                            format!("{v:?} is neither \"forever\" nor a duration such as \"365d\""),
                        )
                    })?,
                ),
            },
        };

        let state_dir = match raw.state_dir {
            Some(dir) => base.join(dir),
            None => default_state_dir(env),
        };

        let mut names: Vec<String> = Vec::new();
        let mut check_name = |key: &str, name: String| -> Result<String, ConfigError> {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(invalid(
                    key,
                    format!("{name:?} must be letters, digits, '-' or '_'"),
                ));
            }
            if names.contains(&name) {
                return Err(invalid(
                    key,
                    format!("another target is already named {name:?}; give each a distinct name"),
                ));
            }
            names.push(name.clone());
            Ok(name)
        };
        let check_url = |key: &str, url: String| -> Result<String, ConfigError> {
            if url.starts_with("https://") || url.starts_with("http://") {
                Ok(url)
            } else {
                Err(invalid(
                    key,
                    format!("{url:?} is not an http:// or https:// URL"),
                ))
            }
        };
        let prefix = |section: &str, i: usize, n: usize| {
            if n > 1 {
                format!("{section}[{i}]")
            } else {
                section.to_owned()
            }
        };

        let mut lastfm = Vec::new();
        let sections = raw.lastfm.map(OneOrMany::into_vec).unwrap_or_default();
        let n = sections.len();
        for (i, t) in sections.into_iter().enumerate() {
            let prefix = prefix("lastfm", i, n);
            let key = |k: &str| format!("{prefix}.{k}");
            let name = check_name(&key("name"), t.name.unwrap_or_else(|| "lastfm".into()))?;
            let url = check_url(
                &key("url"),
                t.url
                    .unwrap_or_else(|| crate::targets::lastfm::LASTFM_API_URL.into()),
            )?;
            let api_key = t.api_key.filter(|k| !k.trim().is_empty()).ok_or_else(|| {
                invalid(
                    &key("api_key"),
                    "is required (get one at https://www.last.fm/api/account/create)".into(),
                )
            })?;
            let api_secret = match (t.api_secret, t.api_secret_file) {
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        &key("api_secret_file"),
                        "give either api_secret or api_secret_file, not both".into(),
                    ));
                }
                (Some(s), None) if !s.trim().is_empty() => Some(Secret::new(s.trim())),
                (Some(_), None) => return Err(invalid(&key("api_secret"), "is empty".into())),
                (None, Some(f)) => Some(read_secret(&key("api_secret_file"), &f)?),
                (None, None) => None,
            };
            let api_secret = either(&key("api_secret"), &format!("{name}.api_secret"), api_secret)?
                .ok_or_else(|| {
                    invalid(
                        &key("api_secret"),
                        format!(
                            "is required (or api_secret_file, or the systemd credential \"{name}.api_secret\")"
                        ),
                    )
                })?;
            let session_key = either(
                &key("session_key"),
                &format!("{name}.session_key"),
                t.session_key.filter(|k| !k.is_empty()).map(Secret::new),
            )?;
            lastfm.push(LastFmTarget {
                name,
                url,
                api_key: api_key.trim().to_owned(),
                api_secret,
                session_key,
            });
        }

        let mut listenbrainz = Vec::new();
        let sections = raw
            .listenbrainz
            .map(OneOrMany::into_vec)
            .unwrap_or_default();
        let n = sections.len();
        for (i, t) in sections.into_iter().enumerate() {
            let prefix = prefix("listenbrainz", i, n);
            let key = |k: &str| format!("{prefix}.{k}");
            let name = check_name(
                &key("name"),
                t.name.unwrap_or_else(|| "listenbrainz".into()),
            )?;
            let url = check_url(
                &key("url"),
                t.url.unwrap_or_else(|| listenbrainz::DEFAULT_URL.into()),
            )?;
            let flavor = match t.server.as_deref() {
                Some("listenbrainz") => Flavor::ListenBrainz,
                Some("maloja") => Flavor::Maloja,
                Some(other) => {
                    return Err(invalid(
                        &key("server"),
                        format!("{other:?} is not \"listenbrainz\" or \"maloja\""),
                    ));
                }
                // Maloja serves the protocol under this path (protocols.md §4.1).
                None if url.trim_end_matches('/').ends_with("/apis/listenbrainz") => Flavor::Maloja,
                None => Flavor::ListenBrainz,
            };
            let token = match (t.token, t.token_file) {
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        &key("token_file"),
                        "give either token or token_file, not both".into(),
                    ));
                }
                (Some(tok), None) if !tok.trim().is_empty() => Some(Secret::new(tok.trim())),
                (Some(_), None) => return Err(invalid(&key("token"), "is empty".into())),
                (None, Some(f)) => Some(read_secret(&key("token_file"), &f)?),
                (None, None) => None,
            };
            let token = either(&key("token"), &format!("{name}.token"), token)?;
            listenbrainz.push(ListenBrainzTarget {
                name,
                url,
                flavor,
                token,
            });
        }

        Ok(Config {
            path: path.to_owned(),
            mpd,
            rules,
            delivery,
            state_dir,
            lastfm,
            listenbrainz,
            cache,
            history,
        })
    }

    /// [`Config::load`], except that a missing file at the default path
    /// (`is_default`) gives the zero-config set-up: MPD from MPD_HOST and
    /// MPD_PORT or localhost:6600, no online target, plays kept in the local
    /// history. A file named with `-c` must exist.
    pub fn load_or_default(
        path: &Path,
        is_default: bool,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        match Config::load(path, env) {
            Err(ConfigError::Read { source, .. })
                if is_default && source.kind() == std::io::ErrorKind::NotFound =>
            {
                Config::parse(path, "", env)
            }
            other => other,
        }
    }

    /// Whether this config came from no file at all (see [`Config::load_or_default`]).
    pub fn is_zero_config(&self) -> bool {
        !self.path.exists()
    }

    /// The Last.fm-style target with this name, or the only one when `name` is `None`.
    pub fn lastfm_target(&self, name: Option<&str>) -> Result<&LastFmTarget, String> {
        pick(&self.path, "lastfm", &self.lastfm, name)
    }

    /// The ListenBrainz-compatible target with this name, or the only one.
    pub fn listenbrainz_target(&self, name: Option<&str>) -> Result<&ListenBrainzTarget, String> {
        pick(&self.path, "listenbrainz", &self.listenbrainz, name)
    }

    /// The command that (re)authorises the target named `name`: `--name`
    /// is given only when `auth` could not tell the target apart without it
    /// (it picks the only target of its kind).
    pub fn auth_command(&self, name: &str) -> String {
        let (kind, several) = if self.lastfm.iter().any(|t| t.name() == name) {
            ("lastfm", self.lastfm.len() > 1)
        } else {
            ("listenbrainz", self.listenbrainz.len() > 1)
        };
        if several {
            format!("mpd-scrobbler auth {kind} --name {name}")
        } else {
            format!("mpd-scrobbler auth {kind}")
        }
    }

    /// Names of all targets, Last.fm-style first.
    pub fn target_names(&self) -> Vec<&str> {
        self.lastfm
            .iter()
            .map(|t| t.name())
            .chain(self.listenbrainz.iter().map(|t| t.name()))
            .collect()
    }
}

fn pick<'a, T: Named>(
    path: &Path,
    section: &str,
    targets: &'a [T],
    name: Option<&str>,
) -> Result<&'a T, String> {
    match (name, targets) {
        (Some(n), _) => targets.iter().find(|t| t.name() == n).ok_or_else(|| {
            format!(
                "{}: no [{section}] target named {n:?} (configured: {})",
                path.display(),
                targets
                    .iter()
                    .map(|t| t.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }),
        (None, [one]) => Ok(one),
        (None, []) => Err(format!(
            "{}: there is no [{section}] section",
            path.display()
        )),
        (None, _) => Err(format!(
            "several [[{section}]] targets are configured: choose one with --name"
        )),
    }
}

/// `$STATE_DIRECTORY` (set by systemd's StateDirectory=), else
/// `$XDG_STATE_HOME/mpd-scrobbler`, else `~/.local/state/mpd-scrobbler`.
fn default_state_dir(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    if let Some(dirs) = non_empty(env("STATE_DIRECTORY")) {
        // systemd joins several StateDirectory= entries with ':'.
        return PathBuf::from(dirs.split(':').next().unwrap_or(&dirs));
    }
    non_empty(env("XDG_STATE_HOME"))
        .map(PathBuf::from)
        .unwrap_or_else(|| home(env).join(".local").join("state"))
        .join("mpd-scrobbler")
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

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[lastfm]
api_key = "k"
api_secret = "s"
"#;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    fn parse(text: &str, env: &[(&'static str, &'static str)]) -> Result<Config, ConfigError> {
        let env: &'static [(&str, &str)] = Vec::leak(env.to_vec());
        Config::parse(Path::new("/etc/x/config.toml"), text, &env_of(env))
    }

    #[test]
    fn defaults() {
        let c = parse(MINIMAL, &[("HOME", "/home/u")]).unwrap();
        assert_eq!(c.mpd.address, MpdAddress::Tcp("localhost".into(), 6600));
        assert!(c.mpd.password.is_none());
        assert_eq!(c.rules, Rules::default());
        assert_eq!(
            c.state_dir,
            PathBuf::from("/home/u/.local/state/mpd-scrobbler")
        );
        assert_eq!(c.lastfm[0].url, crate::targets::lastfm::LASTFM_API_URL);
        assert_eq!(c.lastfm[0].name, "lastfm");
        assert_eq!(c.delivery.retry_min, Duration::from_secs(30));
    }

    #[test]
    fn mpd_host_rules_follow_mpc() {
        let cases: &[(&str, MpdAddress, Option<&str>)] = &[
            (
                "pw@example.org",
                MpdAddress::Tcp("example.org".into(), 6600),
                Some("pw"),
            ),
            (
                "/run/mpd/socket",
                MpdAddress::Unix("/run/mpd/socket".into()),
                None,
            ),
            ("@mpd", MpdAddress::Abstract("mpd".into()), None),
            ("pw@@mpd", MpdAddress::Abstract("mpd".into()), Some("pw")),
            (
                "pw@/run/mpd/socket",
                MpdAddress::Unix("/run/mpd/socket".into()),
                Some("pw"),
            ),
            ("::1", MpdAddress::Tcp("::1".into(), 6600), None),
        ];
        for (host, address, password) in cases {
            let env: &'static [(&str, &str)] = Vec::leak(vec![("MPD_HOST", *host)]);
            let c = Config::parse(Path::new("c.toml"), MINIMAL, &env_of(env)).unwrap();
            assert_eq!(&c.mpd.address, address, "MPD_HOST={host}");
            assert_eq!(c.mpd.password.as_ref().map(Secret::expose), *password);
        }
    }

    #[test]
    fn environment_overrides_config() {
        let text = format!("[mpd]\nhost = \"music\"\nport = 7000\npassword = \"cfg\"\n{MINIMAL}");
        let c = parse(&text, &[]).unwrap();
        assert_eq!(c.mpd.address, MpdAddress::Tcp("music".into(), 7000));
        assert_eq!(c.mpd.password.unwrap().expose(), "cfg");
        let c = parse(&text, &[("MPD_PORT", "6601"), ("MPD_HOST", "x@other")]).unwrap();
        assert_eq!(c.mpd.address, MpdAddress::Tcp("other".into(), 6601));
        assert_eq!(c.mpd.password.unwrap().expose(), "x");
        let err = parse(&text, &[("MPD_PORT", "http")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("MPD_PORT") && err.contains("http"), "{err}");
    }

    #[test]
    fn unknown_key_names_file_and_key() {
        let err = parse("[mpd]\nhots = \"x\"\n", &[]).unwrap_err().to_string();
        assert!(err.contains("/etc/x/config.toml"), "{err}");
        assert!(err.contains("hots"), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn invalid_values_name_the_key() {
        let cases = [
            (
                "[scrobble]\nplayed_percent = 0\n",
                "scrobble.played_percent",
            ),
            (
                "[scrobble]\nplayed_percent = 101\n",
                "scrobble.played_percent",
            ),
            ("[delivery]\nretry_min = \"soon\"\n", "delivery.retry_min"),
            (
                "[delivery]\nretry_min = \"10m\"\nretry_max = \"1m\"\n",
                "delivery.retry_max",
            ),
            ("[lastfm]\napi_secret = \"s\"\n", "lastfm.api_key"),
            ("[lastfm]\napi_key = \"k\"\n", "lastfm.api_secret"),
            (
                "[lastfm]\napi_key = \"k\"\napi_secret = \"s\"\nurl = \"ftp://x\"\n",
                "lastfm.url",
            ),
            (
                "[mpd]\npassword = \"a\"\npassword_file = \"b\"\n",
                "mpd.password_file",
            ),
        ];
        for (text, key) in cases {
            let err = parse(text, &[]).unwrap_err().to_string();
            assert!(err.contains(&format!("`{key}`")), "{text:?} gave {err}");
            assert!(err.starts_with("/etc/x/config.toml"), "{err}");
        }
        let err = parse("[scrobble]\nplayed_percent = \"half\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("`scrobble.played_percent`"), "{err}");
    }

    #[test]
    fn several_lastfm_targets_need_distinct_names() {
        let two = r#"
[[lastfm]]
api_key = "k"
api_secret = "s"
[[lastfm]]
name = "librefm"
url = "https://libre.fm/2.0/"
api_key = "k"
api_secret = "s"
"#;
        let c = parse(two, &[]).unwrap();
        assert_eq!(c.lastfm.len(), 2);
        assert_eq!(c.lastfm[1].name, "librefm");
        assert!(c.lastfm_target(None).is_err());
        assert_eq!(
            c.lastfm_target(Some("librefm")).unwrap().url,
            "https://libre.fm/2.0/"
        );
        let err = parse(&two.replace("name = \"librefm\"\n", ""), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("lastfm[1].name"), "{err}");
    }

    #[test]
    fn the_example_config_is_valid_and_documents_every_section() {
        let text = include_str!("../config.toml.example");
        let c = parse(text, &[("HOME", "/home/u")]).unwrap();
        assert_eq!(c.rules, Rules::default());
        assert_eq!(c.delivery.retry_max, Duration::from_secs(1800));
        assert_eq!(c.cache.ttl, Duration::from_secs(86400));
        assert_eq!(
            c.history,
            HistoryConfig {
                enabled: true,
                keep: None
            }
        );
        // The commented-out [listenbrainz] section parses too once enabled.
        let lb = text
            .replace("# [listenbrainz]", "[listenbrainz]")
            .replace("# token = \"...\"", "token = \"t\"");
        assert_eq!(parse(&lb, &[]).unwrap().listenbrainz.len(), 1);
    }

    #[test]
    fn history_keys() {
        let c = parse("[history]\nkeep = \"365d\"\n", &[]).unwrap();
        assert_eq!(c.history.keep, Some(Duration::from_secs(365 * 86400)));
        assert!(c.history.enabled);
        let c = parse("[history]\nenabled = false\n", &[]).unwrap();
        assert!(!c.history.enabled);
        let err = parse("[history]\nkeep = \"always\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("history.keep") && err.contains("\"always\""),
            "{err}"
        );
    }

    #[test]
    fn a_missing_default_file_is_the_zero_config_set_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let env = env_of(&[("MPD_HOST", "127.0.0.1"), ("MPD_PORT", "6601")]);
        let c = Config::load_or_default(&path, true, &env).unwrap();
        assert!(c.is_zero_config());
        assert!(c.target_names().is_empty());
        assert_eq!(c.mpd.address, MpdAddress::Tcp("127.0.0.1".into(), 6601));
        assert!(c.history.enabled);
        // A file named with -c must exist.
        let err = Config::load_or_default(&path, false, &env).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }), "{err}");
    }

    #[test]
    fn listenbrainz_targets() {
        let c = parse("[listenbrainz]\ntoken = \"t\"\n", &[]).unwrap();
        assert!(c.lastfm.is_empty());
        assert_eq!(c.listenbrainz[0].url, listenbrainz::DEFAULT_URL);
        assert_eq!(c.listenbrainz[0].flavor, Flavor::ListenBrainz);
        assert_eq!(c.listenbrainz[0].token.as_ref().unwrap().expose(), "t");
        let c = parse(
            "[[listenbrainz]]\nname = \"maloja\"\nurl = \"https://m.example/apis/listenbrainz\"\n\
             [[listenbrainz]]\n\
             [lastfm]\napi_key = \"k\"\napi_secret = \"s\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.listenbrainz[0].flavor, Flavor::Maloja);
        assert_eq!(c.target_names(), ["lastfm", "maloja", "listenbrainz"]);
        let err = parse("[listenbrainz]\nserver = \"spotify\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("`listenbrainz.server`"), "{err}");
        let err = parse(
            "[listenbrainz]\nname = \"lastfm\"\n[lastfm]\napi_key = \"k\"\napi_secret = \"s\"\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("already named"), "{err}");
    }

    #[test]
    fn state_dir_precedence() {
        let c = parse(
            MINIMAL,
            &[
                ("STATE_DIRECTORY", "/var/lib/mpd-scrobbler:/x"),
                ("XDG_STATE_HOME", "/s"),
            ],
        )
        .unwrap();
        assert_eq!(c.state_dir, PathBuf::from("/var/lib/mpd-scrobbler"));
        let c = parse(MINIMAL, &[("XDG_STATE_HOME", "/s")]).unwrap();
        assert_eq!(c.state_dir, PathBuf::from("/s/mpd-scrobbler"));
        let c = parse(
            &format!("state_dir = \"st\"\n{MINIMAL}"),
            &[("XDG_STATE_HOME", "/s")],
        )
        .unwrap();
        assert_eq!(c.state_dir, PathBuf::from("/etc/x/st"));
    }

    #[test]
    fn systemd_credentials_stand_in_for_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let creds: &'static str = String::leak(dir.path().display().to_string());
        for (name, value) in [
            ("mpd.password", "mpdpw\n"),
            ("lastfm.api_secret", "cred-secret\n"),
            ("lastfm.session_key", "cred-sk"),
            ("lb.token", " cred-token \n"),
        ] {
            std::fs::write(dir.path().join(name), value).unwrap();
        }
        let text = "[lastfm]\napi_key = \"k\"\n[listenbrainz]\nname = \"lb\"\n";
        let c = parse(text, &[("CREDENTIALS_DIRECTORY", creds)]).unwrap();
        assert_eq!(c.mpd.password.unwrap().expose(), "mpdpw");
        assert_eq!(c.lastfm[0].api_secret.expose(), "cred-secret");
        assert_eq!(
            c.lastfm[0].session_key.as_ref().unwrap().expose(),
            "cred-sk"
        );
        assert_eq!(
            c.listenbrainz[0].token.as_ref().unwrap().expose(),
            "cred-token"
        );

        // MPD_HOST's password still wins, as it does over the config file.
        let c = parse(
            text,
            &[("CREDENTIALS_DIRECTORY", creds), ("MPD_HOST", "envpw@h")],
        )
        .unwrap();
        assert_eq!(c.mpd.password.unwrap().expose(), "envpw");

        // The same secret in the config too is ambiguous.
        let both = "[lastfm]\napi_key = \"k\"\napi_secret = \"s\"\n";
        let e = parse(both, &[("CREDENTIALS_DIRECTORY", creds)])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("lastfm.api_secret") && e.contains("\"lastfm.api_secret\""),
            "{e}"
        );

        std::fs::write(dir.path().join("lastfm.api_secret"), "\n").unwrap();
        let e = parse(text, &[("CREDENTIALS_DIRECTORY", creds)])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("lastfm.api_secret") && e.contains("is empty"),
            "{e}"
        );

        // Without the directory the secret is simply missing, and the error
        // names the ways to give it.
        let e = parse(text, &[]).unwrap_err().to_string();
        assert!(
            e.contains("lastfm.api_secret") && e.contains("systemd credential"),
            "{e}"
        );
    }

    #[test]
    fn toml_errors_give_line_and_column_but_never_the_source_or_the_value() {
        let cases = [
            // A syntax error on a secret's line.
            (
                "[mpd]\nhost = \"x\"\npassword = hunter2\n",
                "hunter2",
                "line 3, column 12",
            ),
            ("[mpd]\npassword = 'hunter2\n", "hunter2", "line 2"),
            (
                "[mpd]\npassword = \"ok\" hunter2\n",
                "hunter2",
                "line 2, column 17",
            ),
            // A secret of the wrong type: serde would quote it.
            (
                "[mpd]\npassword = 31337420\n",
                "31337420",
                "line 2, column 12",
            ),
            (
                "[delivery]\nretry_min = 1234567.25\n",
                "1234567.25",
                "line 2, column 13",
            ),
            (
                "[listenbrainz]\ntoken = true\n",
                "true",
                "line 2, column 9: key `listenbrainz.token`",
            ),
            // Columns count characters, not bytes.
            (
                "[mpd]\nhost = \"ü\" sëcret\n",
                "sëcret",
                "line 2, column 12",
            ),
        ];
        for (text, secret, place) in cases {
            let err = parse(text, &[]).unwrap_err().to_string();
            assert!(err.starts_with("/etc/x/config.toml: "), "{err}");
            assert!(err.contains(place), "{text:?} gave {err}");
            assert!(!err.contains(secret), "{text:?} gave {err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
        let err = parse("[mpd]\npassword = 7\n", &[]).unwrap_err().to_string();
        assert!(
            err.ends_with("key `mpd.password`: invalid type: integer, expected a string"),
            "{err}"
        );
    }

    #[test]
    fn serde_values_are_redacted_from_messages() {
        assert_eq!(
            redact_unexpected("invalid type: floating point `1.5`, expected a string"),
            "invalid type: floating point, expected a string"
        );
        assert_eq!(
            redact_unexpected("invalid value: string \"s3cr3t\", expected u16"),
            "invalid value: string, expected u16"
        );
        assert_eq!(
            redact_unexpected("invalid type: map, expected a string"),
            "invalid type: map, expected a string"
        );
        assert_eq!(
            redact_unexpected("unknown field `hots`, expected `host`"),
            "unknown field `hots`, expected `host`"
        );
    }

    #[test]
    fn secrets_do_not_print() {
        let c = parse(
            "[lastfm]\napi_key = \"k\"\napi_secret = \"topsecret\"\nsession_key = \"sesskey\"\n",
            &[("MPD_HOST", "mpdpass@h")],
        )
        .unwrap();
        let debug = format!("{c:?}");
        for secret in ["topsecret", "sesskey", "mpdpass"] {
            assert!(!debug.contains(secret), "{secret} leaked: {debug}");
        }
    }

    #[test]
    fn default_config_path() {
        let p = default_path(&env_of(&[("XDG_CONFIG_HOME", "/c"), ("HOME", "/h")]));
        assert_eq!(p, PathBuf::from("/c/mpd-scrobbler/config.toml"));
        let p = default_path(&env_of(&[("HOME", "/h")]));
        assert_eq!(p, PathBuf::from("/h/.config/mpd-scrobbler/config.toml"));
    }
}
