//! What a token is bound to — its `cnf` claim (RFC 7800): the thumbprint
//! of a DPoP key (`jkt`, RFC 9449) or of a client certificate
//! (`x5t#S256`, RFC 8705) — and whether a request showed it.
//!
//! One check for every path that takes a token (handshake, first message,
//! refresh, per-message tokens), whoever issued it (wsgate's `JwtIssuer`,
//! an identity provider's JWT, an introspection answer): a bound token
//! never passes as a bearer token.

use crate::error::{DpopError, Error, TokenError};
use crate::principal::Principal;
use serde_json::Value;

/// What a token is bound to. A token without `cnf` is a bearer token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Confirmation {
    jkt: Option<String>,
    certificate: Option<String>,
}

/// What a request proved it holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Possession {
    /// The thumbprint of the key of a DPoP proof that passed.
    pub dpop_jkt: Option<String>,
    /// The SHA-256 thumbprint (base64url) of the client certificate the
    /// connection presented.
    pub certificate: Option<String>,
}

impl Possession {
    /// Also the client certificate of RFC 8705 thumbprint `x5t_s256`.
    #[must_use]
    pub fn with_certificate(mut self, x5t_s256: impl Into<String>) -> Self {
        self.certificate = Some(x5t_s256.into());
        self
    }

    /// A request that proved the DPoP key of thumbprint `jkt`.
    pub fn dpop(jkt: impl Into<String>) -> Self {
        Self {
            dpop_jkt: Some(jkt.into()),
            certificate: None,
        }
    }
}

impl Confirmation {
    /// The binding of `principal`'s token, from its `cnf` claim. Members
    /// of `cnf` other than `jkt` and `x5t#S256` are not wsgate's to judge
    /// and are left alone.
    ///
    /// # Errors
    ///
    /// [`TokenError::InvalidClaim`] for a `cnf` that is not an object, or
    /// a `jkt` or `x5t#S256` that is not a string.
    pub fn of(principal: &Principal) -> Result<Self, TokenError> {
        let Some(cnf) = principal.claims().get("cnf") else {
            return Ok(Self::default());
        };
        let Value::Object(cnf) = cnf else {
            return Err(TokenError::InvalidClaim("cnf"));
        };
        let member = |name: &str| match cnf.get(name) {
            None => Ok(None),
            Some(Value::String(value)) if !value.is_empty() => Ok(Some(value.clone())),
            Some(_) => Err(TokenError::InvalidClaim("cnf")),
        };
        Ok(Self {
            jkt: member("jkt")?,
            certificate: member("x5t#S256")?,
        })
    }

    /// Also bound to the DPoP key of thumbprint `jkt`: what an issuer
    /// writes ([`JwtIssuer::issue_confirmed_token`](crate::jwt::JwtIssuer::issue_confirmed_token)).
    #[must_use]
    pub fn with_jkt(mut self, jkt: impl Into<String>) -> Self {
        self.jkt = Some(jkt.into());
        self
    }

    /// Also bound to the client certificate of RFC 8705 thumbprint
    /// `x5t_s256` (a [`ClientCertificate::thumbprint`](crate::certificate::ClientCertificate::thumbprint)).
    #[must_use]
    pub fn with_certificate(mut self, x5t_s256: impl Into<String>) -> Self {
        self.certificate = Some(x5t_s256.into());
        self
    }

    /// Whether the token is bound to anything: not a bearer token.
    pub fn is_bound(&self) -> bool {
        self.jkt.is_some() || self.certificate.is_some()
    }

    /// The thumbprint of the DPoP key the token is bound to.
    pub fn jkt(&self) -> Option<&str> {
        self.jkt.as_deref()
    }

    /// The thumbprint of the certificate the token is bound to.
    pub fn certificate(&self) -> Option<&str> {
        self.certificate.as_deref()
    }

    /// Checks that `possession` shows every binding of the token.
    ///
    /// # Errors
    ///
    /// [`DpopError::Missing`] for a key-bound token without a proof,
    /// [`DpopError::KeyMismatch`] for a proof of another key,
    /// [`TokenError::NotConfirmed`] for a certificate-bound token without
    /// that certificate.
    pub fn check(&self, possession: &Possession) -> Result<(), Error> {
        if let Some(jkt) = &self.jkt {
            match &possession.dpop_jkt {
                None => return Err(DpopError::Missing.into()),
                Some(shown) if shown != jkt => return Err(DpopError::KeyMismatch.into()),
                Some(_) => {}
            }
        }
        if let Some(certificate) = &self.certificate
            && possession.certificate.as_ref() != Some(certificate)
        {
            return Err(TokenError::NotConfirmed.into());
        }
        Ok(())
    }
}

/// Whether `next` is bound exactly as `current` is: what a token that
/// replaces a live session's (an in-band refresh, a per-message token)
/// must be. The socket proved its key once, at its start; a token bound
/// to another key, or a bound token for an unbound session (or the other
/// way round), would change whose the socket is without a proof.
pub(crate) fn same_binding(next: &Principal, current: &Principal) -> bool {
    match (Confirmation::of(next), Confirmation::of(current)) {
        (Ok(next), Ok(current)) => next == current,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::principal::AuthMethod;
    use serde_json::json;

    fn with_cnf(cnf: Value) -> Principal {
        let mut claims = serde_json::Map::new();
        claims.insert("cnf".to_owned(), cnf);
        Principal::new("alice", AuthMethod::Token).with_claims(claims)
    }

    fn kind(result: Result<(), Error>) -> Option<String> {
        result.err().map(|error| match error.kind() {
            ErrorKind::Dpop(error) => format!("dpop: {error}"),
            ErrorKind::Token(error) => format!("token: {error}"),
            other => format!("{other}"),
        })
    }

    #[test]
    fn bindings_are_read_from_cnf_and_checked() {
        let bearer = Confirmation::of(&Principal::new("alice", AuthMethod::Token)).unwrap();
        assert!(!bearer.is_bound());
        assert_eq!(kind(bearer.check(&Possession::default())), None);

        // Other members of `cnf` are left alone.
        let key = Confirmation::of(&with_cnf(json!({"jkt": "K1", "kid": "x", "jwk": {}}))).unwrap();
        assert_eq!(key.jkt(), Some("K1"));
        assert_eq!(kind(key.check(&Possession::dpop("K1"))), None);
        assert_eq!(
            kind(key.check(&Possession::default())).as_deref(),
            Some("dpop: dpop proof required")
        );
        assert_eq!(
            kind(key.check(&Possession::dpop("K2"))).as_deref(),
            Some("dpop: dpop key mismatch")
        );

        let certificate = Confirmation::of(&with_cnf(json!({"x5t#S256": "C1"}))).unwrap();
        assert!(certificate.is_bound());
        assert_eq!(
            kind(certificate.check(&Possession::dpop("K1"))).as_deref(),
            Some("token: token not confirmed")
        );
        let shown = Possession {
            certificate: Some("C1".to_owned()),
            ..Possession::default()
        };
        assert_eq!(kind(certificate.check(&shown)), None);

        for bad in [
            json!("K1"),
            json!({"jkt": 7}),
            json!({"jkt": ""}),
            json!([1]),
        ] {
            assert_eq!(
                Confirmation::of(&with_cnf(bad.clone())),
                Err(TokenError::InvalidClaim("cnf")),
                "{bad}"
            );
        }
    }
}
