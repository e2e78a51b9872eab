//! Attacks on first-message authentication, and sockets that never
//! authenticate.

use super::*;

pub(super) fn cases() -> Vec<Case> {
    use raw::TEXT;
    vec![
        // ---- First-message authentication and idle unauthenticated sockets ----
        case(
            "first message: silence past the deadline",
            attack!(|f| outcome_of(&mut f.open_deferred().await).await),
            closed(4401, "authentication timeout"),
            first_message_denied(4401, "authentication timeout"),
        ),
        case(
            "first message: pings only, past the deadline",
            attack!(|f| {
                let mut client = f.open_deferred().await;
                for _ in 0..8 {
                    if client
                        .send(Message::Ping(Default::default()))
                        .await
                        .is_err()
                    {
                        break;
                    }
                    tokio::time::sleep(AUTH_DEADLINE / 5).await;
                }
                outcome_of(&mut client).await
            }),
            closed(4401, "authentication timeout"),
            first_message_denied(4401, "authentication timeout"),
        ),
        case(
            "first message: not JSON",
            attack!(|f| first_message(&f, Message::Text("hello?".into())).await),
            closed(4401, "invalid token"),
            first_message_denied(4401, "invalid token"),
        ),
        case(
            "first message: binary",
            attack!(|f| first_message(&f, Message::Binary(vec![0x7b, 0x7d].into())).await),
            closed(4401, "invalid token"),
            first_message_denied(4401, "invalid token"),
        ),
        case(
            "first message: token signed by an untrusted key",
            attack!(|f| first_token(&f, f.forged_token("alice")).await),
            closed(4401, "invalid token"),
            first_message_denied(4401, "invalid token"),
        ),
        case(
            "first message: expired token",
            attack!(|f| first_token(&f, f.expired_token("alice")).await),
            closed(4401, "token expired"),
            first_message_denied(4401, "token expired"),
        ),
        case(
            "first message: revoked token",
            attack!(|f| {
                let token = f.revoked_token("alice").await;
                first_token(&f, token).await
            }),
            closed(4403, "token revoked"),
            first_message_denied(4403, "token revoked"),
        ),
        case(
            "first message: over the size limit",
            attack!(|f| {
                let message = json!({"type": "auth", "token": "x".repeat(MAX_MESSAGE_BYTES)});
                first_message(&f, Message::Text(message.to_string().into())).await
            }),
            closed(1009, "message too big"),
            first_message_denied(1009, "message too big"),
        ),
        case(
            "first message: text that is not UTF-8",
            attack!(|f| {
                let mut socket = RawSocket::open(f.addr, "/ws/deferred", &[]).await;
                socket
                    .send(&RawFrame::new(
                        TEXT,
                        &b"{\"type\":\"auth\",\"token\":\"\xff\xfe\"}"[..],
                    ))
                    .await;
                raw_outcome(&mut socket).await
            }),
            closed(1007, "invalid utf-8"),
            first_message_denied(1007, "invalid utf-8"),
        ),
        case(
            "unauthenticated sockets: over the cap for one address",
            attack!(|f| {
                let client: IpAddr = "127.0.0.3".parse().unwrap();
                let mut held = Vec::new();
                for _ in 0..UNAUTHENTICATED.1 {
                    held.push(f.open_deferred_from(client).await.unwrap());
                }
                let outcome = f.open_deferred_from(client).await;
                close_all(held).await;
                outcome.err().unwrap_or(Observed::Dropped)
            }),
            refused(429, "too many attempts"),
            handshake_denied("too many attempts"),
        ),
        case(
            "unauthenticated sockets: behind the trusted proxy the cap counts clients",
            attack!(|f| {
                let mut held = Vec::new();
                for _ in 0..UNAUTHENTICATED.1 {
                    held.push(f.open_deferred_behind_proxy(90).await.unwrap());
                }
                // Another client behind the same proxy still gets in.
                held.push(f.open_deferred_behind_proxy(91).await.unwrap());
                let outcome = f.open_deferred_behind_proxy(90).await;
                assert_eq!(
                    f.last_peer(EventKind::Handshake),
                    Some("203.0.113.90:0".parse().unwrap()),
                    "the refusal names the client, not the proxy"
                );
                close_all(held).await;
                outcome.err().unwrap_or(Observed::Dropped)
            }),
            refused(429, "too many attempts"),
            handshake_denied("too many attempts"),
        ),
        case(
            "unauthenticated sockets: over the cap in total",
            attack!(|f| {
                let mut held = Vec::new();
                for client in ["127.0.0.4", "127.0.0.5"] {
                    for _ in 0..UNAUTHENTICATED.1 {
                        held.push(f.open_deferred_from(client.parse().unwrap()).await.unwrap());
                    }
                }
                let outcome = f.open_deferred_from("127.0.0.6".parse().unwrap()).await;
                close_all(held).await;
                outcome.err().unwrap_or(Observed::Dropped)
            }),
            refused(503, "server busy"),
            handshake_denied("server busy"),
        ),
    ]
}
