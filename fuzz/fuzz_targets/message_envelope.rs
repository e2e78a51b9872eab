//! The message envelope of a live connection and the token in it: JSON
//! parsing, field extraction (the borrowed envelope checked against
//! `serde_json::Value` on every input), the per-message token check, refresh and the
//! role guard, run as a pipeline on arbitrary frames.
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::extract::ws::{Message, Utf8Bytes};
use futures_util::FutureExt as _;
use libfuzzer_sys::fuzz_target;
use tower::{Service, ServiceBuilder};
use wsgate::jwt::{Algorithm, JwtVerifier, VerificationKey};
use wsgate::pipeline::{MessageTokenLayer, RefreshLayer, Requirement, RoleGuardLayer, RolePolicy};
use wsgate::pipeline::Deliver;
use wsgate::session::{Inbound, Session};
use wsgate::store::InMemoryRevocationStore;
use wsgate::{AuthMethod, Principal};

fn session() -> &'static Arc<Session> {
    static SESSION: OnceLock<Arc<Session>> = OnceLock::new();
    SESSION.get_or_init(|| {
        let principal = Principal::new("alice", AuthMethod::Token).with_roles(["user"]);
        Arc::new(Session::new(principal, None))
    })
}

fuzz_target!(|data: &[u8]| {
    let verifier = JwtVerifier::builder()
        .key(VerificationKey::hmac(&[7; 32], Algorithm::HS256).unwrap())
        .build()
        .unwrap();
    let revocations = InMemoryRevocationStore::new();
    let mut pipeline = ServiceBuilder::new()
        .layer(RefreshLayer::new(verifier.clone(), revocations.clone()))
        .layer(MessageTokenLayer::new(verifier, revocations))
        .layer(RoleGuardLayer::new(
            RolePolicy::by_type()
                .prefix("admin.", Requirement::any_role(["admin"]))
                .otherwise(Requirement::any_role(["user"])),
        ))
        .service(Deliver);
    let message = match std::str::from_utf8(data) {
        Ok(text) => Message::Text(Utf8Bytes::from(text.to_owned())),
        Err(_) => Message::Binary(data.to_vec().into()),
    };
    let inbound = Inbound::new(message, session().clone());
    // The borrowed envelope answers every field as the full parse would.
    let parsed = inbound
        .text()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok());
    for field in ["type", "token", "room", "text", ""] {
        let expected = parsed
            .as_ref()
            .and_then(|value| value.as_object()?.get(field)?.as_str());
        assert_eq!(inbound.json_str(field), expected, "field {field:?}");
    }
    // In-memory stores and a synchronous verifier: the pipeline completes at
    // once. A forged token never passes, so nothing is delivered.
    let verdict = pipeline.call(inbound).now_or_never().expect("pipeline pending").unwrap();
    assert!(!matches!(verdict, wsgate::session::Verdict::Deliver(_)), "a message without a valid token was delivered");
});
