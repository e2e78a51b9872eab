//! One inbound message of a live connection.

use std::fmt;
use std::sync::{Arc, OnceLock};

use axum::extract::ws::Message;
use serde_json::Value;

use crate::session::connection::Session;
use crate::session::envelope::{Envelope, Lookup};

/// One inbound data message (text or binary) of a live connection, with its
/// session: what every layer of the message pipeline looks at.
pub struct Inbound {
    message: Message,
    session: Arc<Session>,
    /// Boxed: most messages never build a `Value`, and every layer moves
    /// the `Inbound` (at more than 128 bytes each move is a `memcpy` call).
    json: OnceLock<Option<Box<Value>>>,
    envelope: Fields,
}

/// The envelope of a text message, found when a layer first asks for a
/// field.
#[derive(Clone)]
enum Fields {
    /// Found through `&self`, once, however many ask.
    Shared(OnceLock<Option<Envelope>>),
    /// Found by a layer that owned the message
    /// ([`Inbound::find_fields`]): no atomic operation, where the
    /// `OnceLock` takes two.
    Found(Option<Envelope>),
}

impl Inbound {
    /// Wraps `message` of `session`.
    pub fn new(message: Message, session: Arc<Session>) -> Self {
        Self {
            message,
            session,
            json: OnceLock::new(),
            envelope: Fields::Shared(OnceLock::new()),
        }
    }

    /// The message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// Consumes the wrapper, returning the message.
    pub fn into_message(self) -> Message {
        self.message
    }

    /// The connection's session.
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// The text, for a text message.
    pub fn text(&self) -> Option<&str> {
        match &self.message {
            Message::Text(text) => Some(text.as_str()),
            _ => None,
        }
    }

    /// The text parsed as JSON (once, however many layers ask), when it is
    /// a JSON object.
    pub fn json(&self) -> Option<&Value> {
        self.json
            .get_or_init(|| {
                self.text()
                    .and_then(|text| serde_json::from_str::<Value>(text).ok())
                    .filter(Value::is_object)
                    .map(Box::new)
            })
            .as_deref()
    }

    /// A string field of the JSON object: the same answer as
    /// `self.json()?.get(field)?.as_str()`, usually without building the
    /// `Value` (the fields are found in one borrowed pass over the text,
    /// shared by every layer that asks).
    pub fn json_str(&self, field: &str) -> Option<&str> {
        let text = self.text()?;
        let envelope = match &self.envelope {
            Fields::Found(envelope) => envelope,
            Fields::Shared(envelope) => envelope.get_or_init(|| Envelope::parse(text)),
        };
        match envelope.as_ref().map(|envelope| envelope.get(text, field)) {
            Some(Lookup::Text(value)) => Some(value),
            Some(Lookup::Absent) => None,
            Some(Lookup::Unknown) | None => self.json()?.get(field)?.as_str(),
        }
    }

    /// Finds the fields now, through ownership: what the built-in layers
    /// call before their first [`json_str`](Self::json_str), so a message
    /// costs no atomic operation for it. Nothing to do for a binary
    /// message or once found.
    pub(crate) fn find_fields(&mut self) {
        let (Fields::Shared(envelope), Message::Text(text)) = (&mut self.envelope, &self.message)
        else {
            return;
        };
        let found = envelope
            .take()
            .unwrap_or_else(|| Envelope::parse(text.as_str()));
        self.envelope = Fields::Found(found);
    }

    /// The message's `type`, for audit events.
    pub(crate) fn action(&self) -> Option<String> {
        self.json_str("type").map(str::to_owned)
    }
}

impl Clone for Inbound {
    /// Cheap: the message's bytes are shared, and the parsed JSON is kept.
    fn clone(&self) -> Self {
        Self {
            message: self.message.clone(),
            session: self.session.clone(),
            json: self.json.clone(),
            envelope: self.envelope.clone(),
        }
    }
}

impl fmt::Debug for Inbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The message may carry a token: show its size, not its content.
        let size = match &self.message {
            Message::Text(text) => text.len(),
            Message::Binary(bytes) => bytes.len(),
            _ => 0,
        };
        f.debug_struct("Inbound")
            .field("connection", &self.session.id())
            .field("bytes", &size)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::{AuthMethod, Principal};

    fn inbound(message: Message) -> Inbound {
        let session = Session::new(Principal::new("alice", AuthMethod::Token), None);
        Inbound::new(message, Arc::new(session))
    }

    #[test]
    fn fields_found_through_ownership_answer_as_the_shared_ones() {
        let texts = [
            r#"{"type":"say","text":"hi"}"#,
            r#"{"type":"s\u0061y","room":{"id":1}}"#,
            r#"{"type":"say""#,
            "[1,2]",
        ];
        for text in texts {
            let shared = inbound(Message::text(text));
            // Found before any lookup, and after one filled the shared cell.
            let mut found_first = shared.clone();
            found_first.find_fields();
            let mut found_after = inbound(Message::text(text));
            let _ = found_after.json_str("type");
            found_after.find_fields();
            found_after.find_fields();
            for field in ["type", "text", "room", "absent"] {
                let expected = shared.json_str(field);
                assert_eq!(found_first.json_str(field), expected, "{text} {field}");
                assert_eq!(found_after.json_str(field), expected, "{text} {field}");
            }
            assert!(matches!(found_first.envelope, Fields::Found(_)));
        }
        let mut binary = inbound(Message::binary(b"{\"type\":\"say\"}".to_vec()));
        binary.find_fields();
        assert_eq!(binary.json_str("type"), None);
        assert!(matches!(binary.envelope, Fields::Shared(_)));
    }
}
