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
//!
//! Most messages are flat objects of strings without escapes (a type, a
//! few plain fields, a token). Those are read by a scanner of their own: a
//! string without escapes ends at the next `"`, which `memchr` finds many
//! bytes at a time, where serde's pass visits every string through its
//! visitor. The scanner accepts only what serde_json accepts (it delegates
//! numbers and literals to serde_json) and hands everything else, nested
//! values and escapes, to the serde pass.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

/// The top-level fields of a JSON object message, by position.
#[derive(Debug, Clone)]
pub(crate) struct Envelope {
    fields: FieldList,
}

/// The fields, on the heap: held inline they would make every `Inbound`
/// that much larger, and the pipeline moves it from layer to layer
/// (measured: the copies cost more than the allocation saves).
type FieldList = Vec<Field>;

/// An empty field list with room for a typical message's fields (a type, a
/// token and a field or two), so the first field does not go through
/// `Vec`'s growth. Both passes start from it.
fn field_list() -> FieldList {
    Vec::with_capacity(4)
}

#[derive(Debug, Clone, Copy)]
struct Field {
    key: Span,
    value: FieldValue,
}

/// A byte range of the message's text, in 32 bits to keep the envelope
/// small (a longer text gets no envelope: the full parse reads it).
#[derive(Debug, Clone, Copy)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// `start..end` of a text no longer than `u32::MAX` bytes.
    fn new(start: usize, end: usize) -> Self {
        Self {
            start: start as u32,
            end: end as u32,
        }
    }

    /// Where the span ends (for a string: its closing quote).
    fn end(self) -> usize {
        self.end as usize
    }

    fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
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
        if u32::try_from(text.len()).is_err() {
            return None;
        }
        // Escapes are the serde pass's to read; one look over the text
        // finds whether there are any (measured: cheaper than looking for
        // a backslash beside each closing quote).
        let bytes = text.as_bytes();
        if memchr::memchr(b'\\', bytes).is_none() {
            match flat_fields(text, has_control(bytes)) {
                Flat::Fields(fields) => return Some(Self { fields }),
                Flat::Invalid => return None,
                Flat::Nested => {}
            }
        }
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let fields = deserializer.deserialize_map(Fields { text }).ok()??;
        deserializer.end().ok()?;
        Some(Self { fields })
    }

    /// The string value of `name` in `text` (the text this envelope was
    /// parsed from). A repeated key answers with its last value, as the
    /// full parse does.
    pub(crate) fn get<'a>(&self, text: &'a str, name: &str) -> Lookup<'a> {
        let bytes = text.as_bytes();
        let found = self
            .fields
            .iter()
            .rev()
            .find(|field| bytes.get(field.key.range()) == Some(name.as_bytes()));
        match found.map(|field| field.value) {
            None | Some(FieldValue::NotText) => Lookup::Absent,
            Some(FieldValue::Escaped) => Lookup::Unknown,
            Some(FieldValue::Text(span)) => {
                text.get(span.range()).map_or(Lookup::Unknown, Lookup::Text)
            }
        }
    }
}

/// How many bytes the scanner looks at before it calls on `memchr`.
const CHUNK: usize = 16;

const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);

/// The eight-byte words of `bytes`, the first byte the lowest, and what is
/// left after the last whole word.
fn words(bytes: &[u8]) -> (impl Iterator<Item = u64> + '_, &[u8]) {
    let chunks = bytes.chunks_exact(8);
    let rest = chunks.remainder();
    let words = chunks.map(|word| u64::from_le_bytes(word.try_into().expect("eight bytes")));
    (words, rest)
}

/// Whether a byte is below 0x20, eight bytes a step.
fn has_control(bytes: &[u8]) -> bool {
    let (words, rest) = words(bytes);
    let below = words.fold(0, |below, word| below | marks_below(word, 0x20));
    below != 0 || rest.iter().any(|&byte| byte < 0x20)
}

/// What the scanner made of a text without a backslash.
enum Flat {
    /// A flat JSON object: these are its fields.
    Fields(FieldList),
    /// Not JSON, or not an object: no field has an answer.
    Invalid,
    /// An object with an array or object in it: the serde pass reads it
    /// (it counts nesting depth as the full parse does).
    Nested,
}

/// The fields of `text`, which holds no backslash, read without serde's
/// visitors: whitespace, punctuation and strings here, a number or literal
/// by serde_json itself. `controls`: whether the text holds a byte below
/// 0x20, which each string must then be checked for.
fn flat_fields(text: &str, controls: bool) -> Flat {
    let bytes = text.as_bytes();
    let mut at = skip_whitespace(bytes, 0);
    if bytes.get(at) != Some(&b'{') {
        return Flat::Invalid;
    }
    let mut fields = field_list();
    at = skip_whitespace(bytes, at + 1);
    if bytes.get(at) == Some(&b'}') {
        return flat_end(bytes, at, fields);
    }
    loop {
        let Some(key) = plain_string(bytes, at, controls) else {
            return Flat::Invalid;
        };
        at = skip_whitespace(bytes, key.end() + 1);
        if bytes.get(at) != Some(&b':') {
            return Flat::Invalid;
        }
        at = skip_whitespace(bytes, at + 1);
        let value = match bytes.get(at) {
            Some(b'"') => {
                let Some(value) = plain_string(bytes, at, controls) else {
                    return Flat::Invalid;
                };
                at = value.end() + 1;
                FieldValue::Text(value)
            }
            Some(b'[' | b'{') => return Flat::Nested,
            _ => match scalar_length(&text[at..]) {
                Some(length) => {
                    at += length;
                    FieldValue::NotText
                }
                None => return Flat::Invalid,
            },
        };
        fields.push(Field { key, value });
        at = skip_whitespace(bytes, at);
        match bytes.get(at) {
            Some(b',') => at = skip_whitespace(bytes, at + 1),
            Some(b'}') => return flat_end(bytes, at, fields),
            _ => return Flat::Invalid,
        }
    }
}

/// After the object's closing brace at `at`, only whitespace may follow.
fn flat_end(bytes: &[u8], at: usize, fields: FieldList) -> Flat {
    if skip_whitespace(bytes, at + 1) == bytes.len() {
        Flat::Fields(fields)
    } else {
        Flat::Invalid
    }
}

/// The first position from `at` that is not JSON whitespace.
fn skip_whitespace(bytes: &[u8], mut at: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\t' | b'\r') = bytes.get(at) {
        at += 1;
    }
    at
}

/// The characters of the string whose opening quote is at `at`, in a text
/// without backslashes: up to the next quote, with no control character
/// (which JSON forbids in a string; looked for only when the text has
/// `controls`).
fn plain_string(bytes: &[u8], at: usize, controls: bool) -> Option<Span> {
    if bytes.get(at) != Some(&b'"') {
        return None;
    }
    let start = at + 1;
    let end = start + closing_quote(&bytes[start..])?;
    if controls && has_control(&bytes[start..end]) {
        return None;
    }
    Some(Span::new(start, end))
}

/// Where the first quote in `rest` is. Keys and most values are short:
/// a word or two's comparison answers for those, before `memchr` would
/// have set itself up.
fn closing_quote(rest: &[u8]) -> Option<usize> {
    let head = &rest[..rest.len().min(CHUNK)];
    let (words, tail) = words(head);
    for (at, word) in words.enumerate() {
        let quotes = marks_of(word, b'"');
        if quotes != 0 {
            // The first byte is the lowest in the word.
            return Some(at * 8 + quotes.trailing_zeros() as usize / 8);
        }
    }
    if let Some(found) = tail.iter().position(|&byte| byte == b'"') {
        return Some(head.len() - tail.len() + found);
    }
    if rest.len() <= CHUNK {
        return None;
    }
    memchr::memchr(b'"', &rest[CHUNK..]).map(|found| CHUNK + found)
}

/// The top bit of each byte of `word` that equals `byte`, with no false
/// mark below the first true one (the bit trick of "Bit Twiddling Hacks",
/// "determine if a word has a byte equal to n").
fn marks_of(word: u64, byte: u8) -> u64 {
    let zero_where_equal = word ^ (ONES * u64::from(byte));
    zero_where_equal.wrapping_sub(ONES) & !zero_where_equal & HIGHS
}

/// Not zero when a byte of `word` is below `limit` (at most 0x80; the
/// same source, "determine if a word has a byte less than n").
fn marks_below(word: u64, limit: u8) -> u64 {
    word.wrapping_sub(ONES * u64::from(limit)) & !word & HIGHS
}

/// How many bytes the number or literal at the start of `rest` takes, as
/// serde_json reads it (a number out of `f64`'s range is no JSON to it);
/// `None` when it is not one.
fn scalar_length(rest: &str) -> Option<usize> {
    let mut values = serde_json::Deserializer::from_str(rest).into_iter::<Piece<'_>>();
    match values.next()? {
        Ok(Piece::NotText) => Some(values.byte_offset()),
        _ => None,
    }
}

/// The position of `piece` in `text`; `piece` is a slice of it, as the
/// deserializer borrows from its input.
fn span(text: &str, piece: &str) -> Span {
    let start = (piece.as_ptr() as usize).wrapping_sub(text.as_ptr() as usize);
    Span::new(start, start + piece.len())
}

/// The object's fields; `None` when a key holds escapes.
struct Fields<'t> {
    text: &'t str,
}

impl<'de> Visitor<'de> for Fields<'_> {
    type Value = Option<FieldList>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = field_list();
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

    // Nested values are read as pieces too, not skipped: serde_json skips
    // a number by its syntax alone, where the full parse refuses one out of
    // `f64`'s range (`[1e400]`), and so must the envelope.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<Piece<'de>>()?.is_some() {}
        Ok(Piece::NotText)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<Piece<'de>, Piece<'de>>()?.is_some() {}
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
            // Numbers and literals, read by serde_json for the scanner.
            r#"{"type":"say","n":-0.5e-3,"b":null,"c":false,"d":true,"e":0}"#,
            r#"{"type":"say","x":1e400}"#,
            r#"{"type":"say","x":01}"#,
            r#"{"type":"say","x":tru}"#,
            r#"{"type":"say","x":-}"#,
            r#"{"type":"say","x":true"y":1}"#,
            r#"{"type":"say","x":1"y":1}"#,
            r#"{"type":"say","x":}"#,
            // Out of range inside an array or object: no JSON either.
            r#"{"type":"say","x":[1e400]}"#,
            r#"{"type":"say","x":{"y":1e400}}"#,
            r#"{"type":"say","x":[1,{"y":[true]}]}"#,
            // Punctuation the scanner checks itself.
            "{\"type\":\"say\u{1}\"}",
            "{\"type\":\"say\u{7f}\"}",
            "{\"ty\tpe\":\"say\"}",
            "\t{\r\n\"type\"\t:\n\"say\"\r}\n",
            r#"{"type":"say",}"#,
            r#"{,"type":"say"}"#,
            r#"{"type" "say"}"#,
            r#"{"type":"say"}}"#,
            r#"{"type":"say"]"#,
            r#"{"type":"say","#,
            r#"{"type":"#,
            r#"{"type""#,
            r#"{"#,
            r#"{ }"#,
            r#"{"":"empty key"}"#,
            r#"{"type":"say"}{}"#,
            // Backslashes: an escape hands the text to the serde pass,
            // wherever it is; outside a string it is no JSON.
            r#"{"type":"say"\}"#,
            r#"{"type":"say","x":1\n}"#,
            r#"{"type":"say","text":"a\\b"}"#,
            r#"{"type":"say","text":"\"}"#,
            r#"{"type":"say","text":"0123456789abcdefghij\"k"}"#,
            r#"{"type":"say","token":"0123456789abcdefghij\u0041"}"#,
            r#"{"type":"\ud800"}"#,
            r#"{"type":"x\q"}"#,
        ];
        // Nesting around serde_json's depth limit: the scanner leaves
        // nested values to the serde pass, which counts depth as the full
        // parse does.
        let deep: Vec<String> = (125..=130)
            .map(|depth| {
                format!(
                    r#"{{"type":"say","x":{}{}}}"#,
                    "[".repeat(depth),
                    "]".repeat(depth)
                )
            })
            .collect();
        for text in cases.iter().copied().chain(deep.iter().map(String::as_str)) {
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
    fn the_word_at_a_time_searches_agree_with_a_byte_at_a_time() {
        for length in 0..40 {
            for at in 0..=length {
                for other in [b'a', b'"' ^ 0x80, b'"' - 1, b'"' + 1, 0x00, 0xff] {
                    let mut bytes = vec![other; length];
                    if at < length {
                        bytes[at] = b'"';
                    }
                    let expected = bytes.iter().position(|&byte| byte == b'"');
                    assert_eq!(closing_quote(&bytes), expected, "{bytes:?}");
                }
            }
        }
        for length in 0..40 {
            for at in 0..length {
                for byte in 0..=u8::MAX {
                    let mut bytes = vec![b' '; length];
                    bytes[at] = byte;
                    assert_eq!(has_control(&bytes), byte < 0x20, "{bytes:?}");
                }
            }
        }
    }

    #[test]
    fn the_scanner_reads_flat_objects_and_hands_over_the_rest() {
        let flat = r#" {"type":"say", "n":1.5, "ok":true, "token":"0123456789abcdefghijkl"} "#;
        let Flat::Fields(fields) = flat_fields(flat, false) else {
            panic!("a flat object is the scanner's");
        };
        let envelope = Envelope { fields };
        assert_eq!(envelope.get(flat, "type"), Lookup::Text("say"));
        assert_eq!(
            envelope.get(flat, "token"),
            Lookup::Text("0123456789abcdefghijkl")
        );
        assert_eq!(envelope.get(flat, "n"), Lookup::Absent);
        assert!(matches!(
            flat_fields(r#"{"type":"say","x":[1]}"#, false),
            Flat::Nested
        ));
        assert!(matches!(
            flat_fields(r#"{"type":"say",}"#, false),
            Flat::Invalid
        ));
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
