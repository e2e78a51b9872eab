//! The envelope of a JSON message: where each top-level field of the
//! object lies in the message's text, found in one borrowed pass.
//!
//! Every layer asks a message for a field or two (`type`, `token`, a room),
//! and the answer is nearly always a plain string. Building a
//! `serde_json::Value` for that copies every key and value into a tree of
//! its own and frees it again; the envelope notes positions instead, and a
//! lookup is a slice of the text. A string with escapes, or keys with
//! escapes anywhere in the object, send the lookup to the full parse, so
//! every answer is the one `serde_json::Value` would give.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The top-level fields of a JSON object message, by position.
#[derive(Debug, Clone)]
pub(crate) struct Envelope {
    fields: Vec<Field>,
}

#[derive(Debug, Clone, Copy)]
struct Field {
    key: Span,
    value: FieldValue,
}

/// A byte range of the message's text.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
}

#[derive(Debug, Clone, Copy)]
enum FieldValue {
    /// A string without escapes: its characters are these bytes.
    Text(Span),
    /// A string with escapes: only the full parse has its characters.
    Escaped,
    /// A number, `true`/`false`/`null`, an array or an object.
    NotText,
}

/// What a lookup found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Lookup<'a> {
    /// The field's string value.
    Text(&'a str),
    /// No such field, or not a string.
    Absent,
    /// Ask the full parse (an escaped string).
    Unknown,
}

impl Envelope {
    /// The envelope of `text`, when it is a JSON object whose keys hold no
    /// escapes; `None` otherwise (the full parse then decides).
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let fields = deserializer.deserialize_map(Fields { text }).ok()??;
        deserializer.end().ok()?;
        Some(Self { fields })
    }

    /// The string value of `name` in `text` (the text this envelope was
    /// parsed from). A repeated key answers with its last value, as the
    /// full parse does.
    pub(crate) fn get<'a>(&self, text: &'a str, name: &str) -> Lookup<'a> {
        let found = self
            .fields
            .iter()
            .rev()
            .find(|field| text.get(field.key.start..field.key.end) == Some(name));
        match found.map(|field| field.value) {
            None | Some(FieldValue::NotText) => Lookup::Absent,
            Some(FieldValue::Escaped) => Lookup::Unknown,
            Some(FieldValue::Text(span)) => text
                .get(span.start..span.end)
                .map_or(Lookup::Unknown, Lookup::Text),
        }
    }
}

/// The position of `piece` in `text`; `piece` is a slice of it, as the
/// deserializer borrows from its input.
fn span(text: &str, piece: &str) -> Span {
    let start = (piece.as_ptr() as usize).wrapping_sub(text.as_ptr() as usize);
    Span {
        start,
        end: start + piece.len(),
    }
}

/// The object's fields; `None` when a key holds escapes.
struct Fields<'t> {
    text: &'t str,
}

impl<'de> Visitor<'de> for Fields<'_> {
    type Value = Option<Vec<Field>>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Vec::with_capacity(4);
        let mut escaped_key = false;
        while let Some(key) = map.next_key::<Piece<'de>>()? {
            let value = map.next_value::<Piece<'de>>()?;
            // Keep reading after an escaped key: the whole text must be
            // valid JSON for any answer.
            let Piece::Text(key) = key else {
                escaped_key = true;
                continue;
            };
            let value = match value {
                Piece::Text(value) => FieldValue::Text(span(self.text, value)),
                Piece::Escaped => FieldValue::Escaped,
                Piece::NotText => FieldValue::NotText,
            };
            fields.push(Field {
                key: span(self.text, key),
                value,
            });
        }
        Ok((!escaped_key).then_some(fields))
    }
}

/// One key or value, read without copying it.
enum Piece<'a> {
    Text(&'a str),
    Escaped,
    NotText,
}

impl<'de> Deserialize<'de> for Piece<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PieceVisitor)
    }
}

struct PieceVisitor;

impl<'de> Visitor<'de> for PieceVisitor {
    type Value = Piece<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Self::Value, E> {
        Ok(Piece::Text(value))
    }

    // serde_json hands over an unescaped copy only when the string held
    // escapes.
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Piece::Escaped)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Piece::NotText)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Piece::NotText)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Piece::NotText)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Piece::NotText)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Piece::NotText)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Piece::NotText)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Piece::NotText)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    /// What the full parse says: the answer the envelope must agree with.
    fn by_value(text: &str, name: &str) -> Option<String> {
        let value: Value = serde_json::from_str(text).ok()?;
        value.as_object()?.get(name)?.as_str().map(str::to_owned)
    }

    fn by_envelope(text: &str, name: &str) -> Option<String> {
        match Envelope::parse(text).map(|envelope| envelope.get(text, name)) {
            Some(Lookup::Text(found)) => Some(found.to_owned()),
            Some(Lookup::Absent) => None,
            // The full parse decides, as `Inbound::json_str` does.
            Some(Lookup::Unknown) | None => by_value(text, name),
        }
    }

    #[test]
    fn every_answer_is_the_full_parses() {
        let cases = [
            r#"{"type":"say","token":"abc"}"#,
            r#"{"type":"say","type":"admin.kick"}"#,
            r#"{"type":"a\"b","x":1}"#,
            r#"{"ty\u0070e":"admin.kick","type":"say"}"#,
            r#"{"type":"say","ty\u0070e":"admin.kick"}"#,
            r#"{"type":"\u0061dmin.kick"}"#,
            r#"{"type":1,"token":null}"#,
            r#"{"type":["say"],"token":{"type":"x"}}"#,
            r#"{"nested":{"type":"admin.kick"},"type":"say"}"#,
            r#"  {"type" : "say" }  "#,
            r#"{"type":"say"} trailing"#,
            r#"{"type":"say""#,
            r#"["type","say"]"#,
            r#""type""#,
            r#"{}"#,
            r#"{"type":"say","type":1}"#,
            r#"{"type":"é ü 🦀","token":""}"#,
            "",
            "not json",
        ];
        for text in cases {
            for name in ["type", "token", "nested", "x", "missing"] {
                assert_eq!(
                    by_envelope(text, name),
                    by_value(text, name),
                    "{text} / {name}"
                );
            }
        }
    }

    #[test]
    fn escaped_keys_send_every_lookup_to_the_full_parse() {
        assert!(Envelope::parse(r#"{"ty\u0070e":"admin.kick"}"#).is_none());
        let text = r#"{"type":"say","text":"a\nb"}"#;
        let envelope = Envelope::parse(text).unwrap();
        assert_eq!(envelope.get(text, "type"), Lookup::Text("say"));
        assert_eq!(envelope.get(text, "text"), Lookup::Unknown);
        assert_eq!(envelope.get(text, "room"), Lookup::Absent);
    }
}
