//! The Origin allowlist: the defence against Cross-Site WebSocket Hijacking.
//!
//! A browser attaches cookies and cached Basic credentials to a WebSocket
//! handshake whatever page opened it, and the same-origin policy does not
//! apply to WebSockets. The `Origin` header is the only thing that tells a
//! page of yours from a page of an attacker's.

use http::HeaderMap;
use http::header::ORIGIN;

use crate::error::ConfigError;

/// Origins allowed to open a socket: exact scheme, host and port.
///
/// The scheme and host compare without case; a missing port is the scheme's
/// default (80 for `http`, 443 for `https`). `null`, paths, user info,
/// trailing dots and any other spelling are refused, so `https://app.example`
/// does not admit `https://app.example.evil.test`, `https://evil-app.example`
/// or `https://app.example@evil.test`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OriginAllowlist {
    origins: Vec<Origin>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

/// What the allowlist says of a request's `Origin`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OriginCheck {
    /// An allowed origin.
    Allowed,
    /// No `Origin` header: not a browser, or a browser that did not say.
    Absent,
    /// An origin not on the list, `null`, several headers, or an unreadable
    /// value.
    Refused,
}

impl OriginAllowlist {
    /// An allowlist of `origins`, each `scheme://host[:port]`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidOrigin`] for an entry that is not such an
    /// origin (with a path, user info, `null`, an empty list, …).
    pub fn new<I, S>(origins: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let origins = origins
            .into_iter()
            .map(|origin| parse(origin.as_ref().trim()).ok_or(ConfigError::InvalidOrigin))
            .collect::<Result<Vec<_>, _>>()?;
        if origins.is_empty() {
            return Err(ConfigError::InvalidOrigin);
        }
        Ok(Self { origins })
    }

    /// Whether `origin` (a header value) is on the list.
    pub fn allows(&self, origin: &str) -> bool {
        parse(origin).is_some_and(|origin| self.origins.contains(&origin))
    }

    pub(crate) fn check(&self, headers: &HeaderMap) -> OriginCheck {
        let mut values = headers.get_all(ORIGIN).iter();
        match (values.next(), values.next()) {
            (None, _) => OriginCheck::Absent,
            (Some(value), None) => match value.to_str() {
                Ok(origin) if self.allows(origin) => OriginCheck::Allowed,
                _ => OriginCheck::Refused,
            },
            (Some(_), Some(_)) => OriginCheck::Refused,
        }
    }
}

/// Parses a serialised origin (RFC 6454 §6.2): `scheme "://" host [ ":" port ]`.
fn parse(origin: &str) -> Option<Origin> {
    let (scheme, rest) = origin.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
        let (address, after) = bracketed.split_once(']')?;
        let valid = !address.is_empty()
            && address
                .bytes()
                .all(|byte| byte.is_ascii_hexdigit() || byte == b':' || byte == b'.');
        if !valid {
            return None;
        }
        let port = if after.is_empty() {
            None
        } else {
            Some(after.strip_prefix(':')?)
        };
        (format!("[{}]", address.to_ascii_lowercase()), port)
    } else {
        let (host, port) = match rest.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        };
        let valid = !host.is_empty()
            && !host.starts_with(['.', '-'])
            && !host.ends_with('.')
            && !host.contains("..")
            && host
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'.');
        if !valid {
            return None;
        }
        (host.to_ascii_lowercase(), port)
    };
    let port = match port {
        None => default_port,
        Some(digits) => {
            if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            digits.parse::<u16>().ok()?
        }
    };
    Some(Origin { scheme, host, port })
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn origins_match_exactly() {
        let list = OriginAllowlist::new([
            "http://127.0.0.1:3000",
            "http://localhost:3000",
            "https://App.Example",
            "http://[::1]:3000",
        ])
        .unwrap();
        struct Case {
            origin: &'static str,
            allowed: bool,
        }
        let cases = [
            Case {
                origin: "http://127.0.0.1:3000",
                allowed: true,
            },
            Case {
                origin: "http://LOCALHOST:3000",
                allowed: true,
            },
            Case {
                origin: "HTTP://localhost:3000",
                allowed: true,
            },
            Case {
                origin: "https://app.example",
                allowed: true,
            },
            Case {
                origin: "https://app.example:443",
                allowed: true,
            },
            Case {
                origin: "http://[::1]:3000",
                allowed: true,
            },
            Case {
                origin: "null",
                allowed: false,
            },
            Case {
                origin: "",
                allowed: false,
            },
            Case {
                origin: "http://localhost:3001",
                allowed: false,
            },
            Case {
                origin: "https://localhost:3000",
                allowed: false,
            },
            Case {
                origin: "http://localhost",
                allowed: false,
            },
            Case {
                origin: "http://app.example",
                allowed: false,
            },
            Case {
                origin: "https://app.example:8443",
                allowed: false,
            },
            Case {
                origin: "https://app.example.evil.test",
                allowed: false,
            },
            Case {
                origin: "https://evil-app.example",
                allowed: false,
            },
            Case {
                origin: "https://app.example.",
                allowed: false,
            },
            Case {
                origin: "https://app.example@evil.test",
                allowed: false,
            },
            Case {
                origin: "https://evil.test#app.example",
                allowed: false,
            },
            Case {
                origin: "https://app.example/",
                allowed: false,
            },
            Case {
                origin: "https://app.example:443/path",
                allowed: false,
            },
            Case {
                origin: "http://127.0.0.1:3000.evil.test",
                allowed: false,
            },
            Case {
                origin: "http://127.0.0.1.evil.test:3000",
                allowed: false,
            },
            Case {
                origin: "http://localhost:03000x",
                allowed: false,
            },
            Case {
                origin: "http://localhost:99999",
                allowed: false,
            },
            Case {
                origin: "http://lоcalhost:3000",
                allowed: false,
            },
            Case {
                origin: "ws://localhost:3000",
                allowed: false,
            },
            Case {
                origin: "http://[::1]",
                allowed: false,
            },
            Case {
                origin: " http://localhost:3000",
                allowed: false,
            },
        ];
        for case in cases {
            assert_eq!(list.allows(case.origin), case.allowed, "{:?}", case.origin);
        }
    }

    #[test]
    fn header_checks() {
        let list = OriginAllowlist::new(["https://app.example"]).unwrap();
        let mut headers = HeaderMap::new();
        assert_eq!(list.check(&headers), OriginCheck::Absent);
        headers.insert(ORIGIN, HeaderValue::from_static("https://app.example"));
        assert_eq!(list.check(&headers), OriginCheck::Allowed);
        headers.append(ORIGIN, HeaderValue::from_static("https://app.example"));
        assert_eq!(list.check(&headers), OriginCheck::Refused);
        headers.insert(
            ORIGIN,
            HeaderValue::from_bytes(b"https://app.ex\xffample").unwrap(),
        );
        assert_eq!(list.check(&headers), OriginCheck::Refused);
    }

    #[test]
    fn bad_allowlist_entries_are_config_errors() {
        for entry in [
            "null",
            "app.example",
            "https://app.example/",
            "ftp://x",
            "https://a@b",
        ] {
            assert_eq!(
                OriginAllowlist::new([entry]),
                Err(ConfigError::InvalidOrigin),
                "{entry}"
            );
        }
        assert_eq!(
            OriginAllowlist::new(Vec::<String>::new()),
            Err(ConfigError::InvalidOrigin)
        );
    }
}
