//! The JWT front end up to (and including) the signature check: shape,
//! base64url, header JSON, `alg`, `kid`, `crit`, claims — and key loading
//! from PEM and JWK. Nothing may panic; nothing unsigned may verify.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use wsgate::jwt::{Algorithm, JwtVerifier, KeyPair, VerificationKey};

fn verifier() -> &'static JwtVerifier {
    static VERIFIER: OnceLock<JwtVerifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        JwtVerifier::builder()
            .key(VerificationKey::hmac(&[7; 32], Algorithm::HS256).unwrap().with_kid("hs"))
            .key(VerificationKey::hmac(&[9; 48], Algorithm::HS384).unwrap())
            .issuer("fuzz")
            .audience("fuzz")
            .build()
            .unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        // The fuzzer cannot know the keys: a token it makes must not verify.
        assert!(verifier().verify_token(token).is_err(), "a forged token verified");
        let _ = VerificationKey::from_jwk_json(token);
    }
    let _ = KeyPair::from_private_pem(data);
});
