//! Attacks on the handshake: every transport (Bearer, Basic, the token
//! subprotocol, the cookie, the query string and tickets) and the lockout.

use super::*;

pub(super) fn cases() -> Vec<Case> {
    vec![
        // ---- Handshake: Authorization: Bearer ----
        case(
            "bearer: alg none",
            attack!(|f| f
                .handshake(bearer(&unsigned("none", &f.claims("alice"))))
                .await),
            refused(401, "invalid token"),
            handshake_denied("invalid token"),
        ),
        case(
            "bearer: HS256 signed with the RSA public key",
            attack!(|f| {
                let token = forge(
                    &json!({"alg": "HS256", "kid": "rs", "typ": TOKEN_TYPE}),
                    &f.claims("alice"),
                    &f.keys.rsa_public,
                );
                f.handshake(bearer(&token)).await
            }),
            refused(401, "invalid token"),
            handshake_denied("invalid token"),
        ),
        case(
            "bearer: kid holding CR/LF and terminal escapes",
            attack!(|f| {
                let token = forge(
                    &json!({"alg": "HS256", "kid": format!("hs{INJECTION}"), "typ": TOKEN_TYPE}),
                    &f.claims("alice"),
                    &f.keys.hmac_secret,
                );
                f.handshake(bearer(&token)).await
            }),
            refused(401, "invalid token"),
            handshake_denied("invalid token"),
        ),
        case(
            "bearer: 64 KiB token",
            attack!(|f| {
                let token = f.token_with("alice", |claims| {
                    claims["padding"] = json!("x".repeat(64 * 1024))
                });
                f.handshake(bearer(&token)).await
            }),
            refused(401, "invalid token"),
            handshake_denied("invalid token"),
        ),
        case(
            "bearer: expired token",
            attack!(|f| f.handshake(bearer(&f.expired_token("alice"))).await),
            refused(401, "token expired"),
            handshake_denied("token expired"),
        ),
        case(
            "bearer: revoked token",
            attack!(|f| {
                let token = f.revoked_token("alice").await;
                f.handshake(bearer(&token)).await
            }),
            refused(401, "token revoked"),
            handshake_denied("token revoked"),
        ),
        case(
            "bearer: signed by an untrusted key",
            attack!(|f| f.handshake(bearer(&f.forged_token("alice"))).await),
            refused(401, "invalid token"),
            handshake_denied("invalid token"),
        ),
        case(
            "authorization: a scheme no transport reads is no credential",
            attack!(|f| {
                f.handshake(Handshake::to("/ws").header(
                    "authorization",
                    "Digest username=\"alice\", response=\"6629fae49393a05397450978507c4ef1\"",
                ))
                .await
            }),
            refused(401, "missing credentials"),
            handshake_denied("missing credentials"),
        ),
        case(
            "bearer and someone else's ticket: the first transport in order decides",
            attack!(|f| {
                let ticket = f.ticket("mallory").await;
                let token = f.token("alice");
                let outcome = f
                    .handshake(Handshake::to(format!("/ws?ticket={ticket}")).bearer(&token))
                    .await;
                // The ticket was not looked at, so not spent either.
                assert_eq!(
                    f.handshake(Handshake::to(format!("/ws?ticket={ticket}")))
                        .await,
                    accepted("mallory")
                );
                outcome
            }),
            accepted("alice"),
            handshake_allowed(),
        ),
        // ---- Handshake: Authorization: Basic ----
        case(
            "basic: wrong password",
            attack!(|f| f
                .handshake(basic_attempt("alice", "not-her-password", 11))
                .await),
            refused(401, "invalid credentials"),
            handshake_denied("invalid credentials"),
        ),
        case(
            "basic: unknown user",
            attack!(|f| f
                .handshake(basic_attempt("mallory", ALICE_PASSWORD, 12))
                .await),
            refused(401, "invalid credentials"),
            handshake_denied("invalid credentials"),
        ),
        case(
            "basic: user name holding CR/LF and terminal escapes",
            attack!(|f| {
                let user = format!("eve{INJECTION}");
                f.handshake(basic_attempt(&user, ALICE_PASSWORD, 13)).await
            }),
            refused(401, "invalid credentials"),
            handshake_denied("invalid credentials"),
        ),
        case(
            "basic: 4 KiB password",
            attack!(|f| f
                .handshake(basic_attempt("alice", &"p".repeat(4096), 14))
                .await),
            refused(401, "invalid credentials"),
            handshake_denied("invalid credentials"),
        ),
        case(
            "basic: not base64",
            attack!(|f| {
                f.handshake(
                    Handshake::to("/ws")
                        .origin(ALLOWED_ORIGIN)
                        .header("authorization", "Basic %%%not-base64"),
                )
                .await
            }),
            refused(400, "malformed credentials"),
            handshake_denied("malformed credentials"),
        ),
        case(
            "basic: credentials that are not UTF-8",
            attack!(|f| {
                let value = format!("Basic {}", STANDARD.encode(b"alice:\xff\xfe\xc0"));
                f.handshake(
                    Handshake::to("/ws")
                        .origin(ALLOWED_ORIGIN)
                        .header("authorization", value),
                )
                .await
            }),
            refused(400, "malformed credentials"),
            handshake_denied("malformed credentials"),
        ),
        case(
            "basic: disabled account with its right password",
            attack!(|f| f.handshake(basic_attempt("bob", BOB_PASSWORD, 15)).await),
            refused(403, "account disabled"),
            handshake_denied("account disabled"),
        ),
        case(
            "basic: no Origin",
            attack!(|f| {
                f.handshake(
                    Handshake::to("/ws").header("authorization", basic("alice", ALICE_PASSWORD)),
                )
                .await
            }),
            refused(403, "origin required"),
            handshake_denied("origin required"),
        ),
        case(
            "basic: foreign Origin",
            attack!(|f| {
                f.handshake(
                    Handshake::to("/ws")
                        .origin("http://evil.test")
                        .header("authorization", basic("alice", ALICE_PASSWORD)),
                )
                .await
            }),
            refused(403, "origin not allowed"),
            handshake_denied("origin not allowed"),
        ),
        // ---- Handshake: token subprotocol ----
        case(
            "subprotocol: token without an application protocol",
            attack!(|f| {
                f.handshake(with_protocols(format!(
                    "wsgate.bearer.{}",
                    f.token("alice")
                )))
                .await
            }),
            refused(400, "application protocol required"),
            handshake_denied("application protocol required"),
        ),
        case(
            "subprotocol: two token entries",
            attack!(|f| {
                let (one, two) = (f.token("alice"), f.token("alice"));
                f.handshake(with_protocols(format!(
                    "chat.v1, wsgate.bearer.{one}, wsgate.bearer.{two}"
                )))
                .await
            }),
            refused(400, "ambiguous credentials"),
            handshake_denied("ambiguous credentials"),
        ),
        case(
            "subprotocol: token signed by an untrusted key",
            attack!(|f| {
                f.handshake(with_protocols(format!(
                    "chat.v1, wsgate.bearer.{}",
                    f.forged_token("alice")
                )))
                .await
            }),
            refused(401, "invalid token"),
            handshake_denied("invalid token"),
        ),
        case(
            "subprotocol: 200 decoy offers around the token",
            attack!(|f| {
                let decoys: Vec<String> = (0..200).map(|n| format!("decoy.{n}")).collect();
                f.handshake(with_protocols(format!(
                    "{}, chat.v1, wsgate.bearer.{}",
                    decoys.join(", "),
                    f.token("alice")
                )))
                .await
            }),
            accepted("alice"),
            handshake_allowed(),
        ),
        // ---- Handshake: cookie ----
        case(
            "cookie: no Origin",
            attack!(|f| f
                .handshake(cookie(None, format!("wsgate_token={}", f.token("alice"))))
                .await),
            refused(403, "origin required"),
            handshake_denied("origin required"),
        ),
        case(
            "cookie: Origin null",
            attack!(|f| {
                f.handshake(cookie(
                    Some("null"),
                    format!("wsgate_token={}", f.token("alice")),
                ))
                .await
            }),
            refused(403, "origin not allowed"),
            handshake_denied("origin not allowed"),
        ),
        case(
            "cookie: look-alike Origin",
            attack!(|f| {
                f.handshake(cookie(
                    Some("http://app.test:8080.evil.test"),
                    format!("wsgate_token={}", f.token("alice")),
                ))
                .await
            }),
            refused(403, "origin not allowed"),
            handshake_denied("origin not allowed"),
        ),
        case(
            "cookie: two token cookies",
            attack!(|f| {
                f.handshake(cookie(
                    Some(ALLOWED_ORIGIN),
                    format!(
                        "wsgate_token={}; wsgate_token={}",
                        f.token("alice"),
                        f.forged_token("admin")
                    ),
                ))
                .await
            }),
            refused(400, "ambiguous credentials"),
            handshake_denied("ambiguous credentials"),
        ),
        case(
            "cookie: token signed by an untrusted key",
            attack!(|f| {
                f.handshake(cookie(
                    Some(ALLOWED_ORIGIN),
                    format!("wsgate_token={}", f.forged_token("alice")),
                ))
                .await
            }),
            refused(401, "invalid token"),
            handshake_denied("invalid token"),
        ),
        // ---- Handshake: query string and tickets ----
        case(
            "query: raw access token",
            attack!(|f| {
                f.handshake(Handshake::to(format!(
                    "/ws?access_token={}",
                    f.token("alice")
                )))
                .await
            }),
            refused(400, "token in query string"),
            handshake_denied("token in query string"),
        ),
        case(
            "ticket: replayed",
            attack!(|f| {
                let ticket = f.ticket("alice").await;
                let handshake = Handshake::to(format!("/ws?ticket={ticket}"));
                assert_eq!(f.handshake(handshake.clone()).await, accepted("alice"));
                f.handshake(handshake).await
            }),
            refused(401, "invalid ticket"),
            handshake_denied("invalid ticket"),
        ),
        case(
            "ticket: expired",
            attack!(|f| {
                let ticket = f.expired_ticket("alice").await;
                f.handshake(Handshake::to(format!("/ws?ticket={ticket}")))
                    .await
            }),
            refused(401, "invalid ticket"),
            handshake_denied("invalid ticket"),
        ),
        case(
            "ticket: made up",
            attack!(|f| f
                .handshake(Handshake::to(format!("/ws?ticket={}", "A".repeat(43))))
                .await),
            refused(401, "invalid ticket"),
            handshake_denied("invalid ticket"),
        ),
        case(
            "ticket: two tickets",
            attack!(|f| {
                let (one, two) = (f.ticket("alice").await, f.ticket("alice").await);
                f.handshake(Handshake::to(format!("/ws?ticket={one}&ticket={two}")))
                    .await
            }),
            refused(400, "ambiguous credentials"),
            handshake_denied("ambiguous credentials"),
        ),
        case(
            "ticket: 10 000 characters",
            attack!(|f| f
                .handshake(Handshake::to(format!("/ws?ticket={}", "Z".repeat(10_000))))
                .await),
            refused(401, "invalid ticket"),
            handshake_denied("invalid ticket"),
        ),
        case(
            "ticket: percent-escapes of bytes that are not UTF-8",
            attack!(|f| f
                .handshake(Handshake::to("/ws?ticket=%ff%fe%00%c0%af"))
                .await),
            refused(401, "invalid ticket"),
            handshake_denied("invalid ticket"),
        ),
        case(
            "ticket: 16 clients race to redeem one ticket",
            attack!(|f| {
                let ticket = f.ticket("alice").await;
                let handshakes = (0..16)
                    .map(|_| Handshake::to(format!("/ws?ticket={ticket}")))
                    .collect();
                at_once(&f, handshakes).await
            }),
            tally(&[(101, 1), (401, 15)]),
            handshake_denied("invalid ticket"),
        ),
        // ---- Lockout ----
        case(
            "lockout: a locked account refuses its right password",
            attack!(|f| {
                lock(&f, "carol", 21).await;
                f.handshake(basic_attempt("carol", ALICE_PASSWORD, 24))
                    .await
            }),
            refused(429, "too many attempts"),
            handshake_denied("too many attempts"),
        ),
        case(
            "lockout: right and wrong password look the same while locked",
            attack!(|f| {
                lock(&f, "dave", 31).await;
                let addr = f.addr;
                let right = connect(addr, &basic_attempt("dave", ALICE_PASSWORD, 34)).await;
                let wrong = connect(addr, &basic_attempt("dave", "still-wrong", 35)).await;
                assert_eq!(format!("{right:?}"), format!("{wrong:?}"));
                Observed::from(right)
            }),
            refused(429, "too many attempts"),
            handshake_denied("too many attempts"),
        ),
        case(
            "lockout: 20 concurrent guesses on one account",
            attack!(|f| {
                let guesses = (0..20)
                    .map(|n| basic_attempt("judy", &format!("burst-guess-{n}"), 70 + n))
                    .collect();
                at_once(&f, guesses).await
            }),
            tally(&[
                (401, ACCOUNT_THRESHOLD as usize),
                (429, 20 - ACCOUNT_THRESHOLD as usize),
            ]),
            handshake_denied("too many attempts"),
        ),
        case(
            "lockout: spraying many accounts from one address",
            attack!(|f| {
                for (index, account) in ["erin", "frank", "grace", "henry", "ivan"]
                    .iter()
                    .enumerate()
                {
                    assert_eq!(
                        f.handshake(basic_attempt(account, &format!("guess-{index}"), 40))
                            .await,
                        refused(401, "invalid credentials")
                    );
                }
                f.handshake(basic_attempt("alice", ALICE_PASSWORD, 40))
                    .await
            }),
            refused(429, "too many attempts"),
            handshake_denied("too many attempts"),
        ),
        case(
            "lockout: the sprayed account still opens from elsewhere",
            attack!(|f| f
                .handshake(basic_attempt("alice", ALICE_PASSWORD, 41))
                .await),
            accepted("alice"),
            handshake_allowed(),
        ),
        case(
            "lockout: X-Forwarded-For from an untrusted client is ignored",
            attack!(|f| {
                let untrusted: IpAddr = "127.0.0.2".parse().unwrap();
                for n in 0..ADDRESS_THRESHOLD as u8 {
                    let headers = [
                        ("origin", ALLOWED_ORIGIN.to_owned()),
                        ("authorization", basic(&format!("nobody-{n}"), "guess")),
                        forwarded_for(50 + n),
                    ];
                    assert_eq!(
                        handshake_from(untrusted, f.addr, &headers).await,
                        refused(401, "invalid credentials")
                    );
                }
                let headers = [
                    ("origin", ALLOWED_ORIGIN.to_owned()),
                    ("authorization", basic("alice", ALICE_PASSWORD)),
                    forwarded_for(60),
                ];
                handshake_from(untrusted, f.addr, &headers).await
            }),
            refused(429, "too many attempts"),
            handshake_denied("too many attempts"),
        ),
    ]
}
