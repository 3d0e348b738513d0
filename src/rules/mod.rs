//! Ignore and rewrite rules: the `[[rule]]` sections of the config, compiled
//! once when it loads, and applied to a track before "now playing" and
//! before queueing, for each target on its own (a rule may name targets).
//!
//! Pure: no I/O. Rules run in the order written; each sees the track as the
//! rules before it left it. The first ignore rule that matches ends the run.

use std::fmt;

use regex_lite::Regex;

use crate::model::Track;

mod compile;
pub(crate) mod stream;

pub(crate) use compile::RawRule;

/// A field of a track that a rule can look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    /// `artist`.
    Artist,
    /// `album_artist`.
    AlbumArtist,
    /// `album`.
    Album,
    /// `title`.
    Title,
    /// `genre` (matched only; never sent).
    Genre,
    /// `file`: the song's path in the music directory, or a stream's URL.
    File,
    /// `stream_url`: set only for internet radio.
    StreamUrl,
}

impl Field {
    const ALL: [Field; 7] = [
        Field::Artist,
        Field::Title,
        Field::Album,
        Field::AlbumArtist,
        Field::Genre,
        Field::File,
        Field::StreamUrl,
    ];

    /// The config key.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Field::Artist => "artist",
            Field::AlbumArtist => "album_artist",
            Field::Album => "album",
            Field::Title => "title",
            Field::Genre => "genre",
            Field::File => "file",
            Field::StreamUrl => "stream_url",
        }
    }

    fn parse(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Whether a rewrite may change it: only what is sent to the targets.
    fn writable(self) -> bool {
        matches!(
            self,
            Field::Artist | Field::AlbumArtist | Field::Album | Field::Title
        )
    }

    /// The value in `track`; an absent field reads as "".
    pub(crate) fn get(self, track: &Track) -> &str {
        fn opt(o: &Option<String>) -> &str {
            o.as_deref().unwrap_or_default()
        }
        match self {
            Field::Artist => &track.artist,
            Field::Title => &track.title,
            Field::AlbumArtist => opt(&track.album_artist),
            Field::Album => opt(&track.album),
            Field::Genre => opt(&track.genre),
            Field::File => opt(&track.file),
            Field::StreamUrl => opt(&track.stream_url),
        }
    }

    fn set(self, track: &mut Track, value: String) {
        let opt = Some(value.clone()).filter(|v| !v.trim().is_empty());
        match self {
            Field::Artist => track.artist = value,
            Field::Title => track.title = value,
            Field::AlbumArtist => track.album_artist = opt,
            Field::Album => track.album = opt,
            Field::Genre | Field::File | Field::StreamUrl => {}
        }
    }
}

/// A shell-style pattern: `*` is any run of characters, `?` one character,
/// anything else itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Glob {
    pattern: Vec<char>,
    case_insensitive: bool,
}

impl Glob {
    /// A glob, optionally ignoring case.
    pub(crate) fn new(pattern: &str, case_insensitive: bool) -> Glob {
        let pattern = if case_insensitive {
            pattern.to_lowercase()
        } else {
            pattern.to_owned()
        };
        Glob {
            pattern: pattern.chars().collect(),
            case_insensitive,
        }
    }

    /// Whether the whole of `text` matches.
    pub(crate) fn is_match(&self, text: &str) -> bool {
        let text: Vec<char> = if self.case_insensitive {
            text.to_lowercase().chars().collect()
        } else {
            text.chars().collect()
        };
        // Backtracking to the last `*` only: linear in practice, and never
        // worse than pattern × text.
        let (p, t) = (&self.pattern, &text);
        let (mut pi, mut ti) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while ti < t.len() {
            match p.get(pi) {
                Some('*') => {
                    star = Some((pi, ti));
                    pi += 1;
                }
                Some(c) if *c == '?' || *c == t[ti] => {
                    pi += 1;
                    ti += 1;
                }
                _ => match star {
                    Some((sp, st)) => {
                        pi = sp + 1;
                        ti = st + 1;
                        star = Some((sp, st + 1));
                    }
                    None => return false,
                },
            }
        }
        p[pi..].iter().all(|c| *c == '*')
    }
}

#[derive(Debug, Clone)]
enum Pattern {
    /// Lower-cased when the rule ignores case.
    Exact(String, bool),
    Glob(Glob),
    Regex(Regex),
}

impl Pattern {
    fn is_match(&self, value: &str) -> bool {
        match self {
            Pattern::Exact(p, false) => p == value,
            Pattern::Exact(p, true) => *p == value.to_lowercase(),
            Pattern::Glob(g) => g.is_match(value),
            Pattern::Regex(r) => r.is_match(value),
        }
    }
}

#[derive(Debug, Clone)]
enum Action {
    Ignore,
    Rewrite {
        field: Field,
        regex: Regex,
        replace: String,
        /// Text added to other fields, with the match's groups filled in.
        append: Vec<(Field, String)>,
    },
}

/// One compiled rule.
#[derive(Debug, Clone)]
struct Rule {
    /// Position among the `[[rule]]` sections, from 0.
    index: usize,
    /// `None`: every target.
    targets: Option<Vec<String>>,
    /// All must match.
    conditions: Vec<(Field, Pattern)>,
    action: Action,
}

impl Rule {
    fn applies(&self, track: &Track, target: &str) -> bool {
        self.targets
            .as_ref()
            .is_none_or(|ts| ts.iter().any(|t| t == target))
            && self
                .conditions
                .iter()
                .all(|(field, pattern)| pattern.is_match(field.get(track)))
    }
}

/// What the rules made of a track for one target.
// Returned once per target and event and never stored: boxing the track
// would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Send this (possibly rewritten) track.
    Send(Track),
    /// Do not send anything: the rule at this index matched.
    Ignored(usize),
}

/// One thing a rule did, for `rules test`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// A rewrite changed a field.
    Rewrote {
        /// The rule's index.
        rule: usize,
        /// Which field.
        field: Field,
        /// Before.
        from: String,
        /// After.
        to: String,
    },
    /// An ignore rule matched.
    Ignored {
        /// The rule's index.
        rule: usize,
    },
    /// A rewrite left the artist or the title empty, so there is nothing
    /// to send.
    Emptied {
        /// The rule's index.
        rule: usize,
        /// Which field.
        field: Field,
    },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Rewrote {
                rule,
                field,
                from,
                to,
            } => write!(
                f,
                "rule {} rewrote {}: {from:?} -> {to:?}",
                rule + 1,
                field.name()
            ),
            Step::Ignored { rule } => write!(f, "rule {} ignores this play", rule + 1),
            Step::Emptied { rule, field } => write!(
                f,
                "rule {} left the {} empty: nothing is sent",
                rule + 1,
                field.name()
            ),
        }
    }
}

/// The compiled `[[rule]]` sections.
#[derive(Debug, Clone, Default)]
pub(crate) struct RuleSet {
    rules: Vec<Rule>,
}

impl RuleSet {
    /// Whether there are no rules.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// How many ignore and how many rewrite rules there are.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let ignore = self
            .rules
            .iter()
            .filter(|r| matches!(r.action, Action::Ignore))
            .count();
        (ignore, self.rules.len() - ignore)
    }

    /// Whether some rule is limited to some targets.
    #[cfg(test)]
    pub(crate) fn has_targeted(&self) -> bool {
        self.rules.iter().any(|r| r.targets.is_some())
    }

    /// What to send `target` for `track`.
    pub(crate) fn apply(&self, track: &Track, target: &str) -> Outcome {
        self.run(track, target, &mut |_| {})
    }

    /// [`RuleSet::apply`], with every step the rules took.
    pub(crate) fn trace(&self, track: &Track, target: &str) -> (Vec<Step>, Outcome) {
        let mut steps = Vec::new();
        let outcome = self.run(track, target, &mut |s| steps.push(s));
        (steps, outcome)
    }

    /// The `rules test` report: the track, then for each group of targets
    /// the rules treat alike, what each rule did and the result.
    pub(crate) fn report(&self, track: &Track, targets: &[&str]) -> String {
        let mut out = String::new();
        for field in Field::ALL {
            let value = field.get(track);
            if !value.is_empty() {
                out.push_str(&format!("{:<13}{value}\n", format!("{}:", field.name())));
            }
        }
        let all = ["every target"];
        let targets = if targets.is_empty() {
            &all[..]
        } else {
            targets
        };
        let mut groups: Vec<(Vec<&str>, Vec<Step>, Outcome)> = Vec::new();
        for target in targets {
            let (steps, outcome) = self.trace(track, target);
            match groups
                .iter_mut()
                .find(|(_, s, o)| *s == steps && *o == outcome)
            {
                Some(group) => group.0.push(target),
                None => groups.push((vec![target], steps, outcome)),
            }
        }
        for (names, steps, outcome) in groups {
            out.push_str(&format!("\n{}:\n", names.join(", ")));
            if steps.is_empty() {
                out.push_str("  no rule applies\n");
            }
            for step in steps {
                out.push_str(&format!("  {step}\n"));
            }
            match outcome {
                Outcome::Ignored(rule) => {
                    out.push_str(&format!("  result: not sent (rule {})\n", rule + 1));
                }
                Outcome::Send(t) => {
                    out.push_str(&format!("  result: {} – {}", t.artist, t.title));
                    if let Some(album) = &t.album {
                        out.push_str(&format!(" (album {album})"));
                    }
                    if t.artist.trim().is_empty() || t.title.trim().is_empty() {
                        out.push_str(" [no artist or title: never scrobbled]");
                    }
                    out.push('\n');
                }
            }
        }
        out
    }

    fn run(&self, track: &Track, target: &str, log: &mut dyn FnMut(Step)) -> Outcome {
        let mut track = track.clone();
        for rule in &self.rules {
            if !rule.applies(&track, target) {
                continue;
            }
            match &rule.action {
                Action::Ignore => {
                    log(Step::Ignored { rule: rule.index });
                    return Outcome::Ignored(rule.index);
                }
                Action::Rewrite {
                    field,
                    regex,
                    replace,
                    append,
                } => {
                    let before = field.get(&track).to_owned();
                    let Some(captures) = regex.captures(&before) else {
                        continue;
                    };
                    let mut additions = Vec::new();
                    for (other, template) in append {
                        let mut text = String::new();
                        captures.expand(template, &mut text);
                        additions.push((*other, text));
                    }
                    let after = regex
                        .replace_all(&before, replace.as_str())
                        .trim()
                        .to_owned();
                    let mut changes = vec![(*field, before.clone(), after)];
                    for (other, text) in additions {
                        let old = if other == *field {
                            changes[0].2.clone()
                        } else {
                            other.get(&track).to_owned()
                        };
                        let new = format!("{old}{text}");
                        match changes.iter_mut().find(|(f, ..)| *f == other) {
                            Some(change) => change.2 = new,
                            None => changes.push((other, old, new)),
                        }
                    }
                    for (f, from, to) in changes {
                        if from == to {
                            continue;
                        }
                        f.set(&mut track, to.clone());
                        log(Step::Rewrote {
                            rule: rule.index,
                            field: f,
                            from,
                            to,
                        });
                    }
                    for f in [Field::Artist, Field::Title] {
                        if f.get(&track).trim().is_empty() {
                            log(Step::Emptied {
                                rule: rule.index,
                                field: f,
                            });
                            return Outcome::Ignored(rule.index);
                        }
                    }
                }
            }
        }
        Outcome::Send(track)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::compile::RuleError;

    fn compile(text: &str, targets: &[&str]) -> Result<RuleSet, RuleError> {
        #[derive(serde::Deserialize)]
        struct Doc {
            rule: Vec<RawRule>,
        }
        let doc: Doc = toml::from_str(text).expect("test TOML");
        RuleSet::compile(doc.rule, targets)
    }

    fn track(artist: &str, title: &str) -> Track {
        Track {
            artist: artist.into(),
            title: title.into(),
            album: Some("Album".into()),
            file: Some("music/a.flac".into()),
            ..Track::default()
        }
    }

    #[test]
    fn glob_matching() {
        let g = Glob::new("*fm*", false);
        assert!(g.is_match("http://fm.example/"));
        assert!(!g.is_match("http://FM.example/"));
        assert!(Glob::new("*FM*", true).is_match("radio fm one"));
        assert!(Glob::new("a?c", false).is_match("abc"));
        assert!(!Glob::new("a?c", false).is_match("ac"));
        assert!(Glob::new("*", false).is_match(""));
        assert!(Glob::new("a*b*c", false).is_match("aXbYbZc"));
        assert!(!Glob::new("a*b*c", false).is_match("aXbYbZ"));
        assert!(Glob::new("Sigur R?s", true).is_match("SIGUR RÓS"));
        assert!(Glob::new("", false).is_match(""));
        assert!(!Glob::new("", false).is_match("x"));
    }

    #[test]
    fn exact_glob_and_regex_ignores_with_and_without_case() {
        let rules = compile(
            r#"
[[rule]]
action = "ignore"
artist = "Rick Astley"
[[rule]]
action = "ignore"
title = "*interlude*"
match = "glob"
case_insensitive = true
[[rule]]
action = "ignore"
genre = "^(audiobook|podcast)$"
match = "regex"
case_insensitive = true
"#,
            &["lastfm"],
        )
        .unwrap();
        assert_eq!(
            rules.apply(&track("Rick Astley", "Never"), "lastfm"),
            Outcome::Ignored(0)
        );
        assert!(matches!(
            rules.apply(&track("rick astley", "Never"), "lastfm"),
            Outcome::Send(_)
        ));
        assert_eq!(
            rules.apply(&track("X", "The INTERLUDE (live)"), "lastfm"),
            Outcome::Ignored(1)
        );
        let mut book = track("Reader", "Chapter 1");
        book.genre = Some("AudioBook".into());
        assert_eq!(rules.apply(&book, "lastfm"), Outcome::Ignored(2));
        book.genre = Some("Audiobooks and more".into());
        assert!(matches!(rules.apply(&book, "lastfm"), Outcome::Send(_)));
        assert_eq!(rules.counts(), (3, 0));
    }

    #[test]
    fn case_folding_is_unicode_for_exact_and_glob_ascii_for_regex() {
        let rules = compile(
            r#"
[[rule]]
action = "ignore"
artist = "SIGUR RÓS"
case_insensitive = true
[[rule]]
action = "ignore"
title = "^hoppípolla$"
match = "regex"
case_insensitive = true
"#,
            &[],
        )
        .unwrap();
        assert_eq!(
            rules.apply(&track("Sigur Rós", "x"), "t"),
            Outcome::Ignored(0)
        );
        assert_eq!(
            rules.apply(&track("A", "HOPPíPOLLA"), "t"),
            Outcome::Ignored(1)
        );
        // regex-lite folds ASCII only (README): "Í" is not "í".
        assert!(matches!(
            rules.apply(&track("A", "HOPPÍPOLLA"), "t"),
            Outcome::Send(_)
        ));
    }

    #[test]
    fn conditions_all_must_match_and_absent_fields_read_empty() {
        let rules = compile(
            r#"
[[rule]]
action = "ignore"
artist = "A*"
file = "podcasts/*"
match = "glob"
[[rule]]
action = "ignore"
album = ""
"#,
            &[],
        )
        .unwrap();
        let mut t = track("Ann", "T");
        assert!(matches!(rules.apply(&t, "x"), Outcome::Send(_)));
        t.file = Some("podcasts/ep1.mp3".into());
        assert_eq!(rules.apply(&t, "x"), Outcome::Ignored(0));
        let mut no_album = track("B", "T");
        no_album.album = None;
        assert_eq!(rules.apply(&no_album, "x"), Outcome::Ignored(1));
    }

    #[test]
    fn stream_url_matches_only_streams() {
        let rules = compile(
            "[[rule]]\naction = \"ignore\"\nstream_url = \"*\"\nmatch = \"glob\"\n",
            &[],
        )
        .unwrap();
        let mut t = track("A", "T");
        t.stream_url = None;
        // An absent field reads as "", which "*" matches: write "?*" for
        // "any stream"; this documents the reading.
        assert_eq!(rules.apply(&t, "x"), Outcome::Ignored(0));
        let rules = compile(
            "[[rule]]\naction = \"ignore\"\nstream_url = \"?*\"\nmatch = \"glob\"\n",
            &[],
        )
        .unwrap();
        assert!(matches!(rules.apply(&t, "x"), Outcome::Send(_)));
        t.stream_url = Some("http://radio/".into());
        assert_eq!(rules.apply(&t, "x"), Outcome::Ignored(0));
    }

    #[test]
    fn targets_limit_a_rule() {
        let rules = compile(
            r#"
[[rule]]
action = "ignore"
artist = "Noise"
targets = ["lastfm"]
"#,
            &["lastfm", "listenbrainz"],
        )
        .unwrap();
        let t = track("Noise", "Loud");
        assert_eq!(rules.apply(&t, "lastfm"), Outcome::Ignored(0));
        assert_eq!(rules.apply(&t, "listenbrainz"), Outcome::Send(t));
        assert!(rules.has_targeted());
    }

    #[test]
    fn rewrites_strip_remaster_suffixes_in_order() {
        let rules = compile(
            r#"
[[rule]]
action = "rewrite"
field = "title"
regex = '\s+[(\[](\d{4} )?remaster(ed)?( \d{4})?( version)?[)\]]$'
case_insensitive = true
[[rule]]
action = "rewrite"
field = "title"
regex = '\s+-\s+(\d{4} )?remaster(ed)?( \d{4})?( version)?$'
case_insensitive = true
"#,
            &[],
        )
        .unwrap();
        for (before, after) in [
            ("Come Together (Remastered 2009)", "Come Together"),
            ("Come Together - 2009 Remaster", "Come Together"),
            ("Heroes [2017 Remaster]", "Heroes"),
            ("Paranoid - Remastered", "Paranoid"),
            ("Remastered Feelings", "Remastered Feelings"),
        ] {
            let Outcome::Send(t) = rules.apply(&track("A", before), "x") else {
                panic!("ignored");
            };
            assert_eq!(t.title, after, "{before}");
        }
        let (steps, _) = rules.trace(&track("A", "Heroes (Remastered)"), "x");
        assert_eq!(
            steps,
            [Step::Rewrote {
                rule: 0,
                field: Field::Title,
                from: "Heroes (Remastered)".into(),
                to: "Heroes".into()
            }]
        );
    }

    #[test]
    fn rewrite_moves_featured_artist_from_title_to_artist() {
        let rules = compile(
            r#"
[[rule]]
action = "rewrite"
field = "title"
regex = '\s*\((?:feat\.|ft\.|featuring) ([^)]+)\)'
replace = ""
append = { artist = " feat. $1" }
case_insensitive = true
"#,
            &[],
        )
        .unwrap();
        let (steps, outcome) = rules.trace(
            &track("Daft Punk", "Get Lucky (feat. Pharrell Williams)"),
            "x",
        );
        let Outcome::Send(t) = outcome else {
            panic!("ignored")
        };
        assert_eq!(t.title, "Get Lucky");
        assert_eq!(t.artist, "Daft Punk feat. Pharrell Williams");
        assert_eq!(steps.len(), 2, "{steps:?}");
        // No match: nothing changes, nothing is appended.
        let plain = track("Daft Punk", "Around the World");
        assert_eq!(rules.apply(&plain, "x"), Outcome::Send(plain.clone()));
    }

    #[test]
    fn rewrite_of_album_to_empty_drops_it_but_an_empty_title_ignores_the_play() {
        let rules = compile(
            r#"
[[rule]]
action = "rewrite"
field = "album"
regex = '^Unknown Album$'
[[rule]]
action = "rewrite"
field = "title"
regex = '^Track \d+$'
"#,
            &[],
        )
        .unwrap();
        let mut t = track("A", "Song");
        t.album = Some("Unknown Album".into());
        let Outcome::Send(out) = rules.apply(&t, "x") else {
            panic!("ignored")
        };
        assert_eq!(out.album, None);
        assert_eq!(
            rules.apply(&track("A", "Track 12"), "x"),
            Outcome::Ignored(1)
        );
    }

    #[test]
    fn a_later_rule_sees_the_rewritten_track() {
        let rules = compile(
            r#"
[[rule]]
action = "rewrite"
field = "artist"
regex = '^The Beatles$'
replace = "Beatles, The"
[[rule]]
action = "ignore"
artist = "Beatles, The"
targets = ["b"]
"#,
            &["a", "b"],
        )
        .unwrap();
        let t = track("The Beatles", "Help!");
        let Outcome::Send(a) = rules.apply(&t, "a") else {
            panic!("ignored for a")
        };
        assert_eq!(a.artist, "Beatles, The");
        assert_eq!(rules.apply(&t, "b"), Outcome::Ignored(1));
    }

    #[test]
    fn report_groups_targets_and_shows_each_step() {
        let rules = compile(
            r#"
[[rule]]
action = "rewrite"
field = "title"
regex = ' \(Remastered \d{4}\)$'
[[rule]]
action = "ignore"
artist = "Queen"
targets = ["lastfm"]
"#,
            &["lastfm", "listenbrainz", "maloja"],
        )
        .unwrap();
        let report = rules.report(
            &track("Queen", "Bicycle Race (Remastered 2011)"),
            &["lastfm", "listenbrainz", "maloja"],
        );
        assert_eq!(
            report,
            "artist:      Queen\n\
             title:       Bicycle Race (Remastered 2011)\n\
             album:       Album\n\
             file:        music/a.flac\n\
             \n\
             lastfm:\n  \
             rule 1 rewrote title: \"Bicycle Race (Remastered 2011)\" -> \"Bicycle Race\"\n  \
             rule 2 ignores this play\n  \
             result: not sent (rule 2)\n\
             \n\
             listenbrainz, maloja:\n  \
             rule 1 rewrote title: \"Bicycle Race (Remastered 2011)\" -> \"Bicycle Race\"\n  \
             result: Queen – Bicycle Race (album Album)\n"
        );
        let none = RuleSet::default().report(&track("A", "B"), &[]);
        assert!(
            none.ends_with("every target:\n  no rule applies\n  result: A – B (album Album)\n"),
            "{none}"
        );
    }

    #[test]
    fn invalid_rules_name_the_index_and_key() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "[[rule]]\naction = \"rewrite\"\nfield = \"title\"\nregex = \"(unclosed\"\n",
                "rule[0].regex",
                "without closing",
            ),
            (
                "[[rule]]\naction = \"ignore\"\nartist = \"x\"\n[[rule]]\naction = \"ignore\"\ntitle = \"[z-a]\"\nmatch = \"regex\"\n",
                "rule[1].title",
                "invalid",
            ),
            (
                "[[rule]]\naction = \"drop\"\nartist = \"x\"\n",
                "rule[0].action",
                "\"drop\"",
            ),
            ("[[rule]]\nartist = \"x\"\n", "rule[0].action", "required"),
            (
                "[[rule]]\naction = \"ignore\"\n",
                "rule[0].action",
                "at least one",
            ),
            (
                "[[rule]]\naction = \"ignore\"\nartist = \"x\"\nmatch = \"fuzzy\"\n",
                "rule[0].match",
                "fuzzy",
            ),
            (
                "[[rule]]\naction = \"ignore\"\nartist = \"x\"\ntargets = [\"spotify\"]\n",
                "rule[0].targets",
                "spotify",
            ),
            (
                "[[rule]]\naction = \"rewrite\"\nfield = \"file\"\nregex = \"x\"\n",
                "rule[0].field",
                "\"file\"",
            ),
            (
                "[[rule]]\naction = \"rewrite\"\nfield = \"title\"\n",
                "rule[0].regex",
                "required",
            ),
            (
                "[[rule]]\naction = \"rewrite\"\nfield = \"title\"\nregex = \"x\"\nappend = { genre = \"y\" }\n",
                "rule[0].append.genre",
                "appended",
            ),
            (
                "[[rule]]\naction = \"ignore\"\nartist = \"x\"\nregex = \"y\"\n",
                "rule[0].action",
                "takes no",
            ),
        ];
        for (text, key, needle) in cases {
            let e = compile(text, &["lastfm"]).unwrap_err();
            assert_eq!(e.key, *key, "{text}");
            assert!(e.problem.contains(needle), "{text}: {}", e.problem);
        }
    }
}
