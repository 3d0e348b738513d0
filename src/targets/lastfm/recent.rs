//! One page of `user.getRecentTracks` read into plays, for `import lastfm`
//! (docs/protocols.md, "Read methods"): typed and lenient, because the reply comes from
//! outside. A list may be an array, one bare object or `""`; text may be
//! plain or under `#text` (`name` with `extended=1`); numbers may be strings.
//! Nothing in a reply can panic the reader: what cannot be read is counted.

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::Error;
use crate::model::{Listen, Track};

/// Plays per page: the most `user.getRecentTracks` documents.
pub(crate) const PAGE_SIZE: u32 = 200;

/// One page of a user's scrobbles, newest first.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct RecentPage {
    /// The dated scrobbles on the page, newest first.
    pub plays: Vec<Listen>,
    /// The oldest start time on the page, unreadable entries included.
    pub oldest: Option<u64>,
    /// Entries that carried a time but no artist or title.
    pub unreadable: usize,
    /// Whether the page held the track playing now (not a scrobble).
    pub now_playing: bool,
    /// Scrobbles in the whole window asked for (`@attr.total`).
    pub total: Option<u64>,
    /// Pages of the window (`@attr.totalPages`); 1 when not said.
    pub total_pages: u64,
}

#[derive(Deserialize)]
struct Reply {
    recenttracks: Option<Lenient<Recent>>,
}

#[derive(Deserialize)]
struct Recent {
    #[serde(rename = "@attr")]
    attr: Option<Lenient<Attr>>,
    track: Option<Items>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Attr {
    total: Option<Number>,
    total_pages: Option<Number>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Items {
    Many(Vec<Lenient<Item>>),
    One(Box<Lenient<Item>>),
}

#[derive(Deserialize)]
struct Item {
    #[serde(rename = "@attr")]
    attr: Option<Lenient<ItemAttr>>,
    artist: Option<Text>,
    name: Option<Text>,
    album: Option<Text>,
    mbid: Option<Text>,
    date: Option<Lenient<Date>>,
}

#[derive(Deserialize)]
struct ItemAttr {
    nowplaying: Option<Text>,
}

#[derive(Deserialize)]
struct Date {
    uts: Option<Number>,
}

/// A value of the expected shape, or anything else (ignored).
#[derive(Deserialize)]
#[serde(untagged)]
enum Lenient<T> {
    Good(T),
    Other(IgnoredAny),
}

impl<T> Lenient<T> {
    fn good(self) -> Option<T> {
        match self {
            Lenient::Good(t) => Some(t),
            Lenient::Other(_) => None,
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Text {
    Plain(String),
    Tagged {
        #[serde(rename = "#text")]
        text: Option<Lenient<String>>,
        name: Option<Lenient<String>>,
    },
    Other(IgnoredAny),
}

impl Text {
    /// The text, trimmed; `None` when empty or absent.
    fn get(self) -> Option<String> {
        let s = match self {
            Text::Plain(s) => s,
            Text::Tagged { text, name } => text
                .and_then(Lenient::good)
                .or_else(|| name.and_then(Lenient::good))?,
            Text::Other(_) => return None,
        };
        let s = s.trim();
        (!s.is_empty()).then(|| s.to_owned())
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Number {
    Int(u64),
    Text(String),
    Other(IgnoredAny),
}

impl Number {
    fn get(self) -> Option<u64> {
        match self {
            Number::Int(n) => Some(n),
            Number::Text(s) => s.trim().parse().ok(),
            Number::Other(_) => None,
        }
    }
}

/// Reads a successful reply's body.
///
/// # Errors
///
/// [`Error::Malformed`] when the body is not JSON or has no `recenttracks`
/// object; single odd entries are counted in [`RecentPage::unreadable`]
/// (when dated) or skipped.
pub(super) fn recent_page(body: &[u8]) -> Result<RecentPage, Error> {
    let reply: Reply = serde_json::from_slice(body)
        .map_err(|e| Error::Malformed(format!("user.getRecentTracks reply: {e}")))?;
    let recent = reply
        .recenttracks
        .and_then(Lenient::good)
        .ok_or_else(|| Error::Malformed("no \"recenttracks\" object in reply".into()))?;
    let attr = recent.attr.and_then(Lenient::good);
    let (total, total_pages) = match attr {
        Some(a) => (
            a.total.and_then(Number::get),
            a.total_pages.and_then(Number::get),
        ),
        None => (None, None),
    };
    let items = match recent.track {
        Some(Items::Many(items)) => items,
        Some(Items::One(item)) => vec![*item],
        None => Vec::new(),
    };
    let mut page = RecentPage {
        total,
        total_pages: total_pages.unwrap_or(1),
        ..RecentPage::default()
    };
    for item in items.into_iter().filter_map(Lenient::good) {
        let playing = item
            .attr
            .and_then(Lenient::good)
            .and_then(|a| a.nowplaying)
            .and_then(Text::get)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let at = item
            .date
            .and_then(Lenient::good)
            .and_then(|d| d.uts)
            .and_then(Number::get);
        let Some(at) = at.filter(|_| !playing) else {
            page.now_playing |= playing;
            continue;
        };
        page.oldest = Some(page.oldest.map_or(at, |o| o.min(at)));
        let (Some(artist), Some(title)) = (
            item.artist.and_then(Text::get),
            item.name.and_then(Text::get),
        ) else {
            page.unreadable += 1;
            continue;
        };
        page.plays.push(Listen {
            track: Track {
                artist,
                title,
                album: item.album.and_then(Text::get),
                recording_mbid: item
                    .mbid
                    .and_then(Text::get)
                    .filter(|m| crate::model::is_uuid(m)),
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
    fn a_page_skips_now_playing_and_reads_both_artist_shapes() {
        let page = recent_page(
            r##"{"recenttracks":{
              "@attr":{"user":"alice","page":"1","perPage":"200","totalPages":"3","total":"401"},
              "track":[
                {"@attr":{"nowplaying":"true"},"artist":{"#text":"Radiohead"},"name":"Karma Police"},
                {"artist":{"#text":"Portishead","mbid":""},"album":{"#text":"Dummy"},"name":"Glory Box",
                 "mbid":"0a0b0c0d-0000-4000-8000-000000000000",
                 "date":{"uts":"1718150100","#text":"11 Jun 2024, 20:35"}},
                {"artist":{"name":"Sigur Rós","url":"…"},"name":"Hoppípolla","loved":"0",
                 "album":{"#text":""},"date":{"uts":1718150000}}]}}"##
                .as_bytes(),
        )
        .unwrap();
        assert!(page.now_playing);
        assert_eq!(page.total, Some(401));
        assert_eq!(page.total_pages, 3);
        assert_eq!(page.oldest, Some(1_718_150_000));
        assert_eq!(page.plays.len(), 2);
        let first = &page.plays[0];
        assert_eq!(
            (first.track.artist.as_str(), first.track.title.as_str()),
            ("Portishead", "Glory Box")
        );
        assert_eq!(first.track.album.as_deref(), Some("Dummy"));
        assert!(first.track.recording_mbid.is_some());
        assert_eq!(first.started_at, 1_718_150_100);
        assert_eq!(page.plays[1].track.artist, "Sigur Rós");
        assert_eq!(page.plays[1].track.album, None);
    }

    #[test]
    fn one_result_is_a_bare_object_and_none_an_empty_string() {
        let one = recent_page(
            br##"{"recenttracks":{"track":{"artist":{"#text":"A"},"name":"T","date":{"uts":"5"}}}}"##,
        )
        .unwrap();
        assert_eq!(one.plays.len(), 1);
        assert_eq!(one.total_pages, 1);
        let none = recent_page(br#"{"recenttracks":{"track":"","@attr":{"total":"0"}}}"#).unwrap();
        assert!(none.plays.is_empty());
        assert_eq!(none.oldest, None);
        assert_eq!(none.total, Some(0));
    }

    #[test]
    fn hostile_replies_are_errors_or_counted_never_a_panic() {
        for body in [
            &b"not json"[..],
            b"{}",
            b"[]",
            br#"{"recenttracks":"x"}"#,
            br#"{"recenttracks":null}"#,
        ] {
            assert!(
                recent_page(body).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let odd = recent_page(
            br##"{"recenttracks":{"@attr":{"total":-3,"totalPages":[1]},"track":[
                1, "x", null, {},
                {"artist":{"#text":""},"name":"T","date":{"uts":"7"}},
                {"artist":["A"],"name":{"#text":5},"date":{"uts":"8"}},
                {"artist":"A","name":"T","date":{"uts":"-1"}},
                {"artist":"A","name":"T","date":"yesterday"},
                {"artist":"A","name":"T","date":{"uts":"99999999999999999999999"}},
                {"@attr":"nowplaying","artist":"A","name":"T","date":{"uts":"9"}}]}}"##,
        )
        .unwrap();
        assert_eq!(odd.total, None);
        assert_eq!(odd.total_pages, 1);
        assert_eq!(odd.unreadable, 2);
        assert_eq!(odd.oldest, Some(7));
        assert_eq!(odd.plays.len(), 1);
        assert_eq!(odd.plays[0].started_at, 9);
    }
}
