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
    json: OnceLock<Option<Value>>,
    envelope: OnceLock<Option<Envelope>>,
}

impl Inbound {
    /// Wraps `message` of `session`.
    pub fn new(message: Message, session: Arc<Session>) -> Self {
        Self {
            message,
            session,
            json: OnceLock::new(),
            envelope: OnceLock::new(),
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
            })
            .as_ref()
    }

    /// A string field of the JSON object: the same answer as
    /// `self.json()?.get(field)?.as_str()`, usually without building the
    /// `Value` (the fields are found in one borrowed pass over the text,
    /// shared by every layer that asks).
    pub fn json_str(&self, field: &str) -> Option<&str> {
        let text = self.text()?;
        let envelope = self.envelope.get_or_init(|| Envelope::parse(text));
        match envelope.as_ref().map(|envelope| envelope.get(text, field)) {
            Some(Lookup::Text(value)) => Some(value),
            Some(Lookup::Absent) => None,
            Some(Lookup::Unknown) | None => self.json()?.get(field)?.as_str(),
        }
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
