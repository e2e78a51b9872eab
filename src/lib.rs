//! Authentication and authorization for WebSocket routes in axum/tower
//! applications.
//!
//! Most auth crates check credentials once, on the HTTP upgrade, and then
//! forget the socket. wsgate covers the whole life of the connection: a
//! handshake layer that takes credentials from every transport a real client
//! needs, with secure defaults; a gated socket whose every message passes a
//! pipeline of tower layers, and which closes when its token expires or is
//! revoked; one audit event per decision.
//!
//! # Example
//!
//! One [`Gate`] owns the parts every stage shares and makes the stages from
//! them: a chat route for servers (`Authorization: Bearer`) and browsers
//! (the `wsgate.bearer.<token>` subprotocol, or a single-use `?ticket=`
//! from `POST /tickets`), with expiry, in-band refresh, revocation, a role
//! guard and audit on every socket.
//!
//! ```no_run
//! use axum::{Router, extract::State, response::Response, routing::get};
//! use wsgate::prelude::*;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let secret = std::env::var("JWT_SECRET")?; // at least 32 bytes
//!     let verifier = JwtVerifier::builder()
//!         .key(VerificationKey::hmac(secret.as_bytes(), Algorithm::HS256)?)
//!         .issuer("https://auth.example")
//!         .audience("chat")
//!         .build()?;
//!     let gate = Gate::builder(verifier)
//!         .policy(RolePolicy::by_type().otherwise(Requirement::any_role(["user"])))
//!         .build()?;
//!     let app = Router::new()
//!         .route("/ws", get(chat))
//!         .route_layer(gate.handshake().application_protocols(["chat.v1"])?.build()?)
//!         .route("/tickets", gate.ticket_route())
//!         .with_state(gate);
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//!     axum::serve(listener, app).await?;
//!     Ok(())
//! }
//!
//! async fn chat(State(gate): State<Gate>, upgrade: GatedUpgrade) -> Response {
//!     upgrade.on_upgrade(&gate, |mut socket| async move {
//!         let hello = format!("hello, {}", socket.principal().subject());
//!         let _ = socket.send(axum::extract::ws::Message::Text(hello.into())).await;
//!         while let Some(message) = socket.recv().await {
//!             let _ = socket.send(message.into_message()).await;
//!         }
//!     })
//! }
//! ```
//!
//! # Where things are
//!
//! The modules follow the data, and each layer of them imports only from
//! the layers before it:
//!
//! | module | what |
//! |---|---|
//! | [`Gate`] | above the stages: the shared parts, set once, and the layers made from them |
//! | [`handshake`] | stage one: the tower layer that authenticates the upgrade request, the transports, the Origin allowlist, client addresses behind proxies, the refusals |
//! | [`socket`] | stage two: the live connection — gated upgrade and socket, lifecycle (expiry, revocation, limits), the registry |
//! | [`pipeline`] | stage two, message by message: audit, refresh, per-message tokens, the role guard |
//! | [`session`] | what the socket stage and the pipeline share: the session, the inbound message, the verdict, close codes |
//! | [`audit`] | one event per decision, where events go, metrics |
//! | [`authenticate`] | [`Authenticator`](authenticate::Authenticator): credential → [`Principal`]; Basic, Bearer, ticket, chains |
//! | [`limit`] | failed-attempt limits and lockout |
//! | [`dpop`] | proof of possession (RFC 9449): tokens that work only beside a proof of their key |
//! | [`confirmation`] | what a token's `cnf` binds it to, and whether a request showed it |
//! | [`certificate`] | client certificates (mutual TLS): the connection's, or one a trusted proxy forwarded; the CAs and CRLs that vouch for them (feature `tls`) |
//! | `serve` | serving a `Router` with hyper directly: header deadlines, TLS 1.3, client certificates (features `serve`, `tls`) |
//! | [`jwt`] | JWT verification and issuing |
//! | `oidc` | tokens from identity providers: discovery, JWKS rotation, introspection (feature `oidc`) |
//! | [`claims`] | claim layouts of identity providers: roles, scopes, typed custom claims |
//! | [`password`] | argon2id, off the async runtime, bounded |
//! | [`ticket`] | single-use tickets for browsers |
//! | [`store`] | storage traits (credentials, tickets, revocations, socket leases) and in-memory built-ins |
//! | [`refresh_sessions`] | logins that outlive their access tokens: refresh tokens rotated on every use, reuse detected as theft |
//! | [`accounts`] | account changes (create, password, roles, disable) with the password policy and the revocations they need |
//! | [`prelude`] | the names most applications need |
//!
//! # What you plug in
//!
//! Every pluggable part is a trait with a built-in:
//!
//! | trait | built-ins |
//! |---|---|
//! | [`Authenticator`](authenticate::Authenticator) | [`BearerAuthenticator`](authenticate::BearerAuthenticator), [`BasicAuthenticator`](authenticate::BasicAuthenticator), [`Tickets`](ticket::Tickets), `CertificateAuthenticator` (feature `tls`), [`Chain`](authenticate::Chain) |
//! | [`TokenVerifier`] | [`JwtVerifier`](jwt::JwtVerifier), `OidcVerifier` (feature `oidc`) |
//! | [`TokenIssuer`] | [`JwtIssuer`](jwt::JwtIssuer) |
//! | [`ClaimsMapping`](claims::ClaimsMapping) | [`ClaimPaths`](claims::ClaimPaths), closures |
//! | [`CredentialStore`](store::CredentialStore) | [`InMemoryCredentialStore`](store::InMemoryCredentialStore) |
//! | [`TicketStore`](store::TicketStore) | [`InMemoryTicketStore`](store::InMemoryTicketStore) |
//! | [`ProofReplayStore`](store::ProofReplayStore) | [`InMemoryProofReplayStore`](store::InMemoryProofReplayStore), `RedisProofReplayStore` (feature `redis`) |
//! | [`SocketLeaseStore`](store::SocketLeaseStore) | [`InMemorySocketLeaseStore`](store::InMemorySocketLeaseStore), `RedisSocketLeaseStore` (feature `redis`) |
//! | [`RevocationStore`](store::RevocationStore) | [`InMemoryRevocationStore`](store::InMemoryRevocationStore) |
//! | [`PasswordHasher`](password::PasswordHasher) | [`Argon2id`](password::Argon2id) |
//! | [`FailureLimiter`](limit::FailureLimiter) | [`InMemoryFailureLimiter`](limit::InMemoryFailureLimiter) |
//! | [`Policy`](pipeline::Policy), [`AsyncPolicy`](pipeline::AsyncPolicy) | [`RolePolicy`](pipeline::RolePolicy), closures |
//! | [`AuditSink`](audit::AuditSink) | [`TracingAudit`](audit::TracingAudit), [`JsonLinesAudit`](audit::JsonLinesAudit), closures |
//!
//! # Features
//!
//! - `metrics`: counters, a gauge and a histogram through the `metrics`
//!   facade ([`audit::metrics`]). Off by default.
//! - `oidc`: `oidc::OidcVerifier` for access tokens from OpenID Connect
//!   providers (discovery, JWKS with rotation, RFC 7662 introspection),
//!   over `reqwest` with rustls and aws-lc-rs. Off by default.
//! - `serve`: `serve::Serving`, an axum `Router` served with hyper
//!   directly, with a deadline for request headers. Off by default.
//! - `tls`: `serve` over TLS 1.3 (rustls, aws-lc-rs), client
//!   certificates verified against CAs and revocation lists, and the
//!   `authenticate::CertificateAuthenticator`. Off by default.
//!
//! # Security
//!
//! - Revocations are checked on every path (handshake, first message,
//!   refresh, per-message token) by one session rule.
//! - JWT: algorithms pinned per key, `exp` required, `nbf` checked, `iss`,
//!   `aud` and `typ` checked when configured, leeway at most 30 s, size
//!   capped, HMAC keys at least as long as the hash, `jku`/`x5u`/`jwk`
//!   never followed.
//! - Identity providers: a token's `iss` picks the only keys that may
//!   verify it; remote `oct` keys are never used; every provider outage
//!   fails closed (503), never open.
//! - Passwords: argon2id (m = 19456 KiB, t = 2, p = 1) off the runtime with
//!   bounded concurrency, a dummy verification for unknown users, a length
//!   cap.
//! - Cookie and Basic transports need an Origin allowlist; raw tokens in the
//!   query string need a `dangerous_…` opt-in.
//! - Secrets never reach a log, an error message or a `Debug` output.
#![cfg_attr(docsrs, feature(doc_cfg))]

/// `get_ref`, `get_mut` and `into_inner` for a service that wraps the next
/// one in its field `inner`, as tower-http's services have them.
macro_rules! inner_service_accessors {
    ($service:ident < $($param:ident),+ >) => {
        impl<$($param),+> $service<$($param),+> {
            /// The service this one wraps.
            pub fn get_ref(&self) -> &S {
                &self.inner
            }

            /// The service this one wraps, to change.
            pub fn get_mut(&mut self) -> &mut S {
                &mut self.inner
            }

            /// The service this one wraps, taken out.
            pub fn into_inner(self) -> S {
                self.inner
            }
        }
    };
}

// Below every stage: identities, errors, the one classification of
// refusals, and what the socket stage and the pipeline share.
mod boxed;
pub mod certificate;
pub(crate) mod clock;
pub mod confirmation;
mod error;
mod hex;
mod principal;
mod random;
mod recheck;
mod refusal;
mod secret;
mod token;

pub mod claims;
pub mod dpop;
pub mod session;

// The parts the stages are built from.
pub mod audit;
pub mod authenticate;
pub mod jwt;
pub mod limit;
#[cfg(feature = "oidc")]
#[cfg_attr(docsrs, doc(cfg(feature = "oidc")))]
pub mod oidc;
pub mod password;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "sqlite", feature = "postgres"))))]
pub mod sql;
pub mod store;
pub mod ticket;

// The stages, in the order data flows through them.
pub mod wiring;

pub mod handshake;
pub mod pipeline;
pub mod socket;

// Above the stages: one gate that makes them from the shared parts, and
// the accounts whose changes reach live sockets through it.
pub mod accounts;
mod gate;
pub mod prelude;
pub mod refresh_sessions;
#[cfg(feature = "serve")]
#[cfg_attr(docsrs, doc(cfg(feature = "serve")))]
pub mod serve;

pub use clock::Clock;
pub use error::{ConfigError, CredentialError, DpopError, Error, ErrorKind, TokenError};
pub use gate::{Gate, GateBuilder, GateHandshakeLayer, GateHandshakeLayerBuilder};
pub use principal::{AuthMethod, Principal, Transport};
pub use recheck::{Recheck, Standing};
pub use refusal::RejectionReason;
pub use secret::Secret;
pub use token::{BoxedVerifier, IssuedToken, TokenIssuer, TokenVerifier};

/// Compiles the README's examples as doc tests, so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
