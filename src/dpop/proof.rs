//! One DPoP proof, checked: its shape and header, its key, its signature
//! and its claims. No cryptography here: jsonwebtoken on aws-lc-rs
//! verifies, and computes the key's RFC 7638 thumbprint.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use jsonwebtoken::DecodingKey;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::{Digest as _, Sha256};

use crate::clock::from_unix_seconds;
use crate::dpop::nonce::DpopNonces;
use crate::dpop::target::TargetUrl;
use crate::error::DpopError;
use crate::jwt::{decode_segment, media_type_matches, numeric_date_of, split_compact};

/// The most a proof may weigh.
pub(crate) const MAX_PROOF_BYTES: usize = 8 * 1024;

/// The longest `jti` a proof may carry.
pub(crate) const MAX_JTI_BYTES: usize = 128;

/// What a proof is checked against: the request it came with.
#[derive(Debug, Clone, Copy)]
pub struct ProofRequest<'a> {
    /// The request's method (`GET` for a WebSocket handshake).
    pub method: &'a str,
    /// The URL the request was sent to.
    pub target: &'a TargetUrl,
    /// The access token sent with the proof, whose hash `ath` must be;
    /// `None` where no token goes with it (a ticket's redemption).
    pub access_token: Option<&'a str>,
}

/// A proof that passed every check but the replay check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedProof {
    /// The RFC 7638 SHA-256 thumbprint of the proof's key (base64url): what
    /// a bound token's `cnf.jkt` must be.
    pub jkt: String,
    /// The proof's unique id.
    pub jti: String,
}

/// The rules a proof is checked by.
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) max_age: Duration,
    pub(crate) max_ahead: Duration,
    /// Server nonces, when a proof must carry one.
    pub(crate) nonces: Option<DpopNonces>,
}

/// Checks `proof` against `request` at `now`, by `rules`.
pub(crate) fn check(
    proof: &str,
    request: &ProofRequest<'_>,
    now: SystemTime,
    rules: &Rules,
) -> Result<CheckedProof, DpopError> {
    if proof.len() > MAX_PROOF_BYTES {
        return Err(DpopError::TooLarge);
    }
    let (header_segment, payload_segment, signature_segment) =
        split_compact(proof).map_err(|_| DpopError::Malformed)?;
    let header_json = decode_segment(header_segment).map_err(|_| DpopError::Malformed)?;
    let header: Header<'_> =
        serde_json::from_slice(&header_json).map_err(|_| DpopError::Malformed)?;
    let typ = header.typ.and_then(text);
    if !typ.is_some_and(|typ| media_type_matches(&typ, "dpop+jwt"))
        || header.crit.is_some()
        || header.b64.is_some()
    {
        return Err(DpopError::InvalidType);
    }
    let algorithm = header
        .alg
        .and_then(text)
        .and_then(|name| name.parse::<Algorithm>().ok())
        .filter(|algorithm| rules.algorithms.contains(algorithm))
        .ok_or(DpopError::AlgorithmNotAllowed)?;
    let key = header
        .jwk
        .and_then(|jwk| serde_json::from_str::<PublicKey<'_>>(jwk.get()).ok())
        .ok_or(DpopError::InvalidKey)?;
    let decoding = key.decoding_key(algorithm)?;
    let signed = &proof[..header_segment.len() + 1 + payload_segment.len()];
    match jsonwebtoken::crypto::verify(signature_segment, signed.as_bytes(), &decoding, algorithm) {
        Ok(true) => {}
        Ok(false) | Err(_) => return Err(DpopError::InvalidSignature),
    }

    let claims_json = decode_segment(payload_segment).map_err(|_| DpopError::Malformed)?;
    let claims: Claims<'_> =
        serde_json::from_slice(&claims_json).map_err(|_| DpopError::Malformed)?;
    if claim(claims.htm, "htm")? != request.method {
        return Err(DpopError::MethodMismatch);
    }
    if TargetUrl::parse(&claim(claims.htu, "htu")?).as_ref() != Some(request.target) {
        return Err(DpopError::UrlMismatch);
    }
    let issued = claims
        .iat
        .and_then(|iat| serde_json::from_str::<Value>(iat.get()).ok())
        .and_then(|iat| numeric_date_of(Some(&iat), "iat").ok().flatten())
        .ok_or(DpopError::InvalidClaim("iat"))?;
    // Clamped: an `iat` past what a `SystemTime` holds (the proof's key is
    // the client's own, so anyone can sign one) is merely not fresh.
    let issued = from_unix_seconds(issued);
    let too_old = now
        .checked_sub(rules.max_age)
        .is_some_and(|oldest| issued < oldest);
    let too_new = now
        .checked_add(rules.max_ahead)
        .is_none_or(|newest| issued > newest);
    if too_old || too_new {
        return Err(DpopError::NotFresh);
    }
    let jti = claim(claims.jti, "jti")?;
    if jti.is_empty() {
        return Err(DpopError::InvalidClaim("jti"));
    }
    if jti.len() > MAX_JTI_BYTES {
        return Err(DpopError::TooLarge);
    }
    if let Some(token) = request.access_token {
        let expected = URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()));
        if claim(claims.ath, "ath")? != expected {
            return Err(DpopError::TokenHashMismatch);
        }
    }
    if let Some(nonces) = &rules.nonces {
        let fresh = claims
            .nonce
            .and_then(text)
            .is_some_and(|nonce| nonces.accepts(&nonce, now));
        if !fresh {
            return Err(DpopError::NonceRequired);
        }
    }
    Ok(CheckedProof {
        jkt: key.thumbprint(),
        jti: jti.into_owned(),
    })
}

/// The proof's header, each member left as its JSON text until it is
/// read: a proof is parsed once, without a map of owned strings, and a
/// member of the wrong type is refused for what it is (a `typ` that is no
/// string is not a DPoP proof), not as malformed JSON. A member named
/// twice is malformed.
#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    typ: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    alg: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    jwk: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    crit: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    b64: Option<&'a RawValue>,
}

/// The claims a proof is checked by, read as its header is.
#[derive(Deserialize)]
struct Claims<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    htm: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    htu: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    iat: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    jti: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    ath: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    nonce: Option<&'a RawValue>,
}

/// A member that is there, `null` included (a `"crit": null` is still a
/// `crit`).
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(deserializer).map(Some)
}

/// The text of the string claim `name`.
fn claim<'a>(value: Option<&'a RawValue>, name: &'static str) -> Result<Cow<'a, str>, DpopError> {
    value.and_then(text).ok_or(DpopError::InvalidClaim(name))
}

/// A JSON string member's text: borrowed where it has no escapes.
fn text(value: &RawValue) -> Option<Cow<'_, str>> {
    serde_json::from_str::<&str>(value.get())
        .map(Cow::Borrowed)
        .or_else(|_| serde_json::from_str::<String>(value.get()).map(Cow::Owned))
        .ok()
}

/// The header's `jwk`: the public members of the key kinds DPoP allows,
/// and whether any member only a private (or symmetric) key has is there.
#[derive(Deserialize)]
struct PublicKey<'a> {
    #[serde(borrow)]
    kty: Cow<'a, str>,
    #[serde(borrow, default)]
    crv: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    x: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    y: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    n: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    e: Option<Cow<'a, str>>,
    // Members only a private (or symmetric) key has: a proof that carries
    // one gave its key away, or is not a proof.
    #[serde(default, deserialize_with = "present_any")]
    d: bool,
    #[serde(default, deserialize_with = "present_any")]
    p: bool,
    #[serde(default, deserialize_with = "present_any")]
    q: bool,
    #[serde(default, deserialize_with = "present_any")]
    dp: bool,
    #[serde(default, deserialize_with = "present_any")]
    dq: bool,
    #[serde(default, deserialize_with = "present_any")]
    qi: bool,
    #[serde(default, deserialize_with = "present_any")]
    oth: bool,
    #[serde(default, deserialize_with = "present_any")]
    k: bool,
}

fn present_any<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(deserializer).map(|_| true)
}

impl PublicKey<'_> {
    /// The key, as `algorithm` verifies with it: of the kind and on the
    /// curve the algorithm needs, and nothing private.
    fn decoding_key(&self, algorithm: Algorithm) -> Result<DecodingKey, DpopError> {
        let private = [
            self.d, self.p, self.q, self.dp, self.dq, self.qi, self.oth, self.k,
        ];
        if private.contains(&true) {
            return Err(DpopError::InvalidKey);
        }
        let (kty, crv) = (self.kty.as_ref(), self.crv.as_deref());
        let key = match (algorithm, kty, crv, &self.x, &self.y, &self.n, &self.e) {
            (Algorithm::ES256, "EC", Some("P-256"), Some(x), Some(y), ..)
            | (Algorithm::ES384, "EC", Some("P-384"), Some(x), Some(y), ..) => {
                DecodingKey::from_ec_components(x, y)
            }
            (Algorithm::EdDSA, "OKP", Some("Ed25519"), Some(x), ..) => {
                DecodingKey::from_ed_components(x)
            }
            (
                Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512,
                "RSA",
                _,
                _,
                _,
                Some(n),
                Some(e),
            ) => DecodingKey::from_rsa_components(n, e),
            _ => return Err(DpopError::InvalidKey),
        };
        key.map_err(|_| DpopError::InvalidKey)
    }

    /// The RFC 7638 SHA-256 thumbprint, base64url: the SHA-256 of the
    /// key's required members in lexicographic order, without whitespace
    /// (the members' structs below, in that order, as serde_json writes
    /// them). Called only for a key the signature was verified with, so of
    /// a kind `decoding_key` knows.
    fn thumbprint(&self) -> String {
        let members = match self.kty.as_ref() {
            "RSA" => serde_json::to_vec(&RsaMembers {
                e: text_of(&self.e),
                kty: "RSA",
                n: text_of(&self.n),
            }),
            "OKP" => serde_json::to_vec(&OkpMembers {
                crv: text_of(&self.crv),
                kty: "OKP",
                x: text_of(&self.x),
            }),
            _ => serde_json::to_vec(&EcMembers {
                crv: text_of(&self.crv),
                kty: "EC",
                x: text_of(&self.x),
                y: text_of(&self.y),
            }),
        };
        URL_SAFE_NO_PAD.encode(Sha256::digest(members.unwrap_or_default()))
    }
}

/// A member's text, empty where it is absent.
fn text_of<'a>(member: &'a Option<Cow<'_, str>>) -> &'a str {
    member.as_deref().unwrap_or_default()
}

/// The members RFC 7638 hashes for each kind of key, in its order.
#[derive(Serialize)]
struct EcMembers<'a> {
    crv: &'a str,
    kty: &'a str,
    x: &'a str,
    y: &'a str,
}

#[derive(Serialize)]
struct OkpMembers<'a> {
    crv: &'a str,
    kty: &'a str,
    x: &'a str,
}

#[derive(Serialize)]
struct RsaMembers<'a> {
    e: &'a str,
    kty: &'a str,
    n: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thumbprint_of(jwk: &Value) -> String {
        serde_json::from_str::<PublicKey<'_>>(&jwk.to_string())
            .unwrap()
            .thumbprint()
    }

    /// RFC 7638 §3.1's example key has the thumbprint the RFC gives
    /// (members it does not hash, `alg` and `kid`, left out of it).
    #[test]
    fn the_thumbprint_is_rfc_7638s() {
        let jwk = serde_json::json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(
            thumbprint_of(&jwk),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    /// For the kinds of key DPoP allows, the thumbprint is the one
    /// jsonwebtoken computes (the reference), whatever the order and
    /// spacing of the members.
    #[test]
    fn the_thumbprint_is_jsonwebtokens() {
        use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
        let keys = [
            r#"{"y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","x":"kXCi6Xo8A5lPIXeHnUcHyVsWfBjdG9lWSdIRXIdgAkE", "kty":"EC","crv":"P-256"}"#,
            r#"{"crv":"Ed25519","kty":"OKP","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#,
        ];
        for key in keys {
            let reference: Jwk = serde_json::from_str(key).unwrap();
            let ours: PublicKey<'_> = serde_json::from_str(key).unwrap();
            assert_eq!(
                ours.thumbprint(),
                reference.thumbprint(ThumbprintHash::SHA256).unwrap()
            );
        }
    }

    /// A member named twice, or a private member, is never a key.
    #[test]
    fn a_key_named_twice_or_with_a_private_part_is_refused() {
        let twice = r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","x":"AA"}"#;
        assert!(serde_json::from_str::<PublicKey<'_>>(twice).is_err());
        let private = r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","d":null}"#;
        let key: PublicKey<'_> = serde_json::from_str(private).unwrap();
        assert!(matches!(
            key.decoding_key(Algorithm::EdDSA),
            Err(DpopError::InvalidKey)
        ));
    }
}
