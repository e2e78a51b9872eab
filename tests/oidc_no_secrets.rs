//! Runs the identity-provider traffic — JWT access tokens on both
//! transports, a rotation, opaque tokens introspected, revoked while the
//! socket is open and refused, a malformed introspection answer and a
//! provider that went away — with every `tracing` target captured at TRACE
//! (reqwest's and hyper's included), then checks that no token, no client
//! secret and no Basic credential reached the log.
//!
//! A binary of its own: it installs the process-wide subscriber.

mod common;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::idp::{
    CHAT_ADMIN, CHAT_USER, ES256, INTROSPECTOR, Idp, OPAQUE, RS256, Site, close_of, observed,
    sub_of,
};
use common::{capture_trace_logs, remembered_secrets};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_or_client_secret_reaches_the_trace_log() {
    let capture = capture_trace_logs();
    let Some(mut provider) = Idp::start().await else {
        return;
    };
    let site = Site::start(&[&provider], |builder| {
        builder.recheck_every(Duration::from_secs(1))
    })
    .await;

    for resource in [ES256, RS256] {
        let token = provider.token(CHAT_USER, resource).await;
        sub_of(&site.bearer(&token).await);
        sub_of(&site.subprotocol(&token).await);
    }
    let opaque = provider.token(CHAT_ADMIN, OPAQUE).await;
    let mut socket = site.open(&opaque).await;
    provider.revoke(CHAT_ADMIN, &opaque).await;
    assert_eq!(close_of(&mut socket, Duration::from_secs(5)).await.0, 4403);
    assert_eq!(observed(&site.bearer(&opaque).await).0, 401);

    provider
        .control("/control/introspection?mode=malformed")
        .await;
    let other = provider.token(CHAT_USER, OPAQUE).await;
    assert_eq!(observed(&site.bearer(&other).await).0, 503);

    provider.control("/control/rotate").await;
    let rotated = provider.token(CHAT_USER, ES256).await;
    site.eventually_accepts(&rotated).await;

    provider.stop().await;
    let late = site.forged(&provider.issuer, jsonwebtoken::Algorithm::ES256, "unknown");
    // Past the cooldown, the unknown `kid` asks the stopped provider.
    site.past_cooldown().await;
    site.bearer(&late).await;

    let log = capture.text();
    assert!(
        log.contains("reqwest") || log.contains("hyper_util"),
        "the HTTP client's TRACE lines were captured"
    );
    let basic = |(id, secret): (&str, &str)| STANDARD.encode(format!("{id}:{secret}"));
    let mut secrets = remembered_secrets();
    secrets.extend([
        INTROSPECTOR.1.to_owned(),
        basic(INTROSPECTOR),
        CHAT_USER.1.to_owned(),
        CHAT_ADMIN.1.to_owned(),
    ]);
    common::assert_no_secret_in(&log, &secrets);
    assert!(log.lines().count() > 100, "the traffic was logged");
}
