//! A provider's JWK set, read key by key: what may verify, pinned to one
//! algorithm each; what may not, skipped.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm};
use serde::Deserialize as _;
use serde_json::Value;

use crate::jwt::VerificationKey;

/// The keys of a JWK set that may verify tokens, and how many were
/// skipped.
#[derive(Debug)]
pub(crate) struct KeySet {
    pub(crate) keys: Vec<VerificationKey>,
    pub(crate) skipped: usize,
}

/// Why a whole set was refused (one bad key never refuses the set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NotAKeySet;

/// Parses a JWK set document (`{"keys": [...]}`). Every key is read on its
/// own: a key that cannot be parsed, has an unknown type, is meant for
/// encryption, is an `oct` (HMAC) key, names an algorithm its type or curve
/// cannot have, or repeats an earlier `kid`, is skipped.
pub(crate) fn parse_key_set(body: &[u8]) -> Result<KeySet, NotAKeySet> {
    let document: Value = serde_json::from_slice(body).map_err(|_| NotAKeySet)?;
    let Some(Value::Array(entries)) = document.get("keys") else {
        return Err(NotAKeySet);
    };
    let mut keys: Vec<VerificationKey> = Vec::with_capacity(entries.len());
    let mut skipped = 0;
    for entry in entries {
        match usable_key(entry) {
            Some(key)
                if !keys
                    .iter()
                    .any(|held| held.kid().is_some() && held.kid() == key.kid()) =>
            {
                keys.push(key);
            }
            _ => skipped += 1,
        }
    }
    Ok(KeySet { keys, skipped })
}

fn usable_key(entry: &Value) -> Option<VerificationKey> {
    let mut jwk = Jwk::deserialize(entry).ok()?;
    // The one algorithm the key's type and curve allow, or, for RSA, the
    // one it names (RS256 when it names none).
    let implied = match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => KeyAlgorithm::ES256,
            EllipticCurve::P384 => KeyAlgorithm::ES384,
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
            EllipticCurve::Ed25519 => KeyAlgorithm::EdDSA,
            _ => return None,
        },
        AlgorithmParameters::RSA(_) => match jwk.common.key_algorithm {
            None => KeyAlgorithm::RS256,
            Some(
                named @ (KeyAlgorithm::RS256
                | KeyAlgorithm::RS384
                | KeyAlgorithm::RS512
                | KeyAlgorithm::PS256
                | KeyAlgorithm::PS384
                | KeyAlgorithm::PS512),
            ) => named,
            Some(_) => return None,
        },
        // A shared secret published in a key set is no secret: never used.
        _ => return None,
    };
    match jwk.common.key_algorithm {
        Some(named) if named != implied => return None,
        _ => jwk.common.key_algorithm = Some(implied),
    }
    VerificationKey::from_jwk(&jwk).ok()
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::Algorithm;
    use serde_json::json;

    use super::*;

    // Public test keys: RFC 7517 appendix A.1 (EC P-256, RSA) and RFC 8037
    // appendix A.2 (Ed25519).
    fn ec() -> Value {
        json!({"kty":"EC","crv":"P-256",
            "x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
            "y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM","kid":"ec-1"})
    }

    fn rsa() -> Value {
        json!({"kty":"RSA","kid":"rsa-1",
            "n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e":"AQAB"})
    }

    fn ed25519() -> Value {
        json!({"kty":"OKP","crv":"Ed25519","kid":"ed-1",
            "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"})
    }

    fn set(keys: Vec<Value>) -> KeySet {
        parse_key_set(json!({ "keys": keys }).to_string().as_bytes()).unwrap()
    }

    fn algorithms(set: &KeySet) -> Vec<(Option<&str>, Algorithm)> {
        set.keys
            .iter()
            .map(|key| (key.kid(), key.algorithm()))
            .collect()
    }

    #[test]
    fn each_key_is_pinned_to_the_algorithm_its_type_and_curve_allow() {
        let parsed = set(vec![ec(), rsa(), ed25519()]);
        assert_eq!(
            algorithms(&parsed),
            [
                (Some("ec-1"), Algorithm::ES256),
                (Some("rsa-1"), Algorithm::RS256),
                (Some("ed-1"), Algorithm::EdDSA),
            ]
        );
        assert_eq!(parsed.skipped, 0);
        let mut ps = rsa();
        ps["alg"] = json!("PS384");
        assert_eq!(
            algorithms(&set(vec![ps])),
            [(Some("rsa-1"), Algorithm::PS384)]
        );
    }

    #[test]
    fn keys_that_may_not_verify_are_skipped_and_the_rest_still_serve() {
        struct Case {
            name: &'static str,
            key: Value,
        }
        let with = |mut key: Value, field: &str, value: Value| {
            key[field] = value;
            key
        };
        let cases = [
            Case {
                name: "oct (HMAC) key",
                key: json!({"kty":"oct","kid":"hs","alg":"HS256","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}),
            },
            Case {
                name: "EC key naming RS256",
                key: with(ec(), "alg", json!("RS256")),
            },
            Case {
                name: "P-256 key naming ES384",
                key: with(ec(), "alg", json!("ES384")),
            },
            Case {
                name: "RSA key naming HS256",
                key: with(rsa(), "alg", json!("HS256")),
            },
            Case {
                name: "encryption key",
                key: with(ec(), "use", json!("enc")),
            },
            Case {
                name: "unknown kty",
                key: json!({"kty":"XYZ","kid":"alien"}),
            },
            Case {
                name: "point not on the curve",
                key: with(ec(), "y", json!("AAAA")),
            },
            Case {
                name: "not base64",
                key: with(ec(), "x", json!("!!")),
            },
            Case {
                name: "P-521 (not supported)",
                key: with(ec(), "crv", json!("P-521")),
            },
            Case {
                name: "not an object",
                key: json!("a string"),
            },
        ];
        for case in cases {
            let parsed = set(vec![case.key, ed25519()]);
            assert_eq!(
                algorithms(&parsed),
                [(Some("ed-1"), Algorithm::EdDSA)],
                "{}",
                case.name
            );
            assert_eq!(parsed.skipped, 1, "{}", case.name);
        }
    }

    #[test]
    fn a_repeated_kid_keeps_the_first_key() {
        let parsed = set(vec![ec(), with_kid(rsa(), "ec-1")]);
        assert_eq!(algorithms(&parsed), [(Some("ec-1"), Algorithm::ES256)]);
        assert_eq!(parsed.skipped, 1);
    }

    fn with_kid(mut key: Value, kid: &str) -> Value {
        key["kid"] = json!(kid);
        key
    }

    #[test]
    fn a_document_that_is_no_key_set_is_refused() {
        for body in [&b"not json"[..], b"{}", br#"{"keys": {}}"#, b"[]"] {
            assert_eq!(parse_key_set(body).unwrap_err(), NotAKeySet);
        }
        assert!(parse_key_set(br#"{"keys": []}"#).unwrap().keys.is_empty());
    }
}
