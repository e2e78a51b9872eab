//! Key material for signing and verifying JWTs, each key pinned to one
//! algorithm.

use std::fmt;

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair,
    KeyPair as _, RsaKeyPair,
};
use jsonwebtoken::jwk::{Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey};

use crate::error::ConfigError;

/// A key that verifies signatures, pinned to exactly one algorithm.
///
/// A token is verified only by a key whose algorithm equals the token's
/// `alg`: an RSA or EC public key can never be used as an HMAC secret (key
/// confusion), and `none` is never accepted.
#[derive(Clone)]
pub struct VerificationKey {
    pub(crate) kid: Option<String>,
    pub(crate) algorithm: Algorithm,
    pub(crate) key: DecodingKey,
}

/// A key that signs tokens, pinned to exactly one algorithm.
#[derive(Clone)]
pub struct SigningKey {
    pub(crate) kid: Option<String>,
    pub(crate) algorithm: Algorithm,
    pub(crate) key: EncodingKey,
}

/// A signing key with its matching verification key.
#[derive(Clone, Debug)]
pub struct KeyPair {
    signing: SigningKey,
    verification: VerificationKey,
}

/// The shortest HMAC secret accepted for `algorithm`: the hash output size
/// (RFC 7518 §3.2).
fn min_hmac_bytes(algorithm: Algorithm) -> Option<usize> {
    match algorithm {
        Algorithm::HS256 => Some(32),
        Algorithm::HS384 => Some(48),
        Algorithm::HS512 => Some(64),
        _ => None,
    }
}

fn algorithm_name(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
        _ => "unsupported",
    }
}

fn check_hmac(secret: &[u8], algorithm: Algorithm) -> Result<(), ConfigError> {
    let min_bytes = min_hmac_bytes(algorithm).ok_or(ConfigError::AlgorithmMismatch {
        algorithm: algorithm_name(algorithm),
    })?;
    if secret.len() < min_bytes {
        return Err(ConfigError::WeakHmacKey {
            algorithm: algorithm_name(algorithm),
            min_bytes,
        });
    }
    Ok(())
}

/// Validates the point of an EC or Ed25519 public key now, with aws-lc-rs,
/// rather than at the first signature it should verify: a JWK whose point is
/// not on its curve is refused when it is read.
fn check_public_key(key: &DecodingKey, algorithm: Algorithm) -> Result<(), ConfigError> {
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ED25519, ParsedPublicKey,
        VerificationAlgorithm,
    };
    let verification: &'static dyn VerificationAlgorithm = match algorithm {
        Algorithm::ES256 => &ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &ECDSA_P384_SHA384_FIXED,
        Algorithm::EdDSA => &ED25519,
        _ => return Ok(()),
    };
    let bytes = key
        .try_get_as_bytes()
        .map_err(|_| ConfigError::InvalidKey("JWK"))?;
    ParsedPublicKey::new(verification, bytes)
        .map(|_| ())
        .map_err(|_| ConfigError::InvalidKey("public key not on its curve"))
}

impl VerificationKey {
    /// An HMAC secret for `HS256`, `HS384` or `HS512`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::WeakHmacKey`] when the secret is shorter than the hash
    /// output (32, 48 or 64 bytes); [`ConfigError::AlgorithmMismatch`] for a
    /// non-HMAC algorithm.
    pub fn hmac(secret: &[u8], algorithm: Algorithm) -> Result<Self, ConfigError> {
        check_hmac(secret, algorithm)?;
        let key =
            DecodingKey::from_secret(secret).map_err(|_| ConfigError::InvalidKey("HMAC secret"))?;
        Ok(Self {
            kid: None,
            algorithm,
            key,
        })
    }

    /// A public key in PEM (SubjectPublicKeyInfo, or PKCS#1 for RSA) for an
    /// asymmetric algorithm.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidKey`] when the PEM does not hold a public key of
    /// the algorithm's family; [`ConfigError::AlgorithmMismatch`] for HMAC.
    pub fn from_public_pem(pem: &[u8], algorithm: Algorithm) -> Result<Self, ConfigError> {
        let key = match algorithm.family() {
            AlgorithmFamily::Ec => DecodingKey::from_ec_pem(pem),
            AlgorithmFamily::Ed => DecodingKey::from_ed_pem(pem),
            AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(pem),
            _ => {
                return Err(ConfigError::AlgorithmMismatch {
                    algorithm: algorithm_name(algorithm),
                });
            }
        }
        .map_err(|_| ConfigError::InvalidKey("public key PEM"))?;
        Ok(Self {
            kid: None,
            algorithm,
            key,
        })
    }

    /// A JSON Web Key (RFC 7517). The JWK must name its `alg`, which becomes
    /// the key's only algorithm; its `kid` is kept.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidKey`] without `alg` or with unusable material;
    /// [`ConfigError::KeyUseNotSignature`] when `use` is not `sig` or
    /// `key_ops` lacks `verify`.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, ConfigError> {
        let common = &jwk.common;
        if let Some(key_use) = &common.public_key_use
            && *key_use != PublicKeyUse::Signature
        {
            return Err(ConfigError::KeyUseNotSignature);
        }
        if let Some(operations) = &common.key_operations
            && !operations.contains(&KeyOperations::Verify)
        {
            return Err(ConfigError::KeyUseNotSignature);
        }
        let algorithm: Algorithm = common
            .key_algorithm
            .ok_or(ConfigError::InvalidKey("JWK without alg"))?
            .try_into()
            .map_err(|_| ConfigError::InvalidKey("unsupported JWK alg"))?;
        let key = DecodingKey::from_jwk(jwk).map_err(|_| ConfigError::InvalidKey("JWK"))?;
        if key.family() != algorithm.family() {
            return Err(ConfigError::AlgorithmMismatch {
                algorithm: algorithm_name(algorithm),
            });
        }
        check_public_key(&key, algorithm)?;
        if let Some(min_bytes) = min_hmac_bytes(algorithm) {
            let secret = key
                .try_get_as_bytes()
                .map_err(|_| ConfigError::InvalidKey("JWK"))?;
            if secret.len() < min_bytes {
                return Err(ConfigError::WeakHmacKey {
                    algorithm: algorithm_name(algorithm),
                    min_bytes,
                });
            }
        }
        Ok(Self {
            kid: common.key_id.clone(),
            algorithm,
            key,
        })
    }

    /// A JWK given as JSON text; see [`VerificationKey::from_jwk`].
    ///
    /// # Errors
    ///
    /// As [`VerificationKey::from_jwk`], and [`ConfigError::InvalidKey`] for
    /// text that is not a JWK.
    pub fn from_jwk_json(json: &str) -> Result<Self, ConfigError> {
        let jwk: Jwk = serde_json::from_str(json).map_err(|_| ConfigError::InvalidKey("JWK"))?;
        Self::from_jwk(&jwk)
    }

    /// Sets the key id (`kid`) that selects this key.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// The key id, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The one algorithm this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

impl SigningKey {
    /// An HMAC secret for `HS256`, `HS384` or `HS512`.
    ///
    /// # Errors
    ///
    /// As [`VerificationKey::hmac`].
    pub fn hmac(secret: &[u8], algorithm: Algorithm) -> Result<Self, ConfigError> {
        check_hmac(secret, algorithm)?;
        Ok(Self {
            kid: None,
            algorithm,
            key: EncodingKey::from_secret(secret)
                .map_err(|_| ConfigError::InvalidKey("HMAC secret"))?,
        })
    }

    /// Sets the key id (`kid`) written into the header of every token.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// The key id, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The algorithm this key signs with.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

impl KeyPair {
    /// An HMAC secret used both to sign and to verify.
    ///
    /// # Errors
    ///
    /// As [`VerificationKey::hmac`].
    pub fn hmac(secret: &[u8], algorithm: Algorithm) -> Result<Self, ConfigError> {
        Ok(Self {
            signing: SigningKey::hmac(secret, algorithm)?,
            verification: VerificationKey::hmac(secret, algorithm)?,
        })
    }

    /// A private key in PEM; its algorithm follows from the key: P-256 →
    /// ES256, P-384 → ES384, Ed25519 → EdDSA, RSA → RS256. PKCS#8
    /// (`PRIVATE KEY`), SEC1 (`EC PRIVATE KEY`) and PKCS#1 (`RSA PRIVATE KEY`)
    /// are read.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidKey`] when the PEM holds no private key of a
    /// supported kind.
    pub fn from_private_pem(pem: &[u8]) -> Result<Self, ConfigError> {
        let parsed = pem::parse(pem).map_err(|_| ConfigError::InvalidKey("not PEM"))?;
        let der = parsed.contents();
        let invalid = |_| ConfigError::InvalidKey("private key");
        match parsed.tag() {
            "PRIVATE KEY" => {
                if let Ok(pair) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
                    return Ok(Self::from_parts(
                        Algorithm::EdDSA,
                        EncodingKey::from_ed_der(der),
                        DecodingKey::from_ed_der(pair.public_key().as_ref()),
                    ));
                }
                for (algorithm, curve) in [
                    (Algorithm::ES256, &ECDSA_P256_SHA256_FIXED_SIGNING),
                    (Algorithm::ES384, &ECDSA_P384_SHA384_FIXED_SIGNING),
                ] {
                    if let Ok(pair) = EcdsaKeyPair::from_pkcs8(curve, der) {
                        return Ok(Self::from_parts(
                            algorithm,
                            EncodingKey::from_ec_der(der),
                            DecodingKey::from_ec_der(pair.public_key().as_ref()),
                        ));
                    }
                }
                let pair = RsaKeyPair::from_pkcs8(der)
                    .map_err(|_| ConfigError::InvalidKey("unsupported private key"))?;
                Ok(Self::from_parts(
                    Algorithm::RS256,
                    EncodingKey::from_rsa_pem(pem).map_err(invalid)?,
                    DecodingKey::from_rsa_der(pair.public_key().as_ref()),
                ))
            }
            "EC PRIVATE KEY" => {
                for (algorithm, curve) in [
                    (Algorithm::ES256, &ECDSA_P256_SHA256_FIXED_SIGNING),
                    (Algorithm::ES384, &ECDSA_P384_SHA384_FIXED_SIGNING),
                ] {
                    if let Ok(pair) = EcdsaKeyPair::from_private_key_der(curve, der) {
                        // jsonwebtoken signs from PKCS#8; re-encode the SEC1 key.
                        let pkcs8 = pair
                            .to_pkcs8v1()
                            .map_err(|_| ConfigError::InvalidKey("EC private key"))?;
                        return Ok(Self::from_parts(
                            algorithm,
                            EncodingKey::from_ec_der(pkcs8.as_ref()),
                            DecodingKey::from_ec_der(pair.public_key().as_ref()),
                        ));
                    }
                }
                Err(ConfigError::InvalidKey("unsupported EC curve"))
            }
            "RSA PRIVATE KEY" => {
                let pair = RsaKeyPair::from_der(der)
                    .map_err(|_| ConfigError::InvalidKey("RSA private key"))?;
                Ok(Self::from_parts(
                    Algorithm::RS256,
                    EncodingKey::from_rsa_der(der),
                    DecodingKey::from_rsa_der(pair.public_key().as_ref()),
                ))
            }
            _ => Err(ConfigError::InvalidKey("PEM holds no private key")),
        }
    }

    fn from_parts(algorithm: Algorithm, signing: EncodingKey, verification: DecodingKey) -> Self {
        Self {
            signing: SigningKey {
                kid: None,
                algorithm,
                key: signing,
            },
            verification: VerificationKey {
                kid: None,
                algorithm,
                key: verification,
            },
        }
    }

    /// Sets the key id of both halves.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        let kid = kid.into();
        self.signing.kid = Some(kid.clone());
        self.verification.kid = Some(kid);
        self
    }

    /// The algorithm of the pair.
    pub fn algorithm(&self) -> Algorithm {
        self.signing.algorithm
    }

    /// The signing half.
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    /// The verification half.
    pub fn verification_key(&self) -> &VerificationKey {
        &self.verification
    }

    /// Splits the pair into its signing and verification halves.
    pub fn into_parts(self) -> (SigningKey, VerificationKey) {
        (self.signing, self.verification)
    }
}

impl fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerificationKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("key", &"[redacted]")
            .finish()
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("key", &"[redacted]")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_keys_must_be_as_long_as_the_hash() {
        struct Case {
            algorithm: Algorithm,
            length: usize,
            ok: bool,
        }
        let cases = [
            Case {
                algorithm: Algorithm::HS256,
                length: 31,
                ok: false,
            },
            Case {
                algorithm: Algorithm::HS256,
                length: 32,
                ok: true,
            },
            Case {
                algorithm: Algorithm::HS384,
                length: 47,
                ok: false,
            },
            Case {
                algorithm: Algorithm::HS384,
                length: 48,
                ok: true,
            },
            Case {
                algorithm: Algorithm::HS512,
                length: 63,
                ok: false,
            },
            Case {
                algorithm: Algorithm::HS512,
                length: 64,
                ok: true,
            },
        ];
        for case in cases {
            let secret = vec![7u8; case.length];
            assert_eq!(
                VerificationKey::hmac(&secret, case.algorithm).is_ok(),
                case.ok,
                "{:?} with {} bytes",
                case.algorithm,
                case.length
            );
            assert_eq!(SigningKey::hmac(&secret, case.algorithm).is_ok(), case.ok);
        }
    }

    #[test]
    fn hmac_constructor_refuses_asymmetric_algorithms() {
        let error = VerificationKey::hmac(&[1; 64], Algorithm::RS256).unwrap_err();
        assert_eq!(error, ConfigError::AlgorithmMismatch { algorithm: "RS256" });
    }

    #[test]
    fn debug_never_prints_key_material() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let pair = KeyPair::hmac(secret, Algorithm::HS256)
            .unwrap()
            .with_kid("k1");
        let printed = format!("{pair:?}");
        assert!(printed.contains("[redacted]"));
        assert!(!printed.contains("0123456789abcdef"));
        assert!(printed.contains("k1"));
    }

    #[test]
    fn garbage_pem_is_a_config_error() {
        assert!(KeyPair::from_private_pem(b"not a key").is_err());
        let public_only = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
        assert!(KeyPair::from_private_pem(public_only.as_bytes()).is_err());
    }
}
