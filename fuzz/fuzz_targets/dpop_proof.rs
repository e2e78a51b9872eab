//! A DPoP proof, checked whole: shape, base64url, header JSON, `typ`,
//! `alg`, the `jwk` (parsed, refused when private), the signature, the
//! claims, the thumbprint. Nothing may panic; a proof that passes names
//! a thumbprint of the RFC 7638 shape, and never passes twice.
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
        assert_eq!(checked.jkt.len(), 43, "a SHA-256 thumbprint in base64url");
        let again = verifier().verify(proof, &request).now_or_never().unwrap();
        assert!(again.is_err(), "a proof passed twice");
    }
    let _ = TargetUrl::parse(proof);
});
