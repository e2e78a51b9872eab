//! The vocabulary of audit records: what an event is about and how it
//! ended. Every stage names these, so they stand below every stage (the
//! layering rule lists this file on its own).

/// What a decision is about: the `event` of its audit record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// A handshake was accepted or refused.
    Handshake,
    /// A message was refused (or, when asked for, allowed).
    Message,
    /// An in-band token refresh was accepted or refused.
    Refresh,
    /// Tokens, a subject or a session were revoked.
    Revoke,
    /// wsgate closed a socket.
    Close,
    /// An identity provider's keys were fetched (or the fetch failed).
    Keys,
    /// An identity provider was asked whether a token is active (RFC 7662).
    Introspection,
}

impl EventKind {
    /// The stable name: `handshake`, `message`, `refresh`, `revoke`,
    /// `close`, `keys`, `introspection`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Handshake => "handshake",
            EventKind::Message => "message",
            EventKind::Refresh => "refresh",
            EventKind::Revoke => "revoke",
            EventKind::Close => "close",
            EventKind::Keys => "keys",
            EventKind::Introspection => "introspection",
        }
    }
}

/// Whether a decision let the thing through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Let through.
    Allow,
    /// Refused.
    Deny,
}

impl Outcome {
    /// `allow` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
        }
    }
}
