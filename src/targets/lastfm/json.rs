//! Lenient reading of Last.fm's JSON (docs/protocols.md, "Requests and replies"), shared by the
//! scrobbling client and the metadata commands: a list may be an array, one
//! bare object or `""`; text may be plain or under `#text`; numbers may be
//! numbers or numeric strings.

use serde_json::Value;

/// Items of a list that Last.fm may send as an array, a bare object (one
/// item), `""`, `null` or nothing (none).
pub(crate) fn items(v: Option<&Value>) -> Vec<&Value> {
    match v {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(o @ Value::Object(_)) => vec![o],
        _ => Vec::new(),
    }
}

/// A string that may be plain, under `#text` when the element has
/// attributes (or `name` in extended replies), or a number; empty when the
/// text was dropped.
pub(crate) fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) => o
            .get("#text")
            .or_else(|| o.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// A count sent as a number or a numeric string: Last.fm sends numbers,
/// Libre.fm strings.
pub(crate) fn number(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_shape_last_fm_and_libre_fm_send_is_read() {
        assert_eq!(items(Some(&json!([1, 2]))).len(), 2);
        assert_eq!(items(Some(&json!({"a": 1}))).len(), 1);
        assert!(items(Some(&json!(""))).is_empty());
        assert!(items(None).is_empty());
        assert_eq!(text(Some(&json!("x"))), "x");
        assert_eq!(text(Some(&json!({"#text": "y", "mbid": ""}))), "y");
        assert_eq!(text(Some(&json!({"name": "z"}))), "z");
        assert_eq!(text(Some(&json!(3))), "3");
        assert_eq!(text(Some(&json!(null))), "");
        assert_eq!(number(Some(&json!(" 12 "))), Some(12));
        assert_eq!(number(Some(&json!(12))), Some(12));
        assert_eq!(number(Some(&json!(-1))), None);
        assert_eq!(number(Some(&json!("x"))), None);
    }
}
