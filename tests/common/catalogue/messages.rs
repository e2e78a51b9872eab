//! Attacks in messages: sizes, fragments, UTF-8, the WebSocket protocol.

use super::*;

pub(super) fn cases() -> Vec<Case> {
    use raw::{CLOSE, CONTINUATION, PING, TEXT};
    vec![
        // ---- Messages: size, fragments, UTF-8, protocol ----
        case(
            "message: text over the size limit",
            attack!(|f| after_message(
                &f,
                "/ws",
                Message::Text("x".repeat(MAX_MESSAGE_BYTES + 1).into())
            )
            .await),
            closed(1009, "message too big"),
            socket_closed(1009, "message too big"),
        ),
        case(
            "message: a client behind the proxy is named in its socket's events",
            attack!(|f| {
                let token = f.token("alice");
                let (name, value) = forwarded_for(99);
                let mut request = format!("ws://{}/ws", f.addr).into_client_request().unwrap();
                let headers = request.headers_mut();
                headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
                headers.insert(name, value.parse().unwrap());
                let mut client = connect_from(LOOPBACK, f.addr, request).await.unwrap();
                next_text(&mut client).await.expect("no welcome");
                let big = Message::Text("x".repeat(MAX_MESSAGE_BYTES + 1).into());
                let _ = client.send(big).await;
                let outcome = outcome_of(&mut client).await;
                assert_eq!(
                    f.last_peer(EventKind::Close),
                    Some("203.0.113.99:0".parse().unwrap()),
                    "the close event names the client, not the proxy"
                );
                outcome
            }),
            closed(1009, "message too big"),
            socket_closed(1009, "message too big"),
        ),
        case(
            "message: binary over the size limit",
            attack!(
                |f| after_message(&f, "/ws", Message::Binary(vec![0u8; 64 * 1024].into())).await
            ),
            closed(1009, "message too big"),
            socket_closed(1009, "message too big"),
        ),
        case(
            "message: small fragments adding up past the limit",
            attack!(|f| {
                let mut frames = vec![RawFrame::new(TEXT, vec![b'a'; 100]).not_final()];
                frames.extend(
                    (0..20).map(|_| RawFrame::new(CONTINUATION, vec![b'a'; 100]).not_final()),
                );
                frames.push(RawFrame::new(CONTINUATION, vec![b'a'; 100]));
                after_frames(&f, &frames).await
            }),
            closed(1009, "message too big"),
            socket_closed(1009, "message too big"),
        ),
        case(
            "message: fragments with a ping between them are one message",
            attack!(|f| {
                after_frames(
                    &f,
                    &[
                        RawFrame::new(TEXT, &b"{\"type\":\"chat\","[..]).not_final(),
                        RawFrame::new(PING, &b"between"[..]),
                        RawFrame::new(CONTINUATION, &b"\"text\":\"joined\"}"[..]),
                    ],
                )
                .await
            }),
            Observed::Echoed(r#"{"type":"chat","text":"joined"}"#.to_owned()),
            Audit::NoDenial,
        ),
        case(
            "message: continuation without a start",
            attack!(|f| after_frames(&f, &[RawFrame::new(CONTINUATION, &b"orphan"[..])]).await),
            closed(1002, "protocol error"),
            socket_closed(1002, "protocol error"),
        ),
        case(
            "message: text that is not UTF-8",
            attack!(|f| after_frames(&f, &[RawFrame::new(TEXT, &b"caf\xc3\x28 \xff"[..])]).await),
            closed(1007, "invalid utf-8"),
            socket_closed(1007, "invalid utf-8"),
        ),
        case(
            "message: a UTF-8 sequence broken across fragments",
            attack!(|f| {
                after_frames(
                    &f,
                    &[
                        RawFrame::new(TEXT, &b"snow \xe2\x98"[..]).not_final(),
                        RawFrame::new(CONTINUATION, &b"\x28 man"[..]),
                    ],
                )
                .await
            }),
            closed(1007, "invalid utf-8"),
            socket_closed(1007, "invalid utf-8"),
        ),
        case(
            "message: unmasked client frame",
            attack!(|f| after_frames(&f, &[RawFrame::new(TEXT, &b"{}"[..]).unmasked()]).await),
            closed(1002, "protocol error"),
            socket_closed(1002, "protocol error"),
        ),
        case(
            "message: reserved opcode",
            attack!(|f| after_frames(&f, &[RawFrame::new(0x3, &b"{}"[..])]).await),
            closed(1002, "protocol error"),
            socket_closed(1002, "protocol error"),
        ),
        case(
            "message: reserved bit without an extension",
            attack!(|f| after_frames(&f, &[RawFrame::new(TEXT, &b"{}"[..]).rsv(0b100)]).await),
            closed(1002, "protocol error"),
            socket_closed(1002, "protocol error"),
        ),
        case(
            "message: ping over 125 bytes",
            attack!(|f| after_frames(&f, &[RawFrame::new(PING, vec![0u8; 126])]).await),
            closed(1002, "protocol error"),
            socket_closed(1002, "protocol error"),
        ),
        case(
            "message: fragmented ping",
            attack!(|f| after_frames(&f, &[RawFrame::new(PING, &b"ping"[..]).not_final()]).await),
            closed(1002, "protocol error"),
            socket_closed(1002, "protocol error"),
        ),
        case(
            "message: close frame with a reserved code",
            attack!(|f| {
                let mut payload = 999u16.to_be_bytes().to_vec();
                payload.extend_from_slice(b"bye");
                after_frames(&f, &[RawFrame::new(CLOSE, payload)]).await
            }),
            closed(1002, "Protocol violation"),
            Audit::NoDenial,
        ),
        case(
            "message: flood past the rate limit",
            attack!(|f| {
                let mut client = f.open("/ws", &f.token("alice")).await;
                let message =
                    Message::Text(json!({"type": "chat", "text": "spam"}).to_string().into());
                for _ in 0..MESSAGE_RATE * 10 {
                    if client.feed(message.clone()).await.is_err() {
                        break;
                    }
                }
                let _ = client.flush().await;
                // Echoes of the burst come first; the close ends it.
                loop {
                    match outcome_of(&mut client).await {
                        Observed::Echoed(_) => continue,
                        other => break other,
                    }
                }
            }),
            closed(4429, "rate limited"),
            socket_closed(4429, "rate limited"),
        ),
        case(
            "message: ping flood past the rate limit",
            attack!(|f| {
                let mut socket = f.open_raw().await;
                for _ in 0..MESSAGE_RATE * 10 {
                    socket.send(&RawFrame::new(PING, &b"flood"[..])).await;
                }
                raw_outcome(&mut socket).await
            }),
            closed(4429, "rate limited"),
            socket_closed(4429, "rate limited"),
        ),
        case(
            "message: admin action from a user",
            attack!(|f| after_json(&f, "/ws", json!({"type": "admin.kick", "sub": "bob"})).await),
            forbidden_reply("admin.kick"),
            message_denied("forbidden"),
        ),
        Case {
            logged_escaped: Some("admin.\\r\\n"),
            ..case(
                "message: action holding CR/LF and terminal escapes",
                attack!(
                    |f| after_json(&f, "/ws", json!({"type": format!("admin.{INJECTION}")})).await
                ),
                forbidden_reply(&format!("admin.{INJECTION}")),
                message_denied("forbidden"),
            )
        },
        case(
            "message: duplicate type keys, the last one counts",
            attack!(|f| {
                after_message(
                    &f,
                    "/ws",
                    Message::Text(r#"{"type":"chat","type":"admin.kick"}"#.into()),
                )
                .await
            }),
            forbidden_reply("admin.kick"),
            message_denied("forbidden"),
        ),
        case(
            "message: JSON nested 500 deep",
            attack!(|f| {
                let nested = format!("{}{}", "[".repeat(500), "]".repeat(500));
                after_message(&f, "/ws", Message::Text(nested.into())).await
            }),
            Observed::Echoed(format!("{}{}", "[".repeat(500), "]".repeat(500))),
            Audit::NoDenial,
        ),
        case(
            "message: type that is not a string",
            attack!(|f| after_json(&f, "/ws", json!({"type": {"$ne": "chat"}})).await),
            Observed::Echoed(json!({"type": {"$ne": "chat"}}).to_string()),
            Audit::NoDenial,
        ),
    ]
}
