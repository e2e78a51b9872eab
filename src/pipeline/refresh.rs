//! In-band token refresh: a live connection extends its session with a new
//! token instead of reconnecting.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::ws::{Message, Utf8Bytes};
use serde_json::json;
use tower_layer::Layer;
use tower_service::Service;

use crate::audit::Outcome;
use crate::audit::token_fingerprint;
use crate::clock::unix_seconds;
use crate::confirmation::same_binding;
use crate::pipeline::future::ResponseFuture;
use crate::principal::AuthMethod;
use crate::session::{Close, CloseKind, Decision, Inbound, Verdict, reason};
use crate::store::{RevocationStore, check_revocation};
use crate::token::TokenVerifier;

/// Takes refresh messages out of the stream and applies them.
///
/// A refresh is a JSON message whose `type` is `auth.refresh` (configurable)
/// carrying a new token in `token`. The new token must verify, name the
/// session's subject, expire later than the current one, be bound as the
/// session's is (to the same DPoP key, or to none: the socket proved its
/// key at its start), and not be revoked; then the session takes its expiry, token id and roles, and the
/// client gets `{"type":"auth.refreshed","expires_at":<unix seconds>}`. A
/// refused refresh closes the socket: 4401 `invalid token` (or `token
/// expired`), 4403 `token revoked`.
///
/// Other messages pass through untouched.
#[derive(Debug, Clone)]
pub struct RefreshLayer<V, R> {
    verifier: V,
    revocations: R,
    message_type: &'static str,
    token_field: &'static str,
    reply_type: &'static str,
}

/// The service made by [`RefreshLayer`].
#[derive(Debug)]
pub struct Refresh<S, V, R> {
    inner: S,
    // One Arc: every connection holds a clone of its pipeline, and tower's
    // clone-and-call clones the service for every message.
    layer: Arc<RefreshLayer<V, R>>,
}

inner_service_accessors!(Refresh<S, V, R>);

impl<S: Clone, V, R> Clone for Refresh<S, V, R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<V: TokenVerifier, R: RevocationStore> RefreshLayer<V, R> {
    /// Refreshes with tokens checked by `verifier` and `revocations`.
    pub fn new(verifier: V, revocations: R) -> Self {
        Self {
            verifier,
            revocations,
            message_type: "auth.refresh",
            token_field: "token",
            reply_type: "auth.refreshed",
        }
    }

    /// The `type` of refresh messages. Defaults to `auth.refresh`.
    pub fn message_type(mut self, message_type: &'static str) -> Self {
        self.message_type = message_type;
        self
    }

    /// The field holding the new token. Defaults to `token`.
    pub fn token_field(mut self, field: &'static str) -> Self {
        self.token_field = field;
        self
    }

    /// The `type` of the reply. Defaults to `auth.refreshed`.
    pub fn reply_type(mut self, reply_type: &'static str) -> Self {
        self.reply_type = reply_type;
        self
    }
}

impl<S, V: Clone, R: Clone> Layer<S> for RefreshLayer<V, R> {
    type Service = Refresh<S, V, R>;

    fn layer(&self, inner: S) -> Self::Service {
        Refresh {
            inner,
            layer: Arc::new(self.clone()),
        }
    }
}

fn refused(close: Close, token: Option<String>) -> Verdict {
    Verdict::Close {
        close,
        decision: Decision::refresh(Outcome::Deny, Some(close.reason)).with_token(token),
    }
}

impl<S, V, R> Service<Inbound> for Refresh<S, V, R>
where
    S: Service<Inbound, Response = Verdict, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
    V: TokenVerifier,
    R: RevocationStore,
{
    type Response = Verdict;
    type Error = Infallible;
    /// Every message but a refresh goes on to the inner service with its
    /// own future; a refresh is answered here, boxed (the verifier's and
    /// the store's futures are the user's types).
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut inbound: Inbound) -> Self::Future {
        inbound.find_fields();
        if inbound.json_str("type") != Some(self.layer.message_type) {
            return ResponseFuture::inner(self.inner.call(inbound));
        }
        let layer = self.layer.clone();
        ResponseFuture::boxed(Box::pin(async move {
            let invalid = Close::new(CloseKind::Unauthenticated, reason::INVALID_TOKEN);
            let Some(token) = inbound.json_str(layer.token_field) else {
                return Ok(refused(invalid, None));
            };
            let principal = match layer.verifier.verify(token).await {
                Ok(principal) => principal,
                Err(error) => {
                    let fingerprint = Some(token_fingerprint(token, None));
                    return Ok(refused(Close::for_failed_credential(&error), fingerprint));
                }
            };
            let fingerprint = Some(token_fingerprint(token, principal.token_id()));
            let session = inbound.session();
            let current = session.principal();
            let later = match (principal.expires_at(), current.expires_at()) {
                (Some(new), Some(old)) => new > old,
                (Some(_), None) => true,
                (None, _) => false,
            };
            // A socket opened by a client certificate lives as long as the
            // certificate: a token cannot stretch it past the certificate's
            // end (a new certificate, on a new connection, does).
            if principal.subject() != session.subject()
                || !later
                || !same_binding(&principal, &current)
                || current.method() == AuthMethod::Certificate
            {
                return Ok(refused(invalid, fingerprint));
            }
            if let Err(error) =
                check_revocation(&layer.revocations, &principal, Some(session)).await
            {
                return Ok(refused(Close::for_failed_credential(&error), fingerprint));
            }
            let expires_at = principal.expires_at().map(unix_seconds);
            session.refresh(principal);
            let reply = json!({ "type": layer.reply_type, "expires_at": expires_at });
            Ok(Verdict::Reply {
                reply: Message::Text(Utf8Bytes::from(reply.to_string())),
                decision: Decision::refresh(Outcome::Allow, None).with_token(fingerprint),
            })
        }))
    }
}
