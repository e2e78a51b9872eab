//! JWT issuing.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Header, encode};
use serde::Serialize;

use crate::clock::{Clock, from_unix_seconds};
use crate::confirmation::Confirmation;
use crate::error::{ConfigError, Error};
use crate::jwt::key::SigningKey;
use crate::principal::Principal;
use crate::random::random_urlsafe;
use crate::secret::Secret;
use crate::token::{IssuedToken, TokenIssuer};

/// Default token lifetime: 15 minutes.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// Issues JWTs for principals.
///
/// Every token carries `sub`, `iat` (to the millisecond), `exp`, a random
/// `jti`, `roles`, and
/// `iss`, `aud`, `scope` and `sid` (the principal's
/// [`session_id`](Principal::session_id): a refresh session's) when there
/// are some; the header carries the
/// key's `kid` and the configured `typ`. Cheap to clone.
#[derive(Clone, Debug)]
pub struct JwtIssuer {
    config: Arc<IssuerConfig>,
}

#[derive(Debug)]
struct IssuerConfig {
    key: SigningKey,
    issuer: Option<String>,
    audience: Option<String>,
    token_type: Option<String>,
    lifetime: Duration,
    clock: Clock,
}

/// Builds a [`JwtIssuer`].
#[derive(Debug)]
#[must_use]
pub struct JwtIssuerBuilder {
    config: IssuerConfig,
}

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
    iat: f64,
    exp: u64,
    jti: &'a str,
    roles: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    /// The login session (a refresh session's id), when the principal has
    /// one.
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<&'a str>,
    /// What the token is bound to (RFC 7800): a DPoP key's thumbprint, a
    /// client certificate's.
    #[serde(skip_serializing_if = "Option::is_none")]
    cnf: Option<Cnf<'a>>,
}

#[derive(Serialize)]
struct Cnf<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    jkt: Option<&'a str>,
    #[serde(rename = "x5t#S256", skip_serializing_if = "Option::is_none")]
    certificate: Option<&'a str>,
}

impl JwtIssuer {
    /// Starts an issuer signing with `key`; tokens live 15 minutes and have
    /// `typ` `JWT` unless configured otherwise.
    pub fn builder(key: SigningKey) -> JwtIssuerBuilder {
        JwtIssuerBuilder {
            config: IssuerConfig {
                key,
                issuer: None,
                audience: None,
                token_type: Some("JWT".to_owned()),
                lifetime: DEFAULT_TOKEN_LIFETIME,
                clock: Clock::system(),
            },
        }
    }

    /// How long issued tokens live.
    pub fn lifetime(&self) -> Duration {
        self.config.lifetime
    }

    /// Issues a token for `principal`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Backend`](crate::ErrorKind::Backend) when signing fails
    /// or the system has no randomness.
    pub fn issue_token(&self, principal: &Principal) -> Result<IssuedToken, Error> {
        self.issue_claims(principal, None)
    }

    /// Issues a token for `principal` bound to the DPoP key of thumbprint
    /// `jkt` (`cnf.jkt`, RFC 9449): the
    /// [`jkt`](crate::dpop::CheckedProof::jkt) of the proof that came with
    /// the request (a login's). It works only beside a fresh proof of that
    /// key.
    ///
    /// # Errors
    ///
    /// As [`issue_token`](Self::issue_token).
    pub fn issue_bound_token(
        &self,
        principal: &Principal,
        jkt: &str,
    ) -> Result<IssuedToken, Error> {
        self.issue_confirmed_token(principal, &Confirmation::default().with_jkt(jkt))
    }

    /// Issues a token for `principal` bound to what `confirmation` names:
    /// a DPoP key (`cnf.jkt`), a client certificate (`cnf.x5t#S256`, RFC
    /// 8705: the [`thumbprint`](crate::certificate::ClientCertificate::thumbprint)
    /// of the certificate the request came with), or both. A token bound
    /// to a certificate works only over a connection presenting it;
    /// `token_type` stays `Bearer`. An empty confirmation issues a bearer
    /// token.
    ///
    /// # Errors
    ///
    /// As [`issue_token`](Self::issue_token).
    pub fn issue_confirmed_token(
        &self,
        principal: &Principal,
        confirmation: &Confirmation,
    ) -> Result<IssuedToken, Error> {
        let cnf = confirmation.is_bound().then(|| Cnf {
            jkt: confirmation.jkt(),
            certificate: confirmation.certificate(),
        });
        self.issue_claims(principal, cnf)
    }

    fn issue_claims(
        &self,
        principal: &Principal,
        cnf: Option<Cnf<'_>>,
    ) -> Result<IssuedToken, Error> {
        let config = &self.config;
        let now = config.clock.now();
        let issued_at = config.clock.now_unix();
        let expires_at = issued_at.saturating_add(config.lifetime.as_secs());
        // `iat` to the millisecond: a revocation of the subject covers the
        // tokens issued before it, and not one issued in the same second
        // just after it.
        let issued_at_millis = now
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis());
        #[allow(clippy::cast_precision_loss)]
        let issued_at_precise = issued_at_millis as f64 / 1000.0;
        let token_id = random_urlsafe::<16>()?;
        let claims = Claims {
            sub: principal.subject(),
            iss: config.issuer.as_deref(),
            aud: config.audience.as_deref(),
            iat: issued_at_precise,
            exp: expires_at,
            jti: &token_id,
            roles: principal.roles(),
            scope: (!principal.scopes().is_empty()).then(|| principal.scopes().join(" ")),
            sid: principal.session_id(),
            cnf,
        };
        let mut header = Header::new(config.key.algorithm);
        header.typ.clone_from(&config.token_type);
        header.kid.clone_from(&config.key.kid);
        let token = encode(&header, &claims, &config.key.key)
            .map_err(|error| Error::backend(format!("signing failed: {error}")))?;
        Ok(IssuedToken::new(
            Secret::new(token),
            from_unix_seconds(expires_at),
            Some(token_id),
        ))
    }
}

impl TokenIssuer for JwtIssuer {
    fn issue(
        &self,
        principal: &Principal,
    ) -> impl Future<Output = Result<IssuedToken, Error>> + Send {
        std::future::ready(self.issue_token(principal))
    }
}

impl JwtIssuerBuilder {
    /// Sets `iss`.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.config.issuer = Some(issuer.into());
        self
    }

    /// Sets `aud`.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.config.audience = Some(audience.into());
        self
    }

    /// Sets the header `typ`, for example `at+jwt` for OAuth access tokens
    /// (RFC 9068). Defaults to `JWT`.
    pub fn token_type(mut self, token_type: impl Into<String>) -> Self {
        self.config.token_type = Some(token_type.into());
        self
    }

    /// How long tokens live. Defaults to 15 minutes.
    ///
    /// # Errors
    ///
    /// [`ConfigError::TokenLifetime`] for less than one second.
    pub fn lifetime(mut self, lifetime: Duration) -> Result<Self, ConfigError> {
        if lifetime.as_secs() == 0 {
            return Err(ConfigError::TokenLifetime);
        }
        self.config.lifetime = lifetime;
        Ok(self)
    }

    /// The clock `iat` and `exp` come from. Defaults to the system clock.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.config.clock = clock;
        self
    }

    /// Finishes the issuer.
    pub fn build(self) -> JwtIssuer {
        JwtIssuer {
            config: Arc::new(self.config),
        }
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::Algorithm;

    use super::*;
    use crate::jwt::{JwtVerifier, KeyPair};
    use crate::principal::AuthMethod;

    #[test]
    fn issued_tokens_verify_and_round_trip_the_principal() {
        let clock = Clock::manual(from_unix_seconds(1_800_000_000));
        let (signing, verification) =
            KeyPair::hmac(b"0123456789abcdef0123456789abcdef", Algorithm::HS256)
                .unwrap()
                .with_kid("k1")
                .into_parts();
        let issuer = JwtIssuer::builder(signing)
            .issuer("iss")
            .audience("aud")
            .token_type("at+jwt")
            .lifetime(Duration::from_secs(60))
            .unwrap()
            .clock(clock.clone())
            .build();
        let verifier = JwtVerifier::builder()
            .key(verification)
            .issuer("iss")
            .audience("aud")
            .token_type("at+jwt")
            .clock(clock.clone())
            .build()
            .unwrap();
        let principal = Principal::new("alice", AuthMethod::Password)
            .with_roles(["user", "admin"])
            .with_scopes(["read"]);
        let issued = issuer.issue_token(&principal).unwrap();
        assert_eq!(issued.expires_at(), from_unix_seconds(1_800_000_060));
        let verified = verifier.verify_token(issued.token().expose()).unwrap();
        assert_eq!(verified.subject(), "alice");
        assert_eq!(verified.roles(), ["user", "admin"]);
        assert_eq!(verified.scopes(), ["read"]);
        assert_eq!(verified.token_id(), issued.token_id());
        assert_eq!(verified.session_id(), None);
        let in_session = principal.with_claim("sid", "S1".into());
        let issued = issuer.issue_token(&in_session).unwrap();
        let verified = verifier.verify_token(issued.token().expose()).unwrap();
        assert_eq!(verified.session_id(), Some("S1"));

        clock.advance(Duration::from_secs(60));
        assert!(verifier.verify_token(issued.token().expose()).is_err());
    }

    #[test]
    fn a_bound_token_carries_its_keys_thumbprint() {
        let (signing, verification) = KeyPair::hmac(&[3; 32], Algorithm::HS256)
            .unwrap()
            .into_parts();
        let issuer = JwtIssuer::builder(signing).build();
        let verifier = JwtVerifier::builder().key(verification).build().unwrap();
        let principal = Principal::new("alice", AuthMethod::Password);
        let bound = issuer.issue_bound_token(&principal, "K1").unwrap();
        let verified = verifier.verify_token(bound.token().expose()).unwrap();
        let confirmation = Confirmation::of(&verified).unwrap();
        assert_eq!(confirmation.jkt(), Some("K1"));
        let both = issuer
            .issue_confirmed_token(
                &principal,
                &Confirmation::default()
                    .with_jkt("K2")
                    .with_certificate("C2"),
            )
            .unwrap();
        let verified = verifier.verify_token(both.token().expose()).unwrap();
        let confirmation = Confirmation::of(&verified).unwrap();
        assert_eq!(confirmation.jkt(), Some("K2"));
        assert_eq!(confirmation.certificate(), Some("C2"));
        assert_eq!(
            verified.claims()["cnf"],
            serde_json::json!({"jkt": "K2", "x5t#S256": "C2"})
        );
        let certificate = issuer
            .issue_confirmed_token(&principal, &Confirmation::default().with_certificate("C3"))
            .unwrap();
        let verified = verifier.verify_token(certificate.token().expose()).unwrap();
        assert_eq!(
            verified.claims()["cnf"],
            serde_json::json!({"x5t#S256": "C3"})
        );
        let plain = issuer.issue_token(&principal).unwrap();
        let verified = verifier.verify_token(plain.token().expose()).unwrap();
        assert!(verified.claims().get("cnf").is_none());
    }

    #[test]
    fn every_token_has_its_own_id() {
        let key = SigningKey::hmac(&[9; 32], Algorithm::HS256).unwrap();
        let issuer = JwtIssuer::builder(key).build();
        let principal = Principal::new("bob", AuthMethod::Password);
        let first = issuer.issue_token(&principal).unwrap();
        let second = issuer.issue_token(&principal).unwrap();
        assert_ne!(first.token_id(), second.token_id());
    }
}
