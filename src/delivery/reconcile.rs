//! Exactly once where the server can be asked: settling a request whose
//! outcome is unknown (a timeout, a connection reset after sending, a crash
//! mid-request) by reading back what the server stored before resending.
//!
//! The flusher records each request in the queue before sending it
//! ([`crate::queue::InFlight`]). A record still there when no answer came is
//! settled here: once the request timeout has passed since the send (a slow
//! server may still store a request the client gave up on), the server is
//! asked for the listens between the batch's first and last start time; what
//! is there leaves the queue, the rest stays to be sent again. An item not
//! found is resent, so nothing can be lost. A server that cannot be asked
//! (Maloja, a private profile) gets the whole batch again: at least once.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::model::Listen;
use crate::queue::{InFlight, Key, QueueError};
use crate::store::Store;
use crate::targets::{ErrorKind, Failure, Heard, Target};

/// How long to wait before asking about a request sent at `sent_at_ms`:
/// until `timeout` has passed since the send. Never more than `timeout`, so
/// a clock set back cannot stall delivery.
pub(crate) fn ask_after(sent_at_ms: u64, now_ms: u64, timeout: Duration) -> Duration {
    let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
    let due = sent_at_ms.saturating_add(timeout_ms);
    Duration::from_millis(due.saturating_sub(now_ms).min(timeout_ms))
}

/// Wait until a request sent at `sent_at_ms` may be asked about; `false`
/// when shutdown came first.
pub(crate) async fn wait_to_ask(
    sent_at_ms: u64,
    timeout: Duration,
    shutdown: &CancellationToken,
) -> bool {
    let wait = ask_after(sent_at_ms, crate::model::unix_now_ms(), timeout);
    if wait.is_zero() {
        return !shutdown.is_cancelled();
    }
    tokio::select! {
        () = tokio::time::sleep(wait) => true,
        () = shutdown.cancelled() => false,
    }
}

/// A name reduced to what survives the server's corrections: lower case,
/// Latin diacritics folded, "feat." credits and a leading "The" dropped,
/// "&" read as "and", and only letters and digits kept.
pub(crate) fn loose(name: &str) -> String {
    let lower = name.to_lowercase();
    let mut cut = lower.len();
    for marker in [
        " feat.",
        " feat ",
        " ft.",
        " featuring ",
        "(feat",
        "[feat",
        "(ft.",
        "[ft.",
    ] {
        if let Some(i) = lower.find(marker) {
            cut = cut.min(i);
        }
    }
    let kept = lower[..cut].replace('&', " and ");
    let kept = kept.trim_start();
    let kept = kept.strip_prefix("the ").unwrap_or(kept);
    let mut out = String::with_capacity(kept.len());
    for c in kept.chars() {
        match fold(c) {
            Some(s) => out.push_str(s),
            None if c.is_alphanumeric() => out.push(c),
            None => {}
        }
    }
    out
}

/// The base letters of a lower-case Latin letter with a diacritic.
fn fold(c: char) -> Option<&'static str> {
    Some(match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => "a",
        'ç' | 'ć' | 'č' => "c",
        'ď' | 'đ' | 'ð' => "d",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ė' | 'ę' | 'ě' => "e",
        'ğ' => "g",
        'ì' | 'í' | 'î' | 'ï' | 'ī' | 'į' | 'ı' => "i",
        'ł' => "l",
        'ñ' | 'ń' | 'ň' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => "o",
        'ř' => "r",
        'ś' | 'š' | 'ş' => "s",
        'ť' | 'ţ' => "t",
        'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' => "u",
        'ý' | 'ÿ' => "y",
        'ź' | 'ż' | 'ž' => "z",
        'ß' => "ss",
        'æ' => "ae",
        'œ' => "oe",
        'þ' => "th",
        _ => return None,
    })
}

/// Whether two names are the same once the server's corrections are
/// allowed for.
pub(crate) fn same_name(a: &str, b: &str) -> bool {
    let (a, b) = (loose(a), loose(b));
    // A name made only of punctuation reduces to nothing; compare it as is.
    !a.is_empty() && a == b
}

/// The keys of the items of `batch` that `heard` shows the server has. An
/// item matches a listen that started in the same second when its artist or
/// its title is the same (the server may correct one of them); each listen
/// heard accounts for one item at most.
pub(crate) fn present(batch: &[(Key, Listen)], heard: &[Heard]) -> Vec<Key> {
    let mut used = vec![false; heard.len()];
    let mut found = Vec::new();
    for (key, listen) in batch {
        let hit = heard.iter().enumerate().position(|(i, h)| {
            !used[i]
                && h.at == listen.started_at
                && (same_name(&h.artist, &listen.track.artist)
                    || same_name(&h.title, &listen.track.title))
        });
        if let Some(i) = hit {
            used[i] = true;
            found.push(*key);
        }
    }
    found
}

/// What became of an in-flight record.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Settled {
    /// The server was asked: `found` items were there and left the queue,
    /// `missing` stay to be sent again.
    Checked {
        /// Items the server has.
        found: usize,
        /// Items it does not have.
        missing: usize,
    },
    /// The server cannot be asked (why): every item stays to be sent again.
    Unaskable(String),
}

/// Why a record could not be settled now; it stays for another try.
#[derive(Debug)]
pub(crate) enum Error {
    /// Asking failed in a way that may pass (network, server busy), or the
    /// credentials were refused.
    Ask(Failure),
    /// The queue could not be written.
    Queue(QueueError),
}

/// The account name behind a credential, learned from the server once.
#[derive(Debug, Default)]
pub(crate) struct Account {
    /// A hash of the credential (not the credential itself) and the name;
    /// `None` as name when the server has no read method.
    known: std::sync::Mutex<Option<(u64, Option<String>)>>,
}

impl Account {
    async fn name(&self, target: &dyn Target, credential: &str) -> Result<Option<String>, Failure> {
        let mut h = DefaultHasher::new();
        credential.hash(&mut h);
        let id = h.finish();
        if let Some((known, name)) = &*self.known.lock().expect("not poisoned") {
            if *known == id {
                return Ok(name.clone());
            }
        }
        let name = target.account(credential).await?;
        *self.known.lock().expect("not poisoned") = Some((id, name.clone()));
        Ok(name)
    }
}

/// Settle the in-flight record `id`: ask the server what it has of the
/// batch, and remove that from the queue together with the record. The
/// caller waits first ([`wait_to_ask`]).
///
/// # Errors
///
/// [`Error::Ask`] when asking failed for a reason that may pass or the
/// credentials were refused; [`Error::Queue`] when the queue could not be
/// written. The record stays in both cases.
pub(crate) async fn settle(
    target: &dyn Target,
    store: &Store,
    name: &str,
    account: &Account,
    credential: &str,
    id: Key,
    flight: &InFlight,
) -> Result<Settled, Error> {
    let batch = store
        .items(name, flight.keys.clone())
        .await
        .map_err(Error::Queue)?;
    if batch.is_empty() {
        finish(store, name, id, Vec::new()).await?;
        return Ok(Settled::Checked {
            found: 0,
            missing: 0,
        });
    }
    let asked = match account.name(target, credential).await {
        Ok(Some(user)) => {
            target
                .heard(credential, &user, flight.first, flight.last)
                .await
        }
        Ok(None) => Err(Failure {
            kind: ErrorKind::Config,
            message: "the server has no method to read listens back".into(),
            retry_after: None,
            setting: "url",
        }),
        Err(e) => Err(e),
    };
    let heard = match asked {
        Ok(heard) => heard,
        // Refusals that will not pass: this server cannot be asked.
        Err(e)
            if matches!(
                e.kind,
                ErrorKind::Config | ErrorKind::Unsupported | ErrorKind::Rejected
            ) =>
        {
            store
                .clear_in_flight(name, id)
                .await
                .map_err(Error::Queue)?;
            return Ok(Settled::Unaskable(e.message));
        }
        Err(e) => return Err(Error::Ask(e)),
    };
    let found = present(&batch, &heard);
    let (n_found, n_missing) = (found.len(), batch.len() - found.len());
    finish(store, name, id, found).await?;
    Ok(Settled::Checked {
        found: n_found,
        missing: n_missing,
    })
}

/// Remove `found` and the record `id`, in one transaction.
async fn finish(store: &Store, name: &str, id: Key, found: Vec<Key>) -> Result<(), Error> {
    store
        .finish_in_flight(name, id, found, Vec::new())
        .await
        .map_err(Error::Queue)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Track;

    fn item(key: u64, artist: &str, title: &str, at: u64) -> (Key, Listen) {
        (
            key.to_be_bytes(),
            Listen {
                track: Track {
                    artist: artist.into(),
                    title: title.into(),
                    ..Track::default()
                },
                started_at: at,
            },
        )
    }

    fn heard(artist: &str, title: &str, at: u64) -> Heard {
        Heard {
            artist: artist.into(),
            title: title.into(),
            at,
        }
    }

    #[test]
    fn names_compare_loosely() {
        for (a, b) in [
            ("Guns N Roses", "Guns N' Roses"),
            ("The Beatles", "Beatles"),
            ("Beyonce", "Beyoncé"),
            ("  Sigur  Rós ", "sigur ros"),
            ("Simon & Garfunkel", "Simon and Garfunkel"),
            ("Stay (feat. Justin Bieber)", "Stay"),
            ("Kid Laroi ft. Justin Bieber", "Kid LAROI"),
            ("Daft Punk featuring Pharrell", "Daft Punk"),
            ("T.N.T.", "TNT"),
            ("日本語のアーティスト", "日本語のアーティスト"),
        ] {
            assert!(same_name(a, b), "{a:?} ~ {b:?}");
        }
        for (a, b) in [
            ("Karma Police", "Paranoid Android"),
            ("Theme", "Them"),
            ("...", "!!!"),
            ("", ""),
        ] {
            assert!(!same_name(a, b), "{a:?} !~ {b:?}");
        }
    }

    #[test]
    fn present_matches_on_the_second_and_a_loose_name() {
        let batch = [
            item(1, "Sigur Rós", "Hoppípolla", 100),
            item(2, "AC/DC", "T.N.T.", 200),
            item(3, "Radiohead", "Karma Police", 300),
            item(4, "Portishead", "Glory Box", 400),
        ];
        let heard = [
            // Corrected artist, same title and second.
            heard("Sigur Ros", "Hoppipolla", 100),
            // Same names, another second: a different play.
            heard("AC/DC", "T.N.T.", 201),
            // The same second, another track entirely (another scrobbler).
            heard("Muse", "Uprising", 300),
            // Title corrected, artist the same.
            heard("Portishead", "Glory Box (Live)", 400),
        ];
        assert_eq!(
            present(&batch, &heard),
            vec![1u64.to_be_bytes(), 4u64.to_be_bytes()]
        );
        assert!(present(&batch, &[]).is_empty(), "nothing heard: all resent");
    }

    #[test]
    fn one_listen_heard_accounts_for_one_item() {
        let batch = [item(1, "A", "T", 100), item(2, "A", "T", 100)];
        assert_eq!(present(&batch, &[heard("A", "T", 100)]).len(), 1);
    }

    #[test]
    fn ask_only_once_the_timeout_has_passed_since_the_send() {
        let t = Duration::from_secs(30);
        let sent = 1_700_000_000_000;
        assert_eq!(ask_after(sent, sent, t), t);
        assert_eq!(
            ask_after(sent, sent + 12_500, t),
            Duration::from_millis(17_500)
        );
        assert_eq!(ask_after(sent, sent + 30_000, t), Duration::ZERO);
        assert_eq!(ask_after(sent, sent + 90_000, t), Duration::ZERO);
        // The clock went back an hour: wait the timeout, not an hour.
        assert_eq!(ask_after(sent, sent - 3_600_000, t), t);
    }

    #[tokio::test(start_paused = true)]
    async fn the_wait_lasts_the_remainder_and_ends_at_shutdown() {
        let shutdown = CancellationToken::new();
        let timeout = Duration::from_secs(30);
        let sent = crate::model::unix_now_ms() - 10_000;
        let start = tokio::time::Instant::now();
        assert!(wait_to_ask(sent, timeout, &shutdown).await);
        let waited = start.elapsed();
        // Paused time: the sleep is exact, the wall-clock reading is not.
        assert!(
            waited >= Duration::from_secs(19) && waited <= Duration::from_secs(20),
            "{waited:?}"
        );

        let waiting = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { wait_to_ask(crate::model::unix_now_ms(), timeout, &shutdown).await }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!waiting.is_finished());
        shutdown.cancel();
        assert!(!waiting.await.unwrap(), "shutdown ends the wait");
        assert!(!wait_to_ask(0, timeout, &shutdown).await);
    }
}
