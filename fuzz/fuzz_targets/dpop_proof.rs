//! A DPoP proof, checked whole: shape, base64url, header JSON, `typ`,
//! `alg`, the `jwk` (parsed, refused when private), the signature, the
//! claims, the thumbprint. Nothing may panic; a proof that passes names
//! the thumbprint jsonwebtoken computes of its key (the reference for
//! wsgate's own), and never passes twice.
//!
//! An input that starts with `{` is a proof's claims instead: signed here
//! with a key of the fuzzer's, so the checks after the signature (`htm`,
//! `htu`, `iat`, `jti`, `ath`, `nonce`) see what anyone with a key of
//! their own can send, which a fuzzer could never forge a signature for.
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use futures_util::FutureExt as _;
use libfuzzer_sys::fuzz_target;
use wsgate::Clock;
use wsgate::dpop::{DpopVerifier, ProofRequest, TargetUrl};
use wsgate_testkit::dpop::ClientKey;

/// The seeds' `iat`.
const NOW: u64 = 1_800_000_000;

fn verifier() -> &'static DpopVerifier {
    static VERIFIER: OnceLock<DpopVerifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        DpopVerifier::builder()
            .clock(Clock::manual(SystemTime::UNIX_EPOCH + Duration::from_secs(NOW)))
            .build()
    })
}

/// The RFC 7638 thumbprint of a proof's `jwk` as jsonwebtoken (the
/// reference) computes it.
fn reference_thumbprint(proof: &str) -> String {
    use base64::Engine as _;
    let header = proof.split('.').next().unwrap();
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(header["jwk"].clone()).unwrap();
    jwk.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
        .unwrap()
}

/// The fuzzer's own client key: the test kit's DPoP client, as the tests
/// sign their proofs.
fn client_key() -> &'static ClientKey {
    static KEY: OnceLock<ClientKey> = OnceLock::new();
    KEY.get_or_init(ClientKey::es256)
}

/// `claims` (any bytes) as the payload of a proof signed by the fuzzer's
/// key.
fn signed_proof(claims: &[u8]) -> String {
    let key = client_key();
    key.sign_payload(&key.header(), claims)
}

fuzz_target!(|data: &[u8]| {
    let signed;
    let proof = if data.first() == Some(&b'{') {
        signed = signed_proof(data);
        signed.as_str()
    } else {
        match std::str::from_utf8(data) {
            Ok(proof) => proof,
            Err(_) => return,
        }
    };
    let target = TargetUrl::parse("ws://fuzz.example/ws").unwrap();
    let request = ProofRequest {
        method: "GET",
        target: &target,
        access_token: Some("fuzz.token.value"),
    };
    let first = verifier().verify(proof, &request).now_or_never().unwrap();
    if let Ok(checked) = first {
        assert_eq!(
            checked.jkt,
            reference_thumbprint(proof),
            "the thumbprint jsonwebtoken computes of the proof's key"
        );
        let again = verifier().verify(proof, &request).now_or_never().unwrap();
        assert!(again.is_err(), "a proof passed twice");
    }
    let _ = TargetUrl::parse(proof);
});
