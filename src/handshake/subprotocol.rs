//! The subprotocol transport: a browser's way to send a token in the
//! handshake, since it cannot set `Authorization` on a WebSocket.
//!
//! The client offers its application protocol and one entry
//! `wsgate.bearer.<token>` (a JWT is made only of characters legal in a
//! subprotocol name). The server selects the application protocol, never the
//! token entry: the selected protocol is echoed back in the response, and a
//! token must never travel back.

use http::header::SEC_WEBSOCKET_PROTOCOL;
use http::{HeaderMap, HeaderValue};

use crate::refusal::RejectionReason;
use crate::secret::Secret;

/// Prefix of the subprotocol entry that carries a bearer token.
pub const TOKEN_PROTOCOL_PREFIX: &str = "wsgate.bearer.";

/// Prefix of the subprotocol entry that carries a DPoP proof (RFC 9449),
/// beside the token's entry: a browser cannot send a `DPoP` header on a
/// WebSocket either.
pub const PROOF_PROTOCOL_PREFIX: &str = "wsgate.dpop.";

/// The rest of `entry` after `prefix`, matched without case: an entry
/// that merely looks different must still never be treated (and passed
/// on, or echoed) as an application protocol.
fn strip_prefix_any_case<'a>(entry: &'a str, prefix: &str) -> Option<&'a str> {
    let head = entry.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &entry[prefix.len()..])
}

/// The token of a `wsgate.bearer.<token>` entry.
pub(crate) fn strip_token_prefix(entry: &str) -> Option<&str> {
    strip_prefix_any_case(entry, TOKEN_PROTOCOL_PREFIX)
}

/// The proof of a `wsgate.dpop.<proof>` entry.
pub(crate) fn strip_proof_prefix(entry: &str) -> Option<&str> {
    strip_prefix_any_case(entry, PROOF_PROTOCOL_PREFIX)
}

/// The application protocol wsgate chose from the client's offer, put into
/// the request extensions by the handshake layer. Pass it to axum's
/// `WebSocketUpgrade::protocols` (the gated upgrade does that for you).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectedProtocol(pub String);

/// What the client offered in `Sec-WebSocket-Protocol`.
#[derive(Debug, Default)]
pub(crate) struct Offer {
    /// Offered application protocols, in the client's order.
    pub(crate) application: Vec<String>,
    /// The token, when a token entry was offered.
    pub(crate) token: Option<Secret>,
    /// The DPoP proof, when a proof entry was offered.
    pub(crate) proof: Option<Secret>,
}

impl Offer {
    /// Reads every `Sec-WebSocket-Protocol` header.
    pub(crate) fn parse(headers: &HeaderMap) -> Result<Self, RejectionReason> {
        let mut offer = Offer::default();
        for value in headers.get_all(SEC_WEBSOCKET_PROTOCOL) {
            let value = value
                .to_str()
                .map_err(|_| RejectionReason::MalformedCredentials)?;
            for entry in value
                .split(',')
                .map(|entry| entry.trim_matches([' ', '\t']))
            {
                if entry.is_empty() {
                    continue;
                }
                if let Some(token) = strip_token_prefix(entry) {
                    if offer.token.is_some() {
                        return Err(RejectionReason::AmbiguousCredentials);
                    }
                    offer.token = Some(Secret::new(token));
                } else if let Some(proof) = strip_proof_prefix(entry) {
                    if offer.proof.is_some() {
                        return Err(RejectionReason::InvalidDpopProof);
                    }
                    offer.proof = Some(Secret::new(proof));
                } else {
                    offer.application.push(entry.to_owned());
                }
            }
        }
        Ok(offer)
    }

    /// The first protocol of the server's list that the client offered.
    pub(crate) fn select(&self, supported: &[String]) -> Option<String> {
        supported
            .iter()
            .find(|protocol| self.application.iter().any(|offered| offered == *protocol))
            .cloned()
    }

    /// Rewrites `Sec-WebSocket-Protocol` to the application protocols only,
    /// so neither the handler nor anything after it ever sees the token.
    pub(crate) fn strip_token(&self, headers: &mut HeaderMap) {
        if self.token.is_none() && self.proof.is_none() {
            return;
        }
        headers.remove(SEC_WEBSOCKET_PROTOCOL);
        if let Ok(value) = HeaderValue::from_str(&self.application.join(", "))
            && !self.application.is_empty()
        {
            headers.insert(SEC_WEBSOCKET_PROTOCOL, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn parses_application_protocols_and_the_token() {
        let offer = Offer::parse(&headers(&["chat.v1, wsgate.bearer.a.b.c", "chat.v0"])).unwrap();
        assert_eq!(offer.application, ["chat.v1", "chat.v0"]);
        assert_eq!(offer.token.as_ref().unwrap().expose(), "a.b.c");
        assert_eq!(
            offer
                .select(&["chat.v0".into(), "chat.v1".into()])
                .as_deref(),
            Some("chat.v0")
        );
        assert_eq!(offer.select(&["other".into()]), None);
    }

    #[test]
    fn the_token_prefix_matches_in_any_case() {
        let offer = Offer::parse(&headers(&["chat.v1, WSGATE.Bearer.tok"])).unwrap();
        assert_eq!(offer.application, ["chat.v1"]);
        assert_eq!(offer.token.as_ref().unwrap().expose(), "tok");
    }

    #[test]
    fn a_proof_entry_rides_beside_the_token_and_is_stripped_with_it() {
        let mut map = headers(&["chat.v1, wsgate.bearer.a.b.c, WSGATE.DPoP.x.y.z"]);
        let offer = Offer::parse(&map).unwrap();
        assert_eq!(offer.application, ["chat.v1"]);
        assert_eq!(offer.proof.as_ref().unwrap().expose(), "x.y.z");
        offer.strip_token(&mut map);
        assert_eq!(map[SEC_WEBSOCKET_PROTOCOL], "chat.v1");
        let two = Offer::parse(&headers(&["wsgate.dpop.x, wsgate.dpop.y"])).unwrap_err();
        assert_eq!(two, RejectionReason::InvalidDpopProof);
    }

    #[test]
    fn two_tokens_are_ambiguous() {
        let error = Offer::parse(&headers(&["wsgate.bearer.x, wsgate.bearer.y"])).unwrap_err();
        assert_eq!(error, RejectionReason::AmbiguousCredentials);
    }

    #[test]
    fn stripping_leaves_only_application_protocols() {
        let mut map = headers(&["chat.v1,wsgate.bearer.secret-token"]);
        let offer = Offer::parse(&map).unwrap();
        offer.strip_token(&mut map);
        assert_eq!(map[SEC_WEBSOCKET_PROTOCOL], "chat.v1");

        let mut only_token = headers(&["wsgate.bearer.secret-token"]);
        Offer::parse(&only_token)
            .unwrap()
            .strip_token(&mut only_token);
        assert!(only_token.get(SEC_WEBSOCKET_PROTOCOL).is_none());
    }
}
