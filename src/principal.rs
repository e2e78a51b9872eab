//! Who is on the other end of a connection, once authenticated.

use std::fmt;
use std::time::SystemTime;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::recheck::Recheck;

/// An authenticated identity: what the handshake layer puts into the request
/// extensions and what handlers receive through [`Authenticated`].
///
/// [`Authenticated`]: crate::handshake::Authenticated
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    subject: String,
    roles: Vec<String>,
    scopes: Vec<String>,
    expires_at: Option<SystemTime>,
    issued_at: Option<SystemTime>,
    token_id: Option<String>,
    method: AuthMethod,
    transport: Option<Transport>,
    claims: Map<String, Value>,
    recheck: Option<Recheck>,
}

/// How a principal proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthMethod {
    /// Username and password (Basic).
    Password,
    /// A signed or introspected token (JWT, OAuth access token).
    Token,
    /// A single-use ticket.
    Ticket,
    /// A client certificate (mutual TLS).
    Certificate,
}

/// Where in the handshake request the credentials travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Transport {
    /// `Authorization: Bearer <token>`: servers and native clients.
    Bearer,
    /// `Authorization: Basic <base64>`: needs an Origin allowlist.
    Basic,
    /// `Sec-WebSocket-Protocol: <app>, wsgate.bearer.<token>`: browsers.
    Subprotocol,
    /// A cookie holding a token: browsers; needs an Origin allowlist.
    Cookie,
    /// `?ticket=<single-use ticket>`: browsers.
    Ticket,
    /// A raw token in the query string: only behind
    /// `dangerous_allow_query_tokens`.
    QueryToken,
    /// The first message after the upgrade (`{"type":"auth","token":…}`).
    FirstMessage,
    /// The client certificate of the connection (mutual TLS), or one a
    /// trusted proxy forwarded: tried after every transport that carries
    /// a credential in the request. Needs an Origin allowlist: a browser
    /// presents its certificate cross-site on its own.
    Certificate,
}

impl Transport {
    /// The stable name used in logs and audit events.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Bearer => "bearer",
            Transport::Basic => "basic",
            Transport::Subprotocol => "subprotocol",
            Transport::Cookie => "cookie",
            Transport::Ticket => "ticket",
            Transport::QueryToken => "query",
            Transport::FirstMessage => "first-message",
            Transport::Certificate => "certificate",
        }
    }

    /// Whether a browser attaches this credential on its own, cross-site
    /// included, so that only an Origin check tells a forged request apart.
    pub fn is_ambient(self) -> bool {
        matches!(
            self,
            Transport::Basic | Transport::Cookie | Transport::Certificate
        )
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Collects names (roles, scopes) given as anything string-like.
pub(crate) fn strings<I, S>(items: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    items.into_iter().map(Into::into).collect()
}

fn add_names<I, S>(held: &mut Vec<String>, names: I)
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    for name in names {
        let name = name.into();
        if !held.contains(&name) {
            held.push(name);
        }
    }
}

impl Principal {
    /// A principal for `subject`, authenticated by `method`, with no roles.
    pub fn new(subject: impl Into<String>, method: AuthMethod) -> Self {
        Self {
            subject: subject.into(),
            roles: Vec::new(),
            scopes: Vec::new(),
            expires_at: None,
            issued_at: None,
            token_id: None,
            method,
            transport: None,
            claims: Map::new(),
            recheck: None,
        }
    }

    /// Sets the roles.
    pub fn with_roles<I, R>(mut self, roles: I) -> Self
    where
        I: IntoIterator<Item = R>,
        R: Into<String>,
    {
        self.roles = strings(roles);
        self
    }

    /// Sets the scopes (OAuth scopes or permissions).
    pub fn with_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = strings(scopes);
        self
    }

    /// Adds roles (a [claims mapping](crate::claims) reading another
    /// layout); a role already held is not added twice.
    pub fn with_added_roles<I, R>(mut self, roles: I) -> Self
    where
        I: IntoIterator<Item = R>,
        R: Into<String>,
    {
        add_names(&mut self.roles, roles);
        self
    }

    /// Adds scopes; a scope already held is not added twice.
    pub fn with_added_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        add_names(&mut self.scopes, scopes);
        self
    }

    /// Sets one claim without a field of its own (data a claims mapping
    /// derives), readable with [`claim`](Self::claim).
    pub fn with_claim(mut self, name: impl Into<String>, value: Value) -> Self {
        self.claims.insert(name.into(), value);
        self
    }

    /// Sets when the credential that authenticated this principal expires.
    pub fn with_expires_at(mut self, expires_at: SystemTime) -> Self {
        self.expires_at = Some(expires_at);
        self
    }

    /// Sets when the token was issued.
    pub fn with_issued_at(mut self, issued_at: SystemTime) -> Self {
        self.issued_at = Some(issued_at);
        self
    }

    /// Sets the token id (`jti`).
    pub fn with_token_id(mut self, token_id: impl Into<String>) -> Self {
        self.token_id = Some(token_id.into());
        self
    }

    /// Sets the claims that have no field of their own.
    pub fn with_claims(mut self, claims: Map<String, Value>) -> Self {
        self.claims = claims;
        self
    }

    /// Sets how the principal authenticated (a ticket redeemed for a
    /// token's principal becomes [`AuthMethod::Ticket`]).
    pub fn with_method(mut self, method: AuthMethod) -> Self {
        self.method = method;
        self
    }

    /// Records the transport the credentials came by; the handshake layer
    /// calls this.
    pub(crate) fn with_transport(mut self, transport: Transport) -> Self {
        self.transport = Some(transport);
        self
    }

    /// Asks live sockets of this principal to run `recheck` on its
    /// interval and close once the credential no longer holds (an
    /// introspected token revoked at the provider).
    pub fn with_recheck(mut self, recheck: Recheck) -> Self {
        self.recheck = Some(recheck);
        self
    }

    /// The check live sockets run, when the credential asks for one.
    pub fn recheck(&self) -> Option<&Recheck> {
        self.recheck.as_ref()
    }

    /// The subject (`sub`, or the username).
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The roles.
    pub fn roles(&self) -> &[String] {
        &self.roles
    }

    /// The scopes or permissions.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// When the credential expires; `None` for credentials that do not
    /// (passwords).
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }

    /// When the token was issued, when known.
    pub fn issued_at(&self) -> Option<SystemTime> {
        self.issued_at
    }

    /// The token id (`jti`), when known.
    pub fn token_id(&self) -> Option<&str> {
        self.token_id.as_deref()
    }

    /// How the principal authenticated.
    pub fn method(&self) -> AuthMethod {
        self.method
    }

    /// The transport the credentials came by, once the handshake layer has
    /// accepted them.
    pub fn transport(&self) -> Option<Transport> {
        self.transport
    }

    /// Claims without a field of their own.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// A claim without a field of its own, as a typed value: `None` when
    /// it is absent or not of type `T`.
    ///
    /// ```
    /// # use wsgate::{AuthMethod, Principal};
    /// let principal = Principal::new("alice", AuthMethod::Token)
    ///     .with_claim("tenant", 42.into());
    /// assert_eq!(principal.claim::<u64>("tenant"), Some(42));
    /// assert_eq!(principal.claim::<String>("tenant"), None);
    /// ```
    pub fn claim<T: DeserializeOwned>(&self, name: &str) -> Option<T> {
        T::deserialize(self.claims.get(name)?).ok()
    }

    /// The login session the token belongs to: its `sid` claim (OpenID
    /// Connect), which several sockets may share. A live connection without
    /// one is a session of its own ([`Session::session_id`]).
    ///
    /// [`Session::session_id`]: crate::session::Session::session_id
    pub fn session_id(&self) -> Option<&str> {
        self.claims.get("sid").and_then(Value::as_str)
    }

    /// Whether the principal holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|held| held == role)
    }

    /// Whether the principal holds `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|held| held == scope)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn roles_scopes_and_expiry() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let principal = Principal::new("alice", AuthMethod::Token)
            .with_roles(["user"])
            .with_scopes(["chat:read"])
            .with_expires_at(now + Duration::from_secs(1));
        assert!(principal.has_role("user"));
        assert!(!principal.has_role("admin"));
        assert!(principal.has_scope("chat:read"));
        assert_eq!(principal.expires_at(), Some(now + Duration::from_secs(1)));
        assert_eq!(principal.transport(), None);
    }

    #[test]
    fn only_basic_and_cookie_are_ambient() {
        struct Case {
            transport: Transport,
            ambient: bool,
        }
        let cases = [
            Case {
                transport: Transport::Bearer,
                ambient: false,
            },
            Case {
                transport: Transport::Basic,
                ambient: true,
            },
            Case {
                transport: Transport::Subprotocol,
                ambient: false,
            },
            Case {
                transport: Transport::Cookie,
                ambient: true,
            },
            Case {
                transport: Transport::Ticket,
                ambient: false,
            },
            Case {
                transport: Transport::QueryToken,
                ambient: false,
            },
        ];
        for case in cases {
            assert_eq!(
                case.transport.is_ambient(),
                case.ambient,
                "{}",
                case.transport
            );
        }
    }
}
