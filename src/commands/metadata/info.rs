//! Metadata and listening stats from Last.fm's read methods: lenient parsing
//! of their JSON (docs/protocols.md, "Requests and replies": a single item as an object, `#text`,
//! numbers as strings, `""` for an empty list, `@attr`, missing fields),
//! typed results, and their rendering for a terminal or as JSON.

use std::fmt::Write;

use serde::Serialize;
use serde_json::Value;

use crate::targets::lastfm::json::{items, number as count, text};

fn non_empty(s: String) -> Option<String> {
    (!s.trim().is_empty()).then_some(s)
}

/// The largest image that is not empty.
fn image(v: Option<&Value>) -> Option<String> {
    items(v)
        .iter()
        .rev()
        .map(|i| text(Some(i)))
        .find(|u| !u.is_empty())
}

fn names(v: Option<&Value>, inner: &str) -> Vec<String> {
    items(v.and_then(|v| v.get(inner)))
        .into_iter()
        .map(|t| text(t.get("name")))
        .filter(|n| !n.is_empty())
        .collect()
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
pub(crate) fn artist(reply: &Value, full: bool) -> Option<Artist> {
    let a = reply.get("artist")?;
    let bio = a.get("bio");
    let raw = bio
        .and_then(|b| b.get(if full { "content" } else { "summary" }))
        .and_then(Value::as_str)
        .unwrap_or_default();
    Some(Artist {
        name: text(a.get("name")),
        mbid: non_empty(text(a.get("mbid"))),
        url: non_empty(text(a.get("url"))),
        image: image(a.get("image")),
        listeners: count(a.get("stats").and_then(|s| s.get("listeners"))),
        playcount: count(a.get("stats").and_then(|s| s.get("playcount"))),
        tags: names(a.get("tags"), "tag"),
        similar: names(a.get("similar"), "artist"),
        bio: plain_text(raw),
    })
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
pub(crate) fn album(reply: &Value) -> Option<Album> {
    let a = reply.get("album")?;
    let tracks = items(a.get("tracks").and_then(|t| t.get("track")))
        .into_iter()
        .map(|t| AlbumTrack {
            rank: count(t.get("@attr").and_then(|r| r.get("rank"))),
            name: text(t.get("name")),
            duration: count(t.get("duration")).filter(|d| *d > 0),
        })
        .collect();
    Some(Album {
        name: text(a.get("name")),
        artist: text(a.get("artist")),
        url: non_empty(text(a.get("url"))),
        listeners: count(a.get("listeners")),
        playcount: count(a.get("playcount")),
        tags: names(a.get("tags"), "tag"),
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

/// Read `artist.search`.
pub(crate) fn search(reply: &Value) -> Vec<Row> {
    let found = reply
        .get("results")
        .and_then(|r| r.get("artistmatches"))
        .and_then(|m| m.get("artist"));
    items(found)
        .into_iter()
        .enumerate()
        .map(|(i, a)| Row {
            rank: Some(i as u64 + 1),
            artist: None,
            name: text(a.get("name")),
            count: count(a.get("listeners")),
            url: non_empty(text(a.get("url"))),
        })
        .collect()
}

/// Read `user.getTopArtists` (`kind` "artist") or `user.getTopTracks` ("track").
pub(crate) fn top(reply: &Value, kind: &str) -> Vec<Row> {
    let list = reply.get(format!("top{kind}s")).and_then(|t| t.get(kind));
    items(list)
        .into_iter()
        .map(|t| Row {
            rank: count(t.get("@attr").and_then(|a| a.get("rank"))),
            artist: (kind == "track").then(|| text(t.get("artist"))),
            name: text(t.get("name")),
            count: count(t.get("playcount")),
            url: non_empty(text(t.get("url"))),
        })
        .collect()
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
pub(crate) fn recent(reply: &Value) -> Vec<Recent> {
    let list = reply.get("recenttracks").and_then(|r| r.get("track"));
    items(list)
        .into_iter()
        .map(|t| Recent {
            artist: text(t.get("artist")),
            name: text(t.get("name")),
            album: non_empty(text(t.get("album"))),
            date: count(t.get("date").and_then(|d| d.get("uts"))),
            now_playing: t
                .get("@attr")
                .and_then(|a| a.get("nowplaying"))
                .and_then(Value::as_str)
                == Some("true"),
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
    use serde_json::json;

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
        }});
        let a = artist(&reply, false).unwrap();
        assert_eq!(a.mbid, None);
        assert_eq!(a.image.as_deref(), Some("small.png"));
        assert_eq!(
            (a.listeners, a.playcount),
            (Some(1_688_480), Some(135_692_303))
        );
        assert_eq!(a.similar, ["Madonna"]);
        assert!(a.tags.is_empty());
        assert_eq!(a.bio, "Cher & co.");
        assert_eq!(artist(&reply, true).unwrap().bio, "Long.");
    }

    #[test]
    fn recent_marks_now_playing_and_reads_uts() {
        let reply = json!({"recenttracks": {"@attr": {"page": "1"}, "track": [
            {"@attr": {"nowplaying": "true"}, "artist": {"#text": "Radiohead"}, "name": "Karma Police",
             "album": {"#text": "OK Computer"}},
            {"artist": {"#text": "Portishead"}, "name": "Glory Box", "album": {"#text": ""},
             "date": {"uts": "1718150100", "#text": "11 Jun 2024, 20:35"}}]}});
        let r = recent(&reply);
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
        let t = top(&tracks, "track");
        assert_eq!(t[0].artist.as_deref(), Some("Cher"));
        assert_eq!(t[0].count, Some(12));
        assert!(search(&json!({"results": {"artistmatches": {"artist": []}}})).is_empty());
        let al = album(
            &json!({"album": {"name": "Takk...", "artist": "Sigur Rós", "tags": "",
            "tracks": {"track": {"name": "Glósóli", "duration": "374", "@attr": {"rank": 1}}}}}),
        )
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
