//! The README's examples, run where they can be: every `mpd-scrobbler`
//! command line in its shell blocks parses, and every TOML block is a
//! valid config but for the placeholders a reader fills in.

use std::path::Path;

use clap::Parser;

use super::args::Cli;
use crate::config::Config;

const README: &str = include_str!("../../README.md");

/// The fenced blocks of one language.
fn blocks(lang: &str) -> Vec<&'static str> {
    let fence = format!("```{lang}\n");
    README
        .split(fence.as_str())
        .skip(1)
        .filter_map(|rest| rest.split("\n```").next())
        .collect()
}

/// A shell line's words, up to a comment, a pipe or a redirection; quotes
/// group words.
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote = None;
    let mut in_word = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '#' | '|' | '>' | '<') if !in_word => break,
            (None, ' ') => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

#[test]
fn every_command_line_in_the_readme_parses() {
    let mut seen = 0;
    for block in blocks("sh") {
        for line in block.lines() {
            // Placeholders the reader fills in, where a number must go.
            let w: Vec<String> = words(line.trim())
                .into_iter()
                .map(|w| if w == "ID" { "1".to_owned() } else { w })
                .collect();
            if w.first().map(String::as_str) != Some("mpd-scrobbler") {
                continue;
            }
            seen += 1;
            if let Err(e) = Cli::try_parse_from(&w) {
                panic!("README: `{line}` does not parse:\n{e}");
            }
        }
    }
    assert!(seen > 30, "only {seen} command lines found");
}

#[test]
fn every_config_example_in_the_readme_loads() {
    let env = |_: &str| None;
    let blocks = blocks("toml");
    assert!(blocks.len() >= 5, "{}", blocks.len());
    for block in blocks {
        // A block of rules or stations may name a target of the others.
        let text = format!(
            "{block}\n[lastfm]\napi_key = \"0123456789abcdef0123456789abcdef\"\napi_secret = \"s\"\n"
        );
        let text = if block.contains("[lastfm]") || block.contains("[[lastfm]]") {
            block.to_owned()
        } else {
            text
        };
        match Config::parse(Path::new("README.md"), &text, &env) {
            Ok(_) => {}
            Err(e) if e.to_string().contains("is still the example's placeholder") => {}
            Err(e) => panic!("README block does not load: {e}\n{block}"),
        }
    }
}

#[test]
fn shell_words() {
    assert_eq!(
        words(r#"mpd-scrobbler artist "Sigur Rós" --full   # a comment"#),
        ["mpd-scrobbler", "artist", "Sigur Rós", "--full"]
    );
    assert_eq!(
        words("mpd-scrobbler completions bash > ~/.x"),
        ["mpd-scrobbler", "completions", "bash"]
    );
}
