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
//! A chat route that accepts a JWT from servers (`Authorization: Bearer`)
//! and from browsers (the `wsgate.bearer.<token>` subprotocol, or a
//! single-use `?ticket=`):
//!
//! ```no_run
//! use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
//! use axum::response::Response;
//! use axum::{Router, routing::get};
//! use wsgate::authenticate::{Authenticator, BearerAuthenticator};
//! use wsgate::handshake::{Authenticated, HandshakeLayer};
//! use wsgate::jwt::{Algorithm, JwtVerifier, VerificationKey};
//! use wsgate::ticket::Tickets;
//! use wsgate::{Principal, Transport};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let secret = std::env::var("JWT_SECRET")?; // at least 32 bytes
//!     let verifier = JwtVerifier::builder()
//!         .key(VerificationKey::hmac(secret.as_bytes(), Algorithm::HS256)?)
//!         .issuer("https://auth.example")
//!         .audience("chat")
//!         .build()?;
//!     let tickets = Tickets::in_memory();
//!
//!     let gate = HandshakeLayer::builder(BearerAuthenticator::new(verifier).or(tickets))
//!         .transports([Transport::Bearer, Transport::Subprotocol, Transport::Ticket])
//!         .application_protocols(["chat.v1"])?
//!         .build()?;
//!
//!     let app = Router::new()
//!         .route("/ws", get(chat))
//!         .route_layer(gate);
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//!     axum::serve(listener, app).await?;
//!     Ok(())
//! }
//!
//! async fn chat(Authenticated(principal): Authenticated, ws: WebSocketUpgrade) -> Response {
//!     ws.protocols(["chat.v1"])
//!         .on_upgrade(move |socket| greet(socket, principal))
//! }
//!
//! async fn greet(mut socket: WebSocket, principal: Principal) {
//!     let hello = format!("hello, {}", principal.subject());
//!     let _ = socket.send(Message::Text(hello.into())).await;
//! }
//! ```
//!
//! # Where things are
//!
//! The modules follow the data:
//!
//! | module | what |
//! |---|---|
//! | [`handshake`] | the tower layer that authenticates the upgrade request, the transports, the Origin allowlist, the refusals |
//! | [`authenticate`] | [`Authenticator`](authenticate::Authenticator): credential → [`Principal`]; Basic, Bearer, ticket, chains, revocation check |
//! | [`socket`] | the live connection: gated upgrade and socket, lifecycle (expiry, revocation, limits), the registry |
//! | [`message`] | the per-message pipeline: refresh, per-message tokens |
//! | [`guard`] | the role guard and its policies |
//! | [`audit`] | one event per decision, and where events go |
//! | [`limit`] | failed-attempt limits and lockout, client addresses behind proxies |
//! | [`jwt`] | JWT verification and issuing |
//! | [`password`] | argon2id, off the async runtime, bounded |
//! | [`ticket`] | single-use tickets for browsers |
//! | [`store`] | storage traits (credentials, tickets, revocations) and in-memory built-ins |
//!
//! # What you plug in
//!
//! Every pluggable part is a trait with a built-in:
//!
//! | trait | built-ins |
//! |---|---|
//! | [`Authenticator`](authenticate::Authenticator) | [`BearerAuthenticator`](authenticate::BearerAuthenticator), [`BasicAuthenticator`](authenticate::BasicAuthenticator), [`Tickets`](ticket::Tickets), [`Chain`](authenticate::Chain) |
//! | [`TokenVerifier`] | [`JwtVerifier`](jwt::JwtVerifier) |
//! | [`TokenIssuer`] | [`JwtIssuer`](jwt::JwtIssuer) |
//! | [`CredentialStore`](store::CredentialStore) | [`InMemoryCredentialStore`](store::InMemoryCredentialStore) |
//! | [`TicketStore`](store::TicketStore) | [`InMemoryTicketStore`](store::InMemoryTicketStore) |
//! | [`RevocationStore`](store::RevocationStore) | [`InMemoryRevocationStore`](store::InMemoryRevocationStore) |
//! | [`PasswordHasher`](password::PasswordHasher) | [`Argon2id`](password::Argon2id) |
//! | [`FailureLimiter`](limit::FailureLimiter) | [`InMemoryFailureLimiter`](limit::InMemoryFailureLimiter) |
//! | [`Policy`](guard::Policy) | [`RolePolicy`](guard::RolePolicy), closures |
//! | [`AuditSink`](audit::AuditSink) | [`TracingAudit`](audit::TracingAudit), [`JsonLinesAudit`](audit::JsonLinesAudit), closures |
//!
//! # Security
//!
//! - JWT: algorithms pinned per key, `exp` required, `nbf` checked, `iss`,
//!   `aud` and `typ` checked when configured, leeway at most 30 s, size
//!   capped, HMAC keys at least as long as the hash, `jku`/`x5u`/`jwk`
//!   never followed.
//! - Passwords: argon2id (m = 19456 KiB, t = 2, p = 1) off the runtime with
//!   bounded concurrency, a dummy verification for unknown users, a length
//!   cap.
//! - Cookie and Basic transports need an Origin allowlist; raw tokens in the
//!   query string need a `dangerous_…` opt-in.
//! - Secrets never reach a log, an error message or a `Debug` output.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub(crate) mod clock;
mod error;
mod principal;
mod random;
mod secret;
mod token;

pub mod audit;
pub mod authenticate;
pub mod guard;
pub mod handshake;
pub mod jwt;
pub mod limit;
pub mod message;
pub mod password;
pub mod socket;
pub mod store;
pub mod ticket;

pub use clock::Clock;
pub use error::{ConfigError, CredentialError, Error, ErrorKind, TokenError};
pub use principal::{AuthMethod, Principal, Transport};
pub use secret::Secret;
pub use token::{IssuedToken, TokenIssuer, TokenVerifier};

/// Compiles the README's examples as doc tests, so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
