//! The on-disk cache of Last.fm read replies: a sled database of its own
//! (`<state_dir>/cache`, apart from the daemon's queue), keyed by method and
//! normalised parameters, with a time-to-live and a bound on its size.
//!
//! sled lets one process open a database; a second command running at the
//! same moment waits briefly for it and otherwise goes on without a cache.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::unix_now;

/// How long a second command waits for the cache held by another.
const LOCK_WAIT: Duration = Duration::from_secs(3);

#[derive(Serialize, Deserialize)]
struct Entry {
    at: u64,
    body: Value,
}

/// A cached reply.
#[derive(Debug, Clone)]
pub(crate) struct Hit {
    /// The reply.
    pub body: Value,
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

    /// The entry for `key`, fresh or not.
    pub(crate) fn get(&self, key: &str) -> Option<Hit> {
        let raw = self.db.as_ref()?.get(key).ok()??;
        let entry: Entry = serde_json::from_slice(&raw).ok()?;
        let age = Duration::from_secs(unix_now().saturating_sub(entry.at));
        Some(Hit {
            body: entry.body,
            age,
            expired: age >= self.ttl,
        })
    }

    /// Store a reply, evicting the oldest entries beyond the size bound.
    pub(crate) fn put(&self, key: &str, body: &Value) {
        let Some(db) = &self.db else { return };
        let entry = serde_json::to_vec(&Entry {
            at: unix_now(),
            body: body.clone(),
        })
        .expect("JSON values serialise");
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
                    let at = serde_json::from_slice::<Entry>(&v).map_or(0, |e| e.at);
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
    use serde_json::json;

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
        cache.put("a", &json!({"n": 1}));
        let hit = cache.get("a").unwrap();
        assert_eq!(hit.body["n"], 1);
        assert!(!hit.expired);
        for k in ["b", "c", "d"] {
            cache.put(k, &json!({}));
        }
        assert_eq!(cache.db.as_ref().unwrap().len(), 3, "bounded");
        drop(cache);
        let cache = Cache::open(dir.path(), Duration::ZERO, 3);
        assert!(cache.get("d").unwrap().expired);
    }

    #[test]
    fn a_busy_cache_is_skipped_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Cache::open(dir.path(), Duration::from_secs(60), 10);
        let started = Instant::now();
        let second = Cache::open(dir.path(), Duration::from_secs(60), 10);
        assert!(second.db.is_none());
        assert!(started.elapsed() >= LOCK_WAIT);
        second.put("x", &json!(1));
        assert!(second.get("x").is_none());
    }
}
