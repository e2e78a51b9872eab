//! OpenID Connect Discovery 1.0: where a provider keeps its keys and its
//! introspection endpoint.

use reqwest::Url;
use serde::Deserialize;

use crate::oidc::fetch::{FetchError, provider_url};

/// What wsgate reads of a discovery document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoints {
    pub(crate) jwks_uri: Url,
    pub(crate) introspection: Option<Url>,
}

/// `<issuer>/.well-known/openid-configuration` (§4: the issuer's path kept,
/// a trailing `/` removed first).
pub(crate) fn discovery_url(issuer: &str) -> Result<Url, FetchError> {
    let base = issuer.trim_end_matches('/');
    provider_url(&format!("{base}/.well-known/openid-configuration"))
}

/// Reads a discovery document. Its `issuer` must equal `issuer` exactly
/// (§4.3: otherwise a document could speak for another provider); the
/// endpoints must be URLs wsgate may fetch.
pub(crate) fn parse_discovery(body: &[u8], issuer: &str) -> Result<Endpoints, FetchError> {
    #[derive(Deserialize)]
    struct Document {
        issuer: String,
        jwks_uri: Option<String>,
        introspection_endpoint: Option<String>,
    }
    let document: Document = serde_json::from_slice(body).map_err(|_| FetchError::Malformed)?;
    if document.issuer != issuer {
        return Err(FetchError::IssuerMismatch);
    }
    let jwks_uri = provider_url(document.jwks_uri.as_deref().ok_or(FetchError::Malformed)?)?;
    let introspection = document
        .introspection_endpoint
        .as_deref()
        .map(provider_url)
        .transpose()?;
    Ok(Endpoints {
        jwks_uri,
        introspection,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ISSUER: &str = "https://idp.example.com/realms/app";

    fn parse(document: serde_json::Value) -> Result<Endpoints, FetchError> {
        parse_discovery(document.to_string().as_bytes(), ISSUER)
    }

    #[test]
    fn the_discovery_url_keeps_the_issuers_path() {
        for issuer in [ISSUER, "https://idp.example.com/realms/app/"] {
            assert_eq!(
                discovery_url(issuer).unwrap().as_str(),
                "https://idp.example.com/realms/app/.well-known/openid-configuration"
            );
        }
        assert_eq!(
            discovery_url("http://idp.example.com").unwrap_err(),
            FetchError::InsecureUrl
        );
    }

    #[test]
    fn endpoints_are_read_from_a_document_of_this_issuer() {
        let endpoints = parse(json!({
            "issuer": ISSUER,
            "jwks_uri": "https://idp.example.com/realms/app/certs",
            "introspection_endpoint": "https://idp.example.com/realms/app/introspect",
        }))
        .unwrap();
        assert_eq!(endpoints.jwks_uri.path(), "/realms/app/certs");
        assert_eq!(
            endpoints.introspection.unwrap().path(),
            "/realms/app/introspect"
        );
    }

    #[test]
    fn a_document_of_another_issuer_or_with_unusable_endpoints_is_refused() {
        struct Case {
            name: &'static str,
            document: serde_json::Value,
            error: FetchError,
        }
        let cases = [
            Case {
                name: "another issuer",
                document: json!({"issuer": "https://evil.example", "jwks_uri": "https://evil.example/keys"}),
                error: FetchError::IssuerMismatch,
            },
            Case {
                name: "the issuer with a trailing slash",
                document: json!({"issuer": format!("{ISSUER}/"), "jwks_uri": "https://idp.example.com/k"}),
                error: FetchError::IssuerMismatch,
            },
            Case {
                name: "no jwks_uri",
                document: json!({"issuer": ISSUER}),
                error: FetchError::Malformed,
            },
            Case {
                name: "jwks_uri over plain http",
                document: json!({"issuer": ISSUER, "jwks_uri": "http://idp.example.com/k"}),
                error: FetchError::InsecureUrl,
            },
            Case {
                name: "introspection over plain http",
                document: json!({"issuer": ISSUER, "jwks_uri": "https://idp.example.com/k",
                    "introspection_endpoint": "http://idp.example.com/i"}),
                error: FetchError::InsecureUrl,
            },
            Case {
                name: "issuer not a string",
                document: json!({"issuer": 7, "jwks_uri": "https://idp.example.com/k"}),
                error: FetchError::Malformed,
            },
        ];
        for case in cases {
            assert_eq!(
                parse(case.document).unwrap_err(),
                case.error,
                "{}",
                case.name
            );
        }
    }
}
