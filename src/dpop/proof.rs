//! One DPoP proof, checked: its shape and header, its key, its signature
//! and its claims. No cryptography here: jsonwebtoken on aws-lc-rs
//! verifies, and computes the key's RFC 7638 thumbprint.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, ThumbprintHash};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use crate::dpop::target::TargetUrl;
use crate::error::DpopError;
use crate::jwt::{decode_segment, media_type_matches, numeric_date, split_compact};

/// The most a proof may weigh.
pub const MAX_PROOF_BYTES: usize = 8 * 1024;

/// The longest `jti` a proof may carry.
pub const MAX_JTI_BYTES: usize = 128;

/// JWK members that only a private (or symmetric) key has: a proof that
/// carries one gave its key away, or is not a proof.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

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
    let header: Map<String, Value> = decode_json(header_segment)?;
    let typ = header.get("typ").and_then(Value::as_str);
    if !typ.is_some_and(|typ| media_type_matches(typ, "dpop+jwt"))
        || header.contains_key("crit")
        || header.contains_key("b64")
    {
        return Err(DpopError::InvalidType);
    }
    let algorithm = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(|name| name.parse::<Algorithm>().ok())
        .filter(|algorithm| rules.algorithms.contains(algorithm))
        .ok_or(DpopError::AlgorithmNotAllowed)?;
    let jwk = public_key(header.get("jwk"), algorithm)?;
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).map_err(|_| DpopError::InvalidKey)?;
    let signed = &proof[..header_segment.len() + 1 + payload_segment.len()];
    match jsonwebtoken::crypto::verify(signature_segment, signed.as_bytes(), &key, algorithm) {
        Ok(true) => {}
        Ok(false) | Err(_) => return Err(DpopError::InvalidSignature),
    }

    let claims: Map<String, Value> = decode_json(payload_segment)?;
    let text = |name: &'static str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .ok_or(DpopError::InvalidClaim(name))
    };
    if text("htm")? != request.method {
        return Err(DpopError::MethodMismatch);
    }
    if TargetUrl::parse(text("htu")?).as_ref() != Some(request.target) {
        return Err(DpopError::UrlMismatch);
    }
    let issued = numeric_date(&claims, "iat")
        .ok()
        .flatten()
        .ok_or(DpopError::InvalidClaim("iat"))?;
    let issued = SystemTime::UNIX_EPOCH + Duration::from_secs(issued);
    let too_old = now
        .checked_sub(rules.max_age)
        .is_some_and(|oldest| issued < oldest);
    if too_old || issued > now + rules.max_ahead {
        return Err(DpopError::NotFresh);
    }
    let jti = text("jti")?;
    if jti.is_empty() {
        return Err(DpopError::InvalidClaim("jti"));
    }
    if jti.len() > MAX_JTI_BYTES {
        return Err(DpopError::TooLarge);
    }
    if let Some(token) = request.access_token {
        let expected = URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()));
        if text("ath")? != expected {
            return Err(DpopError::TokenHashMismatch);
        }
    }
    let jkt = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(|_| DpopError::InvalidKey)?;
    Ok(CheckedProof {
        jkt,
        jti: jti.to_owned(),
    })
}

fn decode_json(segment: &str) -> Result<Map<String, Value>, DpopError> {
    let bytes = decode_segment(segment).map_err(|_| DpopError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| DpopError::Malformed)
}

/// The header's `jwk`: a public key of the kind `algorithm` needs, and
/// nothing private.
fn public_key(jwk: Option<&Value>, algorithm: Algorithm) -> Result<Jwk, DpopError> {
    let Some(Value::Object(members)) = jwk else {
        return Err(DpopError::InvalidKey);
    };
    if PRIVATE_MEMBERS
        .iter()
        .any(|member| members.contains_key(*member))
    {
        return Err(DpopError::InvalidKey);
    }
    let jwk: Jwk = serde_json::from_value(Value::Object(members.clone()))
        .map_err(|_| DpopError::InvalidKey)?;
    let fits = match (&jwk.algorithm, algorithm) {
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES256) => {
            ec.curve == EllipticCurve::P256
        }
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES384) => {
            ec.curve == EllipticCurve::P384
        }
        (AlgorithmParameters::OctetKeyPair(okp), Algorithm::EdDSA) => {
            okp.curve == EllipticCurve::Ed25519
        }
        (
            AlgorithmParameters::RSA(_),
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512,
        ) => true,
        _ => false,
    };
    if !fits {
        return Err(DpopError::InvalidKey);
    }
    Ok(jwk)
}
