//! Stage two, message by message: the layers of the message pipeline.
//! Every inbound message of a live connection passes a tower
//! `Service<Inbound, Response = Verdict>` before the application sees it.
//!
//! A [`Gate`](crate::Gate) builds the usual pipeline from its shared parts
//! (audit, refresh, per-message tokens when asked for, the role guard); the
//! layers are here for pipelines of your own, built in the order you choose
//! around [`Deliver`] and handed to
//! [`Gate::sockets_with`](crate::Gate::sockets_with) or
//! [`SocketGateBuilder::pipeline`](crate::socket::SocketGateBuilder::pipeline):
//!
//! | layer | does |
//! |---|---|
//! | [`AuditLayer`] | records every refusal (and, if asked, every delivery) |
//! | [`RefreshLayer`] | takes in-band token refreshes: extends the session or closes with 4401 |
//! | [`MessageTokenLayer`] | requires a valid token of the session's subject in each message, else 4401 |
//! | [`RoleGuardLayer`] | allows a message by role or scope ([`Policy`]), else an error reply or 4403 |
//! | [`AsyncRoleGuardLayer`] | the same with an [`AsyncPolicy`] (permissions in a database); its failure closes with 1011 |
//!
//! # Order
//!
//! Put the audit layer outermost (it records what the layers inside it
//! decide), then refresh (a refresh message should not need to pass the
//! guard), then the token check, then the guard.
//!
//! # The role guard
//!
//! A [`Policy`] looks at the principal and the message and answers
//! [`Access::Allow`] or [`Access::Deny`]. [`RolePolicy`] is the built-in: it
//! classifies a message into an action (by default its JSON `type`; by
//! room or channel with [`RolePolicy::by_field`]) and requires roles or
//! scopes for it. Any `Fn(&Principal, &Inbound) -> Access` is a policy too.
//! A denied message gets an error reply and the socket stays open
//! ([`OnDeny::Reply`], the default), or the socket closes with 4403
//! `forbidden` ([`OnDeny::Close`]).
//!
//! ```
//! use wsgate::pipeline::{OnDeny, Requirement, RoleGuardLayer, RolePolicy};
//!
//! // `admin.*` needs the role `admin`, everything else the role `user`.
//! let policy = RolePolicy::by_type()
//!     .prefix("admin.", Requirement::any_role(["admin"]))
//!     .otherwise(Requirement::any_role(["user"]));
//! let guard = RoleGuardLayer::new(policy).on_deny(OnDeny::Reply);
//! # let _ = guard;
//! ```
//!
//! # Example
//!
//! A pipeline with a custom policy closure and a custom audit sink:
//!
//! ```
//! use tower::ServiceBuilder;
//! use wsgate::audit::{AuditEvent, Auditor};
//! use wsgate::jwt::{Algorithm, JwtVerifier, VerificationKey};
//! use wsgate::pipeline::{Access, AuditLayer, RefreshLayer, RoleGuardLayer};
//! use wsgate::pipeline::Deliver;
//! use wsgate::session::Inbound;
//! use wsgate::store::InMemoryRevocationStore;
//! use wsgate::Principal;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let verifier = JwtVerifier::builder()
//!     .key(VerificationKey::hmac(b"a-secret-of-at-least-thirty-two-bytes", Algorithm::HS256)?)
//!     .build()?;
//! let auditor = Auditor::new(|event: &AuditEvent| eprintln!("{}", event.to_json()));
//! let only_moderators_delete = |principal: &Principal, message: &Inbound| {
//!     match message.json_str("type") {
//!         Some("delete") if !principal.has_role("moderator") => Access::deny("delete"),
//!         _ => Access::Allow,
//!     }
//! };
//! let pipeline = ServiceBuilder::new()
//!     .layer(AuditLayer::new(auditor))
//!     .layer(RefreshLayer::new(verifier, InMemoryRevocationStore::new()))
//!     .layer(RoleGuardLayer::new(only_moderators_delete))
//!     .service(Deliver);
//! # let _ = pipeline;
//! # Ok(())
//! # }
//! ```

mod audit;
pub(crate) mod deliver;
mod future;
mod guard;
mod message_token;
mod refresh;
mod token_extractor;

pub use self::audit::{Audit, AuditLayer};
pub use self::deliver::Deliver;
pub use self::future::ResponseFuture;
pub use self::guard::{
    Access, AsyncPolicy, AsyncRoleGuard, AsyncRoleGuardLayer, OnDeny, Policy, Requirement,
    RoleGuard, RoleGuardLayer, RolePolicy,
};
pub use self::message_token::{MessageToken, MessageTokenLayer};
pub use self::refresh::{Refresh, RefreshLayer};
pub use self::token_extractor::{JsonField, TokenExtractor};
