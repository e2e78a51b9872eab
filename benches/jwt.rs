//! JWT verification cost per algorithm, with the crate's crypto backend
//! (jsonwebtoken on aws-lc-rs). Run with `cargo bench --bench jwt`.

#[path = "common/mod.rs"]
mod common;

use std::hint::black_box;

use criterion::{Criterion, criterion_group};
use wsgate::jwt::{Algorithm, JwtIssuer, JwtVerifier, KeyPair};
use wsgate::{AuthMethod, Principal};

fn verification(c: &mut Criterion) {
    let alice = Principal::new("alice", AuthMethod::Password).with_roles(["user"]);
    let pairs = [
        ("HS256", KeyPair::hmac(&[7; 32], Algorithm::HS256).unwrap()),
        (
            "ES256",
            KeyPair::from_private_pem(wsgate_testkit::fixtures::jwt("es256-private.pem")).unwrap(),
        ),
        (
            "EdDSA",
            KeyPair::from_private_pem(wsgate_testkit::fixtures::jwt("eddsa-private.pem")).unwrap(),
        ),
        (
            "RS256",
            KeyPair::from_private_pem(wsgate_testkit::fixtures::jwt("rs256-private.pem")).unwrap(),
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

/// `WSGATE_JWT_COUNT=local:N` (or `provider:N`) verifies the ES256 token N
/// times and exits: run under `valgrind --tool=callgrind` for N = 0 and
/// N = 2000, the difference over 2000 is the instructions of one check,
/// which the machine's noise does not move.
fn count(spec: &str) {
    use wsgate::TokenVerifier as _;
    let (side, times) = spec.split_once(':').expect("side:N");
    let times: usize = times.parse().expect("a count");
    let keys = provider_keys_setup();
    keys.runtime.block_on(async {
        for _ in 0..times {
            match side {
                "local" => keys.local.verify(black_box(&keys.token)).await.unwrap(),
                "provider" => keys.provider.verify(black_box(&keys.token)).await.unwrap(),
                other => panic!("no side {other}"),
            };
        }
    });
}

criterion_group!(benches, verification, provider_keys);

fn main() {
    if let Ok(spec) = std::env::var("WSGATE_JWT_COUNT") {
        count(&spec);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}

/// The same ES256 token verified with a locally configured key and with the
/// key an `OidcVerifier` fetched from a provider (the JWKS cache): what the
/// cache path costs on top of the signature. Both through
/// `TokenVerifier::verify` on one current-thread runtime.
struct ProviderKeys {
    runtime: tokio::runtime::Runtime,
    token: String,
    local: JwtVerifier,
    local_jwk: JwtVerifier,
    provider: wsgate::oidc::OidcVerifier,
}

fn provider_keys_setup() -> ProviderKeys {
    use common::provider::{IDP_AUDIENCE, IDP_KID, bench_provider};
    use wsgate::TokenVerifier as _;
    use wsgate::oidc::{OidcProvider, OidcVerifier};

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (issuer, _) = runtime.block_on(bench_provider(600));
    let (signing, verification) =
        KeyPair::from_private_pem(wsgate_testkit::fixtures::jwt("es256-private.pem"))
            .unwrap()
            .with_kid(IDP_KID)
            .into_parts();
    let token = JwtIssuer::builder(signing)
        .issuer(issuer.clone())
        .audience(IDP_AUDIENCE)
        .build()
        .issue_token(&Principal::new("alice", AuthMethod::Token))
        .unwrap()
        .token()
        .expose()
        .to_owned();
    let local = JwtVerifier::builder()
        .key(verification)
        .issuer(issuer.clone())
        .audience(IDP_AUDIENCE)
        .build()
        .unwrap();
    // The same key read from its JWK, as the provider's set gives it.
    let jwk = {
        let signing = jsonwebtoken::EncodingKey::from_ec_pem(wsgate_testkit::fixtures::jwt(
            "es256-private.pem",
        ))
        .unwrap();
        let mut jwk =
            jsonwebtoken::jwk::Jwk::from_encoding_key(&signing, Algorithm::ES256).unwrap();
        jwk.common.key_id = Some(IDP_KID.to_owned());
        jwk
    };
    let local_jwk = JwtVerifier::builder()
        .key(wsgate::jwt::VerificationKey::from_jwk(&jwk).unwrap())
        .issuer(issuer.clone())
        .audience(IDP_AUDIENCE)
        .build()
        .unwrap();
    let provider = runtime.block_on(async {
        let verifier = OidcVerifier::builder()
            .provider(OidcProvider::new(issuer).audience(IDP_AUDIENCE))
            .build()
            .unwrap();
        // Warm: the first check waits for the startup fetch.
        verifier.verify(&token).await.unwrap();
        verifier
    });
    ProviderKeys {
        runtime,
        token,
        local,
        local_jwk,
        provider,
    }
}

fn provider_keys(c: &mut Criterion) {
    use wsgate::TokenVerifier as _;
    let ProviderKeys {
        runtime,
        token,
        local,
        local_jwk,
        provider,
    } = provider_keys_setup();
    let mut group = c.benchmark_group("es256_verify");
    group.bench_function("local key", |bench| {
        bench.iter(|| runtime.block_on(local.verify(black_box(&token))).unwrap());
    });
    group.bench_function("local key from its JWK", |bench| {
        bench.iter(|| {
            runtime
                .block_on(local_jwk.verify(black_box(&token)))
                .unwrap()
        });
    });
    group.bench_function("provider key (JWKS cache)", |bench| {
        bench.iter(|| {
            runtime
                .block_on(provider.verify(black_box(&token)))
                .unwrap()
        });
    });
    group.finish();
}
