//! Every defect of a proof, one at a time, against a good proof that
//! passes.

use std::time::{Duration, SystemTime};

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::*;
use crate::store::InMemoryProofReplayStore;

/// A client's key, able to sign proofs.
struct ClientKey {
    encoding: EncodingKey,
    algorithm: Algorithm,
    jwk: Value,
}

impl ClientKey {
    fn es256() -> Self {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        Self::of(EncodingKey::from_ec_der(pkcs8.as_ref()), Algorithm::ES256)
    }

    fn es384() -> Self {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &rng).unwrap();
        Self::of(EncodingKey::from_ec_der(pkcs8.as_ref()), Algorithm::ES384)
    }

    fn ed25519() -> Self {
        use aws_lc_rs::signature::KeyPair as _;
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).unwrap();
        let public = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let x = URL_SAFE_NO_PAD.encode(public.public_key().as_ref());
        Self {
            encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
            algorithm: Algorithm::EdDSA,
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "x": x}),
        }
    }

    fn of(encoding: EncodingKey, algorithm: Algorithm) -> Self {
        let jwk = Jwk::from_encoding_key(&encoding, algorithm).unwrap();
        let mut jwk = serde_json::to_value(jwk).unwrap();
        // Only the key's own members: no `alg`, `use` or `kid`.
        jwk.as_object_mut()
            .unwrap()
            .retain(|name, _| ["kty", "crv", "x", "y", "n", "e"].contains(&name.as_str()));
        Self {
            encoding,
            algorithm,
            jwk,
        }
    }

    fn jkt(&self) -> String {
        let jwk: Jwk = serde_json::from_value(self.jwk.clone()).unwrap();
        jwk.thumbprint(ThumbprintHash::SHA256).unwrap()
    }

    /// A compact JWS of `header` and `claims`, signed with this key as
    /// `algorithm`.
    fn sign(&self, header: &Value, claims: &Value, algorithm: Algorithm) -> String {
        let header = URL_SAFE_NO_PAD.encode(header.to_string());
        let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signed = format!("{header}.{claims}");
        let signature =
            jsonwebtoken::crypto::sign(signed.as_bytes(), &self.encoding, algorithm).unwrap();
        format!("{signed}.{signature}")
    }

    fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": alg_name(self.algorithm), "jwk": self.jwk})
    }
}

fn alg_name(algorithm: Algorithm) -> String {
    serde_json::to_value(algorithm)
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}

const TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";
const NOW: u64 = 1_800_000_000;

fn ath(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

fn good_claims() -> Value {
    json!({
        "htm": "GET",
        "htu": "wss://chat.example/ws",
        "iat": NOW,
        "jti": "e1j3V_bKic8-LAEB",
        "ath": ath(TOKEN),
    })
}

fn target() -> TargetUrl {
    TargetUrl::of_request(true, "chat.example", "/ws").unwrap()
}

fn verifier() -> DpopVerifier {
    DpopVerifier::builder()
        .clock(Clock::manual(
            SystemTime::UNIX_EPOCH + Duration::from_secs(NOW),
        ))
        .build()
}

async fn verify(verifier: &DpopVerifier, proof: &str) -> Result<CheckedProof, Error> {
    let target = target();
    let request = ProofRequest {
        method: "GET",
        target: &target,
        access_token: Some(TOKEN),
    };
    verifier.verify(proof, &request).await
}

fn dpop_error(result: Result<CheckedProof, Error>) -> Option<DpopError> {
    match result.err()?.kind() {
        crate::ErrorKind::Dpop(error) => Some(*error),
        _ => None,
    }
}

#[tokio::test]
async fn good_proofs_of_each_default_algorithm_pass_once() {
    for key in [ClientKey::es256(), ClientKey::ed25519()] {
        let verifier = verifier();
        let proof = key.sign(&key.header(), &good_claims(), key.algorithm);
        let checked = verify(&verifier, &proof).await.unwrap();
        assert_eq!(checked.jkt, key.jkt());
        assert_eq!(checked.jti, "e1j3V_bKic8-LAEB");
        assert_eq!(
            dpop_error(verify(&verifier, &proof).await),
            Some(DpopError::Replay),
            "the same proof twice"
        );
    }
}

#[tokio::test]
async fn every_defect_of_a_proof_is_refused() {
    let key = ClientKey::es256();
    let other = ClientKey::es256();
    let with = |name: &str, value: Value| {
        let mut claims = good_claims();
        claims[name] = value;
        claims
    };
    let without = |name: &str| {
        let mut claims = good_claims();
        claims.as_object_mut().unwrap().remove(name);
        claims
    };
    let header_with = |name: &str, value: Value| {
        let mut header = key.header();
        header[name] = value;
        header
    };
    let mut private_jwk = key.jwk.clone();
    private_jwk["d"] = json!("c2VjcmV0");
    let hmac = EncodingKey::from_secret(b"a-secret-of-at-least-thirty-two-bytes!!").unwrap();
    let hmac_proof = {
        let header = URL_SAFE_NO_PAD.encode(
            json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": "c2VjcmV0"}})
                .to_string(),
        );
        let claims = URL_SAFE_NO_PAD.encode(good_claims().to_string());
        let signed = format!("{header}.{claims}");
        let signature =
            jsonwebtoken::crypto::sign(signed.as_bytes(), &hmac, Algorithm::HS256).unwrap();
        format!("{signed}.{signature}")
    };
    let none_proof = format!(
        "{}.{}.c2ln",
        URL_SAFE_NO_PAD
            .encode(json!({"typ": "dpop+jwt", "alg": "none", "jwk": key.jwk}).to_string()),
        URL_SAFE_NO_PAD.encode(good_claims().to_string())
    );
    let es384 = ClientKey::es384();
    let good = key.sign(&key.header(), &good_claims(), key.algorithm);
    let mut tampered = good.clone();
    tampered.replace_range(tampered.len() - 6.., "AAAAAA");

    let cases: Vec<(&str, String, DpopError)> = vec![
        (
            "wrong htm",
            key.sign(&key.header(), &with("htm", json!("POST")), key.algorithm),
            DpopError::MethodMismatch,
        ),
        (
            "htm in lower case",
            key.sign(&key.header(), &with("htm", json!("get")), key.algorithm),
            DpopError::MethodMismatch,
        ),
        (
            "another path",
            key.sign(
                &key.header(),
                &with("htu", json!("wss://chat.example/ws/other")),
                key.algorithm,
            ),
            DpopError::UrlMismatch,
        ),
        (
            "a trailing slash",
            key.sign(
                &key.header(),
                &with("htu", json!("wss://chat.example/ws/")),
                key.algorithm,
            ),
            DpopError::UrlMismatch,
        ),
        (
            "another host",
            key.sign(
                &key.header(),
                &with("htu", json!("wss://evil.example/ws")),
                key.algorithm,
            ),
            DpopError::UrlMismatch,
        ),
        (
            "a plain scheme for a TLS socket",
            key.sign(
                &key.header(),
                &with("htu", json!("ws://chat.example/ws")),
                key.algorithm,
            ),
            DpopError::UrlMismatch,
        ),
        (
            "http for a TLS socket",
            key.sign(
                &key.header(),
                &with("htu", json!("http://chat.example/ws")),
                key.algorithm,
            ),
            DpopError::UrlMismatch,
        ),
        (
            "another port",
            key.sign(
                &key.header(),
                &with("htu", json!("wss://chat.example:8443/ws")),
                key.algorithm,
            ),
            DpopError::UrlMismatch,
        ),
        (
            "htu not a URL",
            key.sign(&key.header(), &with("htu", json!("/ws")), key.algorithm),
            DpopError::UrlMismatch,
        ),
        (
            "iat 61 s old",
            key.sign(&key.header(), &with("iat", json!(NOW - 61)), key.algorithm),
            DpopError::NotFresh,
        ),
        (
            "iat 6 s ahead",
            key.sign(&key.header(), &with("iat", json!(NOW + 6)), key.algorithm),
            DpopError::NotFresh,
        ),
        (
            // Past what a `SystemTime` can hold: refused, not a panic.
            "iat the largest integer",
            key.sign(&key.header(), &with("iat", json!(u64::MAX)), key.algorithm),
            DpopError::NotFresh,
        ),
        (
            "iat a string",
            key.sign(&key.header(), &with("iat", json!("now")), key.algorithm),
            DpopError::InvalidClaim("iat"),
        ),
        (
            "no iat",
            key.sign(&key.header(), &without("iat"), key.algorithm),
            DpopError::InvalidClaim("iat"),
        ),
        (
            "no htm",
            key.sign(&key.header(), &without("htm"), key.algorithm),
            DpopError::InvalidClaim("htm"),
        ),
        (
            "no htu",
            key.sign(&key.header(), &without("htu"), key.algorithm),
            DpopError::InvalidClaim("htu"),
        ),
        (
            "no jti",
            key.sign(&key.header(), &without("jti"), key.algorithm),
            DpopError::InvalidClaim("jti"),
        ),
        (
            "an empty jti",
            key.sign(&key.header(), &with("jti", json!("")), key.algorithm),
            DpopError::InvalidClaim("jti"),
        ),
        (
            "a jti of 129 bytes",
            key.sign(
                &key.header(),
                &with("jti", json!("j".repeat(129))),
                key.algorithm,
            ),
            DpopError::TooLarge,
        ),
        (
            "no ath",
            key.sign(&key.header(), &without("ath"), key.algorithm),
            DpopError::InvalidClaim("ath"),
        ),
        (
            "the ath of another token",
            key.sign(
                &key.header(),
                &with("ath", json!(ath("another.token.here"))),
                key.algorithm,
            ),
            DpopError::TokenHashMismatch,
        ),
        (
            "typ JWT",
            key.sign(
                &header_with("typ", json!("JWT")),
                &good_claims(),
                key.algorithm,
            ),
            DpopError::InvalidType,
        ),
        (
            "no typ",
            key.sign(
                &{
                    let mut h = key.header();
                    h.as_object_mut().unwrap().remove("typ");
                    h
                },
                &good_claims(),
                key.algorithm,
            ),
            DpopError::InvalidType,
        ),
        (
            "a crit header",
            key.sign(
                &header_with("crit", json!(["exp"])),
                &good_claims(),
                key.algorithm,
            ),
            DpopError::InvalidType,
        ),
        ("alg none", none_proof, DpopError::AlgorithmNotAllowed),
        (
            "HMAC with an oct key",
            hmac_proof,
            DpopError::AlgorithmNotAllowed,
        ),
        (
            "ES384, not allowed by default",
            es384.sign(&es384.header(), &good_claims(), Algorithm::ES384),
            DpopError::AlgorithmNotAllowed,
        ),
        (
            "a jwk with its private part",
            key.sign(
                &header_with("jwk", private_jwk),
                &good_claims(),
                key.algorithm,
            ),
            DpopError::InvalidKey,
        ),
        (
            "no jwk",
            key.sign(
                &{
                    let mut h = key.header();
                    h.as_object_mut().unwrap().remove("jwk");
                    h
                },
                &good_claims(),
                key.algorithm,
            ),
            DpopError::InvalidKey,
        ),
        (
            "an Ed25519 jwk under ES256",
            key.sign(
                &header_with("jwk", ClientKey::ed25519().jwk),
                &good_claims(),
                key.algorithm,
            ),
            DpopError::InvalidKey,
        ),
        (
            "signed by another key than its jwk",
            other.sign(&key.header(), &good_claims(), key.algorithm),
            DpopError::InvalidSignature,
        ),
        (
            "a tampered signature",
            tampered,
            DpopError::InvalidSignature,
        ),
        ("not a JWS", "not.a-proof".to_owned(), DpopError::Malformed),
        (
            "over 8 KiB",
            format!("{good}{}", "A".repeat(super::proof::MAX_PROOF_BYTES)),
            DpopError::TooLarge,
        ),
    ];
    let verifier = verifier();
    for (name, proof, expected) in cases {
        assert_eq!(
            dpop_error(verify(&verifier, &proof).await),
            Some(expected),
            "{name}"
        );
    }
    assert!(
        verify(&verifier, &good).await.is_ok(),
        "the good proof still passes after them"
    );
}

#[tokio::test]
async fn a_wider_allowlist_takes_its_algorithms_and_never_hmac() {
    let es384 = ClientKey::es384();
    let verifier = DpopVerifier::builder()
        .algorithms([Algorithm::ES256, Algorithm::ES384])
        .unwrap()
        .clock(Clock::manual(
            SystemTime::UNIX_EPOCH + Duration::from_secs(NOW),
        ))
        .build();
    let proof = es384.sign(&es384.header(), &good_claims(), Algorithm::ES384);
    assert!(verify(&verifier, &proof).await.is_ok());
    assert_eq!(
        DpopVerifier::builder().algorithms([Algorithm::HS256]).err(),
        Some(ConfigError::DpopAlgorithm("HMAC"))
    );
    assert_eq!(
        DpopVerifier::builder().algorithms([]).err(),
        Some(ConfigError::DpopAlgorithm("an empty list"))
    );
}

#[tokio::test]
async fn a_proof_without_a_token_needs_no_ath() {
    let key = ClientKey::ed25519();
    let mut claims = good_claims();
    claims.as_object_mut().unwrap().remove("ath");
    let proof = key.sign(&key.header(), &claims, key.algorithm);
    let target = target();
    let request = ProofRequest {
        method: "GET",
        target: &target,
        access_token: None,
    };
    assert!(verifier().verify(&proof, &request).await.is_ok());
}

#[tokio::test]
async fn a_flood_of_unique_proofs_leaves_the_store_bounded() {
    let store = InMemoryProofReplayStore::with_capacity(1_000);
    let mut refused = 0;
    for n in 0..100_000 {
        let id = ProofId::of("jkt", &n.to_string());
        match ProofReplayStore::first_use(&store, id, Duration::from_secs(65)).await {
            Ok(new) => assert!(new),
            Err(_) => refused += 1,
        }
    }
    assert_eq!(store.len(), 1_000, "never more than its capacity");
    assert_eq!(
        refused, 99_000,
        "full, it refuses (closed) rather than forget"
    );
    let short = InMemoryProofReplayStore::with_capacity(10);
    for n in 0..10 {
        let id = ProofId::of("jkt", &n.to_string());
        assert!(
            ProofReplayStore::first_use(&short, id, Duration::from_millis(1))
                .await
                .unwrap()
        );
    }
    std::thread::sleep(Duration::from_millis(5));
    let id = ProofId::of("jkt", "next");
    assert!(
        ProofReplayStore::first_use(&short, id, Duration::from_millis(1))
            .await
            .unwrap(),
        "proofs whose windows closed are forgotten"
    );
    assert_eq!(short.len(), 1);
}
