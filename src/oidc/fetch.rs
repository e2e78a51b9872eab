//! HTTP to the provider: short timeouts, no redirects, a body cap, status
//! 200 only, HTTPS except on loopback.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use reqwest::{StatusCode, Url, header};

use crate::error::ConfigError;
use crate::secret::Secret;

/// Limits on every request to a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FetchLimits {
    pub(crate) connect_timeout: Duration,
    pub(crate) total_timeout: Duration,
    pub(crate) max_body_bytes: usize,
}

impl Default for FetchLimits {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(2),
            total_timeout: Duration::from_secs(5),
            max_body_bytes: 256 * 1024,
        }
    }
}

/// Why a request to the provider gave nothing usable. The phrase is what
/// logs and audit events say; it never holds a token or a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FetchError {
    /// A URL that is not `https://` (or `http://` on loopback).
    InsecureUrl,
    /// No connection, or the connection broke.
    Unreachable,
    /// No complete answer within the total timeout.
    Timeout,
    /// An answer other than 200 (a redirect included).
    Status(StatusCode),
    /// A body above the cap.
    TooLarge,
    /// A body that is not what the endpoint should answer.
    Malformed,
    /// A discovery document whose `issuer` is not the configured one.
    IssuerMismatch,
    /// Introspection asked of a provider without an introspection
    /// endpoint.
    NoIntrospectionEndpoint,
}

impl FetchError {
    /// A short stable phrase.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            FetchError::InsecureUrl => "insecure url",
            FetchError::Unreachable => "provider unreachable",
            FetchError::Timeout => "provider timeout",
            FetchError::Status(_) => "unexpected status",
            FetchError::TooLarge => "response too large",
            FetchError::Malformed => "malformed response",
            FetchError::IssuerMismatch => "issuer mismatch",
            FetchError::NoIntrospectionEndpoint => "no introspection endpoint",
        }
    }
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Status(status) => write!(f, "{} {}", self.as_str(), status.as_u16()),
            _ => f.write_str(self.as_str()),
        }
    }
}

impl std::error::Error for FetchError {}

/// An answer with status 200 and a body within the cap.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub(crate) body: Vec<u8>,
    /// `Cache-Control: max-age`, when the answer had one (`no-store` and
    /// `no-cache` read as zero).
    pub(crate) max_age: Option<Duration>,
}

/// The HTTP client for one verifier's providers.
#[derive(Debug, Clone)]
pub(crate) struct Fetcher {
    client: reqwest::Client,
    limits: FetchLimits,
}

impl Fetcher {
    pub(crate) fn new(limits: FetchLimits) -> Result<Self, ConfigError> {
        let client = reqwest::Client::builder()
            .connect_timeout(limits.connect_timeout)
            .timeout(limits.total_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("wsgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|_| ConfigError::HttpClient)?;
        Ok(Self { client, limits })
    }

    /// `GET url`.
    pub(crate) async fn get(&self, url: &Url) -> Result<Fetched, FetchError> {
        self.send(self.client.get(url.clone())).await
    }

    /// `POST url` with a form body, authenticated as `client_id` with
    /// `client_secret` (HTTP Basic, RFC 6749 §2.3.1).
    pub(crate) async fn post_form(
        &self,
        url: &Url,
        form: &[(&str, &str)],
        client_id: &str,
        client_secret: &Secret,
    ) -> Result<Fetched, FetchError> {
        let request = self
            .client
            .post(url.clone())
            .basic_auth(
                form_encode(client_id),
                Some(form_encode(client_secret.expose())),
            )
            .header(header::ACCEPT, "application/json")
            .form(form);
        self.send(request).await
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Fetched, FetchError> {
        // reqwest's own timeout covers the whole exchange; this one makes
        // sure of it, body included, whatever the server trickles.
        tokio::time::timeout(self.limits.total_timeout, self.exchange(request))
            .await
            .map_err(|_| FetchError::Timeout)?
    }

    async fn exchange(&self, request: reqwest::RequestBuilder) -> Result<Fetched, FetchError> {
        let mut response = request.send().await.map_err(transport_error)?;
        if response.status() != StatusCode::OK {
            return Err(FetchError::Status(response.status()));
        }
        let cap = self.limits.max_body_bytes;
        if response
            .content_length()
            .is_some_and(|length| length > cap as u64)
        {
            return Err(FetchError::TooLarge);
        }
        let max_age = max_age(response.headers());
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
            if body.len() + chunk.len() > cap {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched { body, max_age })
    }
}

fn transport_error(error: reqwest::Error) -> FetchError {
    if error.is_timeout() {
        FetchError::Timeout
    } else {
        FetchError::Unreachable
    }
}

/// RFC 6749 §2.3.1: the client id and secret are form-encoded before they
/// go into the Basic header.
fn form_encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// `max-age` of a `Cache-Control` header; `no-store` and `no-cache` mean
/// zero (the cache clamps it to its minimum).
fn max_age(headers: &header::HeaderMap) -> Option<Duration> {
    let value = headers.get(header::CACHE_CONTROL)?.to_str().ok()?;
    let mut found = None;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(Duration::ZERO);
        }
        if let Some(seconds) = lower.strip_prefix("max-age=") {
            found = seconds
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    found
}

/// Parses a provider URL: `https://`, or `http://` to a loopback address
/// (`127.0.0.0/8`, `::1`, `localhost`), without credentials or a
/// fragment.
pub(crate) fn provider_url(text: &str) -> Result<Url, FetchError> {
    let url = Url::parse(text).map_err(|_| FetchError::Malformed)?;
    if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
        return Err(FetchError::Malformed);
    }
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => return Err(FetchError::Malformed),
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(FetchError::InsecureUrl),
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn provider_urls_are_https_except_on_loopback() {
        struct Case {
            url: &'static str,
            outcome: Result<(), FetchError>,
        }
        let cases = [
            Case {
                url: "https://idp.example.com/realms/app",
                outcome: Ok(()),
            },
            Case {
                url: "http://127.0.0.1:8080",
                outcome: Ok(()),
            },
            Case {
                url: "http://127.9.9.9",
                outcome: Ok(()),
            },
            Case {
                url: "http://[::1]:8080/",
                outcome: Ok(()),
            },
            Case {
                url: "http://localhost:8080",
                outcome: Ok(()),
            },
            Case {
                url: "http://idp.example.com",
                outcome: Err(FetchError::InsecureUrl),
            },
            Case {
                url: "http://10.0.0.1",
                outcome: Err(FetchError::InsecureUrl),
            },
            // Looks like loopback to a careless prefix check.
            Case {
                url: "http://127.0.0.1.evil.example",
                outcome: Err(FetchError::InsecureUrl),
            },
            Case {
                url: "http://localhost.evil.example",
                outcome: Err(FetchError::InsecureUrl),
            },
            Case {
                url: "ftp://idp.example.com",
                outcome: Err(FetchError::InsecureUrl),
            },
            Case {
                url: "file:///etc/passwd",
                outcome: Err(FetchError::Malformed),
            },
            Case {
                url: "https://user:pw@idp.example.com",
                outcome: Err(FetchError::Malformed),
            },
            Case {
                url: "https://idp.example.com/#x",
                outcome: Err(FetchError::Malformed),
            },
            Case {
                url: "not a url",
                outcome: Err(FetchError::Malformed),
            },
        ];
        for case in cases {
            assert_eq!(
                provider_url(case.url).map(|_| ()),
                case.outcome,
                "{}",
                case.url
            );
        }
    }

    #[test]
    fn cache_control_max_age_is_read_and_no_store_is_zero() {
        let read = |value: &'static str| {
            let mut headers = header::HeaderMap::new();
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(value));
            max_age(&headers)
        };
        assert_eq!(
            read("public, max-age=3600"),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(read("Max-Age=\"60\""), Some(Duration::from_secs(60)));
        assert_eq!(read("no-store"), Some(Duration::ZERO));
        assert_eq!(read("max-age=60, no-cache"), Some(Duration::ZERO));
        assert_eq!(read("public"), None);
        assert_eq!(read("max-age=soon"), None);
        assert_eq!(max_age(&header::HeaderMap::new()), None);
    }
}
