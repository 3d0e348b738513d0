//! Lenient reading of JSON from outside into typed structs, for Last.fm's
//! replies (docs/protocols.md, "Requests and replies"), shared by the
//! scrobbling client and the metadata commands, and for import files: a list
//! may be an array, one bare object or `""`; text may be plain or under
//! `#text`; numbers may be numbers or numeric strings.
//!
//! Each type here reads any JSON value without failing, so one odd field
//! never costs the rest of a reply: what is not of the expected shape reads
//! as absent (empty text, no number, no items, a default object).

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{
    Deserialize, DeserializeOwned, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};

/// Items of a list that Last.fm may send as an array, a bare object (one
/// item), `""`, `null` or nothing (none). Every element of an array counts,
/// whatever its shape: `T` reads anything.
#[derive(Debug)]
pub(crate) struct List<T>(pub Vec<T>);

impl<T> Default for List<T> {
    fn default() -> Self {
        List(Vec::new())
    }
}

/// An object read into `T`, or `None` when the value is not an object (or
/// is one `T` cannot take, such as one with a repeated key).
#[derive(Debug)]
pub(crate) struct Obj<T>(pub Option<T>);

impl<T> Default for Obj<T> {
    fn default() -> Self {
        Obj(None)
    }
}

impl<T: Default> Obj<T> {
    /// The object, or `T`'s default when there was none.
    pub(crate) fn or_default(self) -> T {
        self.0.unwrap_or_default()
    }
}

/// A string that may be plain, under `#text` when the element has
/// attributes (or `name` in extended replies), or a number; empty when the
/// text was dropped.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Text(pub String);

/// A value of type `T`, or `None` for a value of any other shape.
#[derive(Debug)]
pub(crate) struct Maybe<T>(pub Option<T>);

impl<T> Default for Maybe<T> {
    fn default() -> Self {
        Maybe(None)
    }
}

/// The shapes a [`Maybe`] tells apart.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum MaybeShape<T> {
    Good(T),
    Other(IgnoredAny),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Maybe<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match MaybeShape::deserialize(deserializer)? {
            MaybeShape::Good(t) => Maybe(Some(t)),
            MaybeShape::Other(_) => Maybe(None),
        })
    }
}

/// A plain string, or `None` for any other value.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Str(pub Option<String>);

/// A count sent as a number or a numeric string (Last.fm sends numbers,
/// Libre.fm strings); `None` for anything else, negative numbers and
/// fractions included.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Number(pub Option<u64>);

/// A reply body read into `T`: `None` when it is not a JSON object, or is
/// one `T` cannot take (a top-level key repeated). The fields of `T` are
/// the lenient types of this module, so nothing below the top fails.
pub(crate) fn object<T: DeserializeOwned>(body: &[u8]) -> Option<T> {
    serde_json::from_slice::<Obj<T>>(body).ok()?.0
}

/// For a field whose mere presence matters: present with any value (`null`
/// included) is `Some`, as opposed to serde's `Option`, which reads `null`
/// as absent. Use with `#[serde(default, deserialize_with = "present")]`.
pub(crate) fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// Skips the rest of a sequence.
fn drain_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

/// Skips the rest of a map.
fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

/// Implements the visitor methods for the scalar values a lenient type
/// reads as its default.
macro_rules! default_for_other_values {
    () => {
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok(Self::Value::default())
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(Self::Value::default())
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(Self::Value::default())
        }
    };
}

struct ListVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ListVisitor<T> {
    type Value = List<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<List<T>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<List<T>, A::Error> {
        Ok(List(vec![T::deserialize(MapAccessDeserializer::new(map))?]))
    }

    fn visit_str<E>(self, _: &str) -> Result<List<T>, E> {
        Ok(List::default())
    }
    fn visit_u64<E>(self, _: u64) -> Result<List<T>, E> {
        Ok(List::default())
    }
    fn visit_i64<E>(self, _: i64) -> Result<List<T>, E> {
        Ok(List::default())
    }
    fn visit_f64<E>(self, _: f64) -> Result<List<T>, E> {
        Ok(List::default())
    }
    default_for_other_values!();
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ListVisitor(PhantomData))
    }
}

/// The shapes an [`Obj`] tells apart. An array is caught first, since
/// serde would otherwise read a struct from it by position.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Shape<T> {
    Array(AnyArray),
    Object(T),
    Other(IgnoredAny),
}

/// An array, its elements skipped: only its shape matters.
struct AnyArray;

impl<'de> Deserialize<'de> for AnyArray {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Skip;
        impl<'de> Visitor<'de> for Skip {
            type Value = AnyArray;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AnyArray, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(AnyArray)
            }
        }
        deserializer.deserialize_seq(Skip)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Shape::deserialize(deserializer)? {
            Shape::Object(t) => Obj(Some(t)),
            Shape::Array(_) | Shape::Other(_) => Obj(None),
        })
    }
}

/// A number as the text Last.fm would have sent.
fn float_text(f: f64) -> String {
    serde_json::Number::from_f64(f).map_or_else(String::new, |n| n.to_string())
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E>(self, s: &str) -> Result<Text, E> {
        Ok(Text(s.to_owned()))
    }
    fn visit_string<E>(self, s: String) -> Result<Text, E> {
        Ok(Text(s))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Text, E> {
        Ok(Text(n.to_string()))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Text, E> {
        Ok(Text(n.to_string()))
    }
    fn visit_f64<E>(self, f: f64) -> Result<Text, E> {
        Ok(Text(float_text(f)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Text, A::Error> {
        drain_seq(seq)?;
        Ok(Text::default())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Text, A::Error> {
        // A repeated key counts once, the last time, as in any JSON object.
        let (mut text, mut name) = (None, None);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "#text" => text = Some(map.next_value::<Str>()?),
                "name" => name = Some(map.next_value::<Str>()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Text::tagged(text, name))
    }
    default_for_other_values!();
}

impl Text {
    /// The text of an element read field by field: `#text` when there is
    /// one (a string or not), else `name`.
    pub(crate) fn tagged(text: Option<Str>, name: Option<Str>) -> Text {
        Text(text.or(name).and_then(|s| s.0).unwrap_or_default())
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TextVisitor)
    }
}

struct StrVisitor;

impl<'de> Visitor<'de> for StrVisitor {
    type Value = Str;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E>(self, s: &str) -> Result<Str, E> {
        Ok(Str(Some(s.to_owned())))
    }
    fn visit_string<E>(self, s: String) -> Result<Str, E> {
        Ok(Str(Some(s)))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Str, E> {
        Ok(Str::default())
    }
    fn visit_i64<E>(self, _: i64) -> Result<Str, E> {
        Ok(Str::default())
    }
    fn visit_f64<E>(self, _: f64) -> Result<Str, E> {
        Ok(Str::default())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Str, A::Error> {
        drain_seq(seq)?;
        Ok(Str::default())
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Str, A::Error> {
        drain_map(map)?;
        Ok(Str::default())
    }
    default_for_other_values!();
}

impl<'de> Deserialize<'de> for Str {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrVisitor)
    }
}

struct NumberVisitor;

impl<'de> Visitor<'de> for NumberVisitor {
    type Value = Number;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_u64<E>(self, n: u64) -> Result<Number, E> {
        Ok(Number(Some(n)))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Number, E> {
        Ok(Number(u64::try_from(n).ok()))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Number, E> {
        Ok(Number(None))
    }
    fn visit_str<E>(self, s: &str) -> Result<Number, E> {
        Ok(Number(s.trim().parse().ok()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Number, A::Error> {
        drain_seq(seq)?;
        Ok(Number(None))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Number, A::Error> {
        drain_map(map)?;
        Ok(Number(None))
    }
    default_for_other_values!();
}

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NumberVisitor)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    fn read<T: for<'de> Deserialize<'de>>(json: &str) -> T {
        serde_json::from_str(json).unwrap()
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default)]
    struct Item {
        name: Text,
        n: Number,
    }

    #[test]
    fn a_list_is_an_array_a_bare_object_or_nothing() {
        assert_eq!(
            read::<List<Text>>(r##"[1, "a", {"#text": "b"}]"##).0.len(),
            3
        );
        let one: List<Obj<Item>> = read(r#"{"name": "x", "n": "2"}"#);
        assert_eq!(
            one.0[0].0,
            Some(Item {
                name: Text("x".into()),
                n: Number(Some(2))
            })
        );
        for none in [r#""""#, "null", "3", "true", r#""x""#] {
            assert!(read::<List<Text>>(none).0.is_empty(), "{none}");
        }
    }

    #[test]
    fn an_object_is_only_an_object() {
        assert!(read::<Obj<Item>>(r#"{"name": "x"}"#).0.is_some());
        // An array is not read by position, whatever its length.
        for other in [r#"["x", 1]"#, r#""x""#, "null", "1", "[]"] {
            assert!(read::<Obj<Item>>(other).0.is_none(), "{other}");
        }
        // Odd fields read as absent; the object still counts.
        let odd: Obj<Item> = read(r#"{"name": [1], "n": {"a": 1}, "other": null}"#);
        assert_eq!(odd.or_default(), Item::default());
        // Items of a list that are not objects still count as items.
        let list: List<Obj<Item>> = read(r#"["", {"n": 1}, 5]"#);
        assert_eq!(list.0.len(), 3);
        assert!(list.0[0].0.is_none() && list.0[1].0.is_some());
    }

    #[test]
    fn each_shape_last_fm_and_libre_fm_send_is_read() {
        assert_eq!(read::<Text>(r#""x""#).0, "x");
        assert_eq!(read::<Text>(r##"{"#text": "y", "mbid": ""}"##).0, "y");
        assert_eq!(read::<Text>(r#"{"name": "z"}"#).0, "z");
        // `#text` wins over `name`, even when it is not a string.
        assert_eq!(read::<Text>(r##"{"name": "z", "#text": 1}"##).0, "");
        assert_eq!(read::<Text>("3").0, "3");
        assert_eq!(read::<Text>("1.5").0, "1.5");
        assert_eq!(read::<Text>("null").0, "");
        assert_eq!(read::<Text>(r#"["x"]"#).0, "");
        assert_eq!(read::<Number>(r#"" 12 ""#).0, Some(12));
        assert_eq!(read::<Number>("12").0, Some(12));
        assert_eq!(read::<Number>("-1").0, None);
        assert_eq!(read::<Number>("1.0").0, None);
        assert_eq!(read::<Number>(r#""x""#).0, None);
        assert_eq!(read::<Number>(r#"{"a": [1]}"#).0, None);
        assert_eq!(read::<Str>(r#""s""#).0.as_deref(), Some("s"));
        assert_eq!(read::<Str>("7").0, None);
        assert_eq!(read::<Maybe<bool>>("true").0, Some(true));
        assert_eq!(read::<Maybe<bool>>(r#""true""#).0, None);
        assert_eq!(read::<Maybe<u64>>("-1").0, None);
        assert_eq!(
            read::<Maybe<Vec<Str>>>(r#"["a", 1]"#).0.map(|v| v.len()),
            Some(2)
        );
        assert!(read::<Maybe<Vec<Str>>>(r#"{"a": 1}"#).0.is_none());
    }

    #[test]
    fn presence_is_told_apart_from_absence() {
        #[derive(Deserialize)]
        struct Code {
            #[serde(default, deserialize_with = "present")]
            code: Option<Number>,
        }
        assert_eq!(read::<Code>(r#"{"code": null}"#).code, Some(Number(None)));
        assert_eq!(read::<Code>("{}").code, None);
    }
}
