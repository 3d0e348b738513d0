//! Internet radio (docs/protocols.md, "Internet radio and ICY"): which songs
//! are live streams, and how a station's title ("Artist - Title") becomes a
//! track to scrobble, with the
//! `[streams]` settings and per-station overrides, compiled at config load.
//!
//! Pure: the tracker asks [`Streams::read`] for every title a stream plays.

use serde::Deserialize;

use super::Glob;
use crate::model::Track;
use crate::model::{Song, Unscrobblable};

/// Separators tried when no other is configured: the ASCII hyphen and the
/// en and em dashes, each between spaces.
pub(crate) const DEFAULT_SEPARATORS: [&str; 3] = [" - ", " – ", " — "];

/// Which part of a station's title comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Order {
    /// "Artist - Title", what most stations send.
    #[default]
    ArtistTitle,
    /// "Title - Artist".
    TitleArtist,
}

/// Settings for the stations a glob matches.
#[derive(Debug, Clone)]
pub(crate) struct Station {
    url: Option<Glob>,
    name: Option<Glob>,
    order: Order,
    separator: Option<String>,
    ignore: bool,
}

/// The `[streams]` settings.
#[derive(Debug, Clone)]
pub(crate) struct Streams {
    /// Scrobble streams at all.
    pub enabled: bool,
    separators: Vec<String>,
    stations: Vec<Station>,
}

impl Default for Streams {
    fn default() -> Self {
        Streams {
            enabled: true,
            separators: DEFAULT_SEPARATORS.map(str::to_owned).to_vec(),
            stations: Vec::new(),
        }
    }
}

/// The `[streams]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStreams {
    enabled: Option<bool>,
    separators: Option<Vec<String>>,
    station: Option<Vec<RawStation>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStation {
    url: Option<String>,
    name: Option<String>,
    order: Option<String>,
    separator: Option<String>,
    #[serde(default)]
    ignore: bool,
}

/// Whether `song` is a live stream: a URL other than `file://` whose length
/// MPD does not know. A file served over HTTP with a length plays as a file.
pub(crate) fn is_stream(song: &Song) -> bool {
    song.duration.is_none()
        && song
            .uri
            .split_once("://")
            .is_some_and(|(scheme, _)| !scheme.is_empty() && scheme != "file")
}

fn separator_ok(s: &str) -> bool {
    !s.trim().is_empty()
}

impl Streams {
    /// Check and compile the section; errors are (key, problem).
    pub(crate) fn compile(raw: RawStreams) -> Result<Streams, (String, String)> {
        let d = Streams::default();
        let separators = match raw.separators {
            Some(list) if list.is_empty() => {
                return Err((
                    "streams.separators".into(),
                    "is empty: streams could never be split".into(),
                ));
            }
            Some(list) => {
                if let Some(bad) = list.iter().find(|s| !separator_ok(s)) {
                    return Err((
                        "streams.separators".into(),
                        format!("{bad:?} has nothing but spaces"),
                    ));
                }
                list
            }
            None => d.separators,
        };
        let mut stations = Vec::new();
        for (i, s) in raw.station.unwrap_or_default().into_iter().enumerate() {
            let key = |k: &str| format!("streams.station[{i}].{k}");
            if s.url.is_none() && s.name.is_none() {
                return Err((
                    key("url"),
                    "give url or name (a glob on the stream URL or the station name)".into(),
                ));
            }
            let order = match s.order.as_deref() {
                None | Some("artist-title") => Order::ArtistTitle,
                Some("title-artist") => Order::TitleArtist,
                Some(other) => {
                    return Err((
                        key("order"),
                        format!("{other:?} is not \"artist-title\" or \"title-artist\""),
                    ));
                }
            };
            if let Some(sep) = s.separator.as_deref().filter(|s| !separator_ok(s)) {
                return Err((key("separator"), format!("{sep:?} has nothing but spaces")));
            }
            stations.push(Station {
                // URLs and station names are matched ignoring case: hosts
                // are case-insensitive and stations vary their spelling.
                url: s.url.map(|g| Glob::new(&g, true)),
                name: s.name.map(|g| Glob::new(&g, true)),
                order,
                separator: s.separator,
                ignore: s.ignore,
            });
        }
        Ok(Streams {
            enabled: raw.enabled.unwrap_or(d.enabled),
            separators,
            stations,
        })
    }

    /// How many per-station settings there are.
    pub(crate) fn stations(&self) -> usize {
        self.stations.len()
    }

    /// The first station settings that match `song`'s URL and name (every
    /// glob given must match).
    fn station(&self, song: &Song) -> Option<&Station> {
        let name = song.station.as_deref().unwrap_or_default();
        self.stations.iter().find(|s| {
            s.url.as_ref().is_none_or(|g| g.is_match(&song.uri))
                && s.name.as_ref().is_none_or(|g| g.is_match(name))
        })
    }

    /// The track to scrobble for the title `song` (a stream) plays now, or
    /// why there is none.
    pub(crate) fn read(&self, song: &Song) -> Result<Track, Unscrobblable> {
        if !self.enabled {
            return Err(Unscrobblable::StreamsOff);
        }
        let station = self.station(song);
        if station.is_some_and(|s| s.ignore) {
            return Err(Unscrobblable::StationIgnored);
        }
        let raw = &song.track;
        let title = raw.title.trim();
        if title.is_empty() {
            return Err(Unscrobblable::MissingTags);
        }
        let mut track = Track {
            stream_url: Some(song.uri.clone()),
            // A title's length is unknown, whatever the stream says.
            duration_secs: None,
            ..raw.clone()
        };
        // Some streams (Ogg) carry real tags: use them as they are.
        if raw.artist.trim().is_empty() {
            let separators = match station.and_then(|s| s.separator.as_ref()) {
                Some(sep) => std::slice::from_ref(sep),
                None => self.separators.as_slice(),
            };
            let (first, second) = split(title, separators)
                .ok_or_else(|| Unscrobblable::Unsplittable(title.to_owned()))?;
            let (artist, title) = match station.map_or(Order::ArtistTitle, |s| s.order) {
                Order::ArtistTitle => (first, second),
                Order::TitleArtist => (second, first),
            };
            track.artist = artist.to_owned();
            track.title = title.to_owned();
        }
        let is_station = |s: &str| {
            song.station
                .as_deref()
                .is_some_and(|n| n.trim().eq_ignore_ascii_case(s.trim()))
        };
        if is_station(&track.artist) || is_station(&track.title) {
            return Err(Unscrobblable::StationName(title.to_owned()));
        }
        Ok(track)
    }
}

/// Split at the earliest of `separators`; both sides must be non-empty.
pub(crate) fn split<'a>(text: &'a str, separators: &[String]) -> Option<(&'a str, &'a str)> {
    let (at, sep) = separators
        .iter()
        .filter_map(|s| text.find(s.as_str()).map(|i| (i, s)))
        .min_by_key(|(i, _)| *i)?;
    let (first, second) = (text[..at].trim(), text[at + sep.len()..].trim());
    (!first.is_empty() && !second.is_empty()).then_some((first, second))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(text: &str) -> Result<Streams, (String, String)> {
        #[derive(Deserialize)]
        struct Doc {
            streams: RawStreams,
        }
        let doc: Doc = toml::from_str(text).expect("test TOML");
        Streams::compile(doc.streams)
    }

    fn stream(title: &str, name: Option<&str>) -> Song {
        Song {
            id: 1,
            uri: "http://radio.example/live".into(),
            track: Track {
                title: title.into(),
                file: Some("http://radio.example/live".into()),
                ..Track::default()
            },
            duration: None,
            station: name.map(str::to_owned),
        }
    }

    fn seps() -> Vec<String> {
        DEFAULT_SEPARATORS.map(str::to_owned).to_vec()
    }

    #[test]
    fn splits_at_the_earliest_separator() {
        let s = seps();
        assert_eq!(
            split("Sigur Rós - Hoppípolla", &s),
            Some(("Sigur Rós", "Hoppípolla"))
        );
        assert_eq!(
            split("AC/DC – T.N.T. - Live", &s),
            Some(("AC/DC", "T.N.T. - Live"))
        );
        assert_eq!(split("Björk — Jóga", &s), Some(("Björk", "Jóga")));
        assert_eq!(
            split("Jay-Z - 99 Problems", &s),
            Some(("Jay-Z", "99 Problems"))
        );
        assert_eq!(split("Radio X jingle", &s), None);
        assert_eq!(split(" - Title only", &s), None);
        assert_eq!(split("Artist only - ", &s), None);
        assert_eq!(split("A / B", &[" / ".into()]), Some(("A", "B")));
    }

    #[test]
    fn stream_detection() {
        let mut song = stream("x", None);
        assert!(is_stream(&song));
        song.duration = Some(std::time::Duration::from_secs(300));
        assert!(!is_stream(&song), "a file over HTTP with a length");
        let mut local = stream("x", None);
        local.uri = "music/a.flac".into();
        assert!(!is_stream(&local));
        local.uri = "file:///home/u/a.flac".into();
        assert!(!is_stream(&local));
    }

    #[test]
    fn reads_artist_and_title_with_the_stream_url() {
        let streams = Streams::default();
        let t = streams
            .read(&stream("Sigur Rós - Hoppípolla", Some("Test FM")))
            .unwrap();
        assert_eq!(
            (t.artist.as_str(), t.title.as_str()),
            ("Sigur Rós", "Hoppípolla")
        );
        assert_eq!(t.stream_url.as_deref(), Some("http://radio.example/live"));
        assert_eq!(t.duration_secs, None);
    }

    #[test]
    fn unsplittable_titles_and_station_names_are_not_scrobbled() {
        let streams = Streams::default();
        assert_eq!(
            streams.read(&stream("Test FM jingle", Some("Test FM"))),
            Err(Unscrobblable::Unsplittable("Test FM jingle".into()))
        );
        assert_eq!(
            streams.read(&stream("test fm - Your hits", Some("Test FM"))),
            Err(Unscrobblable::StationName("test fm - Your hits".into()))
        );
        assert_eq!(
            streams.read(&stream("", Some("Test FM"))),
            Err(Unscrobblable::MissingTags)
        );
    }

    #[test]
    fn real_stream_tags_are_used_as_they_are() {
        let mut song = stream("Hoppípolla", Some("Test FM"));
        song.track.artist = "Sigur Rós".into();
        let t = Streams::default().read(&song).unwrap();
        assert_eq!(
            (t.artist.as_str(), t.title.as_str()),
            ("Sigur Rós", "Hoppípolla")
        );
    }

    #[test]
    fn per_station_order_separator_and_ignore() {
        let streams = compile(
            r#"
[streams]
separators = [" - "]
[[streams.station]]
name = "backwards*"
order = "title-artist"
[[streams.station]]
url = "http://slash.example/*"
separator = " / "
[[streams.station]]
url = "*ads.example*"
ignore = true
"#,
        )
        .unwrap();
        let t = streams
            .read(&stream("Hoppípolla - Sigur Rós", Some("Backwards Radio")))
            .unwrap();
        assert_eq!(
            (t.artist.as_str(), t.title.as_str()),
            ("Sigur Rós", "Hoppípolla")
        );
        let mut slash = stream("Björk / Jóga - Live", None);
        slash.uri = "http://SLASH.example/live".into();
        let t = streams.read(&slash).unwrap();
        assert_eq!(
            (t.artist.as_str(), t.title.as_str()),
            ("Björk", "Jóga - Live")
        );
        let mut ads = stream("A - B", None);
        ads.uri = "https://ads.example/stream".into();
        assert_eq!(streams.read(&ads), Err(Unscrobblable::StationIgnored));
        // The global list has only " - " now.
        assert!(matches!(
            streams.read(&stream("Björk — Jóga", None)),
            Err(Unscrobblable::Unsplittable(_))
        ));
    }

    #[test]
    fn switched_off() {
        let streams = compile("[streams]\nenabled = false\n").unwrap();
        assert_eq!(
            streams.read(&stream("A - B", None)),
            Err(Unscrobblable::StreamsOff)
        );
    }

    #[test]
    fn invalid_settings_name_the_key() {
        for (text, key) in [
            ("[streams]\nseparators = []\n", "streams.separators"),
            ("[streams]\nseparators = [\"  \"]\n", "streams.separators"),
            (
                "[streams]\n[[streams.station]]\norder = \"title-artist\"\n",
                "streams.station[0].url",
            ),
            (
                "[streams]\n[[streams.station]]\nname = \"x\"\norder = \"artist title\"\n",
                "streams.station[0].order",
            ),
            (
                "[streams]\n[[streams.station]]\nname = \"x\"\n[[streams.station]]\nname = \"y\"\nseparator = \"\"\n",
                "streams.station[1].separator",
            ),
        ] {
            let (k, problem) = compile(text).unwrap_err();
            assert_eq!(k, key, "{text}: {problem}");
        }
    }
}
