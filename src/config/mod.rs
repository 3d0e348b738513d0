//! Configuration: the TOML file, the environment (MPD_HOST, MPD_PORT, XDG
//! paths, systemd credentials), and their validation into a [`Config`] the
//! rest of the program can trust. Every error names the file, the key and the
//! problem.
//!
//! The file is read into the serde layer ([`raw`]), then checked section by
//! section; every secret goes through one resolver ([`secret`]). Loading
//! takes the environment as a lookup function so tests need no process-wide
//! `set_var`.

use std::path::{Path, PathBuf};

use crate::rules::RuleSet;
use crate::stream::Streams;
use crate::tracker::Rules;

mod mpd;
mod raw;
mod secret;
mod sections;
mod targets;
mod toml_error;

pub use mpd::{MpdAddress, MpdConfig};
pub use secret::Secret;
pub use sections::{CacheConfig, Delivery, HistoryConfig};
pub use targets::{LastFmTarget, ListenBrainzTarget, Named};

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
    /// Internet radio: on or off, how titles split, per-station settings.
    pub streams: Streams,
    /// The `[[rule]]` sections: what not to scrobble, and rewrites.
    pub rule_set: RuleSet,
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

/// The file being checked, for errors and relative paths.
struct Source<'a> {
    /// The config file.
    path: &'a Path,
    /// Its directory, which relative paths in it start from.
    base: &'a Path,
}

impl Source<'_> {
    fn invalid(&self, key: &str, problem: String) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_owned(),
            key: key.to_owned(),
            problem,
        }
    }
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
        let raw: raw::RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: toml_error::describe_toml_error(text, &e),
        })?;
        let source = Source {
            path,
            base: path.parent().unwrap_or(Path::new(".")),
        };
        let secrets = secret::Secrets::new(&source, env);
        let mpd = mpd::section(&source, &secrets, raw.mpd, env)?;
        let rules = sections::scrobble(&source, raw.scrobble)?;
        let delivery = sections::delivery(&source, raw.delivery)?;
        let cache = sections::cache(&source, raw.cache)?;
        let history = sections::history(&source, raw.history)?;
        let state_dir = sections::state_dir(&source, raw.state_dir, env);
        let mut targets = targets::Targets::new(&source, &secrets);
        let lastfm = targets.lastfm(raw.lastfm)?;
        let listenbrainz = targets.listenbrainz(raw.listenbrainz)?;
        let streams = Streams::compile(raw.streams).map_err(|(key, p)| source.invalid(&key, p))?;
        let target_names: Vec<&str> = lastfm
            .iter()
            .map(|t| t.name())
            .chain(listenbrainz.iter().map(|t| t.name()))
            .collect();
        let rule_set = RuleSet::compile(raw.rule, &target_names)
            .map_err(|e| source.invalid(&e.key, e.problem))?;

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
            streams,
            rule_set,
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

#[cfg(test)]
mod tests;
