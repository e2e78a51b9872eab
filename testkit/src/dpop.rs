//! A DPoP client for the tests: a key pair (ES256 or Ed25519, made by
//! aws-lc-rs) that signs proofs, its RFC 7638 thumbprint for a token's
//! `cnf.jkt`, and proofs with any claim changed.

use std::sync::atomic::{AtomicU64, Ordering};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::now;

/// A client's DPoP key.
pub struct ClientKey {
    encoding: EncodingKey,
    algorithm: Algorithm,
    jwk: Value,
}

static NEXT_JTI: AtomicU64 = AtomicU64::new(0);

impl ClientKey {
    pub fn es256() -> Self {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let encoding = EncodingKey::from_ec_der(pkcs8.as_ref());
        let jwk =
            serde_json::to_value(Jwk::from_encoding_key(&encoding, Algorithm::ES256).unwrap())
                .unwrap();
        let jwk = json!({"kty": "EC", "crv": "P-256", "x": jwk["x"], "y": jwk["y"]});
        Self {
            encoding,
            algorithm: Algorithm::ES256,
            jwk,
        }
    }

    pub fn ed25519() -> Self {
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

    /// The key's thumbprint: what a token bound to it carries as
    /// `cnf.jkt`.
    pub fn jkt(&self) -> String {
        let jwk: Jwk = serde_json::from_value(self.jwk.clone()).unwrap();
        jwk.thumbprint(ThumbprintHash::SHA256).unwrap()
    }

    /// A fresh proof for `GET url` with `token` (its `ath`), a new `jti`.
    pub fn proof(&self, url: &str, token: Option<&str>) -> String {
        self.proof_with(url, token, |_| {})
    }

    /// A proof whose claims `change` may alter first.
    pub fn proof_with(
        &self,
        url: &str,
        token: Option<&str>,
        change: impl FnOnce(&mut Value),
    ) -> String {
        let mut claims = json!({
            "htm": "GET",
            "htu": url,
            "iat": now(),
            "jti": format!("proof-{}-{}", now(), NEXT_JTI.fetch_add(1, Ordering::Relaxed)),
        });
        if let Some(token) = token {
            claims["ath"] = json!(URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes())));
        }
        change(&mut claims);
        self.sign_raw(&self.header(), &claims)
    }

    /// The header of this key's proofs: `typ`, `alg`, the public `jwk`.
    pub fn header(&self) -> Value {
        let alg = serde_json::to_value(self.algorithm).unwrap();
        json!({"typ": "dpop+jwt", "alg": alg, "jwk": self.jwk})
    }

    /// `header` and `claims` as they are, signed with this key.
    pub fn sign_raw(&self, header: &Value, claims: &Value) -> String {
        self.sign_payload(header, claims.to_string().as_bytes())
    }

    /// `header` and any `payload` bytes (JSON or not: what a fuzzer
    /// makes), signed with this key.
    pub fn sign_payload(&self, header: &Value, payload: &[u8]) -> String {
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let signature =
            jsonwebtoken::crypto::sign(signed.as_bytes(), &self.encoding, self.algorithm).unwrap();
        format!("{signed}.{signature}")
    }
}
