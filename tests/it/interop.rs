//! Tokens made by another JWT implementation (PyJWT, see
//! `fixtures/jwt/make_fixtures.py`) verify with wsgate, for every supported
//! algorithm; and wsgate's key loading reads the keys that tool wrote.

use std::path::PathBuf;

use serde::Deserialize;
use wsgate::jwt::{Algorithm, JwtIssuer, JwtVerifier, KeyPair, VerificationKey};
use wsgate::{AuthMethod, Principal};

#[derive(Deserialize)]
struct Manifest {
    made_by: String,
    tokens: Vec<Fixture>,
}

#[derive(Deserialize)]
struct Fixture {
    alg: String,
    kid: String,
    token: String,
    secret_hex: Option<String>,
    public_key: Option<String>,
}

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/jwt")
        .join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(name)).unwrap()
}

fn manifest() -> Manifest {
    serde_json::from_slice(&read("manifest.json")).unwrap()
}

fn algorithm(name: &str) -> Algorithm {
    name.parse().unwrap()
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|index| u8::from_str_radix(&text[index..index + 2], 16).unwrap())
        .collect()
}

fn verification_key(fixture: &Fixture) -> VerificationKey {
    let alg = algorithm(&fixture.alg);
    match (&fixture.secret_hex, &fixture.public_key) {
        (Some(secret), _) => VerificationKey::hmac(&hex(secret), alg).unwrap(),
        (None, Some(public)) => VerificationKey::from_public_pem(&read(public), alg).unwrap(),
        (None, None) => panic!("fixture {} has no key", fixture.kid),
    }
    .with_kid(fixture.kid.clone())
}

fn verifier_for(key: VerificationKey) -> JwtVerifier {
    JwtVerifier::builder()
        .key(key)
        .issuer("wsgate-fixtures")
        .audience("wsgate-tests")
        .token_type("at+jwt")
        .build()
        .unwrap()
}

#[test]
fn tokens_from_another_implementation_verify_for_every_algorithm() {
    let manifest = manifest();
    assert!(manifest.made_by.starts_with("PyJWT"));
    let algorithms: Vec<&str> = manifest
        .tokens
        .iter()
        .map(|fixture| fixture.alg.as_str())
        .collect();
    assert_eq!(
        algorithms,
        [
            "HS256", "HS384", "HS512", "ES256", "ES384", "EdDSA", "RS256"
        ]
    );
    for fixture in &manifest.tokens {
        let principal = verifier_for(verification_key(fixture))
            .verify_token(&fixture.token)
            .unwrap_or_else(|error| panic!("{}: {error}", fixture.alg));
        assert_eq!(
            principal.subject(),
            format!("fixture-{}", fixture.alg.to_lowercase())
        );
        assert_eq!(principal.roles(), ["user"]);
    }
}

#[test]
fn one_verifier_holds_every_fixture_key_and_selects_by_kid() {
    let manifest = manifest();
    let verifier = manifest
        .tokens
        .iter()
        .fold(JwtVerifier::builder(), |builder, fixture| {
            builder.key(verification_key(fixture))
        })
        .issuer("wsgate-fixtures")
        .audience("wsgate-tests")
        .build()
        .unwrap();
    for fixture in &manifest.tokens {
        assert!(
            verifier.verify_token(&fixture.token).is_ok(),
            "{}",
            fixture.alg
        );
    }
}

#[test]
fn a_fixture_token_fails_under_another_algorithms_key() {
    let manifest = manifest();
    let es256 = manifest
        .tokens
        .iter()
        .find(|fixture| fixture.alg == "ES256")
        .unwrap();
    let rs256 = manifest
        .tokens
        .iter()
        .find(|fixture| fixture.alg == "RS256")
        .unwrap();
    // The RS256 key under the ES256 token's kid: the algorithm pin refuses it.
    let wrong = verification_key(rs256).with_kid(es256.kid.clone());
    assert!(verifier_for(wrong).verify_token(&es256.token).is_err());
}

#[test]
fn private_keys_written_by_another_tool_load_with_the_right_algorithm() {
    struct Case {
        file: &'static str,
        public: &'static str,
        algorithm: Algorithm,
    }
    let cases = [
        Case {
            file: "es256-private.pem",
            public: "es256-public.pem",
            algorithm: Algorithm::ES256,
        },
        Case {
            file: "es256-private-sec1.pem",
            public: "es256-public.pem",
            algorithm: Algorithm::ES256,
        },
        Case {
            file: "es384-private.pem",
            public: "es384-public.pem",
            algorithm: Algorithm::ES384,
        },
        Case {
            file: "eddsa-private.pem",
            public: "eddsa-public.pem",
            algorithm: Algorithm::EdDSA,
        },
        Case {
            file: "rs256-private.pem",
            public: "rs256-public.pem",
            algorithm: Algorithm::RS256,
        },
        Case {
            file: "rs256-private-pkcs1.pem",
            public: "rs256-public.pem",
            algorithm: Algorithm::RS256,
        },
    ];
    let alice = Principal::new("alice", AuthMethod::Password);
    for case in cases {
        let pair = KeyPair::from_private_pem(&read(case.file)).unwrap();
        assert_eq!(pair.algorithm(), case.algorithm, "{}", case.file);
        let (signing, derived_public) = pair.into_parts();
        let token = JwtIssuer::builder(signing)
            .build()
            .issue_token(&alice)
            .unwrap();
        // Verified by the public key the pair derived, and by the one the
        // other tool wrote: both must agree.
        let tool_public =
            VerificationKey::from_public_pem(&read(case.public), case.algorithm).unwrap();
        for key in [derived_public, tool_public] {
            let verifier = JwtVerifier::builder().key(key).build().unwrap();
            let verified = verifier.verify_token(token.token().expose());
            assert_eq!(verified.unwrap().subject(), "alice", "{}", case.file);
        }
    }
}
