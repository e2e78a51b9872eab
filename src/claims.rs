//! From the claims of a verified token to roles, scopes and data of your
//! own, for claim layouts the defaults do not read.
//!
//! By default a verifier reads roles from `roles` and scopes from `scope`
//! (space-separated), `scp` and `permissions` — the layouts of RFC 9068,
//! Microsoft Entra ID and Auth0's RBAC. Other providers put them elsewhere;
//! a [`ClaimsMapping`] reads them there, without writing a verifier. Every
//! claim without a field of its own stays readable from the principal, as a
//! typed value: [`Principal::claim`].
//!
//! | provider | roles | mapping |
//! |---|---|---|
//! | Keycloak | `realm_access.roles`, `resource_access.<client>.roles` | [`ClaimPaths::keycloak`] |
//! | Auth0 | a namespaced claim (`https://your.app/roles`); permissions in `permissions` | [`ClaimPaths::new`]`.roles_claim("https://your.app/roles")` |
//! | Entra ID | `roles`; delegated scopes in `scp` | none needed |
//! | groups (Okta, Cognito `cognito:groups`) | `groups` | [`ClaimPaths::new`]`.roles_claim("groups")` |
//!
//! # Example
//!
//! ```
//! use wsgate::claims::ClaimPaths;
//! use wsgate::jwt::{Algorithm, JwtVerifier, VerificationKey};
//! use wsgate::{Principal, TokenError};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let key = VerificationKey::hmac(b"a-secret-of-at-least-thirty-two-bytes", Algorithm::HS256)?;
//! // Keycloak: realm roles and the roles of the client `chat`.
//! let keycloak = JwtVerifier::builder()
//!     .key(key.clone())
//!     .claims_mapping(ClaimPaths::keycloak(Some("chat")))
//!     .build()?;
//!
//! // Any closure: a tenant claim that must be there, kept as a typed value.
//! let tenants = JwtVerifier::builder()
//!     .key(key)
//!     .claims_mapping(|claims: &serde_json::Map<String, serde_json::Value>, principal: Principal| {
//!         match claims.get("tenant").and_then(|tenant| tenant.as_u64()) {
//!             Some(tenant) => Ok(principal.with_claim("tenant", tenant.into())),
//!             None => Err(TokenError::MissingClaim("tenant")),
//!         }
//!     })
//!     .build()?;
//! # let _ = (keycloak, tenants);
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::error::TokenError;
use crate::principal::Principal;

/// The claims of a token, as its payload has them.
pub type Claims = Map<String, Value>;

/// Adds to a principal what a token's claims hold in a layout of their own.
///
/// The verifier calls it after every check passed, with all of the token's
/// claims and the principal it made (subject, expiry, token id, and roles
/// and scopes from the default claims).
///
/// # Errors
///
/// A [`TokenError`] refuses the token (401), as a failed check would.
pub trait ClaimsMapping: Send + Sync + 'static {
    /// The principal, with what `claims` add.
    fn map(&self, claims: &Claims, principal: Principal) -> Result<Principal, TokenError>;
}

impl<F> ClaimsMapping for F
where
    F: Fn(&Claims, Principal) -> Result<Principal, TokenError> + Send + Sync + 'static,
{
    fn map(&self, claims: &Claims, principal: Principal) -> Result<Principal, TokenError> {
        self(claims, principal)
    }
}

/// A cheap, cloneable handle on a [`ClaimsMapping`].
#[derive(Clone)]
pub(crate) struct SharedMapping(Arc<dyn ClaimsMapping>);

impl SharedMapping {
    pub(crate) fn new(mapping: impl ClaimsMapping) -> Self {
        Self(Arc::new(mapping))
    }

    pub(crate) fn map(
        &self,
        claims: &Claims,
        principal: Principal,
    ) -> Result<Principal, TokenError> {
        self.0.map(claims, principal)
    }
}

impl fmt::Debug for SharedMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<mapping>")
    }
}

/// Where a claim is: a top-level name, or a JSON pointer (RFC 6901).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Place {
    Claim(String),
    Pointer(String),
}

impl Place {
    fn find<'a>(&self, claims: &'a Claims) -> Option<&'a Value> {
        match self {
            Place::Claim(name) => claims.get(name),
            Place::Pointer(pointer) => {
                let rest = pointer.strip_prefix('/')?;
                let (first, tail) = match rest.split_once('/') {
                    Some((first, tail)) => (first, Some(tail)),
                    None => (rest, None),
                };
                let top = claims.get(&unescape(first))?;
                match tail {
                    None => Some(top),
                    Some(tail) => top.pointer(&format!("/{tail}")),
                }
            }
        }
    }
}

/// A pointer segment with `~1` and `~0` undone (RFC 6901 §4).
fn unescape(segment: &str) -> String {
    segment.replace("~1", "/").replace("~0", "~")
}

/// Names read from a claim: an array of strings, or one string of
/// space-separated names (as `scope` is). Absent: none. Anything else
/// refuses the token, as a malformed `roles` claim does.
fn names(value: Option<&Value>, claim: &'static str) -> Result<Vec<String>, TokenError> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(spaced)) => Ok(spaced.split_whitespace().map(str::to_owned).collect()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or(TokenError::InvalidClaim(claim))
            })
            .collect(),
        Some(_) => Err(TokenError::InvalidClaim(claim)),
    }
}

/// A [`ClaimsMapping`] that reads more roles and scopes from named places:
/// top-level claims (namespaced ones included) or JSON pointers into nested
/// objects. What it finds is added to what the default claims gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct ClaimPaths {
    roles: Vec<Place>,
    scopes: Vec<Place>,
}

impl ClaimPaths {
    /// Reads nothing more yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keycloak: roles from `realm_access.roles`, and from
    /// `resource_access.<client>.roles` when a client id is given.
    pub fn keycloak(client: Option<&str>) -> Self {
        let paths = Self::new().roles_at("/realm_access/roles");
        match client {
            Some(client) => {
                let client = client.replace('~', "~0").replace('/', "~1");
                paths.roles_at(format!("/resource_access/{client}/roles"))
            }
            None => paths,
        }
    }

    /// Roles also from the top-level claim `name` (`groups`, or a
    /// namespaced `https://your.app/roles`).
    pub fn roles_claim(mut self, name: impl Into<String>) -> Self {
        self.roles.push(Place::Claim(name.into()));
        self
    }

    /// Roles also from the JSON pointer `pointer` (`/realm_access/roles`).
    pub fn roles_at(mut self, pointer: impl Into<String>) -> Self {
        self.roles.push(Place::Pointer(pointer.into()));
        self
    }

    /// Scopes also from the top-level claim `name`.
    pub fn scopes_claim(mut self, name: impl Into<String>) -> Self {
        self.scopes.push(Place::Claim(name.into()));
        self
    }

    /// Scopes also from the JSON pointer `pointer`.
    pub fn scopes_at(mut self, pointer: impl Into<String>) -> Self {
        self.scopes.push(Place::Pointer(pointer.into()));
        self
    }
}

impl ClaimsMapping for ClaimPaths {
    fn map(&self, claims: &Claims, principal: Principal) -> Result<Principal, TokenError> {
        let mut roles = Vec::new();
        for place in &self.roles {
            roles.extend(names(place.find(claims), "roles")?);
        }
        let mut scopes = Vec::new();
        for place in &self.scopes {
            scopes.extend(names(place.find(claims), "scope")?);
        }
        Ok(principal.with_added_roles(roles).with_added_scopes(scopes))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::principal::AuthMethod;

    fn claims(value: Value) -> Claims {
        match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    #[test]
    fn provider_layouts() {
        struct Case {
            name: &'static str,
            mapping: ClaimPaths,
            claims: Value,
            roles: &'static [&'static str],
            scopes: &'static [&'static str],
        }
        let cases = [
            Case {
                name: "keycloak realm and client roles",
                mapping: ClaimPaths::keycloak(Some("chat")),
                claims: json!({
                    "realm_access": {"roles": ["user"]},
                    "resource_access": {"chat": {"roles": ["admin"]}, "other": {"roles": ["root"]}},
                }),
                roles: &["user", "admin"],
                scopes: &[],
            },
            Case {
                name: "keycloak without the client claim",
                mapping: ClaimPaths::keycloak(Some("chat")),
                claims: json!({"realm_access": {"roles": ["user"]}}),
                roles: &["user"],
                scopes: &[],
            },
            Case {
                name: "auth0 namespaced roles",
                mapping: ClaimPaths::new().roles_claim("https://chat.example/roles"),
                claims: json!({"https://chat.example/roles": ["moderator"]}),
                roles: &["moderator"],
                scopes: &[],
            },
            Case {
                name: "groups and a spaced scope string",
                mapping: ClaimPaths::new()
                    .roles_claim("groups")
                    .scopes_at("/ext/scopes"),
                claims: json!({"groups": ["staff"], "ext": {"scopes": "chat chat:admin"}}),
                roles: &["staff"],
                scopes: &["chat", "chat:admin"],
            },
            Case {
                name: "an escaped pointer",
                mapping: ClaimPaths::new().roles_at("/https:~1~1a.example~1roles"),
                claims: json!({"https://a.example/roles": ["x"]}),
                roles: &["x"],
                scopes: &[],
            },
        ];
        for case in cases {
            let principal = Principal::new("alice", AuthMethod::Token);
            let mapped = case.mapping.map(&claims(case.claims), principal).unwrap();
            assert_eq!(mapped.roles(), case.roles, "{}", case.name);
            assert_eq!(mapped.scopes(), case.scopes, "{}", case.name);
        }
    }

    #[test]
    fn a_malformed_mapped_claim_refuses_the_token() {
        let mapping = ClaimPaths::new().roles_claim("groups");
        let principal = Principal::new("alice", AuthMethod::Token);
        let refused = mapping.map(&claims(json!({"groups": [1, 2]})), principal);
        assert_eq!(refused.unwrap_err(), TokenError::InvalidClaim("roles"));
    }
}
