//! Runs the verifier's signature stage over Wycheproof's JWS vectors.
//!
//! Every `invalid` case must be refused. A `valid` case may be refused only
//! for a listed reason (wsgate is stricter than the vector file).

use serde::Deserialize;

use crate::jwt::{JwtVerifier, VerificationKey};

#[derive(Deserialize)]
struct Vectors {
    #[serde(rename = "testGroups")]
    groups: Vec<Group>,
}

#[derive(Deserialize)]
struct Group {
    public: Option<serde_json::Value>,
    private: Option<serde_json::Value>,
    tests: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    #[serde(rename = "tcId")]
    id: u32,
    comment: String,
    jws: serde_json::Value,
    result: String,
}

/// `invalid` cases wsgate accepts, with the reason.
const ACCEPTED_INVALID: &[(u32, &str)] = &[
    (367, "the token is byte-identical to valid case 357"),
    (370, "the token is byte-identical to valid case 357"),
];

/// `valid` cases wsgate refuses, with the reason.
const REFUSED_VALID: &[(u32, &str)] = &[
    (
        346,
        "PS384 token under a key labelled PS256: keys are pinned to one algorithm",
    ),
    (
        350,
        "PS384 token under a key labelled PS256: keys are pinned to one algorithm",
    ),
    (347, "ES512 (P-521) is not supported"),
    (351, "ES512 (P-521) is not supported"),
    (
        372,
        "a `?` inserted into the header is not canonical base64url",
    ),
    (
        373,
        "a `?` inserted into the payload is not canonical base64url",
    ),
];

#[test]
fn wycheproof_json_web_signature_vectors() {
    let text = include_str!("../../tests/data/wycheproof/json_web_signature_test.json");
    let vectors: Vectors = serde_json::from_str(text).unwrap();
    let mut checked = 0;
    let mut failures = Vec::new();
    for group in vectors.groups {
        // Verification uses the public key; HMAC groups only have `private`.
        let jwk = group.public.or(group.private).unwrap();
        let verifier = VerificationKey::from_jwk_json(&jwk.to_string())
            .ok()
            .and_then(|key| JwtVerifier::builder().key(key).build().ok());
        for case in group.tests {
            checked += 1;
            let accepted = match (&verifier, case.jws.as_str()) {
                (Some(verifier), Some(token)) => verifier.verify_signature(token).is_ok(),
                // A key that may not verify, or the JSON serialisation (not a
                // compact token), is a refusal.
                _ => false,
            };
            let listed = |list: &[(u32, &str)]| list.iter().any(|(id, _)| *id == case.id);
            let expected = match case.result.as_str() {
                "invalid" => listed(ACCEPTED_INVALID),
                "valid" => !listed(REFUSED_VALID),
                other => panic!("unexpected result {other}"),
            };
            if accepted != expected {
                failures.push(format!(
                    "tc{} ({}, {}): accepted={accepted}",
                    case.id, case.result, case.comment
                ));
            }
        }
    }
    assert_eq!(checked, 401);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
