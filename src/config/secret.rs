//! Secrets: the [`Secret`] type that never prints, and the one resolver every
//! secret goes through: a value in the config, a `*_file` key naming a file,
//! or a systemd credential in `$CREDENTIALS_DIRECTORY`. Giving one secret
//! two ways is refused, and every error names the file and the key without
//! the secret.

use std::fmt;
use std::path::{Path, PathBuf};

use super::{ConfigError, Source, non_empty};

/// A secret string (password, API secret, session key) that never prints.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    /// Wrap a secret.
    pub(crate) fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret itself, for the one place that must send it.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// How a secret written in the config is taken.
#[derive(Debug, Clone, Copy)]
pub(super) enum Written {
    /// Exactly as written, even empty: a password may have spaces.
    Verbatim,
    /// Trimmed; an empty value is refused.
    Trimmed,
    /// As written; an empty value counts as not given (`session_key = ""`).
    EmptyIsUnset,
}

/// One secret's config keys and credential name.
pub(super) struct SecretKeys {
    /// Dotted key of the value (`lastfm.api_secret`).
    pub(super) key: String,
    /// Dotted key naming a file that holds it, for secrets that have one.
    pub(super) file_key: Option<String>,
    /// The systemd credential's file name (`lastfm.api_secret`).
    pub(super) credential: String,
    /// How the value is taken.
    pub(super) written: Written,
}

/// Resolves every secret of one config file.
pub(super) struct Secrets<'a> {
    source: &'a Source<'a>,
    /// systemd credentials (LoadCredential=, LoadCredentialEncrypted=): one
    /// file per secret, named after the key it stands for, so an encrypted
    /// secret never has to sit in the config or the state dir.
    credentials: Option<PathBuf>,
}

impl<'a> Secrets<'a> {
    pub(super) fn new(source: &'a Source<'a>, env: &dyn Fn(&str) -> Option<String>) -> Self {
        Secrets {
            source,
            credentials: non_empty(env("CREDENTIALS_DIRECTORY")).map(PathBuf::from),
        }
    }

    /// The secret given by `value` or `file` in the config, or by the
    /// credential; `None` when none of them gives it.
    pub(super) fn resolve(
        &self,
        keys: &SecretKeys,
        value: Option<String>,
        file: Option<PathBuf>,
    ) -> Result<Option<Secret>, ConfigError> {
        let invalid = |key: &str, problem: String| self.source.invalid(key, problem);
        let from_config = match (value, file) {
            (Some(_), Some(_)) => {
                let file_key = keys.file_key.as_deref().unwrap_or(&keys.key);
                return Err(invalid(
                    file_key,
                    format!("give either {} or {file_key}, not both", keys.key),
                ));
            }
            (Some(v), None) => match keys.written {
                Written::Verbatim => Some(Secret::new(v)),
                Written::Trimmed if v.trim().is_empty() => {
                    return Err(invalid(&keys.key, "is empty".into()));
                }
                Written::Trimmed => Some(Secret::new(v.trim())),
                Written::EmptyIsUnset if v.is_empty() => None,
                Written::EmptyIsUnset => Some(Secret::new(v)),
            },
            (None, Some(f)) => {
                let file_key = keys.file_key.as_deref().unwrap_or(&keys.key);
                Some(self.read_file(file_key, &f)?)
            }
            (None, None) => None,
        };
        // A secret given both ways is a mistake: say which two to choose from.
        match (from_config, self.credential(keys)?) {
            (Some(_), Some(_)) => Err(invalid(
                &keys.key,
                format!(
                    "is also given as the systemd credential {:?}; keep only one of them",
                    keys.credential
                ),
            )),
            (a, b) => Ok(a.or(b)),
        }
    }

    fn read_file(&self, key: &str, file: &Path) -> Result<Secret, ConfigError> {
        let file = self.source.base.join(file);
        let text = std::fs::read_to_string(&file).map_err(|e| {
            self.source
                .invalid(key, format!("cannot read {}: {e}", file.display()))
        })?;
        let text = text.trim();
        if text.is_empty() {
            return Err(self
                .source
                .invalid(key, format!("{} is empty", file.display())));
        }
        Ok(Secret::new(text))
    }

    fn credential(&self, keys: &SecretKeys) -> Result<Option<Secret>, ConfigError> {
        let Some(dir) = &self.credentials else {
            return Ok(None);
        };
        let file = dir.join(&keys.credential);
        match std::fs::read_to_string(&file) {
            Ok(text) if text.trim().is_empty() => Err(self.source.invalid(
                &keys.key,
                format!("the systemd credential {} is empty", file.display()),
            )),
            Ok(text) => Ok(Some(Secret::new(text.trim()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.source.invalid(
                &keys.key,
                format!("cannot read the systemd credential {}: {e}", file.display()),
            )),
        }
    }
}
