//! The config file as written: serde types that mirror its sections and
//! refuse unknown keys, before any value is checked.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

use crate::rules::RawRule;
use crate::rules::stream::RawStreams;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) state_dir: Option<PathBuf>,
    #[serde(default)]
    pub(super) mpd: RawMpd,
    #[serde(default)]
    pub(super) scrobble: RawScrobble,
    #[serde(default)]
    pub(super) delivery: RawDelivery,
    pub(super) lastfm: Option<OneOrMany<RawLastFm>>,
    pub(super) listenbrainz: Option<OneOrMany<RawListenBrainz>>,
    #[serde(default)]
    pub(super) cache: RawCache,
    #[serde(default)]
    pub(super) history: RawHistory,
    #[serde(default)]
    pub(super) streams: RawStreams,
    #[serde(default)]
    pub(super) rule: Vec<RawRule>,
    #[serde(default)]
    pub(super) notify: Vec<super::notify::RawNotify>,
    #[serde(default)]
    pub(super) metrics: super::notify::RawMetrics,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHistory {
    pub(super) enabled: Option<bool>,
    pub(super) keep: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCache {
    pub(super) ttl: Option<String>,
    pub(super) max_entries: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawListenBrainz {
    pub(super) name: Option<String>,
    pub(super) url: Option<String>,
    pub(super) server: Option<String>,
    pub(super) token: Option<String>,
    pub(super) token_file: Option<PathBuf>,
}

#[derive(Debug)]
pub(super) enum OneOrMany<T> {
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
    pub(super) fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(t) => vec![t],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMpd {
    pub(super) host: Option<String>,
    pub(super) port: Option<u16>,
    pub(super) password: Option<String>,
    pub(super) password_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScrobble {
    pub(super) min_track_secs: Option<u64>,
    pub(super) played_percent: Option<u8>,
    pub(super) max_required_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDelivery {
    pub(super) retry_min: Option<String>,
    pub(super) retry_max: Option<String>,
    pub(super) request_timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLastFm {
    pub(super) name: Option<String>,
    pub(super) url: Option<String>,
    pub(super) api_key: Option<String>,
    pub(super) api_secret: Option<String>,
    pub(super) api_secret_file: Option<PathBuf>,
    pub(super) session_key: Option<String>,
}
