//! One page of `GET /1/user/{user}/listens` read into plays, for `import
//! listenbrainz --user` (docs/protocols.md, "Read methods"): typed and lenient, because the
//! reply comes from outside. Nothing in it can panic the reader; listens
//! that cannot be read are counted.

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::Error;
use crate::model::{Listen, Track};

/// Listens asked for per page: the server's cap (`MAX_ITEMS_PER_GET`,
/// 1000 since 2023, 100 before); it caps silently, never lower than 100.
pub(crate) const PAGE_SIZE: u32 = 1000;

/// A page shorter than this is the last one, whatever the server's cap.
pub(crate) const MIN_FULL_PAGE: usize = 100;

/// Largest page read: 1000 listens with their full metadata and mapping
/// run to about 2 MB.
pub(super) const MAX_PAGE_BYTES: usize = 8 << 20;

/// One page of a user's listens, newest first.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ListensPage {
    /// The readable listens, newest first.
    pub plays: Vec<Listen>,
    /// The oldest `listened_at` on the page, unreadable listens included.
    pub oldest: Option<u64>,
    /// Listens on the page (readable or not).
    pub count: usize,
    /// Listens with a time but no artist or title.
    pub unreadable: usize,
    /// The user's oldest listen (`oldest_listen_ts`), for the progress.
    pub user_oldest: Option<u64>,
}

#[derive(Deserialize)]
struct Reply {
    payload: Option<Lenient<Payload>>,
}

#[derive(Deserialize)]
struct Payload {
    oldest_listen_ts: Option<Lenient<u64>>,
    listens: Option<Lenient<Vec<Lenient<RawListen>>>>,
}

#[derive(Deserialize)]
struct RawListen {
    listened_at: Option<Lenient<u64>>,
    track_metadata: Option<Lenient<Metadata>>,
}

#[derive(Deserialize)]
struct Metadata {
    artist_name: Option<Lenient<String>>,
    track_name: Option<Lenient<String>>,
    release_name: Option<Lenient<String>>,
    additional_info: Option<Lenient<Info>>,
}

#[derive(Deserialize)]
struct Info {
    duration_ms: Option<Lenient<u64>>,
    duration: Option<Lenient<u64>>,
    recording_mbid: Option<Lenient<String>>,
    release_mbid: Option<Lenient<String>>,
}

/// A value of the expected shape, or anything else (ignored).
#[derive(Deserialize)]
#[serde(untagged)]
enum Lenient<T> {
    Good(T),
    Other(IgnoredAny),
}

fn good<T>(v: Option<Lenient<T>>) -> Option<T> {
    match v? {
        Lenient::Good(t) => Some(t),
        Lenient::Other(_) => None,
    }
}

fn text(v: Option<Lenient<String>>) -> Option<String> {
    let s = good(v)?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

fn mbid(v: Option<Lenient<String>>) -> Option<String> {
    text(v).filter(|m| crate::model::is_uuid(m))
}

/// Reads a successful reply's body.
///
/// # Errors
///
/// [`Error::Malformed`] when the body is not JSON or has no
/// `payload.listens` array.
pub(super) fn listens_page(body: &[u8]) -> Result<ListensPage, Error> {
    let reply: Reply = serde_json::from_slice(body)
        .map_err(|e| Error::Malformed(format!("listens reply: {e}")))?;
    let payload = good(reply.payload);
    let (user_oldest, listens) = match payload {
        Some(p) => (good(p.oldest_listen_ts), good(p.listens)),
        None => (None, None),
    };
    let listens =
        listens.ok_or_else(|| Error::Malformed("listens reply has no payload.listens".into()))?;
    let mut page = ListensPage {
        count: listens.len(),
        user_oldest,
        ..ListensPage::default()
    };
    for listen in listens {
        let Lenient::Good(listen) = listen else {
            page.unreadable += 1;
            continue;
        };
        let Some(at) = good(listen.listened_at) else {
            page.unreadable += 1;
            continue;
        };
        page.oldest = Some(page.oldest.map_or(at, |o| o.min(at)));
        let meta = good(listen.track_metadata);
        let Some(meta) = meta else {
            page.unreadable += 1;
            continue;
        };
        let (Some(artist), Some(title)) = (text(meta.artist_name), text(meta.track_name)) else {
            page.unreadable += 1;
            continue;
        };
        let info = good(meta.additional_info);
        let (duration_secs, recording_mbid, release_mbid) = match info {
            Some(i) => (
                good(i.duration_ms)
                    .map(|ms| ms / 1000)
                    .or(good(i.duration))
                    .filter(|d| *d > 0),
                mbid(i.recording_mbid),
                mbid(i.release_mbid),
            ),
            None => (None, None, None),
        };
        page.plays.push(Listen {
            track: Track {
                artist,
                title,
                album: text(meta.release_name),
                duration_secs,
                recording_mbid,
                release_mbid,
                ..Track::default()
            },
            started_at: at,
        });
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_read_newest_first_with_its_metadata() {
        let page = listens_page(
            br#"{"payload":{"count":2,"user_id":"alice","latest_listen_ts":20,"oldest_listen_ts":3,"listens":[
              {"listened_at":20,"inserted_at":21,"recording_msid":"x","user_name":"alice",
               "track_metadata":{"artist_name":"Cher","track_name":"Believe","release_name":"Believe",
                 "additional_info":{"duration_ms":239000,
                   "recording_mbid":"0a0b0c0d-0000-4000-8000-000000000000"}}},
              {"listened_at":10,"track_metadata":{"artist_name":"A","track_name":"T",
                 "additional_info":{"duration":100,"recording_mbid":"nope"}}}]}}"#,
        )
        .unwrap();
        assert_eq!(page.count, 2);
        assert_eq!(page.user_oldest, Some(3));
        assert_eq!(page.oldest, Some(10));
        assert_eq!(page.plays[0].started_at, 20);
        assert_eq!(page.plays[0].track.duration_secs, Some(239));
        assert_eq!(page.plays[0].track.album.as_deref(), Some("Believe"));
        assert!(page.plays[0].track.recording_mbid.is_some());
        assert_eq!(page.plays[1].track.duration_secs, Some(100));
        assert_eq!(page.plays[1].track.recording_mbid, None);
    }

    #[test]
    fn hostile_replies_are_errors_or_counted_never_a_panic() {
        for body in [
            &b"<html>"[..],
            b"{}",
            b"[]",
            br#"{"payload":[]}"#,
            br#"{"payload":{"listens":{}}}"#,
        ] {
            assert!(
                listens_page(body).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let odd = listens_page(
            br#"{"payload":{"listens":[1, null, {}, {"listened_at":-5},
              {"listened_at":"7","track_metadata":{"artist_name":"A","track_name":"T"}},
              {"listened_at":8,"track_metadata":"x"},
              {"listened_at":9,"track_metadata":{"artist_name":" ","track_name":"T"}},
              {"listened_at":11,"track_metadata":{"artist_name":"A","track_name":"T",
                "additional_info":{"duration_ms":-1,"recording_mbid":5}}}]}}"#,
        )
        .unwrap();
        assert_eq!(odd.count, 8);
        assert_eq!(odd.unreadable, 7);
        assert_eq!(odd.oldest, Some(8));
        assert_eq!(odd.plays.len(), 1);
        assert_eq!(odd.plays[0].track.duration_secs, None);
    }
}
