//! TOML errors reported by line and column, without the source line or the
//! value: either may be a secret.

/// "line L, column C: message" for a TOML error. toml's own Display quotes
/// the offending source line, and serde's "invalid type"/"invalid value"
/// messages quote the value: either may be a password.
pub(super) fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = redact_unexpected(e.message().trim()).replace('\n', "; ");
    let Some(span) = e.span() else {
        return message;
    };
    let before = text.get(..span.start).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    // A value of the wrong type sits in a key/value pair that parsed, so
    // what precedes its `=` is a key, not part of a secret.
    let key = (message.starts_with("invalid type: ") || message.starts_with("invalid value: "))
        .then(|| key_before(before))
        .flatten()
        .map(|k| format!("key `{k}`: "))
        .unwrap_or_default();
    format!("line {line}, column {column}: {key}{message}")
}

/// The dotted key of the value that starts where `before` ends, with its
/// table's name: `[scrobble]` then `played_percent = ` gives
/// `scrobble.played_percent`.
fn key_before(before: &str) -> Option<String> {
    let mut lines = before.rsplit('\n');
    let (key, _) = lines.next()?.split_once('=')?;
    let key = key.trim();
    let plain = |k: &str| {
        !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    };
    if !plain(key) {
        return None;
    }
    let table = lines
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim())
        .filter(|t| plain(t));
    Some(match table {
        Some(t) => format!("{t}.{key}"),
        None => key.to_owned(),
    })
}

/// serde's "invalid type: integer `123`, expected a string" without the
/// value: "invalid type: integer, expected a string".
pub(super) fn redact_unexpected(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        let Some(rest) = message.strip_prefix(prefix) else {
            continue;
        };
        let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        // serde writes the value after its kind: integer `1`, string "text".
        let kind = found
            .find(['`', '"', '\''])
            .map_or(found, |i| found[..i].trim_end());
        return if expected.is_empty() {
            format!("{prefix}{kind}")
        } else {
            format!("{prefix}{kind}, expected {expected}")
        };
    }
    message.to_owned()
}
