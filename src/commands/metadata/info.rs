//! Metadata and listening stats from Last.fm's read methods: lenient parsing
//! of their JSON (docs/protocols.md, "Requests and replies": a single item as an object, `#text`,
//! numbers as strings, `""` for an empty list, `@attr`, missing fields),
//! typed results, and their rendering for a terminal or as JSON.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::json::{List, Number, Obj, Str, Text, present};

fn non_empty(s: Text) -> Option<String> {
    (!s.0.trim().is_empty()).then_some(s.0)
}

/// The largest image that is not empty.
fn image(images: List<Text>) -> Option<String> {
    images
        .0
        .into_iter()
        .rev()
        .map(|i| i.0)
        .find(|u| !u.is_empty())
}

/// An element with a name: a tag, a similar artist.
#[derive(Default, Deserialize)]
#[serde(default)]
struct Named {
    name: Text,
}

fn names(list: List<Obj<Named>>) -> Vec<String> {
    list.0
        .into_iter()
        .map(|t| t.or_default().name.0)
        .filter(|n| !n.is_empty())
        .collect()
}

/// `{"tag": [..]}`.
#[derive(Default, Deserialize)]
#[serde(default)]
struct Tags {
    tag: List<Obj<Named>>,
}

/// An `artist.getInfo` reply.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(crate) struct ArtistReply {
    /// Present with any value: an artist whose fields are all unreadable
    /// is still an answer.
    #[serde(deserialize_with = "present")]
    artist: Option<Obj<ArtistFields>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct ArtistFields {
    name: Text,
    mbid: Text,
    url: Text,
    image: List<Text>,
    stats: Obj<Stats>,
    tags: Obj<Tags>,
    similar: Obj<Similar>,
    bio: Obj<Bio>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Stats {
    listeners: Number,
    playcount: Number,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Similar {
    artist: List<Obj<Named>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Bio {
    summary: Str,
    content: Str,
}

/// `artist.getInfo`.
#[derive(Debug, Serialize, PartialEq)]
pub(crate) struct Artist {
    pub name: String,
    pub mbid: Option<String>,
    pub url: Option<String>,
    pub image: Option<String>,
    pub listeners: Option<u64>,
    pub playcount: Option<u64>,
    pub tags: Vec<String>,
    pub similar: Vec<String>,
    pub bio: String,
}

/// Read `artist.getInfo`; `full` keeps the whole biography, not the summary.
pub(crate) fn artist(reply: ArtistReply, full: bool) -> Option<Artist> {
    let a = reply.artist?.or_default();
    let bio = a.bio.or_default();
    let raw = if full { bio.content } else { bio.summary };
    let stats = a.stats.or_default();
    Some(Artist {
        name: a.name.0,
        mbid: non_empty(a.mbid),
        url: non_empty(a.url),
        image: image(a.image),
        listeners: stats.listeners.0,
        playcount: stats.playcount.0,
        tags: names(a.tags.or_default().tag),
        similar: names(a.similar.or_default().artist),
        bio: plain_text(raw.0.as_deref().unwrap_or_default()),
    })
}

/// An `album.getInfo` reply.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(crate) struct AlbumReply {
    /// Present with any value, as [`ArtistReply::artist`].
    #[serde(deserialize_with = "present")]
    album: Option<Obj<AlbumFields>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct AlbumFields {
    name: Text,
    artist: Text,
    url: Text,
    listeners: Number,
    playcount: Number,
    tags: Obj<Tags>,
    tracks: Obj<AlbumTracks>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct AlbumTracks {
    track: List<Obj<AlbumTrackFields>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct AlbumTrackFields {
    #[serde(rename = "@attr")]
    attr: Obj<Rank>,
    name: Text,
    duration: Number,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Rank {
    rank: Number,
}

/// One track of an album.
#[derive(Debug, Serialize, PartialEq)]
pub(crate) struct AlbumTrack {
    pub rank: Option<u64>,
    pub name: String,
    pub duration: Option<u64>,
}

/// `album.getInfo`.
#[derive(Debug, Serialize, PartialEq)]
pub(crate) struct Album {
    pub name: String,
    pub artist: String,
    pub url: Option<String>,
    pub listeners: Option<u64>,
    pub playcount: Option<u64>,
    pub tags: Vec<String>,
    pub tracks: Vec<AlbumTrack>,
}

/// Read `album.getInfo`.
pub(crate) fn album(reply: AlbumReply) -> Option<Album> {
    let a = reply.album?.or_default();
    let tracks = a
        .tracks
        .or_default()
        .track
        .0
        .into_iter()
        .map(|t| {
            let t = t.or_default();
            AlbumTrack {
                rank: t.attr.or_default().rank.0,
                name: t.name.0,
                duration: t.duration.0.filter(|d| *d > 0),
            }
        })
        .collect();
    Some(Album {
        name: a.name.0,
        artist: a.artist.0,
        url: non_empty(a.url),
        listeners: a.listeners.0,
        playcount: a.playcount.0,
        tags: names(a.tags.or_default().tag),
        tracks,
    })
}

/// One row of a search or top list.
#[derive(Debug, Serialize, PartialEq)]
pub(crate) struct Row {
    pub rank: Option<u64>,
    pub artist: Option<String>,
    pub name: String,
    /// Listeners (search) or plays (top lists).
    pub count: Option<u64>,
    pub url: Option<String>,
}

/// An `artist.search` reply.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(crate) struct SearchReply {
    results: Obj<SearchResults>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct SearchResults {
    artistmatches: Obj<ArtistMatches>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct ArtistMatches {
    artist: List<Obj<Found>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Found {
    name: Text,
    listeners: Number,
    url: Text,
}

/// Read `artist.search`.
pub(crate) fn search(reply: SearchReply) -> Vec<Row> {
    let found = reply.results.or_default().artistmatches.or_default().artist;
    found
        .0
        .into_iter()
        .zip(1..)
        .map(|(a, rank)| {
            let a = a.or_default();
            Row {
                rank: Some(rank),
                artist: None,
                name: a.name.0,
                count: a.listeners.0,
                url: non_empty(a.url),
            }
        })
        .collect()
}

/// A `user.getTopArtists` or `user.getTopTracks` reply.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(crate) struct TopReply {
    topartists: Obj<TopArtists>,
    toptracks: Obj<TopTracks>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct TopArtists {
    artist: List<Obj<TopItem>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct TopTracks {
    track: List<Obj<TopItem>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct TopItem {
    #[serde(rename = "@attr")]
    attr: Obj<Rank>,
    artist: Text,
    name: Text,
    playcount: Number,
    url: Text,
}

/// Read `user.getTopArtists` (`kind` "artist") or `user.getTopTracks` ("track").
pub(crate) fn top(reply: TopReply, kind: &str) -> Vec<Row> {
    let list = match kind {
        "artist" => reply.topartists.or_default().artist,
        "track" => reply.toptracks.or_default().track,
        _ => List::default(),
    };
    list.0
        .into_iter()
        .map(|t| {
            let t = t.or_default();
            Row {
                rank: t.attr.or_default().rank.0,
                artist: (kind == "track").then_some(t.artist.0),
                name: t.name.0,
                count: t.playcount.0,
                url: non_empty(t.url),
            }
        })
        .collect()
}

/// A `user.getRecentTracks` reply.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(crate) struct RecentReply {
    recenttracks: Obj<RecentTracks>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct RecentTracks {
    track: List<Obj<RecentItem>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct RecentItem {
    #[serde(rename = "@attr")]
    attr: Obj<RecentAttr>,
    artist: Text,
    name: Text,
    album: Text,
    date: Obj<Date>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct RecentAttr {
    nowplaying: Str,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Date {
    uts: Number,
}

/// One recent track.
#[derive(Debug, Serialize, PartialEq)]
pub(crate) struct Recent {
    pub artist: String,
    pub name: String,
    pub album: Option<String>,
    /// When it was scrobbled; `None` for the one playing now.
    pub date: Option<u64>,
    pub now_playing: bool,
}

/// Read `user.getRecentTracks`.
pub(crate) fn recent(reply: RecentReply) -> Vec<Recent> {
    reply
        .recenttracks
        .or_default()
        .track
        .0
        .into_iter()
        .map(|t| {
            let t = t.or_default();
            Recent {
                artist: t.artist.0,
                name: t.name.0,
                album: non_empty(t.album),
                date: t.date.or_default().uts.0,
                now_playing: t.attr.or_default().nowplaying.0.as_deref() == Some("true"),
            }
        })
        .collect()
}

/// Biographies come as HTML with a "Read more on Last.fm" link and a licence
/// footer; keep the words.
pub(crate) fn plain_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    let out = out
        .replace("&amp;", "&")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">");
    let mut out = out.as_str();
    for tail in [
        "User-contributed text is available under the Creative Commons By-SA License; additional terms may apply.",
        "Read more on Last.fm",
    ] {
        if let Some(i) = out.rfind(tail) {
            out = &out[..i];
        }
    }
    out.trim().to_owned()
}

/// Wrap `text` to `width` columns, keeping paragraph breaks.
pub(crate) fn wrap(text: &str, width: usize) -> String {
    let width = width.max(20);
    let mut out = String::new();
    for (i, para) in text.split("\n\n").enumerate() {
        if i > 0 {
            out.push_str("\n\n");
        }
        let mut line = 0;
        for word in para.split_whitespace() {
            let len = word.chars().count();
            if line > 0 && line + 1 + len > width {
                out.push('\n');
                line = 0;
            } else if line > 0 {
                out.push(' ');
                line += 1;
            }
            out.push_str(word);
            line += len;
        }
    }
    out
}

/// Thousands separators for counts.
pub(crate) fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Render artist information for a terminal `width` columns wide.
pub(crate) fn render_artist(a: &Artist, width: usize) -> String {
    let mut s = format!("{}\n", a.name);
    if let (Some(l), Some(p)) = (a.listeners, a.playcount) {
        let _ = writeln!(s, "{} listeners, {} plays", thousands(l), thousands(p));
    }
    if !a.tags.is_empty() {
        let _ = writeln!(s, "Tags: {}", a.tags.join(", "));
    }
    if !a.similar.is_empty() {
        let _ = writeln!(s, "Similar: {}", a.similar.join(", "));
    }
    if !a.bio.is_empty() {
        let _ = writeln!(s, "\n{}\n", wrap(&a.bio, width));
    }
    for (label, v) in [("URL", &a.url), ("MBID", &a.mbid), ("Image", &a.image)] {
        if let Some(v) = v {
            let _ = writeln!(s, "{label}: {v}");
        }
    }
    s
}

fn minutes(secs: u64) -> String {
    format!("{}:{:02}", secs / 60, secs % 60)
}

/// Render album information.
pub(crate) fn render_album(a: &Album) -> String {
    let mut s = format!("{} – {}\n", a.artist, a.name);
    if let (Some(l), Some(p)) = (a.listeners, a.playcount) {
        let _ = writeln!(s, "{} listeners, {} plays", thousands(l), thousands(p));
    }
    if !a.tags.is_empty() {
        let _ = writeln!(s, "Tags: {}", a.tags.join(", "));
    }
    if !a.tracks.is_empty() {
        s.push('\n');
        let rank_w = a.tracks.len().to_string().len();
        let name_w = a
            .tracks
            .iter()
            .map(|t| t.name.chars().count())
            .max()
            .unwrap_or(0);
        for (i, t) in a.tracks.iter().enumerate() {
            let rank = t.rank.unwrap_or(i as u64 + 1);
            let d = t.duration.map(minutes).unwrap_or_default();
            let _ = writeln!(s, "{rank:>rank_w$}. {:<name_w$}  {d:>5}", t.name);
        }
    }
    if let Some(url) = &a.url {
        let _ = writeln!(s, "\nURL: {url}");
    }
    s
}

/// Render a ranked list with aligned columns; `unit` names the count.
pub(crate) fn render_rows(rows: &[Row], unit: &str) -> String {
    if rows.is_empty() {
        return "Nothing found.\n".into();
    }
    let label = |r: &Row| match &r.artist {
        Some(a) => format!("{a} – {}", r.name),
        None => r.name.clone(),
    };
    let rank_w = rows.len().to_string().len();
    let name_w = rows
        .iter()
        .map(|r| label(r).chars().count())
        .max()
        .unwrap_or(0);
    let mut s = String::new();
    for (i, r) in rows.iter().enumerate() {
        let rank = r.rank.unwrap_or(i as u64 + 1);
        let n = r
            .count
            .map(|c| format!("{} {unit}", thousands(c)))
            .unwrap_or_default();
        let _ = writeln!(s, "{rank:>rank_w$}. {:<name_w$}  {n}", label(r));
    }
    s
}

/// Render recent tracks; `local_time` formats a Unix time for display.
pub(crate) fn render_recent(tracks: &[Recent], local_time: impl Fn(u64) -> String) -> String {
    if tracks.is_empty() {
        return "No recent tracks.\n".into();
    }
    let whens: Vec<String> = tracks
        .iter()
        .map(|t| match (t.now_playing, t.date) {
            (true, _) => "now playing".into(),
            (false, Some(d)) => local_time(d),
            (false, None) => String::new(),
        })
        .collect();
    let when_w = whens.iter().map(|w| w.chars().count()).max().unwrap_or(0);
    let mut s = String::new();
    for (t, when) in tracks.iter().zip(whens) {
        let album = t
            .album
            .as_deref()
            .map(|a| format!(" ({a})"))
            .unwrap_or_default();
        let _ = writeln!(s, "{when:<when_w$}  {} – {}{album}", t.artist, t.name);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::DeserializeOwned;
    use serde_json::json;

    /// A reply body read as `T`.
    fn read<T: DeserializeOwned>(json: &str) -> T {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn quirks_single_object_text_strings_and_empty_lists() {
        let reply = json!({"artist": {
            "name": "Cher", "mbid": "", "url": "https://www.last.fm/music/Cher",
            "image": [{"#text": "small.png", "size": "small"}, {"#text": "", "size": "mega"}],
            "stats": {"listeners": "1688480", "playcount": 135692303},
            "similar": {"artist": {"name": "Madonna", "url": "u"}},
            "tags": "",
            "bio": {"summary": "Cher &amp; co. <a href=\"https://www.last.fm/music/Cher\">Read more on Last.fm</a>",
                    "content": "Long. User-contributed text is available under the Creative Commons By-SA License; additional terms may apply."}
        }})
        .to_string();
        let a = artist(read(&reply), false).unwrap();
        assert_eq!(a.mbid, None);
        assert_eq!(a.image.as_deref(), Some("small.png"));
        assert_eq!(
            (a.listeners, a.playcount),
            (Some(1_688_480), Some(135_692_303))
        );
        assert_eq!(a.similar, ["Madonna"]);
        assert!(a.tags.is_empty());
        assert_eq!(a.bio, "Cher & co.");
        assert_eq!(artist(read(&reply), true).unwrap().bio, "Long.");
    }

    #[test]
    fn recent_marks_now_playing_and_reads_uts() {
        let reply = json!({"recenttracks": {"@attr": {"page": "1"}, "track": [
            {"@attr": {"nowplaying": "true"}, "artist": {"#text": "Radiohead"}, "name": "Karma Police",
             "album": {"#text": "OK Computer"}},
            {"artist": {"#text": "Portishead"}, "name": "Glory Box", "album": {"#text": ""},
             "date": {"uts": "1718150100", "#text": "11 Jun 2024, 20:35"}}]}});
        let r = recent(read(&reply.to_string()));
        assert!(r[0].now_playing && r[0].date.is_none());
        assert_eq!(r[1].date, Some(1_718_150_100));
        assert_eq!(r[1].album, None);
        let out = render_recent(&r, |t| format!("T{t}"));
        assert!(out.starts_with("now playing"), "{out}");
        assert!(out.contains("T1718150100  Portishead – Glory Box"), "{out}");
        // As `history` writes the album (issue 23, item 16).
        assert!(out.contains("Karma Police (OK Computer)"), "{out}");
    }

    #[test]
    fn top_search_and_album_tolerate_shapes() {
        let tracks = json!({"toptracks": {"track": {"name": "Believe", "playcount": "12",
            "artist": {"name": "Cher"}, "@attr": {"rank": "1"}}, "@attr": {}}});
        let t = top(read(&tracks.to_string()), "track");
        assert_eq!(t[0].artist.as_deref(), Some("Cher"));
        assert_eq!(t[0].count, Some(12));
        assert!(search(read(r#"{"results": {"artistmatches": {"artist": []}}}"#)).is_empty());
        let al = album(read(
            r#"{"album": {"name": "Takk...", "artist": "Sigur Rós", "tags": "",
            "tracks": {"track": {"name": "Glósóli", "duration": "374", "@attr": {"rank": 1}}}}}"#,
        ))
        .unwrap();
        assert_eq!(al.tracks[0].duration, Some(374));
        let text = render_album(&al);
        assert!(
            text.contains("1. Glósóli") && text.contains("6:14"),
            "{text}"
        );
        assert_eq!(render_rows(&[], "plays"), "Nothing found.\n");
    }

    #[test]
    fn wrapping_and_numbers() {
        assert_eq!(wrap("aaa bbb ccc", 20), "aaa bbb ccc");
        let w = wrap(&"word ".repeat(30), 20);
        assert!(w.lines().all(|l| l.chars().count() <= 20), "{w}");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(12), "12");
    }
}
