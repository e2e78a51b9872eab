//! A DPoP proof, checked whole: shape, base64url, header JSON, `typ`,
//! `alg`, the `jwk` (parsed, refused when private), the signature, the
//! claims, the thumbprint. Nothing may panic; a proof that passes names
//! the thumbprint jsonwebtoken computes of its key (the reference for
//! wsgate's own), and never passes twice.
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use futures_util::FutureExt as _;
use libfuzzer_sys::fuzz_target;
use wsgate::Clock;
use wsgate::dpop::{DpopVerifier, ProofRequest, TargetUrl};

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

fuzz_target!(|data: &[u8]| {
    let Ok(proof) = std::str::from_utf8(data) else {
        return;
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
