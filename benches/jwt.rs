//! JWT verification cost per algorithm, with the crate's crypto backend
//! (jsonwebtoken on aws-lc-rs). Run with `cargo bench --bench jwt`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use wsgate::jwt::{Algorithm, JwtIssuer, JwtVerifier, KeyPair};
use wsgate::{AuthMethod, Principal};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/jwt/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn verification(c: &mut Criterion) {
    let alice = Principal::new("alice", AuthMethod::Password).with_roles(["user"]);
    let pairs = [
        ("HS256", KeyPair::hmac(&[7; 32], Algorithm::HS256).unwrap()),
        (
            "ES256",
            KeyPair::from_private_pem(&fixture("es256-private.pem")).unwrap(),
        ),
        (
            "EdDSA",
            KeyPair::from_private_pem(&fixture("eddsa-private.pem")).unwrap(),
        ),
        (
            "RS256",
            KeyPair::from_private_pem(&fixture("rs256-private.pem")).unwrap(),
        ),
    ];
    let mut group = c.benchmark_group("jwt_verify");
    for (name, pair) in pairs {
        let (signing, verification) = pair.into_parts();
        let token = JwtIssuer::builder(signing)
            .issuer("bench")
            .audience("bench")
            .build()
            .issue_token(&alice)
            .unwrap();
        let verifier = JwtVerifier::builder()
            .key(verification)
            .issuer("bench")
            .audience("bench")
            .build()
            .unwrap();
        let token = token.token().expose().to_owned();
        group.bench_function(name, |bench| {
            bench.iter(|| verifier.verify_token(black_box(&token)).unwrap());
        });
    }
    group.finish();
}

criterion_group!(benches, verification);
criterion_main!(benches);
