//! The URL a proof names (`htu`) and the URL a request was sent to,
//! compared as RFC 9449 §4.3 says: without query and fragment, after
//! RFC 3986 syntax-based normalisation, and with `ws`/`http` and
//! `wss`/`https` the same scheme (a WebSocket handshake is an HTTP
//! request).

use std::fmt;

/// A request's target in the normal form proofs are compared in:
/// `http` or `https`, a lower-case host with its port unless it is the
/// scheme's default, and the path (`/` when empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetUrl {
    secure: bool,
    authority: String,
    path: String,
}

impl TargetUrl {
    /// The target of a request received over TLS (or not), for `host` (the
    /// `Host` header, or what a trusted proxy forwarded) and `path`.
    /// `None` for a host that is not one.
    pub fn of_request(secure: bool, host: &str, path: &str) -> Option<Self> {
        Some(Self {
            secure,
            authority: normal_authority(secure, host)?,
            path: normal_path(path),
        })
    }

    /// Parses an `htu` claim; `None` for anything but an absolute `http`,
    /// `https`, `ws` or `wss` URL with a host.
    pub fn parse(url: &str) -> Option<Self> {
        let (scheme, rest) = url.split_once("://")?;
        let secure = match scheme.to_ascii_lowercase().as_str() {
            "http" | "ws" => false,
            "https" | "wss" => true,
            _ => return None,
        };
        // Query and fragment are not part of the comparison.
        let rest = rest.split(['?', '#']).next().unwrap_or_default();
        let (authority, path) = match rest.find('/') {
            Some(slash) => rest.split_at(slash),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return None;
        }
        Some(Self {
            secure,
            authority: normal_authority(secure, authority)?,
            path: normal_path(path),
        })
    }
}

/// The host in lower case, with its port unless the port is the scheme's
/// default.
fn normal_authority(secure: bool, authority: &str) -> Option<String> {
    let (host, port) = match authority.rsplit_once(':') {
        // An IPv6 literal's colons are inside its brackets.
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (authority, None),
    };
    if host.is_empty()
        || !host
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-._~[]:%".contains(&byte))
    {
        return None;
    }
    let default = if secure { 443 } else { 80 };
    let port = match port {
        None | Some("") => None,
        Some(port) => {
            let port: u16 = port.parse().ok()?;
            (port != default).then_some(port)
        }
    };
    let host = host.to_ascii_lowercase();
    Some(match port {
        Some(port) => format!("{host}:{port}"),
        None => host,
    })
}

fn normal_path(path: &str) -> String {
    if path.is_empty() {
        "/".to_owned()
    } else {
        path.to_owned()
    }
}

impl fmt::Display for TargetUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.secure { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.authority, self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_compare_as_rfc_9449_says() {
        let served = TargetUrl::of_request(true, "Chat.Example:443", "/ws").unwrap();
        assert_eq!(served.to_string(), "https://chat.example/ws");
        let same = [
            "https://chat.example/ws",
            "wss://chat.example/ws",
            "WSS://CHAT.example:443/ws",
            "https://chat.example/ws?ticket=abc",
            "https://chat.example/ws#part",
        ];
        for url in same {
            assert_eq!(TargetUrl::parse(url).as_ref(), Some(&served), "{url}");
        }
        let different = [
            "http://chat.example/ws",
            "ws://chat.example/ws",
            "https://chat.example:8443/ws",
            "https://other.example/ws",
            "https://chat.example/ws/",
            "https://chat.example/WS",
            "https://chat.example/",
        ];
        for url in different {
            assert_ne!(TargetUrl::parse(url).as_ref(), Some(&served), "{url}");
        }
        let plain = TargetUrl::of_request(false, "127.0.0.1:3000", "/ws").unwrap();
        assert_eq!(TargetUrl::parse("ws://127.0.0.1:3000/ws"), Some(plain));
        let root = TargetUrl::of_request(false, "a.example", "").unwrap();
        assert_eq!(TargetUrl::parse("http://a.example"), Some(root));
        for url in [
            "ftp://a.example/ws",
            "https://user@a.example/ws",
            "https:///ws",
            "https://a.example:99999/ws",
            "https://a b/ws",
            "/ws",
        ] {
            assert_eq!(TargetUrl::parse(url), None, "{url}");
        }
    }
}
