//! The README's quick start, run for real: `examples/minimal.rs` is the
//! README's first code block, and a browser's way in — a token, a ticket
//! from `POST /tickets`, then `?ticket=` — works against it exactly once.

#[allow(dead_code)]
#[path = "../../examples/minimal.rs"]
mod minimal;

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest};

const SECRET: &[u8] = b"a-secret-of-at-least-thirty-two-bytes!";

fn token(subject: &str, roles: &[&str], lifetime: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"sub": subject, "roles": roles, "iat": now, "exp": now + lifetime});
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET).unwrap();
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
}

async fn start() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = minimal::app(SECRET).unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// `POST /tickets` as the README shows: the holder of a token asks for one.
async fn ticket(addr: SocketAddr, token: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/tickets"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    assert_eq!(
        response.headers()["cache-control"],
        "no-store",
        "a ticket is never cached"
    );
    (status, response.json().await.unwrap_or(Value::Null))
}

#[test]
fn the_readme_opens_with_the_minimal_example() {
    let readme = include_str!("../../README.md");
    let block = readme
        .split("```rust")
        .nth(1)
        .and_then(|rest| rest.split_once('\n'))
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(block, _)| block)
        .expect("the README has a rust block");
    assert_eq!(block, include_str!("../../examples/minimal.rs"));
    assert!(
        block.lines().count() <= 30,
        "the quick start fits in 30 lines"
    );
}

#[tokio::test]
async fn a_ticket_issued_the_readme_way_redeems_once() {
    let addr = start().await;
    let alice = token("alice", &["user"], 300);

    let (status, issued) = ticket(addr, &alice).await;
    assert_eq!(status, 200);
    assert!(issued["expires_in"].as_u64().unwrap() <= 30);
    let ticket = issued["ticket"].as_str().unwrap().to_owned();

    let url = format!("ws://{addr}/ws?ticket={ticket}");
    let (mut socket, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    let say = json!({"type": "say", "text": "hello"}).to_string();
    socket.send(Message::text(say.clone())).await.unwrap();
    let echoed = socket.next().await.unwrap().unwrap();
    assert_eq!(echoed.to_text().unwrap(), say);

    // The same ticket again: refused before any upgrade.
    match tokio_tungstenite::connect_async(url.as_str()).await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401);
            assert_eq!(
                String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()),
                "invalid ticket"
            );
        }
        other => panic!("a used ticket must be refused, got {other:?}"),
    }
}

#[tokio::test]
async fn tickets_need_a_token_and_the_guard_needs_the_role() {
    let addr = start().await;
    let (status, _) = ticket(addr, "not-a-token").await;
    assert_eq!(status, 401);

    // A token without the role `user`: the socket opens (authenticated),
    // its messages are refused by the role guard, the socket stays open.
    let guest = token("guest", &[], 300);
    let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {guest}").parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    socket
        .send(Message::text(json!({"type": "say"}).to_string()))
        .await
        .unwrap();
    let reply: Value =
        serde_json::from_str(socket.next().await.unwrap().unwrap().to_text().unwrap()).unwrap();
    assert_eq!(
        reply,
        json!({"type": "error", "code": "forbidden", "ref": "say"})
    );

    // In-band refresh is on by default.
    let later = token("guest", &[], 600);
    socket
        .send(Message::text(
            json!({"type": "auth.refresh", "token": later}).to_string(),
        ))
        .await
        .unwrap();
    let refreshed: Value =
        serde_json::from_str(socket.next().await.unwrap().unwrap().to_text().unwrap()).unwrap();
    assert_eq!(refreshed["type"], "auth.refreshed");
}
