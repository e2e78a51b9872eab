//! Attacks on proofs of possession (DPoP).

use super::*;

pub(super) fn cases() -> Vec<Case> {
    vec![
        // ---- Proofs of possession (DPoP) ----
        case(
            "dpop: a bound token without its proof",
            attack!(|f| {
                let (_, token) = bound_token(&f);
                f.handshake(Handshake::to("/ws").header("authorization", format!("DPoP {token}")))
                    .await
            }),
            refused(401, "invalid dpop proof"),
            handshake_denied("invalid dpop proof"),
        ),
        case(
            "dpop: a bound token shown as a Bearer token with a good proof",
            attack!(|f| {
                let (key, token) = bound_token(&f);
                let proof = key.proof(&socket_url(&f), Some(&token));
                f.handshake(Handshake::to("/ws").bearer(&token).header("dpop", proof))
                    .await
            }),
            refused(401, "invalid token"),
            handshake_denied("invalid token"),
        ),
        case(
            "dpop: a proof replayed",
            attack!(|f| {
                let (key, token) = bound_token(&f);
                let proof = key.proof(&socket_url(&f), Some(&token));
                let first = f.handshake(dpop_handshake(&token, &proof)).await;
                assert!(matches!(first, Observed::Accepted { .. }), "{first:?}");
                f.handshake(dpop_handshake(&token, &proof)).await
            }),
            refused(401, "dpop replay"),
            handshake_denied("dpop replay"),
        ),
        case(
            "dpop: a proof whose jwk carries its private key",
            attack!(|f| {
                let (key, token) = bound_token(&f);
                let mut header = key.header();
                header["jwk"]["d"] = json!("c2VjcmV0LWtleQ");
                let claims = proof_claims(&socket_url(&f), &token);
                let proof = key.sign_raw(&header, &claims);
                f.handshake(dpop_handshake(&token, &proof)).await
            }),
            refused(401, "invalid dpop proof"),
            handshake_denied("invalid dpop proof"),
        ),
        case(
            "dpop: a proof with alg none",
            attack!(|f| {
                let (key, token) = bound_token(&f);
                let mut header = key.header();
                header["alg"] = json!("none");
                let claims = proof_claims(&socket_url(&f), &token);
                let unsigned = format!(
                    "{}.{}.",
                    URL_SAFE_NO_PAD.encode(header.to_string()),
                    URL_SAFE_NO_PAD.encode(claims.to_string())
                );
                f.handshake(dpop_handshake(&token, &unsigned)).await
            }),
            refused(401, "invalid dpop proof"),
            handshake_denied("invalid dpop proof"),
        ),
        case(
            "dpop: a proof of another key",
            attack!(|f| {
                let (_, token) = bound_token(&f);
                let thief = ClientKey::es256();
                let proof = thief.proof(&socket_url(&f), Some(&token));
                f.handshake(dpop_handshake(&token, &proof)).await
            }),
            refused(401, "invalid dpop proof"),
            handshake_denied("invalid dpop proof"),
        ),
        case(
            "dpop: two DPoP headers",
            attack!(|f| {
                let (key, token) = bound_token(&f);
                let url = socket_url(&f);
                let handshake = dpop_handshake(&token, &key.proof(&url, Some(&token)))
                    .header("dpop", key.proof(&url, Some(&token)));
                f.handshake(handshake).await
            }),
            refused(401, "invalid dpop proof"),
            handshake_denied("invalid dpop proof"),
        ),
        case(
            // Signed with the client's own key, so anyone can send one.
            "dpop: a proof dated past the end of time",
            attack!(|f| {
                let (key, token) = bound_token(&f);
                let proof = key.proof_with(&socket_url(&f), Some(&token), |claims| {
                    claims["iat"] = serde_json::json!(u64::MAX);
                });
                f.handshake(dpop_handshake(&token, &proof)).await
            }),
            refused(401, "invalid dpop proof"),
            handshake_denied("invalid dpop proof"),
        ),
        case(
            "flood: one token opens sockets past its subject's limit",
            attack!(|f| {
                let token = f.token("flooder");
                let mut held = Vec::new();
                for _ in 0..SOCKETS_PER_SUBJECT {
                    held.push(f.open("/ws", &token).await);
                }
                let more = (0..20).map(|_| bearer(&token)).collect();
                let observed = at_once(&f, more).await;
                close_all(held).await;
                observed
            }),
            tally(&[(429, 20)]),
            handshake_denied("too many connections"),
        ),
        case(
            "flood: first-message logins past the subject's limit",
            attack!(|f| {
                let token = f.token("flooder-first");
                let mut held = Vec::new();
                for _ in 0..SOCKETS_PER_SUBJECT {
                    held.push(f.open("/ws", &token).await);
                }
                let observed = first_token(&f, token).await;
                close_all(held).await;
                observed
            }),
            closed(4429, "too many connections"),
            first_message_denied(4429, "too many connections"),
        ),
    ]
}
