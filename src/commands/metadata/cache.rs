//! The on-disk cache of Last.fm read replies: a sled database of its own
//! (`<state_dir>/cache`, apart from the daemon's queue), keyed by method and
//! normalised parameters, with a time-to-live and a bound on its size.
//!
//! sled lets one process open a database; a second command running at the
//! same moment waits briefly for it and otherwise goes on without a cache.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};

use crate::json::Obj;

use crate::model::unix_now;

/// How long a second command waits for the cache held by another.
const LOCK_WAIT: Duration = Duration::from_secs(3);

/// An entry as stored: `{"at": <Unix seconds>, "body": <the reply's JSON>}`.
/// [`Cache::put`] writes the reply's body as it came, so every release
/// reads every other's entries.
#[derive(Deserialize)]
struct Entry<T> {
    at: u64,
    body: T,
}

/// A cached reply.
#[derive(Debug)]
pub(crate) struct Hit<T> {
    /// The reply.
    pub body: T,
    /// How old it is.
    pub age: Duration,
    /// Whether it is older than the time-to-live.
    pub expired: bool,
}

/// The cache; a no-op when the database could not be opened.
#[derive(Debug)]
pub(crate) struct Cache {
    db: Option<sled::Db>,
    ttl: Duration,
    max_entries: usize,
}

impl Cache {
    /// Open the cache under `state_dir`.
    pub(crate) fn open(state_dir: &Path, ttl: Duration, max_entries: usize) -> Cache {
        let path = state_dir.join("cache");
        let started = Instant::now();
        // Before sled, which would create it with the umask's mode.
        let private = crate::session::ensure_state_dir(state_dir);
        let db = loop {
            if let Err(e) = &private {
                tracing::warn!(
                    "cannot create the state directory {}: {e}; going on without the cache",
                    state_dir.display()
                );
                break None;
            }
            match sled::Config::new()
                .path(&path)
                .cache_capacity(1 << 20)
                .flush_every_ms(None)
                .open()
            {
                Ok(db) => break Some(db),
                Err(e) if e.to_string().contains("could not acquire lock") => {
                    if started.elapsed() > LOCK_WAIT {
                        tracing::warn!("the cache is busy in another command; going on without it");
                        break None;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => {
                    tracing::warn!(
                        "cannot open the cache {}: {e}; going on without it",
                        path.display()
                    );
                    break None;
                }
            }
        };
        Cache {
            db,
            ttl,
            max_entries,
        }
    }

    /// The entry for `key`, fresh or not, read as `T`; `None` also when it
    /// cannot be read (a damaged entry is a miss, not an error).
    pub(crate) fn get<T: DeserializeOwned>(&self, key: &str) -> Option<Hit<T>> {
        let raw = self.db.as_ref()?.get(key).ok()??;
        let entry: Entry<Obj<T>> = serde_json::from_slice(&raw).ok()?;
        let age = Duration::from_secs(unix_now().saturating_sub(entry.at));
        Some(Hit {
            body: entry.body.0?,
            age,
            expired: age >= self.ttl,
        })
    }

    /// Store the body of a reply, evicting the oldest entries beyond the
    /// size bound. A body that is not JSON is not stored.
    pub(crate) fn put(&self, key: &str, body: &[u8]) {
        let Some(db) = &self.db else { return };
        if serde_json::from_slice::<IgnoredAny>(body).is_err() {
            tracing::debug!("not caching a reply that is not JSON");
            return;
        }
        // The body goes in as it came rather than re-serialised: it is
        // JSON (checked above), so the entry is too.
        let mut entry = format!(r#"{{"at":{},"body":"#, unix_now()).into_bytes();
        entry.extend_from_slice(body);
        entry.push(b'}');
        if let Err(e) = db.insert(key, entry) {
            tracing::warn!("cannot write the cache: {e}");
            return;
        }
        let excess = db.len().saturating_sub(self.max_entries);
        if excess > 0 {
            let mut ages: Vec<(u64, sled::IVec)> = db
                .iter()
                .flatten()
                .map(|(k, v)| {
                    let at = serde_json::from_slice::<Entry<IgnoredAny>>(&v).map_or(0, |e| e.at);
                    (at, k)
                })
                .collect();
            ages.sort_by_key(|(at, _)| *at);
            for (_, k) in ages.into_iter().take(excess) {
                let _ = db.remove(k);
            }
        }
        let _ = db.flush();
    }
}

/// The cache key of a call: the method and its parameters, with names
/// lower-cased and whitespace collapsed so "Sigur  rós" and "sigur Rós" meet.
pub(crate) fn key(method: &str, params: &[(&str, String)]) -> String {
    let mut parts: Vec<String> = params
        .iter()
        .map(|(k, v)| {
            let v = v
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_lowercase();
            format!("{k}={v}")
        })
        .collect();
    parts.sort();
    format!("{}?{}", method.to_lowercase(), parts.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default)]
    struct Reply {
        n: crate::json::Number,
    }

    fn n(hit: Option<Hit<Reply>>) -> Option<u64> {
        hit.and_then(|h| h.body.n.0)
    }

    #[test]
    fn keys_are_normalised() {
        assert_eq!(
            key("artist.getInfo", &[("artist", " Sigur  Rós ".into())]),
            key("ARTIST.GETINFO", &[("artist", "sigur rós".into())])
        );
        assert_ne!(
            key("artist.getInfo", &[("artist", "a".into())]),
            key("artist.getInfo", &[("artist", "b".into())])
        );
    }

    #[test]
    fn hit_expiry_and_eviction() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), Duration::from_secs(3600), 3);
        cache.put("a", br#" {"n": 1}"#);
        let hit = cache.get::<Reply>("a").unwrap();
        assert_eq!(hit.body.n.0, Some(1));
        assert!(!hit.expired);
        for k in ["b", "c", "d"] {
            cache.put(k, b"{}");
        }
        assert_eq!(cache.db.as_ref().unwrap().len(), 3, "bounded");
        drop(cache);
        let cache = Cache::open(dir.path(), Duration::ZERO, 3);
        assert!(cache.get::<Reply>("d").unwrap().expired);
    }

    #[test]
    fn a_busy_cache_is_skipped_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Cache::open(dir.path(), Duration::from_secs(60), 10);
        let started = Instant::now();
        let second = Cache::open(dir.path(), Duration::from_secs(60), 10);
        assert!(second.db.is_none());
        assert!(started.elapsed() >= LOCK_WAIT);
        second.put("x", b"{}");
        assert!(second.get::<Reply>("x").is_none());
    }

    #[test]
    fn entries_of_the_release_that_stored_json_values_are_still_served() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), Duration::from_secs(3600), 10);
        // As the release before stored it: an Entry {at, body: Value} put
        // through serde_json::to_vec (keys sorted, no spaces).
        let at = unix_now() - 60;
        let old = format!(
            r##"{{"at":{at},"body":{{"artist":{{"bio":{{"summary":"Cher."}},"image":[{{"#text":"s.png","size":"small"}}],"name":"Cher","stats":{{"listeners":"5","playcount":7}}}}}}}}"##
        );
        cache
            .db
            .as_ref()
            .unwrap()
            .insert("old", old.as_bytes())
            .unwrap();
        let hit = cache
            .get::<crate::commands::metadata::info::ArtistReply>("old")
            .unwrap();
        assert!(!hit.expired && hit.age >= Duration::from_secs(60));
        let a = crate::commands::metadata::info::artist(hit.body, false).unwrap();
        assert_eq!(a.name, "Cher");
        assert_eq!((a.listeners, a.playcount), (Some(5), Some(7)));
        assert_eq!(a.image.as_deref(), Some("s.png"));
        assert_eq!(a.bio, "Cher.");
        // And what this release stores is the same shape, readable by it.
        cache.put("new", br#"{"n": "3"}"#);
        let raw = cache.db.as_ref().unwrap().get("new").unwrap().unwrap();
        let raw = std::str::from_utf8(&raw).unwrap();
        assert!(
            raw.starts_with(r#"{"at":"#) && raw.ends_with(r#","body":{"n": "3"}}"#),
            "{raw}"
        );
        assert_eq!(n(cache.get("new")), Some(3));
    }

    #[test]
    fn damaged_entries_and_bodies_that_are_not_json_are_misses() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), Duration::from_secs(3600), 10);
        cache.put("html", b"<html>");
        assert!(cache.db.as_ref().unwrap().get("html").unwrap().is_none());
        let db = cache.db.as_ref().unwrap();
        for (key, raw) in [
            ("cut", &br#"{"at":1,"body":{"n":"#[..]),
            ("list", br#"{"at":1,"body":[1]}"#),
            ("twice", br#"{"at":1,"body":{"n":1,"n":2}}"#),
        ] {
            db.insert(key, raw).unwrap();
            assert_eq!(n(cache.get(key)), None, "{key}");
            assert!(cache.get::<Reply>(key).is_none(), "{key}");
        }
    }
}
