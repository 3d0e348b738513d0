//! Compiling the `[[rule]]` sections as written into a [`RuleSet`],
//! checking every key, with errors that name the rule's index and key.

use std::collections::BTreeMap;

use regex_lite::{Regex, RegexBuilder};
use serde::Deserialize;

use super::{Action, Field, Glob, Pattern, Rule, RuleSet};

/// A `[[rule]]` section as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    action: Option<String>,
    #[serde(rename = "match")]
    kind: Option<String>,
    #[serde(default)]
    case_insensitive: bool,
    targets: Option<Vec<String>>,
    artist: Option<String>,
    album_artist: Option<String>,
    album: Option<String>,
    title: Option<String>,
    genre: Option<String>,
    file: Option<String>,
    stream_url: Option<String>,
    field: Option<String>,
    regex: Option<String>,
    replace: Option<String>,
    append: Option<BTreeMap<String, String>>,
}

/// A rule that does not compile: the key (`rule[2].regex`) and the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RuleError {
    /// Dotted key.
    pub key: String,
    /// What is wrong.
    pub problem: String,
}

fn build_regex(pattern: &str, case_insensitive: bool) -> Result<Regex, regex_lite::Error> {
    RegexBuilder::new(pattern)
        .case_insensitive(case_insensitive)
        .build()
}

impl RuleSet {
    /// Compile the sections, checking every key; `targets` are the
    /// configured target names a rule may be limited to.
    pub(crate) fn compile(raw: Vec<RawRule>, targets: &[&str]) -> Result<RuleSet, RuleError> {
        let mut rules = Vec::with_capacity(raw.len());
        for (index, r) in raw.into_iter().enumerate() {
            let err = |key: &str, problem: String| RuleError {
                key: format!("rule[{index}].{key}"),
                problem,
            };
            let ci = r.case_insensitive;
            let kind = r.kind.as_deref().unwrap_or("exact");
            let mut conditions = Vec::new();
            for (field, value) in [
                (Field::Artist, r.artist),
                (Field::AlbumArtist, r.album_artist),
                (Field::Album, r.album),
                (Field::Title, r.title),
                (Field::Genre, r.genre),
                (Field::File, r.file),
                (Field::StreamUrl, r.stream_url),
            ] {
                let Some(value) = value else { continue };
                let pattern = match kind {
                    "exact" if ci => Pattern::Exact(value.to_lowercase(), true),
                    "exact" => Pattern::Exact(value, false),
                    "glob" => Pattern::Glob(Glob::new(&value, ci)),
                    "regex" => Pattern::Regex(
                        build_regex(&value, ci).map_err(|e| err(field.name(), e.to_string()))?,
                    ),
                    other => {
                        return Err(err(
                            "match",
                            format!("{other:?} is not \"exact\", \"glob\" or \"regex\""),
                        ));
                    }
                };
                conditions.push((field, pattern));
            }
            let targets = match r.targets {
                Some(list) if list.is_empty() => {
                    return Err(err(
                        "targets",
                        "is empty: leave it out to apply the rule to every target".into(),
                    ));
                }
                Some(list) => {
                    if let Some(unknown) = list.iter().find(|t| !targets.contains(&t.as_str())) {
                        return Err(err(
                            "targets",
                            format!(
                                "no target is named {unknown:?} (configured: {})",
                                targets.join(", ")
                            ),
                        ));
                    }
                    Some(list)
                }
                None => None,
            };
            let rewrite_keys =
                r.field.is_some() || r.regex.is_some() || r.replace.is_some() || r.append.is_some();
            let action = match r.action.as_deref() {
                Some("ignore") => {
                    if rewrite_keys {
                        return Err(err(
                            "action",
                            "an ignore rule takes no field, regex, replace or append".into(),
                        ));
                    }
                    if conditions.is_empty() {
                        return Err(err(
                            "action",
                            "an ignore rule needs at least one of artist, album_artist, \
                             album, title, genre, file or stream_url"
                                .into(),
                        ));
                    }
                    Action::Ignore
                }
                Some("rewrite") => {
                    let field_name = r
                        .field
                        .ok_or_else(|| err("field", "is required for a rewrite".into()))?;
                    let field = Field::parse(&field_name)
                        .filter(|f| f.writable())
                        .ok_or_else(|| {
                            err(
                                "field",
                                format!(
                                    "{field_name:?} is not \"artist\", \"album_artist\", \
                                     \"album\" or \"title\""
                                ),
                            )
                        })?;
                    let pattern = r
                        .regex
                        .ok_or_else(|| err("regex", "is required for a rewrite".into()))?;
                    let regex =
                        build_regex(&pattern, ci).map_err(|e| err("regex", e.to_string()))?;
                    let mut append = Vec::new();
                    for (name, text) in r.append.unwrap_or_default() {
                        let other =
                            Field::parse(&name)
                                .filter(|f| f.writable())
                                .ok_or_else(|| {
                                    err(
                                &format!("append.{name}"),
                                "only artist, album_artist, album or title can be appended to"
                                    .into(),
                            )
                                })?;
                        append.push((other, text));
                    }
                    Action::Rewrite {
                        field,
                        regex,
                        replace: r.replace.unwrap_or_default(),
                        append,
                    }
                }
                Some(other) => {
                    return Err(err(
                        "action",
                        format!("{other:?} is not \"ignore\" or \"rewrite\""),
                    ));
                }
                None => {
                    return Err(err(
                        "action",
                        "is required: \"ignore\" or \"rewrite\"".into(),
                    ));
                }
            };
            rules.push(Rule {
                index,
                targets,
                conditions,
                action,
            });
        }
        Ok(RuleSet { rules })
    }
}
