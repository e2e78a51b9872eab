//! JWT verification with pinned algorithms and the claim checks of
//! RFC 7519 and RFC 8725.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Header;
use serde_json::{Map, Value};

use crate::claims::{ClaimsMapping, SharedMapping};
use crate::clock::{Clock, from_unix_seconds};
use crate::error::{ConfigError, Error, TokenError};
use crate::jwt::key::VerificationKey;
use crate::principal::{AuthMethod, Principal};
use crate::token::TokenVerifier;

/// The largest leeway a verifier accepts.
pub const MAX_LEEWAY: Duration = Duration::from_secs(30);

/// Default cap on the length of a token, in bytes.
pub(crate) const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Claims that have a field of their own in [`Principal`] or are checked
/// here; the rest go to [`Principal::claims`].
const REGISTERED_CLAIMS: &[&str] = &[
    "sub",
    "exp",
    "nbf",
    "iat",
    "iss",
    "aud",
    "jti",
    "roles",
    "scope",
    "scp",
    "permissions",
];

/// Verifies JWTs.
///
/// Cheap to clone (one `Arc`). Build it with [`JwtVerifier::builder`].
///
/// # Security
///
/// - Each key is pinned to one algorithm; the token's `alg` must equal it.
///   `none` is never accepted, in any casing, and HMAC never runs over an RSA
///   or EC public key.
/// - `exp` is required; `nbf` is checked; `iss` and `aud` are required when
///   configured, and a token with an `aud` is refused by a verifier that has
///   no audience (RFC 7519 §4.1.3); `typ` is checked when configured.
/// - Leeway is at most 30 s (defaults to 0).
/// - Tokens longer than the cap (defaults to 8 KiB) are refused before any
///   decoding.
/// - `jku`, `x5u`, `x5c` and an embedded `jwk` are never followed: only the
///   configured keys verify. A `crit` header is refused.
/// - Only canonical base64url without padding or whitespace is accepted.
#[derive(Clone, Debug)]
pub struct JwtVerifier {
    config: Arc<VerifierConfig>,
}

#[derive(Debug)]
struct VerifierConfig {
    keys: Vec<VerificationKey>,
    issuers: Vec<String>,
    audiences: Vec<String>,
    token_type: Option<String>,
    leeway: Duration,
    max_token_bytes: usize,
    clock: Clock,
    mapping: Option<SharedMapping>,
}

/// Builds a [`JwtVerifier`].
#[derive(Debug)]
#[must_use]
pub struct JwtVerifierBuilder {
    config: VerifierConfig,
}

impl JwtVerifier {
    /// Starts a verifier with no keys, no issuer or audience, no `typ`
    /// check, zero leeway and an 8 KiB size cap.
    pub fn builder() -> JwtVerifierBuilder {
        JwtVerifierBuilder {
            config: VerifierConfig {
                keys: Vec::new(),
                issuers: Vec::new(),
                audiences: Vec::new(),
                token_type: None,
                leeway: Duration::ZERO,
                max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
                clock: Clock::system(),
                mapping: None,
            },
        }
    }

    /// Verifies a token and returns its principal.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Token`](crate::ErrorKind::Token) with the reason.
    pub fn verify_token(&self, token: &str) -> Result<Principal, Error> {
        self.verify_with_keys(token, &self.config.keys)
    }

    /// Verifies a token against `keys` instead of the configured ones, with
    /// every other check as configured: how keys fetched from an identity
    /// provider are used.
    #[cfg_attr(not(feature = "oidc"), allow(dead_code))]
    pub(crate) fn verify_with_keys(
        &self,
        token: &str,
        keys: &[VerificationKey],
    ) -> Result<Principal, Error> {
        let (header, payload) = self.verify_signature_with(token, keys)?;
        let claims: Map<String, Value> =
            serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
        Ok(self.validate(&header, claims)?)
    }

    /// The JWS stage: shape, header, key selection, algorithm pinning and the
    /// signature. Returns the header and the decoded payload.
    #[cfg(test)]
    pub(crate) fn verify_signature(&self, token: &str) -> Result<(Header, Vec<u8>), TokenError> {
        self.verify_signature_with(token, &self.config.keys)
    }

    fn verify_signature_with(
        &self,
        token: &str,
        keys: &[VerificationKey],
    ) -> Result<(Header, Vec<u8>), TokenError> {
        if token.len() > self.config.max_token_bytes {
            return Err(TokenError::TooLarge);
        }
        let (header_segment, payload_segment, signature_segment) = split_compact(token)?;
        let header = decode_header(header_segment)?;
        let key = select_key(keys, &header)?;
        if key.algorithm != header.alg {
            return Err(TokenError::AlgorithmNotAllowed);
        }
        let signed_part = &token[..header_segment.len() + 1 + payload_segment.len()];
        match jsonwebtoken::crypto::verify(
            signature_segment,
            signed_part.as_bytes(),
            &key.key,
            key.algorithm,
        ) {
            // Decoded only now, strictly: a payload with non-zero trailing
            // bits is not canonical even when its signature verifies.
            Ok(true) => Ok((header, decode_segment(payload_segment)?)),
            Ok(false) | Err(_) => Err(TokenError::InvalidSignature),
        }
    }

    fn validate(
        &self,
        header: &Header,
        claims: Map<String, Value>,
    ) -> Result<Principal, TokenError> {
        if let Some(expected) = &self.config.token_type {
            let matches = header
                .typ
                .as_deref()
                .is_some_and(|typ| media_type_matches(typ, expected));
            if !matches {
                return Err(TokenError::InvalidType);
            }
        }
        self.principal_from_claims(claims)
    }

    /// The claim checks and the principal they name, for claims whose
    /// integrity is already established: a verified JWS payload, or an
    /// identity provider's introspection answer (RFC 7662 mirrors JWT
    /// claims on purpose).
    #[cfg_attr(not(feature = "oidc"), allow(dead_code))]
    pub(crate) fn principal_from_claims(
        &self,
        mut claims: Map<String, Value>,
    ) -> Result<Principal, TokenError> {
        let config = &self.config;
        // The mapping sees every claim, the ones read below included.
        let mapping = config
            .mapping
            .as_ref()
            .map(|mapping| (mapping, claims.clone()));

        let now = config.clock.now_unix();
        let leeway = config.leeway.as_secs();
        let expires_at = numeric_date(&claims, "exp")?.ok_or(TokenError::MissingClaim("exp"))?;
        if now >= expires_at.saturating_add(leeway) {
            return Err(TokenError::Expired);
        }
        if let Some(not_before) = numeric_date(&claims, "nbf")?
            && not_before > now.saturating_add(leeway)
        {
            return Err(TokenError::NotYetValid);
        }
        numeric_date(&claims, "iat")?;
        let issued_at = precise_time(&claims, "iat");

        if !config.issuers.is_empty() {
            match claims.get("iss") {
                None => return Err(TokenError::MissingClaim("iss")),
                Some(Value::String(issuer)) if config.issuers.contains(issuer) => {}
                Some(Value::String(_)) => return Err(TokenError::InvalidIssuer),
                Some(_) => return Err(TokenError::InvalidClaim("iss")),
            }
        }
        self.check_audience(claims.get("aud"))?;

        let subject = match claims.remove("sub") {
            Some(Value::String(subject)) if !subject.is_empty() => subject,
            Some(_) => return Err(TokenError::InvalidClaim("sub")),
            None => return Err(TokenError::MissingClaim("sub")),
        };
        let token_id = match claims.remove("jti") {
            None => None,
            Some(Value::String(id)) => Some(id),
            Some(_) => return Err(TokenError::InvalidClaim("jti")),
        };
        let roles = string_list(claims.remove("roles"), "roles")?;
        let mut scopes = match claims.remove("scope") {
            None => Vec::new(),
            Some(Value::String(scope)) => scope.split_whitespace().map(str::to_owned).collect(),
            Some(_) => return Err(TokenError::InvalidClaim("scope")),
        };
        scopes.extend(string_list_or_spaced(claims.remove("scp"), "scp")?);
        scopes.extend(string_list(claims.remove("permissions"), "permissions")?);

        claims.retain(|name, _| !REGISTERED_CLAIMS.contains(&name.as_str()));
        let mut principal = Principal::new(subject, AuthMethod::Token)
            .with_roles(roles)
            .with_scopes(scopes)
            .with_expires_at(from_unix_seconds(expires_at))
            .with_claims(claims);
        if let Some(issued_at) = issued_at {
            principal = principal.with_issued_at(issued_at);
        }
        if let Some(token_id) = token_id {
            principal = principal.with_token_id(token_id);
        }
        match mapping {
            Some((mapping, all_claims)) => mapping.map(&all_claims, principal),
            None => Ok(principal),
        }
    }

    fn check_audience(&self, audience: Option<&Value>) -> Result<(), TokenError> {
        let configured = &self.config.audiences;
        let named: Vec<&str> = match audience {
            None if configured.is_empty() => return Ok(()),
            None => return Err(TokenError::MissingClaim("aud")),
            Some(Value::String(one)) => vec![one.as_str()],
            Some(Value::Array(many)) => many
                .iter()
                .map(|value| value.as_str().ok_or(TokenError::InvalidClaim("aud")))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(TokenError::InvalidClaim("aud")),
        };
        if named
            .iter()
            .any(|audience| configured.iter().any(|ours| ours == audience))
        {
            Ok(())
        } else {
            Err(TokenError::InvalidAudience)
        }
    }
}

impl TokenVerifier for JwtVerifier {
    fn verify(&self, token: &str) -> impl Future<Output = Result<Principal, Error>> + Send {
        std::future::ready(self.verify_token(token))
    }
}

impl JwtVerifierBuilder {
    /// Adds a key. Keys are selected by the token's `kid`; a token without
    /// `kid` uses the key without one (or the only key).
    pub fn key(mut self, key: VerificationKey) -> Self {
        self.config.keys.push(key);
        self
    }

    /// Requires `iss` to be `issuer` (call again to accept several).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.config.issuers.push(issuer.into());
        self
    }

    /// Requires `aud` to name `audience` (call again to accept several).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.config.audiences.push(audience.into());
        self
    }

    /// Requires the header `typ` to be `token_type` (compared without case,
    /// with or without an `application/` prefix), for example `at+jwt`
    /// (RFC 9068). Defaults to no check.
    pub fn token_type(mut self, token_type: impl Into<String>) -> Self {
        self.config.token_type = Some(token_type.into());
        self
    }

    /// Clock skew tolerated on `exp` and `nbf`. Defaults to zero.
    ///
    /// # Errors
    ///
    /// [`ConfigError::LeewayTooLarge`] above 30 seconds.
    pub fn leeway(mut self, leeway: Duration) -> Result<Self, ConfigError> {
        if leeway > MAX_LEEWAY {
            return Err(ConfigError::LeewayTooLarge);
        }
        self.config.leeway = leeway;
        Ok(self)
    }

    /// Longest token accepted, in bytes. Defaults to 8 KiB.
    ///
    /// # Errors
    ///
    /// [`ConfigError::ZeroLimit`] for zero.
    pub fn max_token_bytes(mut self, max: usize) -> Result<Self, ConfigError> {
        if max == 0 {
            return Err(ConfigError::ZeroLimit("max_token_bytes"));
        }
        self.config.max_token_bytes = max;
        Ok(self)
    }

    /// The clock expiry is checked against. Defaults to the system clock.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.config.clock = clock;
        self
    }

    /// Reads roles, scopes or data of your own from claim layouts the
    /// defaults do not (Keycloak's `realm_access.roles`, Auth0's
    /// namespaced claims, `groups`): see [`crate::claims`]. Runs after every
    /// check passed. Defaults to none.
    pub fn claims_mapping(mut self, mapping: impl ClaimsMapping) -> Self {
        self.config.mapping = Some(SharedMapping::new(mapping));
        self
    }

    /// Finishes a verifier whose keys come from elsewhere, per call
    /// ([`JwtVerifier::verify_with_keys`]): an identity provider's key set.
    #[cfg(feature = "oidc")]
    pub(crate) fn build_without_keys(self) -> JwtVerifier {
        JwtVerifier {
            config: Arc::new(self.config),
        }
    }

    /// Finishes the verifier.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoKeys`] without keys, [`ConfigError::DuplicateKeyId`]
    /// when two keys share a `kid`, [`ConfigError::AmbiguousKeys`] when more
    /// than one key has none.
    pub fn build(self) -> Result<JwtVerifier, ConfigError> {
        let keys = &self.config.keys;
        if keys.is_empty() {
            return Err(ConfigError::NoKeys);
        }
        if keys.iter().filter(|key| key.kid.is_none()).count() > 1 {
            return Err(ConfigError::AmbiguousKeys);
        }
        for (index, key) in keys.iter().enumerate() {
            if let Some(kid) = &key.kid
                && keys[index + 1..]
                    .iter()
                    .any(|other| other.kid.as_ref() == Some(kid))
            {
                return Err(ConfigError::DuplicateKeyId);
            }
        }
        Ok(JwtVerifier {
            config: Arc::new(self.config),
        })
    }
}

/// The key a token's header selects: by `kid`; a token without one may use
/// the one key that has none, or the only key there is.
fn select_key<'k>(
    keys: &'k [VerificationKey],
    header: &Header,
) -> Result<&'k VerificationKey, TokenError> {
    match &header.kid {
        Some(kid) => keys
            .iter()
            .find(|key| key.kid.as_deref() == Some(kid.as_str()))
            .ok_or(TokenError::UnknownKey),
        None => keys
            .iter()
            .find(|key| key.kid.is_none())
            .or(if keys.len() == 1 { keys.first() } else { None })
            .ok_or(TokenError::UnknownKey),
    }
}

/// The `iss` a compact JWT names, read before any check: only to pick
/// whose keys verify it, never to trust it (the verifier checks `iss`
/// again). `None` for anything that is not a compact JWS with a string
/// `iss`.
#[cfg(feature = "oidc")]
pub(crate) fn unverified_issuer(token: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Issuer {
        iss: Option<String>,
    }
    let (_, payload, _) = split_compact(token).ok()?;
    let bytes = decode_segment(payload).ok()?;
    serde_json::from_slice::<Issuer>(&bytes).ok()?.iss
}

/// Whether `token` has the shape of a compact JWS (three base64url
/// segments): what tells a JWT from an opaque token.
#[cfg(feature = "oidc")]
pub(crate) fn looks_like_jwt(token: &str) -> bool {
    split_compact(token).is_ok()
}

/// Splits a compact JWS into its three segments, each base64url without
/// padding or whitespace; only the payload may be empty (RFC 7515 allows it;
/// the claims check refuses it for a JWT).
pub(crate) fn split_compact(token: &str) -> Result<(&str, &str, &str), TokenError> {
    let mut segments = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err(TokenError::Malformed);
    };
    for segment in [header, payload, signature] {
        // A fold, not `all`: without the early exit the compiler checks
        // many bytes at once, and a proof or token is hundreds of them.
        let base64url = segment.bytes().fold(true, |base64url, byte| {
            base64url & (byte.is_ascii_alphanumeric() | (byte == b'-') | (byte == b'_'))
        });
        if !base64url {
            return Err(TokenError::Malformed);
        }
    }
    if header.is_empty() || signature.is_empty() {
        return Err(TokenError::Malformed);
    }
    Ok((header, payload, signature))
}

pub(crate) fn decode_segment(segment: &str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| TokenError::Malformed)
}

fn decode_header(segment: &str) -> Result<Header, TokenError> {
    let bytes = decode_segment(segment)?;
    let json: Map<String, Value> =
        serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)?;
    // Extensions wsgate does not implement must not be silently ignored
    // (RFC 7515 §4.1.11); `b64: false` would change what is signed.
    if json.contains_key("crit") || json.contains_key("b64") {
        return Err(TokenError::UnsupportedHeader);
    }
    match json.get("alg") {
        Some(Value::String(_)) => {}
        _ => return Err(TokenError::Malformed),
    }
    // An `alg` jsonwebtoken does not know (`none`, `None`, `ES512`, …) fails
    // here: no key could ever be pinned to it.
    serde_json::from_value(Value::Object(json)).map_err(|_| TokenError::AlgorithmNotAllowed)
}

/// A NumericDate claim (RFC 7519 §2): a non-negative number of seconds,
/// fractions truncated.
pub(crate) fn numeric_date(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<u64>, TokenError> {
    numeric_date_of(claims.get(name), name)
}

/// The whole seconds of the NumericDate claim `name` whose value is
/// `value` (`None`: the claim is absent).
pub(crate) fn numeric_date_of(
    value: Option<&Value>,
    name: &'static str,
) -> Result<Option<u64>, TokenError> {
    match value {
        None => Ok(None),
        Some(Value::Number(number)) => {
            if let Some(seconds) = number.as_u64() {
                return Ok(Some(seconds));
            }
            match number.as_f64() {
                Some(seconds) if seconds.is_finite() && (0.0..1e15).contains(&seconds) => {
                    // Truncation is intended: NumericDate may carry fractions.
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    Ok(Some(seconds as u64))
                }
                _ => Err(TokenError::InvalidClaim(name)),
            }
        }
        Some(_) => Err(TokenError::InvalidClaim(name)),
    }
}

/// A NumericDate claim with its fractions, for ordering events within a
/// second (`iat` against a revocation). Call after [`numeric_date`] has
/// validated it.
fn precise_time(claims: &Map<String, Value>, name: &'static str) -> Option<std::time::SystemTime> {
    let seconds = claims.get(name)?.as_f64()?;
    let since_epoch = Duration::try_from_secs_f64(seconds).ok()?;
    std::time::SystemTime::UNIX_EPOCH.checked_add(since_epoch)
}

fn string_list(value: Option<Value>, name: &'static str) -> Result<Vec<String>, TokenError> {
    match value {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                Value::String(text) => Ok(text),
                _ => Err(TokenError::InvalidClaim(name)),
            })
            .collect(),
        Some(_) => Err(TokenError::InvalidClaim(name)),
    }
}

fn string_list_or_spaced(
    value: Option<Value>,
    name: &'static str,
) -> Result<Vec<String>, TokenError> {
    match value {
        Some(Value::String(spaced)) => Ok(spaced.split_whitespace().map(str::to_owned).collect()),
        other => string_list(other, name),
    }
}

/// `typ` is a media type; `at+jwt` and `application/at+jwt` are the same
/// (RFC 7515 §4.1.9), compared without case.
pub(crate) fn media_type_matches(typ: &str, expected: &str) -> bool {
    let strip = |value: &str| {
        let lower = value.to_ascii_lowercase();
        lower
            .strip_prefix("application/")
            .map(str::to_owned)
            .unwrap_or(lower)
    };
    strip(typ) == strip(expected)
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{Algorithm, EncodingKey, encode};
    use serde_json::json;

    use super::*;

    const SECRET: &[u8] = b"an-hmac-secret-of-at-least-32-bytes!";
    const NOW: u64 = 1_800_000_000;

    fn verifier() -> JwtVerifier {
        JwtVerifier::builder()
            .key(VerificationKey::hmac(SECRET, Algorithm::HS256).unwrap())
            .issuer("issuer")
            .audience("audience")
            .token_type("at+jwt")
            .leeway(Duration::from_secs(5))
            .unwrap()
            .clock(Clock::manual(from_unix_seconds(NOW)))
            .build()
            .unwrap()
    }

    fn sign(typ: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::HS256);
        header.typ = typ.map(str::to_owned);
        encode(&header, claims, &EncodingKey::from_secret(SECRET).unwrap()).unwrap()
    }

    fn good_claims() -> Value {
        json!({
            "sub": "alice", "iss": "issuer", "aud": "audience",
            "exp": NOW + 60, "iat": NOW, "jti": "id-1",
            "roles": ["user"], "scope": "chat:read chat:write", "tenant": "acme"
        })
    }

    fn with(claims: Value, name: &str, value: Value) -> Value {
        let mut claims = claims;
        claims[name] = value;
        claims
    }

    fn without(claims: Value, name: &str) -> Value {
        let mut claims = claims;
        claims.as_object_mut().unwrap().remove(name);
        claims
    }

    #[test]
    fn accepts_a_good_token_and_maps_its_claims() {
        let principal = verifier()
            .verify_token(&sign(Some("at+jwt"), &good_claims()))
            .unwrap();
        assert_eq!(principal.subject(), "alice");
        assert_eq!(principal.roles(), ["user"]);
        assert_eq!(principal.scopes(), ["chat:read", "chat:write"]);
        assert_eq!(principal.token_id(), Some("id-1"));
        assert_eq!(principal.expires_at(), Some(from_unix_seconds(NOW + 60)));
        assert_eq!(principal.claims().get("tenant"), Some(&json!("acme")));
        assert!(!principal.claims().contains_key("sub"));
    }

    /// Times past what a `SystemTime` holds (an issuer's mistake, or an
    /// introspection answer's) are taken as the end of the year 9999,
    /// never a panic.
    #[test]
    fn the_largest_times_are_clamped_not_a_panic() {
        let far = with(good_claims(), "exp", json!(u64::MAX));
        let principal = verifier()
            .verify_token(&sign(Some("at+jwt"), &far))
            .unwrap();
        assert_eq!(
            principal.expires_at(),
            Some(from_unix_seconds(253_402_300_799))
        );
        let ahead = with(good_claims(), "nbf", json!(u64::MAX));
        assert!(
            verifier()
                .verify_token(&sign(Some("at+jwt"), &ahead))
                .is_err()
        );
    }

    #[test]
    fn a_claims_mapping_sees_every_claim_and_can_refuse() {
        // Roles from a layout of its own, with the default claims already
        // read; the mapping sees `roles` too, which the principal's claims
        // no longer hold.
        let mapped = JwtVerifier::builder()
            .key(VerificationKey::hmac(SECRET, Algorithm::HS256).unwrap())
            .clock(Clock::manual(from_unix_seconds(NOW)))
            .claims_mapping(|claims: &crate::claims::Claims, principal: Principal| {
                let tenant = claims.get("tenant").and_then(Value::as_str);
                let extra_role = claims.get("roles").map(|_| "mapped");
                match tenant {
                    Some(tenant) => Ok(principal
                        .with_claim("tenant_id", json!(tenant.len()))
                        .with_added_roles(extra_role)),
                    None => Err(TokenError::MissingClaim("tenant")),
                }
            })
            .build()
            .unwrap();
        let claims = without(without(good_claims(), "iss"), "aud");
        let principal = mapped.verify_token(&sign(None, &claims)).unwrap();
        assert_eq!(principal.roles(), ["user", "mapped"]);
        assert_eq!(principal.claim::<usize>("tenant_id"), Some(4));
        let refused = mapped.verify_token(&sign(None, &without(claims, "tenant")));
        assert_eq!(
            refused.unwrap_err().token_error(),
            Some(TokenError::MissingClaim("tenant"))
        );
    }

    #[test]
    fn claim_checks() {
        struct Case {
            name: &'static str,
            typ: Option<&'static str>,
            claims: Value,
            expect: Result<(), TokenError>,
        }
        let good = good_claims;
        let cases = [
            Case {
                name: "typ with media prefix and other case",
                typ: Some("Application/AT+JWT"),
                claims: good(),
                expect: Ok(()),
            },
            Case {
                name: "wrong typ",
                typ: Some("JWT"),
                claims: good(),
                expect: Err(TokenError::InvalidType),
            },
            Case {
                name: "missing typ",
                typ: None,
                claims: good(),
                expect: Err(TokenError::InvalidType),
            },
            Case {
                name: "expired",
                typ: Some("at+jwt"),
                claims: with(good(), "exp", json!(NOW - 60)),
                expect: Err(TokenError::Expired),
            },
            Case {
                name: "expired within leeway",
                typ: Some("at+jwt"),
                claims: with(good(), "exp", json!(NOW - 4)),
                expect: Ok(()),
            },
            Case {
                name: "expired just past leeway",
                typ: Some("at+jwt"),
                claims: with(good(), "exp", json!(NOW - 5)),
                expect: Err(TokenError::Expired),
            },
            Case {
                name: "fractional exp",
                typ: Some("at+jwt"),
                claims: with(good(), "exp", json!((NOW + 10) as f64 + 0.5)),
                expect: Ok(()),
            },
            Case {
                name: "exp as string",
                typ: Some("at+jwt"),
                claims: with(good(), "exp", json!("2100-01-01")),
                expect: Err(TokenError::InvalidClaim("exp")),
            },
            Case {
                name: "negative exp",
                typ: Some("at+jwt"),
                claims: with(good(), "exp", json!(-1)),
                expect: Err(TokenError::InvalidClaim("exp")),
            },
            Case {
                name: "missing exp",
                typ: Some("at+jwt"),
                claims: without(good(), "exp"),
                expect: Err(TokenError::MissingClaim("exp")),
            },
            Case {
                name: "nbf in the future",
                typ: Some("at+jwt"),
                claims: with(good(), "nbf", json!(NOW + 60)),
                expect: Err(TokenError::NotYetValid),
            },
            Case {
                name: "nbf within leeway",
                typ: Some("at+jwt"),
                claims: with(good(), "nbf", json!(NOW + 5)),
                expect: Ok(()),
            },
            Case {
                name: "wrong iss",
                typ: Some("at+jwt"),
                claims: with(good(), "iss", json!("other")),
                expect: Err(TokenError::InvalidIssuer),
            },
            Case {
                name: "missing iss",
                typ: Some("at+jwt"),
                claims: without(good(), "iss"),
                expect: Err(TokenError::MissingClaim("iss")),
            },
            Case {
                name: "wrong aud",
                typ: Some("at+jwt"),
                claims: with(good(), "aud", json!("other")),
                expect: Err(TokenError::InvalidAudience),
            },
            Case {
                name: "aud list naming us",
                typ: Some("at+jwt"),
                claims: with(good(), "aud", json!(["x", "audience"])),
                expect: Ok(()),
            },
            Case {
                name: "aud list not naming us",
                typ: Some("at+jwt"),
                claims: with(good(), "aud", json!(["x", "y"])),
                expect: Err(TokenError::InvalidAudience),
            },
            Case {
                name: "missing aud",
                typ: Some("at+jwt"),
                claims: without(good(), "aud"),
                expect: Err(TokenError::MissingClaim("aud")),
            },
            Case {
                name: "missing sub",
                typ: Some("at+jwt"),
                claims: without(good(), "sub"),
                expect: Err(TokenError::MissingClaim("sub")),
            },
            Case {
                name: "empty sub",
                typ: Some("at+jwt"),
                claims: with(good(), "sub", json!("")),
                expect: Err(TokenError::InvalidClaim("sub")),
            },
            Case {
                name: "roles not a list",
                typ: Some("at+jwt"),
                claims: with(good(), "roles", json!("admin")),
                expect: Err(TokenError::InvalidClaim("roles")),
            },
        ];
        let verifier = verifier();
        for case in cases {
            let result = verifier
                .verify_token(&sign(case.typ, &case.claims))
                .map(|_| ());
            assert_eq!(
                result.map_err(|error| error.token_error().unwrap()),
                case.expect,
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn token_with_audience_is_refused_by_a_verifier_without_one() {
        let verifier = JwtVerifier::builder()
            .key(VerificationKey::hmac(SECRET, Algorithm::HS256).unwrap())
            .clock(Clock::manual(from_unix_seconds(NOW)))
            .build()
            .unwrap();
        let error = verifier
            .verify_token(&sign(None, &good_claims()))
            .unwrap_err();
        assert_eq!(error.token_error(), Some(TokenError::InvalidAudience));
    }

    #[test]
    fn shape_and_header_checks() {
        let good = sign(Some("at+jwt"), &good_claims());
        let (head, rest) = good.split_once('.').unwrap();
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"at+jwt"}"#);
        let crit_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","crit":["exp"],"exp":1}"#);
        struct Case {
            name: &'static str,
            token: String,
            expect: TokenError,
        }
        let cases = [
            Case {
                name: "two segments",
                token: good.rsplit_once('.').unwrap().0.to_owned(),
                expect: TokenError::Malformed,
            },
            Case {
                name: "four segments",
                token: format!("{good}.e30"),
                expect: TokenError::Malformed,
            },
            Case {
                name: "padding",
                token: format!("{head}=.{rest}"),
                expect: TokenError::Malformed,
            },
            Case {
                name: "space inside",
                token: format!("{head} .{rest}"),
                expect: TokenError::Malformed,
            },
            Case {
                name: "empty signature",
                token: format!("{}.", good.rsplit_once('.').unwrap().0),
                expect: TokenError::Malformed,
            },
            Case {
                name: "alg none",
                token: format!("{none_header}.{}.c2ln", rest.split_once('.').unwrap().0),
                expect: TokenError::AlgorithmNotAllowed,
            },
            Case {
                name: "crit header",
                token: format!("{crit_header}.{rest}"),
                expect: TokenError::UnsupportedHeader,
            },
            Case {
                name: "oversized",
                token: "a".repeat(DEFAULT_MAX_TOKEN_BYTES + 1),
                expect: TokenError::TooLarge,
            },
        ];
        let verifier = verifier();
        for case in cases {
            let error = verifier.verify_token(&case.token).unwrap_err();
            assert_eq!(error.token_error(), Some(case.expect), "{}", case.name);
        }
    }

    #[test]
    fn keys_are_selected_by_kid() {
        let other_secret = b"another-hmac-secret-of-32-bytes-or-more";
        let verifier = JwtVerifier::builder()
            .key(
                VerificationKey::hmac(SECRET, Algorithm::HS256)
                    .unwrap()
                    .with_kid("old"),
            )
            .key(
                VerificationKey::hmac(other_secret, Algorithm::HS256)
                    .unwrap()
                    .with_kid("new"),
            )
            .issuer("issuer")
            .audience("audience")
            .clock(Clock::manual(from_unix_seconds(NOW)))
            .build()
            .unwrap();
        let signed_with = |secret: &[u8], kid: Option<&str>| {
            let mut header = Header::new(Algorithm::HS256);
            header.kid = kid.map(str::to_owned);
            encode(
                &header,
                &good_claims(),
                &EncodingKey::from_secret(secret).unwrap(),
            )
            .unwrap()
        };
        assert!(
            verifier
                .verify_token(&signed_with(SECRET, Some("old")))
                .is_ok()
        );
        assert!(
            verifier
                .verify_token(&signed_with(other_secret, Some("new")))
                .is_ok()
        );
        let swapped = verifier
            .verify_token(&signed_with(SECRET, Some("new")))
            .unwrap_err();
        assert_eq!(swapped.token_error(), Some(TokenError::InvalidSignature));
        let unknown = verifier
            .verify_token(&signed_with(SECRET, Some("gone")))
            .unwrap_err();
        assert_eq!(unknown.token_error(), Some(TokenError::UnknownKey));
        let no_kid = verifier
            .verify_token(&signed_with(SECRET, None))
            .unwrap_err();
        assert_eq!(no_kid.token_error(), Some(TokenError::UnknownKey));
    }

    #[test]
    fn builder_refuses_unsafe_or_ambiguous_setups() {
        let key = || VerificationKey::hmac(SECRET, Algorithm::HS256).unwrap();
        assert_eq!(
            JwtVerifier::builder().build().unwrap_err(),
            ConfigError::NoKeys
        );
        assert_eq!(
            JwtVerifier::builder()
                .leeway(Duration::from_secs(31))
                .unwrap_err(),
            ConfigError::LeewayTooLarge
        );
        assert_eq!(
            JwtVerifier::builder()
                .key(key())
                .key(key())
                .build()
                .unwrap_err(),
            ConfigError::AmbiguousKeys
        );
        assert_eq!(
            JwtVerifier::builder()
                .key(key().with_kid("a"))
                .key(key().with_kid("a"))
                .build()
                .unwrap_err(),
            ConfigError::DuplicateKeyId
        );
    }
}
