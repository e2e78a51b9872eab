//! The service the handshake layer makes: the checks, run for each
//! request.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::response::Response;
use http::header::{AUTHORIZATION, COOKIE};
use http::uri::PathAndQuery;
use http::{HeaderValue, Request, Uri};
use tower_service::Service;

use crate::audit::{AuditEvent, metrics};
use crate::authenticate::{Authenticator, Credential};
use crate::certificate::ClientCertificate;
use crate::dpop;
use crate::handshake::client_address::{ClientAddr, audited_peer, client_address};
use crate::handshake::config::{Config, Prepared, peer};
use crate::handshake::future::ResponseFuture;
use crate::handshake::subprotocol::{Offer, SelectedProtocol};
use crate::handshake::transport::strip_query_credentials;
use crate::limit::{FailureLimiter, InMemoryFailureLimiter, admit, check_with_limits};
use crate::principal::Principal;
use crate::principal::Transport;
use crate::refusal::DPOP_NONCE;
use crate::refusal::RejectionReason;
use crate::secret::Secret;
use crate::store::check_revocation;

/// The service made by [`HandshakeLayer`](crate::handshake::HandshakeLayer).
pub struct Handshake<S, A, L = InMemoryFailureLimiter> {
    inner: S,
    config: Arc<Config<A, L>>,
}

inner_service_accessors!(Handshake<S, A, L>);

impl<S, A, L> Handshake<S, A, L> {
    pub(super) fn new(inner: S, config: Arc<Config<A, L>>) -> Self {
        Self { inner, config }
    }
}

impl<S: Clone, A, L> Clone for Handshake<S, A, L> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            config: self.config.clone(),
        }
    }
}

/// Hands the request on without its credentials: headers that carried one
/// are marked sensitive, the token subprotocol entry and credential query
/// parameters are removed.
fn scrub<B>(request: &mut Request<B>, offer: &Offer, query_token_parameter: Option<&str>) {
    let headers = request.headers_mut();
    for name in [AUTHORIZATION, COOKIE] {
        if let http::header::Entry::Occupied(mut entry) = headers.entry(name) {
            for value in entry.iter_mut() {
                value.set_sensitive(true);
            }
        }
    }
    offer.strip_token(headers);
    if let Some(query) = request.uri().query() {
        let kept = strip_query_credentials(query, query_token_parameter);
        if kept.len() != query.len() {
            let path = request.uri().path();
            let path_and_query = if kept.is_empty() {
                path.to_owned()
            } else {
                format!("{path}?{kept}")
            };
            let mut parts = request.uri().clone().into_parts();
            parts.path_and_query = PathAndQuery::try_from(path_and_query).ok();
            if let Ok(uri) = Uri::from_parts(parts) {
                *request.uri_mut() = uri;
            }
        }
    }
}

/// Authenticates the request's credential: passwords under the failure
/// limiter, then the revocation check on every principal, then the token's
/// binding.
async fn authenticate<A, L>(
    config: &Config<A, L>,
    prepared: &Prepared,
    client: Option<std::net::IpAddr>,
) -> Result<Principal, crate::Error>
where
    A: Authenticator,
    L: FailureLimiter,
{
    let credential = &prepared.credential;
    let principal = match credential {
        Credential::Basic { username, .. } => {
            let check = config.authenticator.authenticate(credential);
            check_with_limits(&config.limiter, username, client, check).await?
        }
        _ => config.authenticator.authenticate(credential).await?,
    };
    check_revocation(&config.settings.wiring.revocations, &principal, None).await?;
    confirm(config, prepared, &principal).await?;
    Ok(principal)
}

/// Checks the token's binding (see [`dpop::confirm`]): a proof of its key
/// where it is bound, the right scheme where it came in `Authorization`.
async fn confirm<A, L>(
    config: &Config<A, L>,
    prepared: &Prepared,
    principal: &Principal,
) -> Result<(), crate::Error> {
    let token = match &prepared.credential {
        Credential::Bearer(token) => Some(token.expose()),
        // A ticket bought with a bound token is bound to its key: its
        // redemption needs a proof of that key, which names no token. A
        // certificate's principal is bound to the certificate itself.
        Credential::Ticket(_) | Credential::Certificate(_) => None,
        // Passwords, and whatever else an application's authenticator
        // takes, are not tokens.
        _ => return Ok(()),
    };
    let presented = dpop::Presented {
        token,
        proof: prepared.proof.as_ref().map(Secret::expose),
        target: prepared.target.as_ref(),
        // A WebSocket handshake is a GET, whatever HTTP/2 makes of it.
        method: if prepared.opens_socket {
            "GET"
        } else {
            prepared.method.as_str()
        },
        dpop_scheme: prepared.dpop_scheme,
        bearer_scheme: prepared.transport == Transport::Bearer && !prepared.dpop_scheme,
        certificate: prepared
            .certificate
            .as_ref()
            .map(ClientCertificate::thumbprint),
    };
    dpop::confirm(
        &config.settings.wiring.dpop,
        config.settings.wiring.dpop_mode,
        principal,
        &presented,
    )
    .await
}

impl<S, A, L, B> Service<Request<B>> for Handshake<S, A, L>
where
    S: Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send,
    A: Authenticator,
    L: FailureLimiter,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let client = client_address(
            peer(&request),
            request.headers(),
            &self.config.settings.wiring.trusted_proxies,
        );
        let peer = audited_peer(peer(&request), client);
        if self.config.settings.require_secure_transport
            && !self.config.settings.is_secure(&request)
        {
            let reason = RejectionReason::InsecureTransport;
            let event = AuditEvent::handshake_denied(reason.as_str(), None, peer);
            self.config.settings.wiring.auditor.record(&event);
            return ResponseFuture::ready(
                self.config
                    .settings
                    .answer(self.config.settings.refuse(reason)),
            );
        }
        let prepared = match self.config.settings.prepare(&request) {
            Ok(prepared) => prepared,
            Err((reason, transport)) => {
                let event = AuditEvent::handshake_denied(reason.as_str(), transport, peer);
                self.config.settings.wiring.auditor.record(&event);
                return ResponseFuture::ready(
                    self.config
                        .settings
                        .answer(self.config.settings.refuse(reason)),
                );
            }
        };
        // The clone that was polled ready is the one that must be called.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = self.config.clone();
        let opens_socket = prepared.opens_socket;
        // The certificate is named in every event of this handshake, by
        // its fingerprint only.
        let cert = prepared
            .certificate
            .as_ref()
            .map(ClientCertificate::fingerprint);
        ResponseFuture::pending(Box::pin(async move {
            let started = Instant::now();
            let outcome = authenticate(&config, &prepared, client).await;
            metrics::handshake_duration(started.elapsed());
            // After every check, so a refused handshake holds no place (and
            // a ticket shown at one refused for the limit is spent).
            // The subject is named in the audit of a refusal for its limit.
            let limit = config.settings.sockets.as_ref().filter(|_| opens_socket);
            let outcome = match outcome {
                Ok(principal) => admit(limit, principal)
                    .await
                    .map_err(|(error, subject)| (error, Some(subject))),
                Err(error) => Err((error, None)),
            };
            let (principal, lease) = match outcome {
                Ok((principal, lease)) => (principal.with_transport(prepared.transport), lease),
                Err((error, subject)) => {
                    let reason = RejectionReason::from_error(&error);
                    let transport = Some(prepared.transport);
                    let mut event = AuditEvent::handshake_denied(reason.as_str(), transport, peer)
                        .with_cert(cert);
                    if let Some(subject) = subject {
                        event = event.with_sub(subject);
                    }
                    config.settings.wiring.auditor.record(&event);
                    let mut refusal = config.settings.refuse(reason);
                    if let Some(retry_after) = error.retry_after() {
                        refusal = refusal.with_retry_after(retry_after);
                    }
                    return Ok(config.settings.answer(refusal));
                }
            };
            config
                .settings
                .wiring
                .auditor
                .record(&AuditEvent::handshake_allowed(&principal, peer).with_cert(cert));
            scrub(
                &mut request,
                &prepared.offer,
                config.settings.query_token_parameter.as_deref(),
            );
            let extensions = request.extensions_mut();
            extensions.insert(principal);
            if let Some(peer) = peer {
                extensions.insert(ClientAddr(peer));
            }
            if let Some(protocol) = prepared.selected_protocol {
                extensions.insert(SelectedProtocol(protocol));
            }
            if let Some(lease) = lease {
                extensions.insert(lease);
            }
            // The next proof's nonce, for a client that sent one.
            let nonce = prepared
                .proof
                .as_ref()
                .and_then(|_| config.settings.wiring.dpop.nonce());
            let mut response = inner.call(request).await?;
            if let Some(nonce) = nonce.and_then(|nonce| HeaderValue::from_str(&nonce).ok()) {
                response.headers_mut().insert(&DPOP_NONCE, nonce);
            }
            Ok(response)
        }))
    }
}

impl<S: std::fmt::Debug, A: std::fmt::Debug, L: std::fmt::Debug> std::fmt::Debug
    for Handshake<S, A, L>
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshake")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish()
    }
}
