//! The ladder of examples between the quick start and the demo, each run
//! for real: a browser's ticket, revoking and kicking, a pipeline of one's
//! own, tokens from an identity provider, several processes on one Redis.
//! Each example's `app` is the one `cargo run --example …` serves.

#[allow(dead_code)]
#[path = "../../examples/browser_ticket.rs"]
mod browser_ticket;
#[allow(dead_code)]
#[path = "../../examples/identity_provider.rs"]
mod identity_provider;
#[allow(dead_code)]
#[path = "../../examples/own_pipeline.rs"]
mod own_pipeline;
#[allow(dead_code)]
#[path = "../../examples/revoke_and_kick.rs"]
mod revoke_and_kick;
#[allow(dead_code)]
#[path = "../../examples/several_processes.rs"]
mod several_processes;

use std::net::SocketAddr;
use std::time::Duration;

use crate::common::{
    Client, Handshake, Outcome, close_within, eventually, handshake_request, now, refusal, serve,
};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, Message};

const SECRET: &[u8] = b"a-secret-of-at-least-thirty-two-bytes!";

fn token(subject: &str, roles: &[&str]) -> String {
    let claims = json!({"sub": subject, "roles": roles, "iat": now(), "exp": now() + 300});
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET).unwrap();
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
}

/// A socket at `addr` + `path` opened with `headers`, or the refusal's
/// status and body.
async fn open(
    addr: SocketAddr,
    path: &str,
    headers: &[(&'static str, &str)],
) -> Result<Client, (u16, String)> {
    let handshake = headers
        .iter()
        .fold(Handshake::to(path), |handshake, (name, value)| {
            handshake.header(name, *value)
        });
    let request = handshake_request(&format!("ws://{addr}"), &handshake);
    match tokio_tungstenite::connect_async(request).await {
        Ok((client, _)) => Ok(client),
        Err(tungstenite::Error::Http(response)) => {
            let Outcome::Refused { status, body, .. } = refusal(&response) else {
                unreachable!("a refusal is refused");
            };
            Err((status, body))
        }
        Err(error) => panic!("handshake failed below HTTP: {error}"),
    }
}

async fn bearer(addr: SocketAddr, token: &str) -> Result<Client, (u16, String)> {
    open(
        addr,
        "/ws",
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await
}

/// Sends `value` and reads the answer.
async fn ask(client: &mut Client, value: Value) -> Value {
    client.send(Message::text(value.to_string())).await.unwrap();
    let answer = client.next().await.unwrap().unwrap();
    serde_json::from_str(answer.to_text().unwrap()).unwrap()
}

async fn post(url: String, token: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Each rung teaches one thing: it fits in 100 lines, and the README lists
/// it.
#[test]
fn every_example_is_short_and_listed_in_the_readme() {
    let readme = include_str!("../../README.md");
    let examples = [
        ("minimal", include_str!("../../examples/minimal.rs")),
        (
            "browser_ticket",
            include_str!("../../examples/browser_ticket.rs"),
        ),
        (
            "revoke_and_kick",
            include_str!("../../examples/revoke_and_kick.rs"),
        ),
        (
            "own_pipeline",
            include_str!("../../examples/own_pipeline.rs"),
        ),
        (
            "identity_provider",
            include_str!("../../examples/identity_provider.rs"),
        ),
        (
            "several_processes",
            include_str!("../../examples/several_processes.rs"),
        ),
    ];
    for (name, source) in examples {
        let lines = source.lines().count();
        assert!(lines < 100, "examples/{name}.rs has {lines} lines");
        assert!(
            readme.contains(&format!("(examples/{name}.rs)")),
            "{name} is not in the README"
        );
    }
    let listed = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/examples"))
        .unwrap()
        .filter_map(|entry| entry.unwrap().file_name().into_string().ok())
        .filter_map(|name| name.strip_suffix(".rs").map(str::to_owned))
        .collect::<Vec<_>>();
    for name in listed {
        assert!(
            examples.iter().any(|(example, _)| *example == name),
            "examples/{name}.rs is not run by this test"
        );
    }
}

#[tokio::test]
async fn browser_ticket_the_page_buys_a_ticket_and_opens_the_socket_with_it_once() {
    let origin = "http://127.0.0.1:3000";
    let addr = serve(browser_ticket::app(SECRET, origin).unwrap()).await;
    let page = reqwest::get(format!("http://{addr}/")).await.unwrap();
    let page = page.text().await.unwrap();
    assert!(page.contains(r#"fetch("/tickets""#) && page.contains("?ticket="));

    let (status, issued) = post(format!("http://{addr}/tickets"), &token("alice", &[])).await;
    assert_eq!(status, 200);
    let issued: Value = serde_json::from_str(&issued).unwrap();
    let path = format!("/ws?ticket={}", issued["ticket"].as_str().unwrap());

    // Another site's page: refused before the ticket is looked at, so it
    // is not spent.
    let elsewhere = open(addr, &path, &[("origin", "https://elsewhere.example")]).await;
    assert_eq!(elsewhere.err().unwrap().0, 403);
    let mut socket = open(addr, &path, &[("origin", origin)]).await.unwrap();
    let say = json!({"type": "say", "text": "hello"});
    assert_eq!(ask(&mut socket, say.clone()).await, say);
    let again = open(addr, &path, &[("origin", origin)]).await;
    assert_eq!(again.err().unwrap(), (401, "invalid ticket".to_owned()));
    // Tickets are the only way in: a token in `Authorization` is not read.
    let refused = bearer(addr, &token("alice", &[])).await;
    assert_eq!(
        refused.err().unwrap(),
        (401, "missing credentials".to_owned())
    );
}

#[tokio::test]
async fn revoke_and_kick_close_live_sockets_and_only_a_revocation_refuses_the_token() {
    let addr = serve(revoke_and_kick::app(SECRET).unwrap()).await;
    let (alice, admin) = (token("alice", &["user"]), token("root", &["admin"]));
    let url = |action: &str| format!("http://{addr}/admin/{action}/alice");

    let mut socket = bearer(addr, &alice).await.unwrap();
    assert_eq!(post(url("kick"), &alice).await.0, 403, "not an admin");
    assert_eq!(
        post(url("kick"), &admin).await,
        (200, r#"{"closed":1}"#.to_owned())
    );
    let closed = close_within(&mut socket, Duration::from_secs(5)).await;
    assert_eq!(closed, (4403, "forbidden".to_owned()));

    // Kicked, not revoked: the token opens a socket again.
    let mut socket = bearer(addr, &alice).await.unwrap();
    assert_eq!(
        post(url("revoke"), &admin).await,
        (200, r#"{"closed":1}"#.to_owned())
    );
    let closed = close_within(&mut socket, Duration::from_secs(5)).await;
    assert_eq!(closed, (4403, "token revoked".to_owned()));
    let refused = bearer(addr, &alice).await;
    assert_eq!(refused.err().unwrap(), (401, "token revoked".to_owned()));
}

#[tokio::test]
async fn own_pipeline_answers_shouting_and_keeps_the_socket_and_the_guard() {
    let addr = serve(own_pipeline::app(SECRET).unwrap()).await;
    let mut socket = bearer(addr, &token("alice", &["user"])).await.unwrap();
    let shout = ask(&mut socket, json!({"type": "say", "text": "HELLO"})).await;
    assert_eq!(shout, json!({"type": "error", "code": "no_shouting"}));
    let say = json!({"type": "say", "text": "Hello"});
    assert_eq!(ask(&mut socket, say.clone()).await, say, "still open");

    // The role guard inside it still decides.
    let mut guest = bearer(addr, &token("guest", &[])).await.unwrap();
    let refused = ask(&mut guest, say).await;
    assert_eq!(refused["code"], "forbidden");
}

#[tokio::test]
async fn identity_provider_tokens_open_sockets_and_their_scopes_decide() {
    use crate::common::idp::{AUDIENCE, CHAT_ADMIN, CHAT_USER, ES256, Idp};
    let Some(idp) = Idp::start().await else {
        return;
    };
    let addr = serve(identity_provider::app(&idp.issuer, AUDIENCE).unwrap()).await;
    let mut user = bearer(addr, &idp.token(CHAT_USER, ES256).await)
        .await
        .unwrap();
    let say = json!({"type": "say", "text": "hello"});
    assert_eq!(ask(&mut user, say.clone()).await, say);
    let kick = json!({"type": "admin.kick", "sub": "someone"});
    assert_eq!(ask(&mut user, kick.clone()).await["code"], "forbidden");
    let mut admin = bearer(addr, &idp.token(CHAT_ADMIN, ES256).await)
        .await
        .unwrap();
    assert_eq!(ask(&mut admin, kick.clone()).await, kick);
    // A token of this secret, not the provider's: refused.
    let forged = bearer(addr, &token("alice", &["user"])).await;
    assert_eq!(forged.err().unwrap().0, 401);
}

#[tokio::test]
async fn several_processes_share_revocations_and_tickets_through_redis() {
    let Some(redis) = crate::common::redis::RedisServer::start().await else {
        return;
    };
    let a = serve(several_processes::app(SECRET, &redis.url()).unwrap()).await;
    let b = serve(several_processes::app(SECRET, &redis.url()).unwrap()).await;
    let alice = token("alice", &["user"]);
    // Each process serves once it has heard from Redis.
    let mut socket = eventually(
        "both processes serving",
        Duration::from_secs(10),
        || async {
            let (on_a, on_b) = (bearer(a, &alice).await, bearer(b, &alice).await);
            on_a.and(on_b).ok()
        },
    )
    .await;

    let (status, issued) = post(format!("http://{a}/tickets"), &alice).await;
    assert_eq!(status, 200);
    let issued: Value = serde_json::from_str(&issued).unwrap();
    let path = format!("/ws?ticket={}", issued["ticket"].as_str().unwrap());
    assert!(
        open(b, &path, &[]).await.is_ok(),
        "bought on a, redeemed on b"
    );
    assert_eq!(open(a, &path, &[]).await.err().unwrap().0, 401, "once");

    let admin = token("root", &["admin"]);
    let (status, _) = post(format!("http://{a}/admin/revoke/alice"), &admin).await;
    assert_eq!(status, 200);
    let closed = close_within(&mut socket, Duration::from_secs(10)).await;
    assert_eq!(
        closed,
        (4403, "token revoked".to_owned()),
        "b closes a's revocation"
    );
    assert_eq!(
        bearer(b, &alice).await.err().unwrap(),
        (401, "token revoked".to_owned())
    );
}
