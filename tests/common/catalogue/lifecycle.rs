//! Attacks on a live connection: in-band refresh, per-message tokens,
//! log injection through claims, a client that stops reading, floods.

use super::*;

pub(super) fn cases() -> Vec<Case> {
    vec![
        // ---- In-band refresh ----
        case(
            "refresh: another subject's token",
            attack!(|f| after_refresh(
                &f,
                Some(f.token_with("mallory", |c| c["exp"] = json!(now() + 3_600)))
            )
            .await),
            closed(4401, "invalid token"),
            refresh_denied("invalid token"),
        ),
        case(
            "refresh: token signed by an untrusted key",
            attack!(|f| after_refresh(&f, Some(f.forged_token("alice"))).await),
            closed(4401, "invalid token"),
            refresh_denied("invalid token"),
        ),
        case(
            "refresh: a token expiring earlier",
            attack!(|f| after_refresh(
                &f,
                Some(f.token_with("alice", |c| c["exp"] = json!(now() + 60)))
            )
            .await),
            closed(4401, "invalid token"),
            refresh_denied("invalid token"),
        ),
        case(
            "refresh: no token",
            attack!(|f| after_refresh(&f, None).await),
            closed(4401, "invalid token"),
            refresh_denied("invalid token"),
        ),
        case(
            "refresh: revoked token",
            attack!(|f| {
                let mut claims = f.claims("alice");
                claims["exp"] = json!(now() + 3_600);
                let jti = claims["jti"].as_str().unwrap().to_owned();
                f.revocations.revoke(Revocation::Token(jti)).await.unwrap();
                let token = f.sign(&claims);
                after_refresh(&f, Some(token)).await
            }),
            closed(4403, "token revoked"),
            refresh_denied("token revoked"),
        ),
        case(
            "refresh: expired token",
            attack!(|f| after_refresh(&f, Some(f.expired_token("alice"))).await),
            closed(4401, "token expired"),
            refresh_denied("token expired"),
        ),
        // ---- Per-message tokens ----
        case(
            "message token: missing",
            attack!(|f| after_message_token(&f, None, "chat").await),
            closed(4401, "invalid token"),
            message_denied("invalid token"),
        ),
        case(
            "message token: another subject's",
            attack!(|f| after_message_token(&f, Some(f.token("mallory")), "chat").await),
            closed(4401, "invalid token"),
            message_denied("invalid token"),
        ),
        case(
            "message token: signed by an untrusted key",
            attack!(|f| after_message_token(&f, Some(f.forged_token("alice")), "chat").await),
            closed(4401, "invalid token"),
            message_denied("invalid token"),
        ),
        case(
            "message token: expired",
            attack!(|f| after_message_token(&f, Some(f.expired_token("alice")), "chat").await),
            closed(4401, "token expired"),
            message_denied("token expired"),
        ),
        case(
            "message token: revoked",
            attack!(|f| {
                let token = f.revoked_token("alice").await;
                after_message_token(&f, Some(token), "chat").await
            }),
            closed(4403, "token revoked"),
            message_denied("token revoked"),
        ),
        case(
            "message token: valid, but the action needs a role it lacks",
            attack!(|f| after_message_token(&f, Some(f.token("alice")), "admin.kick").await),
            closed(4403, "forbidden"),
            message_denied("forbidden"),
        ),
        // ---- Live sockets and log injection through claims ----
        case(
            "revocation: a live socket of a revoked subject",
            attack!(|f| {
                let mut client = f.open("/ws", &f.token("victim")).await;
                let revocation = Revocation::Subject {
                    subject: "victim".into(),
                    issued_before: SystemTime::now() + Duration::from_secs(1),
                };
                assert_eq!(f.registry.revoke(revocation).await.unwrap(), 1);
                outcome_of(&mut client).await
            }),
            closed(4403, "token revoked"),
            socket_closed(4403, "token revoked"),
        ),
        Case {
            logged_escaped: Some("mallory\\r\\n"),
            ..case(
                "log injection: sub holding CR/LF and terminal escapes",
                attack!(|f| f
                    .handshake(bearer(&f.token(&format!("mallory{INJECTION}"))))
                    .await),
                accepted(&format!("mallory{INJECTION}")),
                handshake_allowed(),
            )
        },
        Case {
            logged_escaped: Some("jti-\\r\\n"),
            ..case(
                "log injection: jti holding CR/LF and terminal escapes",
                attack!(|f| {
                    let token = f.token_with("alice", |claims| {
                        claims["jti"] = json!(format!("jti-{INJECTION}"))
                    });
                    f.handshake(bearer(&token)).await
                }),
                accepted("alice"),
                handshake_allowed(),
            )
        },
        // ---- A client that stops reading ----
        case(
            "a client that stops reading: dropped after the write timeout",
            attack!(|f| {
                // Echoes of 30 KB messages fill a small receive window and
                // the server's send buffer; then the client reads nothing
                // until the server must have given up on it.
                let token = f.token("alice");
                let mut socket = RawSocket::open_with_receive_buffer(
                    f.addr,
                    "/ws/bulk",
                    &[("Authorization", format!("Bearer {token}"))],
                    4_096,
                )
                .await;
                socket.next_text().await.expect("no welcome");
                let say = json!({"type": "say", "text": "x".repeat(30_000)}).to_string();
                socket
                    .flood_until_stalled(&RawFrame::new(raw::TEXT, say), Duration::from_millis(300))
                    .await;
                let gone_by = wsgate::socket::DEFAULT_WRITE_TIMEOUT + Duration::from_millis(1_500);
                tokio::time::sleep(gone_by).await;
                // What the kernel still held comes, then the end: the close
                // frame never got out of the server's buffer.
                loop {
                    match socket.next_frame().await {
                        None => break Observed::Dropped,
                        Some((raw::CLOSE, payload)) => {
                            let code = u16::from_be_bytes([payload[0], payload[1]]);
                            break closed(code, &String::from_utf8_lossy(&payload[2..]));
                        }
                        Some(_) => {}
                    }
                }
            }),
            Observed::Dropped,
            socket_closed(1008, "slow consumer"),
        ),
        // ---- Floods of handshakes ----
        case(
            "flood: 100 garbage bearer tokens at once",
            attack!(|f| {
                let handshakes = (0..100)
                    .map(|n| Handshake::to("/ws").bearer(&format!("eyJnb3QiOiJ5b3UifQ.{n}.x")))
                    .collect();
                at_once(&f, handshakes).await
            }),
            tally(&[(401, 100)]),
            handshake_denied("invalid token"),
        ),
    ]
}
