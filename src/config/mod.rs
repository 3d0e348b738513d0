//! Configuration: the TOML file, the environment (MPD_HOST, MPD_PORT, XDG
//! paths, systemd credentials), and their validation into a [`Config`] the
//! rest of the program can trust. Every error names the file, the key and the
//! problem.
//!
//! The file is read into the serde layer (`raw.rs`), then checked section by
//! section; every secret goes through one resolver (`secret.rs`). Loading
//! takes the environment as a lookup function so tests need no process-wide
//! `set_var`.

use std::path::{Path, PathBuf};

use crate::model::Thresholds;
use crate::rules::RuleSet;
use crate::rules::stream::Streams;

mod mpd;
mod notify;
mod raw;
mod secret;
mod sections;
mod targets;
mod toml_error;

pub(crate) use mpd::{MpdAddress, MpdConfig};
pub(crate) use notify::{MetricsConfig, NotifySink, Problem, SinkKind};
pub(crate) use secret::Secret;
pub(crate) use sections::{CacheConfig, Delivery, HistoryConfig};
pub(crate) use targets::{LastFmTarget, ListenBrainzTarget, Named};

/// The validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// MPD connection.
    pub mpd: MpdConfig,
    /// When a play counts: the qualifying thresholds.
    pub thresholds: Thresholds,
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
    /// The `[[notify]]` sections.
    pub notify: Vec<NotifySink>,
    /// `[metrics]`, when the endpoint is on.
    pub metrics: Option<MetricsConfig>,
}

/// A configuration problem, naming the file and the key.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
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
pub(crate) fn default_path(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
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

/// A humantime duration longer than zero, or `default` when not given.
fn duration(
    source: &Source<'_>,
    key: &str,
    value: Option<String>,
    default: std::time::Duration,
) -> Result<std::time::Duration, ConfigError> {
    let Some(v) = value else { return Ok(default) };
    match humantime::parse_duration(&v) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err(source.invalid(key, "must be longer than zero".into())),
        Err(e) => Err(source.invalid(
            key,
            format!("{e} in {v:?} (write for example \"30s\" or \"5m\")"),
        )),
    }
}

impl Config {
    /// Read and validate the file at `path`.
    pub(crate) fn load(
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(path, &text, env)
    }

    /// Validate `text` as if read from `path`.
    pub(crate) fn parse(
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
        let thresholds = sections::scrobble(&source, raw.scrobble)?;
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
        let notify = notify::sinks(&source, &secrets, raw.notify)?;
        let metrics = notify::metrics(&source, raw.metrics)?;

        Ok(Config {
            path: path.to_owned(),
            mpd,
            thresholds,
            delivery,
            state_dir,
            lastfm,
            listenbrainz,
            cache,
            history,
            streams,
            rule_set,
            notify,
            metrics,
        })
    }

    /// [`Config::load`], except that a missing file at the default path
    /// (`is_default`) gives the zero-config set-up: MPD from MPD_HOST and
    /// MPD_PORT or localhost:6600, no online target, plays kept in the local
    /// history. A file named with `-c` must exist.
    pub(crate) fn load_or_default(
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
    pub(crate) fn is_zero_config(&self) -> bool {
        !self.path.exists()
    }

    /// The Last.fm-style target with this name, or the only one when `name` is `None`.
    pub(crate) fn lastfm_target(
        &self,
        name: Option<&str>,
    ) -> Result<&LastFmTarget, TargetChoiceError> {
        pick(&self.path, "lastfm", &self.lastfm, name)
    }

    /// The ListenBrainz-compatible target with this name, or the only one.
    pub(crate) fn listenbrainz_target(
        &self,
        name: Option<&str>,
    ) -> Result<&ListenBrainzTarget, TargetChoiceError> {
        pick(&self.path, "listenbrainz", &self.listenbrainz, name)
    }

    /// The command that (re)authorises the target named `name`: `--name`
    /// is given only when `auth` could not tell the target apart without it
    /// (it picks the only target of its kind).
    pub(crate) fn auth_command(&self, name: &str) -> String {
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
    pub(crate) fn target_names(&self) -> Vec<&str> {
        self.lastfm
            .iter()
            .map(|t| t.name())
            .chain(self.listenbrainz.iter().map(|t| t.name()))
            .collect()
    }
}

/// Why `auth`, `import` or a backfill cannot tell which target is meant.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TargetChoiceError {
    /// `--name` names no target of that kind.
    #[error("{}: no [{section}] target named {name:?} (configured: {configured})", path.display())]
    NoSuchName {
        /// The config file.
        path: PathBuf,
        /// `lastfm` or `listenbrainz`.
        section: String,
        /// The name given.
        name: String,
        /// The configured names, joined.
        configured: String,
    },
    /// No target of that kind.
    #[error("{}: there is no [{section}] section", path.display())]
    NoSection {
        /// The config file.
        path: PathBuf,
        /// `lastfm` or `listenbrainz`.
        section: String,
    },
    /// Several, and no `--name`.
    #[error("several [[{section}]] targets are configured: choose one with --name")]
    Several {
        /// `lastfm` or `listenbrainz`.
        section: String,
    },
}

fn pick<'a, T: Named>(
    path: &Path,
    section: &str,
    targets: &'a [T],
    name: Option<&str>,
) -> Result<&'a T, TargetChoiceError> {
    match (name, targets) {
        (Some(n), _) => {
            targets
                .iter()
                .find(|t| t.name() == n)
                .ok_or_else(|| TargetChoiceError::NoSuchName {
                    path: path.to_owned(),
                    section: section.to_owned(),
                    name: n.to_owned(),
                    configured: targets
                        .iter()
                        .map(|t| t.name())
                        .collect::<Vec<_>>()
                        .join(", "),
                })
        }
        (None, [one]) => Ok(one),
        (None, []) => Err(TargetChoiceError::NoSection {
            path: path.to_owned(),
            section: section.to_owned(),
        }),
        (None, _) => Err(TargetChoiceError::Several {
            section: section.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::toml_error::redact_unexpected;
    use super::*;
    use crate::targets::listenbrainz::{self, Flavor};

    const MINIMAL: &str = r#"
[lastfm]
api_key = "0123456789abcdef0123456789abcdef"
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
        assert_eq!(c.thresholds, Thresholds::default());
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
            (
                "[lastfm]\napi_key = \"0123456789abcdef0123456789abcdef\"\n",
                "lastfm.api_secret",
            ),
            (
                "[lastfm]\napi_key = \"0123456789abcdef0123456789abcdef\"\napi_secret = \"s\"\nurl = \"ftp://x\"\n",
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
api_key = "0123456789abcdef0123456789abcdef"
api_secret = "s"
[[lastfm]]
name = "librefm"
url = "https://libre.fm/2.0/"
api_key = "0123456789abcdef0123456789abcdef"
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
        let text = include_str!("../../config.toml.example");
        let c = parse(text, &[("HOME", "/home/u")]).unwrap();
        assert_eq!(c.thresholds, Thresholds::default());
        assert_eq!(c.delivery.retry_max, Duration::from_secs(1800));
        assert_eq!(c.cache.ttl, Duration::from_secs(86400));
        assert_eq!(
            c.history,
            HistoryConfig {
                enabled: true,
                keep: None
            }
        );
        // No target is active: a copy made only to set [mpd] gets no
        // target that can never work.
        assert!(c.target_names().is_empty(), "{:?}", c.target_names());
        // The commented-out [lastfm] section is refused with its
        // placeholders (issue 23, item 11), and valid once filled in.
        let lastfm = text
            .replace("# [lastfm]", "[lastfm]")
            .replace("# api_key = ", "api_key = ")
            .replace("# api_secret = ", "api_secret = ");
        let err = parse(&lastfm, &[]).unwrap_err().to_string();
        assert!(
            err.contains("key `lastfm.api_key`: is still the example's placeholder"),
            "{err}"
        );
        let filled = lastfm
            .replace(
                "your 32-character API key",
                "0123456789abcdef0123456789abcdef",
            )
            .replace("your 32-character shared secret", "s");
        assert_eq!(parse(&filled, &[]).unwrap().target_names(), ["lastfm"]);
        // The commented-out [listenbrainz] section parses too once enabled.
        let lb = text
            .replace("# [listenbrainz]", "[listenbrainz]")
            .replace("# token = \"...\"", "token = \"t\"");
        assert_eq!(parse(&lb, &[]).unwrap().listenbrainz.len(), 1);
        assert!(c.streams.enabled);
        assert!(c.rule_set.is_empty(), "rules are examples, off by default");
        // The commented-out stream and rule settings are valid once enabled.
        // (With [lastfm] filled in: a rule there is limited to it.)
        let (head, tail) = filled.split_at(filled.find("\n[streams]").unwrap());
        let is_setting = |l: &str| {
            l.starts_with("# [[")
                || l.strip_prefix("# ")
                    .and_then(|l| l.split_once(" = "))
                    .is_some_and(|(k, _)| k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        };
        let enabled: Vec<&str> = tail
            .lines()
            .map(|l| if is_setting(l) { &l[2..] } else { l })
            .collect();
        let c = parse(&format!("{head}{}", enabled.join("\n")), &[]).unwrap();
        assert_eq!(c.streams.stations(), 1);
        assert_eq!(c.rule_set.counts(), (3, 2));
    }

    /// Every key the file accepts is in the commented default config (and
    /// so in the mpd-scrobbler.toml(5) page made from it): serde names
    /// them all when it refuses an unknown one.
    #[test]
    fn the_example_config_names_every_key() {
        let text = include_str!("../../config.toml.example");
        let documented = |key: &str| {
            text.lines()
                .any(|l| l.trim_start_matches("# ").starts_with(&format!("{key} = ")))
        };
        for section in [
            "",
            "[mpd]\n",
            "[scrobble]\n",
            "[delivery]\n",
            "[lastfm]\n",
            "[listenbrainz]\n",
            "[cache]\n",
            "[history]\n",
            "[streams]\n",
            "[[streams.station]]\n",
            "[[rule]]\n",
            "[[notify]]\n",
            "[metrics]\n",
        ] {
            let err = parse(&format!("{section}no_such_key = 1\n"), &[])
                .unwrap_err()
                .to_string();
            let expected = err
                .split_once("expected one of ")
                .or_else(|| err.split_once("expected "))
                .unwrap_or_else(|| panic!("{section}: {err}"))
                .1;
            let keys: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
            assert!(!keys.is_empty(), "{section}: {err}");
            let table = |k: &str| {
                matches!(
                    k,
                    "mpd"
                        | "scrobble"
                        | "delivery"
                        | "lastfm"
                        | "listenbrainz"
                        | "cache"
                        | "history"
                        | "streams"
                        | "rule"
                        | "station"
                        | "notify"
                        | "metrics"
                )
            };
            let missing: Vec<&str> = keys
                .into_iter()
                .filter(|k| !table(k) && !documented(k))
                .collect();
            assert!(
                missing.is_empty(),
                "{section:?}: {missing:?} not in config.toml.example"
            );
        }
    }

    /// Issue 23, item 11: placeholders and keys of the wrong shape are
    /// refused at load, naming the key and never showing the value.
    #[test]
    fn lastfm_keys_of_the_wrong_shape_are_refused() {
        let with = |url: &str, key: &str, secret: &str| {
            parse(
                &format!("[lastfm]\n{url}api_key = \"{key}\"\napi_secret = \"{secret}\"\n"),
                &[],
            )
            .map(|c| c.target_names().len())
            .map_err(|e| e.to_string())
        };
        let hex = "0123456789ABCDEF0123456789abcdef";
        assert_eq!(with("", hex, "s"), Ok(1));
        let err = with("", "short", "s").unwrap_err();
        assert!(
            err.contains("key `lastfm.api_key`: is not a Last.fm API key")
                && err.contains("32 hexadecimal characters (this one has 5"),
            "{err}"
        );
        assert!(!err.contains("\"short\""), "{err}");
        let err = with("", &"g".repeat(32), "s").unwrap_err();
        assert!(err.contains("is not a Last.fm API key"), "{err}");
        let err = with("", hex, "...").unwrap_err();
        assert!(
            err.contains("key `lastfm.api_secret`: is still the example's placeholder"),
            "{err}"
        );
        // Libre.fm and other servers take any key, but not a placeholder.
        let libre = "url = \"https://libre.fm/2.0/\"\n";
        assert_eq!(with(libre, "any", "thing"), Ok(1));
        assert!(with(libre, "...", "s").is_err());
        // Last.fm's host however it is written.
        let upper = "url = \"https://WS.audioscrobbler.com:443/2.0/\"\n";
        assert!(with(upper, "short", "s").is_err());
    }

    #[test]
    fn rules_and_streams_are_checked_at_load() {
        let text = format!(
            "{MINIMAL}[streams]\nenabled = false\n\
             [[rule]]\naction = \"ignore\"\nartist = \"x\"\ntargets = [\"lastfm\"]\n\
             [[rule]]\naction = \"rewrite\"\nfield = \"title\"\nregex = \"(Remastered\"\n"
        );
        let err = parse(&text, &[]).unwrap_err().to_string();
        assert!(
            err.starts_with("/etc/x/config.toml: key `rule[1].regex`: "),
            "{err}"
        );
        assert!(err.contains("open group without closing"), "{err}");
        let ok = text.replace("(Remastered", " [(]Remastered[)]$");
        let c = parse(&ok, &[]).unwrap();
        assert!(!c.streams.enabled);
        assert_eq!(c.rule_set.counts(), (1, 1));
        let err = parse(&text.replace("\"lastfm\"]", "\"librefm\"]"), &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`rule[0].targets`") && err.contains("librefm"),
            "{err}"
        );
        let err = parse(&format!("{MINIMAL}[streams]\nsplit = true\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("split"), "{err}");
        let err = parse(
            &format!("{MINIMAL}[[rule]]\naction = \"ignore\"\nartst = \"x\"\n"),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("artst"), "{err}");
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
             [lastfm]\napi_key = \"0123456789abcdef0123456789abcdef\"\napi_secret = \"s\"\n",
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
            "[listenbrainz]\nname = \"lastfm\"\n[lastfm]\napi_key = \"0123456789abcdef0123456789abcdef\"\napi_secret = \"s\"\n",
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
        let text = "[lastfm]\napi_key = \"0123456789abcdef0123456789abcdef\"\n[listenbrainz]\nname = \"lb\"\n";
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
        let both = "[lastfm]\napi_key = \"0123456789abcdef0123456789abcdef\"\napi_secret = \"s\"\n";
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
            "[lastfm]\napi_key = \"0123456789abcdef0123456789abcdef\"\napi_secret = \"topsecret\"\nsession_key = \"sesskey\"\n",
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

    #[test]
    fn every_secret_is_resolved_the_same_way() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(dir.path().join("secret"), " from-file\n").unwrap();
        let load = |text: &str| Config::parse(&path, text, &env_of(&[]));
        let c = load(
            "[mpd]\npassword_file = \"secret\"\n\
             [lastfm]\napi_key = \"0123456789abcdef0123456789abcdef\"\napi_secret_file = \"secret\"\n\
             [listenbrainz]\ntoken_file = \"secret\"\n",
        )
        .unwrap();
        assert_eq!(c.mpd.password.unwrap().expose(), "from-file");
        assert_eq!(c.lastfm[0].api_secret.expose(), "from-file");
        assert_eq!(
            c.listenbrainz[0].token.as_ref().unwrap().expose(),
            "from-file"
        );
        // A value and a file for one secret: refused, naming both keys.
        for (text, key) in [
            (
                "[lastfm]\napi_key = \"0123456789abcdef0123456789abcdef\"\napi_secret = \"s\"\napi_secret_file = \"secret\"\n",
                "lastfm.api_secret_file",
            ),
            (
                "[listenbrainz]\ntoken = \"t\"\ntoken_file = \"secret\"\n",
                "listenbrainz.token_file",
            ),
        ] {
            let e = load(text).unwrap_err().to_string();
            assert!(e.contains(&format!("key `{key}`: give either")), "{e}");
            assert!(!e.contains("from-file"), "{e}");
        }
        // A missing or empty file: the error names the file and the key.
        let e = load("[listenbrainz]\ntoken_file = \"nope\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`listenbrainz.token_file`")
                && e.contains(&format!("{}", dir.path().join("nope").display())),
            "{e}"
        );
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        let e = load("[mpd]\npassword_file = \"empty\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`mpd.password_file`") && e.contains("is empty"),
            "{e}"
        );
        // An empty session key is no session key; an empty token is a mistake.
        let c =
            load("[lastfm]\napi_key = \"0123456789abcdef0123456789abcdef\"\napi_secret = \"s\"\nsession_key = \"\"\n").unwrap();
        assert!(c.lastfm[0].session_key.is_none());
        let e = load("[listenbrainz]\ntoken = \" \"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`listenbrainz.token`: is empty"), "{e}");
    }

    #[test]
    fn notify_and_metrics_sections() {
        // The example's commented sections, enabled, are valid.
        let text = include_str!("../../config.toml.example");
        let from = text.find("# [[notify]]").unwrap();
        let to = text.find("# Internet radio").unwrap();
        let enabled: Vec<&str> = text[from..to]
            .lines()
            .filter(|l| !l.starts_with("# token_file") && !l.starts_with("# url_file"))
            .map(|l| {
                let setting = l.starts_with("# [")
                    || l.strip_prefix("# ")
                        .and_then(|l| l.split_once(" = "))
                        .is_some_and(|(k, _)| {
                            k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                        });
                if setting { &l[2..] } else { l }
            })
            .collect();
        let c = parse(&enabled.join("\n"), &[]).unwrap();
        assert_eq!(c.notify.len(), 2);
        assert_eq!(c.notify[0].name, "phone");
        assert!(
            matches!(&c.notify[0].kind, SinkKind::Ntfy { token: Some(t), .. } if t.expose() == "tk_your_access_token")
        );
        assert_eq!(
            c.notify[0].events,
            [Problem::Paused, Problem::Held, Problem::QueueStale]
        );
        assert_eq!(c.notify[0].min_interval, Duration::from_secs(600));
        assert_eq!(c.notify[1].name, "command");
        assert_eq!(c.notify[1].events, Problem::ALL);
        assert_eq!(c.notify[1].queued_after, Duration::from_secs(86400));
        assert_eq!(c.metrics.unwrap().listen, "127.0.0.1:9101".parse().unwrap());
        assert!(parse("", &[]).unwrap().metrics.is_none(), "off by default");

        let err = |text: &str| parse(text, &[]).unwrap_err().to_string();
        for (text, expected) in [
            (
                "[[notify]]\nurl = \"https://x\"\n",
                "`notify[0].kind`: is required",
            ),
            (
                "[[notify]]\nkind = \"mail\"\n",
                "`notify[0].kind`: \"mail\" is not one of",
            ),
            (
                "[[notify]]\nkind = \"ntfy\"\n",
                "`notify[0].url`: is required",
            ),
            (
                "[[notify]]\nkind = \"gotify\"\nurl = \"https://g\"\n",
                "`notify[0].token`: is required",
            ),
            (
                "[[notify]]\nkind = \"ntfy\"\nurl = \"https://n/t\"\nevents = [\"fire\"]\n",
                "`notify[0].events`: \"fire\" is not one of paused",
            ),
            (
                "[[notify]]\nkind = \"command\"\n",
                "`notify[0].command`: is required",
            ),
            (
                "[[notify]]\nkind = \"command\"\ncommand = [\"x\"]\nurl = \"https://x\"\n",
                "`notify[0].url`: does not apply",
            ),
            (
                "[[notify]]\nkind = \"ntfy\"\nurl = \"https://n/t\"\nmin_interval = \"soon\"\n",
                "`notify[0].min_interval`",
            ),
            (
                "[[notify]]\nkind = \"ntfy\"\nurl = \"https://n/a\"\n[[notify]]\nkind = \"ntfy\"\nurl = \"https://n/b\"\n",
                "`notify[1].name`: another",
            ),
            (
                "[metrics]\nlisten = \"0.0.0.0:9101\"\n",
                "`metrics.listen`: 0.0.0.0:9101 is not a loopback address; set metrics.allow_remote = true",
            ),
            (
                "[metrics]\nlisten = \"localhost\"\n",
                "`metrics.listen`: \"localhost\" is not an address",
            ),
            (
                "[metrics]\nallow_remote = true\n",
                "`metrics.allow_remote`: needs metrics.listen",
            ),
        ] {
            let e = err(text);
            assert!(e.contains(expected), "{text}: {e}");
        }
        let remote = parse(
            "[metrics]\nlisten = \"0.0.0.0:9101\"\nallow_remote = true\n",
            &[],
        )
        .unwrap();
        assert!(remote.metrics.is_some());
        // A webhook's URL holds a token: never in an error.
        let e = err("[[notify]]\nkind = \"webhook\"\nurl = \"ftp://secret-token@x\"\n");
        assert!(
            e.contains("`notify[0].url`: is not an http") && !e.contains("secret-token"),
            "{e}"
        );
        // Tokens come from a systemd credential too.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notify.g.token"), "app-token\n").unwrap();
        let creds: &'static str = Box::leak(dir.path().display().to_string().into_boxed_str());
        let c = parse(
            "[[notify]]\nname = \"g\"\nkind = \"gotify\"\nurl = \"https://g\"\n",
            Box::leak(Box::new([("CREDENTIALS_DIRECTORY", creds)])),
        )
        .unwrap();
        assert!(
            matches!(&c.notify[0].kind, SinkKind::Gotify { token, .. } if token.expose() == "app-token")
        );
        assert!(!format!("{:?}", c.notify).contains("app-token"));
    }
}
