//! Tokens from a real OpenID provider (npm's `oidc-provider`, started by
//! the tests): discovery, JWKS rotation, outages, introspection, and the
//! hostile provider-side cases as a catalogue with exact outcomes.
//!
//! Each test starts its own provider on a free loopback port; without
//! Node.js and `npm ci` in `tests/idp` they print what to install and pass,
//! unless `WSGATE_TEST_REQUIRE_SERVERS=1` (CI).

use std::time::{Duration, Instant};

use crate::common::Outcome;
use crate::common::dpop::ClientKey;
use crate::common::idp::{
    self, CHAT_ADMIN, CHAT_USER, ES256, INTROSPECTOR, Idp, NO_SCOPE, OPAQUE, RS256, Site, close_of,
    jwt_provider_of, next_text, observed, retry_after, send_json, sub_of, test_es256_jwk,
};
use crate::common::{Handshake, connect, eventually, now, remember_secret};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use wsgate::audit::{self, EventKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn es256_and_rs256_access_tokens_open_sockets_on_bearer_and_subprotocol() {
    let Some(provider) = Idp::start().await else {
        return;
    };
    let site = Site::start(&[&provider], |builder| builder).await;
    for resource in [ES256, RS256] {
        let token = provider.token(CHAT_USER, resource).await;
        for (transport, outcome) in [
            ("bearer", site.bearer(&token).await),
            ("subprotocol", site.subprotocol(&token).await),
        ] {
            let Outcome::Accepted { welcome, protocol } = &outcome else {
                panic!("{resource} on {transport}: {outcome:?}");
            };
            assert_eq!(welcome["sub"], "chat-user", "{resource} on {transport}");
            assert_eq!(
                welcome["scopes"],
                json!(["chat"]),
                "{resource} on {transport}"
            );
            if transport == "subprotocol" {
                assert_eq!(protocol.as_deref(), Some("chat.v1"));
            }
        }
    }
    // Local tokens keep working next to the provider's.
    assert_eq!(
        sub_of(&site.bearer(&site.keys.token("alice")).await),
        "alice"
    );
    // The startup fetch was audited with the keys it added.
    let fetched = site
        .wait_for_keys_event(|event| event.outcome == audit::Outcome::Allow)
        .await;
    assert_eq!(fetched.issuer.as_deref(), Some(provider.issuer.as_str()));
    assert_eq!(fetched.added, Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_scopes_reach_the_role_guard() {
    let Some(provider) = Idp::start().await else {
        return;
    };
    let site = Site::start(&[&provider], |builder| builder).await;
    let kick = json!({"type": "admin.kick", "sub": "chat-user"});
    let say = json!({"type": "say", "room": "lobby", "text": "hi"});

    let mut user = site.open(&provider.token(CHAT_USER, ES256).await).await;
    send_json(&mut user, say.clone()).await;
    assert_eq!(next_text(&mut user).await, say.to_string());
    send_json(&mut user, kick.clone()).await;
    let refused: Value = serde_json::from_str(&next_text(&mut user).await).unwrap();
    assert_eq!(
        refused,
        json!({"type": "error", "code": "forbidden", "ref": "admin.kick"})
    );

    let mut admin = site.open(&provider.token(CHAT_ADMIN, RS256).await).await;
    send_json(&mut admin, kick.clone()).await;
    assert_eq!(next_text(&mut admin).await, kick.to_string());

    // A token without the `chat` scope opens the socket but may say nothing.
    let mut bare = site.open(&provider.token(NO_SCOPE, ES256).await).await;
    send_json(&mut bare, say).await;
    let refused: Value = serde_json::from_str(&next_text(&mut bare).await).unwrap();
    assert_eq!(refused["code"], "forbidden");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_issuer_is_accepted_only_where_it_is_configured() {
    let Some(first) = Idp::start().await else {
        return;
    };
    let second = Idp::launch().await;
    let only_first = Site::start(&[&first], |builder| builder).await;
    let both = Site::start(&[&first], |builder| {
        builder.provider(jwt_provider_of(&second))
    })
    .await;

    let token = second.token(CHAT_ADMIN, ES256).await;
    // No local key and no provider for that issuer: the fallback refuses.
    assert_eq!(observed(&only_first.bearer(&token).await).0, 401);
    assert_eq!(sub_of(&both.bearer(&token).await), "chat-admin");
    assert_eq!(
        sub_of(&both.bearer(&first.token(CHAT_USER, RS256).await).await),
        "chat-user"
    );

    // The cross-issuer key: the second provider (the attacker's) publishes
    // a key under the first provider's `kid`, and signs a token that names
    // the first provider as its issuer. Keys are cached per issuer: only
    // the first provider's keys may verify a token of the first issuer.
    let victim_kid = first.kids().await[0].clone();
    second.publish(&test_es256_jwk(&victim_kid)).await;
    let attack = both.forged(&first.issuer, Algorithm::ES256, &victim_kid);
    let own = both.forged(&second.issuer, Algorithm::ES256, &victim_kid);
    // The key is in the second provider's set (its cache fetches it for
    // the kid it does not hold yet, once the cooldown has passed)...
    assert_eq!(both.eventually_accepts(&own).await, "mallory");
    // ...and still cannot speak for the first issuer.
    assert_eq!(
        observed(&both.bearer(&attack).await),
        (401, "invalid token".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_is_accepted_after_the_cooldown_and_the_old_one_refused_once_it_leaves() {
    let Some(provider) = Idp::start().await else {
        return;
    };
    let site = Site::start(&[&provider], |builder| {
        builder.refetch_cooldown(Duration::from_secs(2))
    })
    .await;
    let old = provider.token(CHAT_USER, ES256).await;
    assert_eq!(sub_of(&site.bearer(&old).await), "chat-user");

    // A refetch now (an unknown kid), so the cooldown runs from here: the
    // junk is shown until it starts one.
    let junk = site.forged(&provider.issuer, Algorithm::ES256, "junk");
    let refetched = |site: &Site| {
        site.events(EventKind::Keys)
            .iter()
            .any(|event| event.action.as_deref() == Some("unknown-kid"))
    };
    eventually("a refetch", Duration::from_secs(10), || async {
        if refetched(&site) {
            return Some(());
        }
        assert_eq!(observed(&site.bearer(&junk).await).0, 401);
        None
    })
    .await;
    provider.control("/control/rotate").await;
    let new = provider.token(CHAT_USER, ES256).await;
    // Inside the cooldown: refused at once, no fetch.
    let started = Instant::now();
    assert_eq!(
        observed(&site.bearer(&new).await),
        (401, "invalid token".to_owned())
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    // After it: one refetch, and the new key verifies.
    assert_eq!(site.eventually_accepts(&new).await, "chat-user");
    // The old key left the set, and so the cache.
    assert_eq!(
        observed(&site.bearer(&old).await),
        (401, "invalid token".to_owned())
    );
    let rotation = site
        .wait_for_keys_event(|event| {
            event.action.as_deref() == Some("unknown-kid") && event.added == Some(2)
        })
        .await;
    assert_eq!(rotation.removed, Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_unknown_kids_at_once_make_at_most_one_refetch() {
    let Some(provider) = Idp::start().await else {
        return;
    };
    let site = Site::start(&[&provider], |builder| builder).await;
    assert_eq!(
        sub_of(&site.bearer(&provider.token(CHAT_USER, ES256).await).await),
        "chat-user"
    );
    site.past_cooldown().await;
    let before = provider.stats().await["jwks"].as_u64().unwrap();
    let forged: Vec<String> = (0..50)
        .map(|n| site.forged(&provider.issuer, Algorithm::ES256, &format!("unknown-{n}")))
        .collect();
    let outcomes =
        futures_util::future::join_all(forged.iter().map(|token| site.bearer(token))).await;
    assert!(
        outcomes
            .iter()
            .all(|outcome| observed(outcome) == (401, "invalid token".to_owned()))
    );
    let after = provider.stats().await["jwks"].as_u64().unwrap();
    assert!(
        after - before <= 1,
        "{} JWKS requests for 50 unknown kids",
        after - before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provider_down_at_start_then_up() {
    if !idp::available() {
        return;
    }
    let mut placeholder = Idp::launch().await;
    let issuer = placeholder.issuer.clone();
    placeholder.stop().await;
    // The app starts at once although the provider is down.
    let started = Instant::now();
    let site = Site::start(&[&placeholder], |builder| builder).await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(
        sub_of(&site.bearer(&site.keys.token("alice")).await),
        "alice"
    );
    // The provider's tokens: 503 with Retry-After while no keys can be had.
    let early = site.forged(&issuer, Algorithm::ES256, "any");
    let outcome = site.bearer(&early).await;
    assert_eq!(observed(&outcome), (503, "backend unavailable".to_owned()));
    assert!(retry_after(&outcome).is_some_and(|seconds| (1..=10).contains(&seconds)));
    site.wait_for_keys_event(|event| event.reason == Some("provider unreachable"))
        .await;

    placeholder.restart().await;
    let token = placeholder.token(CHAT_USER, ES256).await;
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let outcome = site.bearer(&token).await;
        match observed(&outcome) {
            (101, sub) => {
                assert_eq!(sub, "chat-user");
                break;
            }
            (503, _) => assert!(
                Instant::now() < deadline,
                "still 503 after the provider came up"
            ),
            other => panic!("{other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_keys_serve_while_the_provider_is_down_then_fail_closed() {
    let Some(mut provider) = Idp::start().await else {
        return;
    };
    let site = Site::start(&[&provider], |builder| {
        builder.serve_stale_keys_for(Duration::from_secs(3))
    })
    .await;
    let token = provider.token(CHAT_USER, ES256).await;
    assert_eq!(sub_of(&site.bearer(&token).await), "chat-user");
    provider.stop().await;
    // A failed refetch (an unknown kid) keeps the last good keys.
    site.past_cooldown().await;
    let junk = site.forged(&provider.issuer, Algorithm::ES256, "junk");
    assert_eq!(observed(&site.bearer(&junk).await).0, 401);
    assert_eq!(sub_of(&site.bearer(&token).await), "chat-user");
    // Past the bound: fail closed.
    let outcome = eventually(
        "stale keys refused past the bound",
        Duration::from_secs(10),
        || async {
            let outcome = site.bearer(&token).await;
            (observed(&outcome).0 != 101).then_some(outcome)
        },
    )
    .await;
    assert_eq!(observed(&outcome), (503, "backend unavailable".to_owned()));
    assert!(retry_after(&outcome).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_refreshed_in_the_background_as_cache_control_says() {
    let Some(provider) = Idp::start().await else {
        return;
    };
    provider
        .control("/control/jwks?cache_control=max-age%3D2")
        .await;
    let site = Site::start(&[&provider], |builder| {
        builder.key_lifetime(
            Duration::from_secs(600),
            Duration::from_secs(2),
            Duration::from_secs(3600),
        )
    })
    .await;
    site.wait_for_keys_event(|event| event.action.as_deref() == Some("startup"))
        .await;
    let refreshed = site
        .wait_for_keys_event(|event| event.action.as_deref() == Some("refresh"))
        .await;
    assert_eq!(refreshed.outcome, audit::Outcome::Allow);
    // A rotation is picked up by the refresh, without any token asking.
    provider.control("/control/rotate").await;
    site.wait_for_keys_event(|event| {
        event.action.as_deref() == Some("refresh") && event.added == Some(2)
    })
    .await;
    // `no-store` is clamped to the minimum: not a fetch per check.
    provider
        .control("/control/jwks?cache_control=no-store")
        .await;
    let before = provider.stats().await["jwks"].as_u64().unwrap();
    let token = provider.token(CHAT_USER, ES256).await;
    for _ in 0..20 {
        assert_eq!(sub_of(&site.bearer(&token).await), "chat-user");
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let fetched = provider.stats().await["jwks"].as_u64().unwrap() - before;
    assert!(
        fetched <= 3,
        "{fetched} fetches in 3 s with max-age clamped to 2 s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opaque_tokens_active_inactive_and_revoked_while_the_socket_is_open() {
    let Some(provider) = Idp::start().await else {
        return;
    };
    let site = Site::start(&[&provider], |builder| {
        builder.recheck_every(Duration::from_secs(1))
    })
    .await;
    let token = provider.token(CHAT_ADMIN, OPAQUE).await;
    assert!(!token.contains('.'), "an opaque token: {token}");
    let outcome = site.bearer(&token).await;
    let Outcome::Accepted { welcome, .. } = &outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(welcome["sub"], "chat-admin");
    assert_eq!(welcome["scopes"], json!(["chat", "chat:admin"]));
    assert_eq!(sub_of(&site.subprotocol(&token).await), "chat-admin");

    // Revoked at the provider while a socket is open: closed 4403.
    let mut client = site.open(&token).await;
    provider.revoke(CHAT_ADMIN, &token).await;
    assert_eq!(
        close_of(&mut client, Duration::from_secs(5)).await,
        (4403, "token revoked".to_owned())
    );
    // And refused from then on (the recheck refreshed the cached answer).
    assert_eq!(
        observed(&site.bearer(&token).await),
        (401, "invalid token".to_owned())
    );

    // Inactive from the start.
    let revoked = provider.token(CHAT_USER, OPAQUE).await;
    provider.revoke(CHAT_USER, &revoked).await;
    assert_eq!(
        observed(&site.bearer(&revoked).await),
        (401, "invalid token".to_owned())
    );
    let outcomes: Vec<_> = site
        .events(EventKind::Introspection)
        .iter()
        .map(|event| (event.outcome, event.reason))
        .collect();
    assert!(outcomes.contains(&(audit::Outcome::Allow, None)));
    assert!(outcomes.contains(&(audit::Outcome::Deny, Some("token inactive"))));
}

/// DPoP-bound access tokens from the provider (client credentials with a
/// proof at its token endpoint, RFC 9449 §5): as a JWT (`cnf.jkt` in the
/// token) and opaque (`cnf.jkt` in the introspection answer), each opens
/// a socket only with a fresh proof of its key, and never as a bearer
/// token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dpop_bound_provider_tokens_open_sockets_only_with_a_proof_of_their_key() {
    let Some(provider) = Idp::start().await else {
        return;
    };
    let site = Site::start(&[&provider], |builder| builder).await;
    let url = format!("ws://{}/ws", site.addr);
    let key = ClientKey::es256();
    let thief = ClientKey::es256();
    for resource in [ES256, OPAQUE] {
        let (token, token_type) = provider.dpop_token(CHAT_USER, resource, &key).await;
        assert_eq!(token_type, "DPoP", "{resource}: a bound token");
        if resource == ES256 {
            let claims = token.split('.').nth(1).unwrap();
            let claims: Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
            assert_eq!(claims["cnf"], json!({"jkt": key.jkt()}), "{resource}");
        } else {
            assert!(!token.contains('.'), "an opaque token: {token}");
        }
        let dpop = |proof: Option<String>| {
            let handshake = Handshake::to("/ws").header("authorization", format!("DPoP {token}"));
            match proof {
                Some(proof) => handshake.header("dpop", proof),
                None => handshake,
            }
        };
        let refusals = [
            (
                "as a bearer token",
                Handshake::to("/ws").bearer(&token),
                "invalid token",
            ),
            (
                "as a bearer token with a good proof",
                Handshake::to("/ws")
                    .bearer(&token)
                    .header("dpop", key.proof(&url, Some(&token))),
                "invalid token",
            ),
            ("without a proof", dpop(None), "invalid dpop proof"),
            (
                "with a proof of another key",
                dpop(Some(thief.proof(&url, Some(&token)))),
                "invalid dpop proof",
            ),
        ];
        for (what, handshake, reason) in refusals {
            assert_eq!(
                observed(&connect(site.addr, &handshake).await),
                (401, reason.to_owned()),
                "{resource} {what}"
            );
        }
        let accepted = connect(site.addr, &dpop(Some(key.proof(&url, Some(&token))))).await;
        assert_eq!(sub_of(&accepted), "chat-user", "{resource}");
        // The browser's transport: the proof as a subprotocol entry.
        let offer = format!(
            "chat.v1, wsgate.bearer.{token}, wsgate.dpop.{}",
            key.proof(&url, Some(&token))
        );
        let accepted = connect(
            site.addr,
            &Handshake::to("/ws").header("sec-websocket-protocol", offer),
        )
        .await;
        assert_eq!(
            sub_of(&accepted),
            "chat-user",
            "{resource} in a subprotocol"
        );
    }
    // The audit names the binding and the key's thumbprint, never a token.
    let allowed: Vec<_> = site
        .events(EventKind::Handshake)
        .into_iter()
        .filter(|event| event.outcome == audit::Outcome::Allow)
        .collect();
    assert_eq!(allowed.len(), 4);
    for event in allowed {
        assert_eq!(event.jkt.as_deref(), Some(key.jkt().as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_introspection_request_however_many_handshakes_ask() {
    let Some(provider) = Idp::start().await else {
        return;
    };
    let site = Site::start(&[&provider], |builder| builder).await;
    let token = provider.token(CHAT_USER, OPAQUE).await;
    let before = provider.stats().await["introspection"].as_u64().unwrap();
    let outcomes = futures_util::future::join_all((0..20).map(|_| site.bearer(&token))).await;
    assert!(
        outcomes
            .iter()
            .all(|outcome| sub_of(outcome) == "chat-user")
    );
    // And the cache answers later handshakes too.
    assert_eq!(sub_of(&site.bearer(&token).await), "chat-user");
    let asked = provider.stats().await["introspection"].as_u64().unwrap() - before;
    assert_eq!(asked, 1);
}

/// A hostile or broken provider, and what a handshake with its token gets.
struct Case {
    name: &'static str,
    /// What the provider is made to do, before a fresh site starts.
    provider: &'static [&'static str],
    /// The token presented.
    token: Token,
    expect: (u16, &'static str),
    /// The answer must come within this long.
    within: Duration,
}

enum Token {
    Provider(&'static str),
    /// HS256 with the secret the provider published as an `oct` key.
    HmacWithPublishedSecret,
    /// `alg: none` under the provider's kid.
    AlgNone,
    /// Signed by the test's key under the provider's ES256 kid.
    ForeignKeyUnderKnownKid,
    /// Opaque-looking, with characters a bearer token cannot hold
    /// (RFC 6750 `b64token`).
    OpaqueWithControlCharacters,
    /// An opaque token longer than the cap.
    HugeOpaque,
}

const SECRET: &str = "a-secret-published-in-a-jwks-0123456789";

fn catalogue() -> Vec<Case> {
    let quick = Duration::from_secs(2);
    vec![
        Case {
            name: "discovery names another issuer",
            provider: &["/control/discovery?issuer=http%3A%2F%2Fevil.example"],
            token: Token::Provider(ES256),
            expect: (503, "backend unavailable"),
            within: quick,
        },
        Case {
            name: "JWKS with an oct key, token HS256 signed with it",
            provider: &["/control/jwks?mode=oct&secret=a-secret-published-in-a-jwks-0123456789"],
            token: Token::HmacWithPublishedSecret,
            expect: (401, "invalid token"),
            within: quick,
        },
        Case {
            name: "JWKS with keys that cannot be parsed: the good keys still serve",
            provider: &["/control/jwks?mode=broken"],
            token: Token::Provider(RS256),
            expect: (101, "chat-user"),
            within: quick,
        },
        Case {
            name: "alg none under the provider's kid",
            provider: &[],
            token: Token::AlgNone,
            expect: (401, "invalid token"),
            within: quick,
        },
        Case {
            name: "a foreign key's signature under the provider's kid",
            provider: &[],
            token: Token::ForeignKeyUnderKnownKid,
            expect: (401, "invalid token"),
            within: quick,
        },
        Case {
            name: "JWKS endpoint that never answers",
            provider: &["/control/jwks?mode=hang"],
            token: Token::Provider(ES256),
            expect: (503, "backend unavailable"),
            // The fetch timeout of these sites is 2 s.
            within: Duration::from_millis(3500),
        },
        Case {
            name: "JWKS answer above the 256 KiB cap",
            provider: &["/control/jwks?mode=huge"],
            token: Token::Provider(ES256),
            expect: (503, "backend unavailable"),
            within: quick,
        },
        Case {
            name: "JWKS endpoint redirecting elsewhere (not followed)",
            provider: &["/control/jwks?mode=redirect"],
            token: Token::Provider(ES256),
            expect: (503, "backend unavailable"),
            within: quick,
        },
        Case {
            name: "JWKS endpoint answering 500",
            provider: &["/control/jwks?mode=error"],
            token: Token::Provider(ES256),
            expect: (503, "backend unavailable"),
            within: quick,
        },
        Case {
            name: "malformed introspection answer",
            provider: &["/control/introspection?mode=malformed"],
            token: Token::Provider(OPAQUE),
            expect: (503, "backend unavailable"),
            within: quick,
        },
        Case {
            name: "introspection answering 500",
            provider: &["/control/introspection?mode=error"],
            token: Token::Provider(OPAQUE),
            expect: (503, "backend unavailable"),
            within: quick,
        },
        Case {
            name: "introspection endpoint that never answers",
            provider: &["/control/introspection?mode=hang"],
            token: Token::Provider(OPAQUE),
            expect: (503, "backend unavailable"),
            within: Duration::from_millis(3500),
        },
        Case {
            name: "opaque token with characters outside b64token is never sent",
            provider: &[],
            token: Token::OpaqueWithControlCharacters,
            expect: (401, "invalid token"),
            within: quick,
        },
        Case {
            name: "opaque token above the size cap is never sent",
            provider: &[],
            token: Token::HugeOpaque,
            expect: (401, "invalid token"),
            within: quick,
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_provider_catalogue() {
    let Some(mut provider) = Idp::start().await else {
        return;
    };
    let mut failures = Vec::new();
    for case in catalogue() {
        provider.restart().await;
        for control in case.provider {
            provider.control(control).await;
        }
        let site = Site::start(&[&provider], |builder| {
            builder.timeouts(Duration::from_secs(1), Duration::from_secs(2))
        })
        .await;
        let kid = provider.kids().await[0].clone();
        let token = match &case.token {
            Token::Provider(resource) => provider.token(CHAT_USER, resource).await,
            Token::HmacWithPublishedSecret => {
                let claims = json!({
                    "iss": provider.issuer, "aud": idp::AUDIENCE, "sub": "mallory",
                    "iat": now(), "exp": now() + 300,
                });
                let mut header = jsonwebtoken::Header::new(Algorithm::HS256);
                header.kid = Some("oct-1".into());
                header.typ = Some("at+jwt".into());
                let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()).unwrap();
                remember_secret(jsonwebtoken::encode(&header, &claims, &key).unwrap())
            }
            Token::AlgNone => {
                let header = URL_SAFE_NO_PAD
                    .encode(json!({"alg": "none", "kid": kid, "typ": "at+jwt"}).to_string());
                let claims = URL_SAFE_NO_PAD.encode(
                    json!({"iss": provider.issuer, "aud": idp::AUDIENCE, "sub": "mallory", "exp": now() + 300}).to_string(),
                );
                format!("{header}.{claims}.c2ln")
            }
            Token::ForeignKeyUnderKnownKid => site.forged(&provider.issuer, Algorithm::ES256, &kid),
            Token::OpaqueWithControlCharacters => "opaque\"token<script>".to_owned(),
            Token::HugeOpaque => "o".repeat(9000),
        };
        let started = Instant::now();
        let outcome = site.bearer(&token).await;
        let elapsed = started.elapsed();
        let got = observed(&outcome);
        if got != (case.expect.0, case.expect.1.to_owned()) || elapsed > case.within {
            failures.push(format!(
                "{}: got {got:?} in {elapsed:?}, expected {:?} within {:?}",
                case.name, case.expect, case.within
            ));
        }
        if case.expect.0 == 503 && retry_after(&outcome).is_none() {
            failures.push(format!("{}: 503 without Retry-After", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discovery_document_of_another_issuer_is_logged_and_refused() {
    let Some(provider) = Idp::start().await else {
        return;
    };
    provider
        .control("/control/discovery?issuer=http%3A%2F%2Fevil.example")
        .await;
    let site = Site::start(&[&provider], |builder| builder).await;
    let failed = site
        .wait_for_keys_event(|event| event.outcome == audit::Outcome::Deny)
        .await;
    assert_eq!(failed.reason, Some("issuer mismatch"));
    // Back to the truth: the provider's tokens work after the cooldown.
    provider.control("/control/discovery").await;
    let token = provider.token(CHAT_USER, ES256).await;
    assert_eq!(site.eventually_accepts(&token).await, "chat-user");
}

/// RFC 8705 with the real provider: a client with
/// `tls_client_certificate_bound_access_tokens` gets tokens bound to its
/// certificate (the provider reads it as a TLS-terminating proxy hands it
/// over). wsgate, behind the same kind of proxy (trusted, its header
/// believed), takes such a token only beside that certificate: a JWT with
/// `cnf.x5t#S256`, and an opaque token whose introspection answer carries
/// it.
#[tokio::test]
async fn certificate_bound_provider_tokens_open_sockets_only_beside_their_certificate() {
    use crate::common::idp::CHAT_DEVICE;
    use crate::common::pki::{Authority, Kind};
    use wsgate::certificate::{ForwardedCertificateHeader, ForwardedCertificates};
    let Some(provider) = Idp::start().await else {
        return;
    };
    let proxy: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    let site = Site::start_with(
        &[&provider],
        |builder| builder,
        |gate| {
            gate.trusted_proxies([proxy])
                .forwarded_certificates(ForwardedCertificates::new(
                    ForwardedCertificateHeader::Nginx,
                ))
        },
    )
    .await;
    let ca = Authority::new("device CA");
    let device = ca.leaf("device-1", &[], Kind::Client);
    let thief = ca.leaf("device-1", &[], Kind::Client);
    let forwarded = |pem: &str| {
        percent_encoding::utf8_percent_encode(pem, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    for resource in [ES256, OPAQUE] {
        let (token, token_type) = provider
            .certificate_token(CHAT_DEVICE, resource, &device.pem)
            .await;
        assert_eq!(token_type, "Bearer", "{resource}: RFC 8705 keeps Bearer");
        if resource == ES256 {
            let claims = token.split('.').nth(1).unwrap();
            let claims: Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
            assert_eq!(
                claims["cnf"],
                json!({"x5t#S256": device.thumbprint()}),
                "{resource}"
            );
        }
        let with = |pem: Option<&str>| {
            let handshake = Handshake::to("/ws").bearer(&token);
            match pem {
                Some(pem) => handshake.header("x-ssl-client-cert", forwarded(pem)),
                None => handshake,
            }
        };
        for (what, handshake) in [
            ("without a certificate", with(None)),
            ("beside another certificate", with(Some(&thief.pem))),
        ] {
            assert_eq!(
                observed(&connect(site.addr, &handshake).await),
                (401, "invalid token".to_owned()),
                "{resource} {what}"
            );
        }
        let accepted = connect(site.addr, &with(Some(&device.pem))).await;
        assert_eq!(sub_of(&accepted), "chat-device", "{resource}");
    }
    let allowed: Vec<_> = site
        .events(EventKind::Handshake)
        .into_iter()
        .filter(|event| event.outcome == audit::Outcome::Allow)
        .collect();
    assert_eq!(allowed.len(), 2);
    for event in allowed {
        assert_eq!(event.binding, Some("certificate"));
        assert_eq!(event.cert.as_deref(), Some(device.fingerprint().as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_or_client_secret_in_any_audit_event() {
    let Some(provider) = Idp::start().await else {
        return;
    };
    let site = Site::start(&[&provider], |builder| builder).await;
    let jwt = provider.token(CHAT_USER, ES256).await;
    let opaque = provider.token(CHAT_USER, OPAQUE).await;
    sub_of(&site.bearer(&jwt).await);
    sub_of(&site.bearer(&opaque).await);
    provider.revoke(CHAT_USER, &opaque).await;
    let other = provider.token(CHAT_ADMIN, OPAQUE).await;
    provider.revoke(CHAT_ADMIN, &other).await;
    site.bearer(&other).await;
    let events: Vec<String> = site
        .events
        .lock()
        .unwrap()
        .iter()
        .map(|event| event.to_json().to_string())
        .collect();
    assert!(events.len() >= 5, "{events:?}");
    for secret in [
        jwt.as_str(),
        opaque.as_str(),
        other.as_str(),
        INTROSPECTOR.1,
        CHAT_USER.1,
    ] {
        for event in &events {
            assert!(!event.contains(secret), "a secret in {event}");
        }
    }
}
