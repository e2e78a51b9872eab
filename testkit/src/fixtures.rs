//! The keys the tests and benchmarks sign and verify with, built into the
//! binary: a test or benchmark built here runs anywhere, without the
//! source tree.

/// An RSA key (RS256), PKCS#8 PEM.
pub const RS256_PRIVATE: &[u8] = include_bytes!("../../tests/fixtures/jwt/rs256-private.pem");
/// Its public half, SPKI PEM.
pub const RS256_PUBLIC: &[u8] = include_bytes!("../../tests/fixtures/jwt/rs256-public.pem");
/// A P-256 key (ES256), PKCS#8 PEM.
pub const ES256_PRIVATE: &[u8] = include_bytes!("../../tests/fixtures/jwt/es256-private.pem");
/// Its public half, SPKI PEM.
pub const ES256_PUBLIC: &[u8] = include_bytes!("../../tests/fixtures/jwt/es256-public.pem");
/// An Ed25519 key (EdDSA), PKCS#8 PEM.
pub const EDDSA_PRIVATE: &[u8] = include_bytes!("../../tests/fixtures/jwt/eddsa-private.pem");
/// Its public half, SPKI PEM.
pub const EDDSA_PUBLIC: &[u8] = include_bytes!("../../tests/fixtures/jwt/eddsa-public.pem");

/// A key file of `tests/fixtures/jwt` by its name (`es256-private.pem`).
///
/// # Panics
///
/// For a name that is not one of them.
pub fn jwt(name: &str) -> &'static [u8] {
    match name {
        "rs256-private.pem" => RS256_PRIVATE,
        "rs256-public.pem" => RS256_PUBLIC,
        "es256-private.pem" => ES256_PRIVATE,
        "es256-public.pem" => ES256_PUBLIC,
        "eddsa-private.pem" => EDDSA_PRIVATE,
        "eddsa-public.pem" => EDDSA_PUBLIC,
        other => panic!("no fixture {other}"),
    }
}
