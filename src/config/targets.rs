//! The `[lastfm]` and `[listenbrainz]` sections, one table or an array of
//! tables each: names unique across both kinds, URLs, and each target's
//! secrets through the one resolver.

use super::raw::{OneOrMany, RawLastFm, RawListenBrainz};
use super::secret::{SecretKeys, Secrets, Written};
use super::{ConfigError, Secret, Source};
use crate::targets::listenbrainz::{self, Flavor};

/// One Last.fm-style target (Last.fm, Libre.fm, another Audioscrobbler 2.0 server).
#[derive(Debug, Clone)]
pub(crate) struct LastFmTarget {
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

/// One ListenBrainz-compatible target (ListenBrainz, Maloja, ...).
#[derive(Debug, Clone)]
pub(crate) struct ListenBrainzTarget {
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
pub(crate) trait Named {
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

/// Checks shared by the targets of both kinds.
pub(super) struct Targets<'a> {
    source: &'a Source<'a>,
    secrets: &'a Secrets<'a>,
    /// Names taken so far, by either kind.
    names: Vec<String>,
}

impl<'a> Targets<'a> {
    pub(super) fn new(source: &'a Source<'a>, secrets: &'a Secrets<'a>) -> Self {
        Targets {
            source,
            secrets,
            names: Vec::new(),
        }
    }

    /// The `[lastfm]` or `[[lastfm]]` sections.
    pub(super) fn lastfm(
        &mut self,
        raw: Option<OneOrMany<RawLastFm>>,
    ) -> Result<Vec<LastFmTarget>, ConfigError> {
        let sections = raw.map(OneOrMany::into_vec).unwrap_or_default();
        let n = sections.len();
        let mut targets = Vec::new();
        for (i, t) in sections.into_iter().enumerate() {
            let prefix = prefix("lastfm", i, n);
            let key = |k: &str| format!("{prefix}.{k}");
            let name = self.check_name(&key("name"), t.name.unwrap_or_else(|| "lastfm".into()))?;
            let url = self.check_url(
                &key("url"),
                t.url
                    .unwrap_or_else(|| crate::targets::lastfm::LASTFM_API_URL.into()),
            )?;
            let api_key = t.api_key.filter(|k| !k.trim().is_empty()).ok_or_else(|| {
                self.source.invalid(
                    &key("api_key"),
                    "is required (get one at https://www.last.fm/api/account/create)".into(),
                )
            })?;
            let api_secret = SecretKeys {
                key: key("api_secret"),
                file_key: Some(key("api_secret_file")),
                credential: format!("{name}.api_secret"),
                written: Written::Trimmed,
            };
            let api_secret = self
                .secrets
                .resolve(&api_secret, t.api_secret, t.api_secret_file)?
                .ok_or_else(|| {
                    self.source.invalid(
                        &key("api_secret"),
                        format!(
                            "is required (or api_secret_file, or the systemd credential \"{name}.api_secret\")"
                        ),
                    )
                })?;
            check_shape(
                self.source,
                &key("api_key"),
                &api_key,
                Some(&url),
                "API key",
            )?;
            // Only the placeholder: a secret's shape is Last.fm's to judge
            // (error 13, which `check` and `auth` explain).
            check_shape(
                self.source,
                &key("api_secret"),
                api_secret.expose(),
                None,
                "shared secret",
            )?;
            let session_key = SecretKeys {
                key: key("session_key"),
                file_key: None,
                credential: format!("{name}.session_key"),
                written: Written::EmptyIsUnset,
            };
            let session_key = self.secrets.resolve(&session_key, t.session_key, None)?;
            targets.push(LastFmTarget {
                name,
                url,
                api_key: api_key.trim().to_owned(),
                api_secret,
                session_key,
            });
        }
        Ok(targets)
    }

    /// The `[listenbrainz]` or `[[listenbrainz]]` sections.
    pub(super) fn listenbrainz(
        &mut self,
        raw: Option<OneOrMany<RawListenBrainz>>,
    ) -> Result<Vec<ListenBrainzTarget>, ConfigError> {
        let sections = raw.map(OneOrMany::into_vec).unwrap_or_default();
        let n = sections.len();
        let mut targets = Vec::new();
        for (i, t) in sections.into_iter().enumerate() {
            let prefix = prefix("listenbrainz", i, n);
            let key = |k: &str| format!("{prefix}.{k}");
            let name = self.check_name(
                &key("name"),
                t.name.unwrap_or_else(|| "listenbrainz".into()),
            )?;
            let url = self.check_url(
                &key("url"),
                t.url.unwrap_or_else(|| listenbrainz::DEFAULT_URL.into()),
            )?;
            let flavor = match t.server.as_deref() {
                Some("listenbrainz") => Flavor::ListenBrainz,
                Some("maloja") => Flavor::Maloja,
                Some(other) => {
                    return Err(self.source.invalid(
                        &key("server"),
                        format!("{other:?} is not \"listenbrainz\" or \"maloja\""),
                    ));
                }
                // Maloja serves the protocol under this path (docs/protocols.md, "Maloja").
                None if url.trim_end_matches('/').ends_with("/apis/listenbrainz") => Flavor::Maloja,
                None => Flavor::ListenBrainz,
            };
            let token = SecretKeys {
                key: key("token"),
                file_key: Some(key("token_file")),
                credential: format!("{name}.token"),
                written: Written::Trimmed,
            };
            let token = self.secrets.resolve(&token, t.token, t.token_file)?;
            targets.push(ListenBrainzTarget {
                name,
                url,
                flavor,
                token,
            });
        }
        Ok(targets)
    }

    fn check_name(&mut self, key: &str, name: String) -> Result<String, ConfigError> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(self
                .source
                .invalid(key, format!("{name:?} must be letters, digits, '-' or '_'")));
        }
        if self.names.contains(&name) {
            return Err(self.source.invalid(
                key,
                format!("another target is already named {name:?}; give each a distinct name"),
            ));
        }
        self.names.push(name.clone());
        Ok(name)
    }

    fn check_url(&self, key: &str, url: String) -> Result<String, ConfigError> {
        if url.starts_with("https://") || url.starts_with("http://") {
            Ok(url)
        } else {
            Err(self
                .source
                .invalid(key, format!("{url:?} is not an http:// or https:// URL")))
        }
    }
}

/// What `config.toml.example` and the README put where a key or a secret
/// goes: a copy with these left in is refused here, not by the server.
const PLACEHOLDERS: [&str; 3] = [
    "your 32-character API key",
    "your 32-character shared secret",
    "...",
];

/// Refuse a placeholder anywhere, and with the `url` of Last.fm's own host
/// anything but the 32 hexadecimal characters Last.fm issues (Libre.fm and
/// others take any string). The value itself is never shown: the secret is
/// a secret, and a mistyped key may be one pasted into the wrong line.
fn check_shape(
    source: &Source<'_>,
    key: &str,
    value: &str,
    url: Option<&str>,
    what: &str,
) -> Result<(), ConfigError> {
    let value = value.trim();
    if PLACEHOLDERS.contains(&value) {
        return Err(source.invalid(
            key,
            format!(
                "is still the example's placeholder: put your {what} here (from \
                 https://www.last.fm/api/account/create, listed at https://www.last.fm/api/accounts)"
            ),
        ));
    }
    let lastfm_host = url
        .and_then(|u| u.split_once("://"))
        .map(|(_, rest)| rest.split(['/', ':']).next().unwrap_or_default())
        .is_some_and(|host| host.eq_ignore_ascii_case("ws.audioscrobbler.com"));
    if lastfm_host && (value.len() != 32 || !value.bytes().all(|b| b.is_ascii_hexdigit())) {
        return Err(source.invalid(
            key,
            format!(
                "is not a Last.fm {what}: those are 32 hexadecimal characters (this one has {} \
                 characters); copy it from https://www.last.fm/api/accounts",
                value.chars().count()
            ),
        ));
    }
    Ok(())
}

/// `lastfm[1]` when there are several sections of a kind, else `lastfm`.
fn prefix(section: &str, i: usize, n: usize) -> String {
    if n > 1 {
        format!("{section}[{i}]")
    } else {
        section.to_owned()
    }
}
