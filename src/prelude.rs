//! The names most applications need, for a glob import:
//! `use wsgate::prelude::*;`.

pub use crate::Gate;
pub use crate::audit::Auditor;
pub use crate::handshake::Authenticated;
pub use crate::jwt::{Algorithm, JwtIssuer, JwtVerifier, KeyPair, VerificationKey};
pub use crate::pipeline::{Access, Requirement, RolePolicy};
pub use crate::principal::{Principal, Transport};
pub use crate::session::Inbound;
pub use crate::socket::{DeferredUpgrade, GatedSocket, GatedUpgrade, Limits};
pub use crate::store::Revocation;
