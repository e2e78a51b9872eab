//! Which address a request comes from: the socket peer, or the client a
//! trusted reverse proxy names in `X-Forwarded-For` / `Forwarded`.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;

/// The client of a request, as the
/// [`HandshakeLayer`](crate::handshake::HandshakeLayer) found it: the socket
/// peer, or — behind a trusted proxy — the address the proxy named (with
/// port 0). The layer puts it in the extensions of every request it lets
/// through, so what comes after (a [`GatedUpgrade`]'s session, its audit
/// events) names the same client.
///
/// [`GatedUpgrade`]: crate::socket::GatedUpgrade
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddr(pub SocketAddr);

/// The address audit events name: the peer, port and all, when it is the
/// client; else the client a trusted proxy named, at port 0.
pub(crate) fn audited_peer(peer: Option<SocketAddr>, client: Option<IpAddr>) -> Option<SocketAddr> {
    peer.filter(|peer| Some(peer.ip()) == client)
        .or_else(|| client.map(|address| SocketAddr::new(address, 0)))
}

/// The headers [`client_address`] reads, copied out of a request for later.
pub(crate) fn forwarding_headers(headers: &HeaderMap) -> HeaderMap {
    let mut kept = HeaderMap::new();
    for name in ["x-forwarded-for", "forwarded"] {
        for value in headers.get_all(name) {
            kept.append(name, value.clone());
        }
    }
    kept
}

/// The client's address: the socket peer, unless the peer is one of
/// `trusted_proxies`; then the right-most address in `X-Forwarded-For` (or
/// `Forwarded: for=`) that is not itself a trusted proxy. Headers from an
/// untrusted peer are ignored: anyone can send them.
pub(crate) fn client_address(
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
    trusted_proxies: &[IpAddr],
) -> Option<IpAddr> {
    let peer = peer?.ip();
    if !trusted_proxies.contains(&peer) {
        return Some(peer);
    }
    let forwarded_for = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .map(str::to_owned)
        .collect::<Vec<_>>();
    let forwarded = headers
        .get_all("forwarded")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (name, value) = pair.trim().split_once('=')?;
                name.eq_ignore_ascii_case("for")
                    .then(|| value.trim_matches('"').to_owned())
            })
        })
        .collect::<Vec<_>>();
    let chain = if forwarded.is_empty() {
        forwarded_for
    } else {
        forwarded
    };
    // Walk from the proxy nearest to us outwards; the first hop we do not
    // trust is the client. Anything unparseable ends the walk at the peer.
    for hop in chain.iter().rev() {
        let Some(address) = parse_hop(hop) else {
            return Some(peer);
        };
        if !trusted_proxies.contains(&address) {
            return Some(address);
        }
    }
    Some(peer)
}

/// Whether a trusted proxy says the client's connection to it was HTTPS
/// (`X-Forwarded-Proto: https` or `Forwarded: proto=https`). Always false
/// for a peer that is not a trusted proxy.
pub(crate) fn forwarded_https(
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
    trusted_proxies: &[IpAddr],
) -> bool {
    forwarded_parameter(peer, headers, trusted_proxies, "proto", "x-forwarded-proto")
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
}

/// The host a trusted proxy says the client asked for (`Forwarded:
/// host=…` or `X-Forwarded-Host`). `None` for a peer that is not a trusted
/// proxy, or when it says nothing.
pub(crate) fn forwarded_host(
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
    trusted_proxies: &[IpAddr],
) -> Option<String> {
    forwarded_parameter(peer, headers, trusted_proxies, "host", "x-forwarded-host")
}

/// The first hop's `parameter` of `Forwarded`, else the first value of the
/// `x_header`, when the peer is a trusted proxy.
fn forwarded_parameter(
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
    trusted_proxies: &[IpAddr],
    parameter: &str,
    x_header: &str,
) -> Option<String> {
    if !peer.is_some_and(|peer| trusted_proxies.contains(&peer.ip())) {
        return None;
    }
    let x_value = headers
        .get(x_header)
        .and_then(|value| value.to_str().ok())
        .map(|value| value.split(',').next().unwrap_or("").trim().to_owned());
    let forwarded = headers
        .get("forwarded")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            // The first element is the hop nearest the client.
            value.split(',').next()?.split(';').find_map(|pair| {
                let (name, value) = pair.trim().split_once('=')?;
                name.eq_ignore_ascii_case(parameter)
                    .then(|| value.trim_matches('"').to_owned())
            })
        });
    forwarded.or(x_value).filter(|value| !value.is_empty())
}

/// `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]:4711`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(address) = hop.parse::<IpAddr>() {
        return Some(address);
    }
    if let Ok(socket) = hop.parse::<SocketAddr>() {
        return Some(socket.ip());
    }
    hop.strip_prefix('[')?.split_once(']')?.0.parse().ok()
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let inner: IpAddr = "10.0.0.2".parse().unwrap();
        let trusted = [proxy, inner];
        let from = |peer: &str| Some(SocketAddr::new(peer.parse().unwrap(), 5000));
        struct Case {
            name: &'static str,
            peer: &'static str,
            headers: &'static [(&'static str, &'static str)],
            expect: &'static str,
        }
        let cases = [
            Case {
                name: "no proxy",
                peer: "198.51.100.7",
                headers: &[],
                expect: "198.51.100.7",
            },
            Case {
                name: "spoofed header from an untrusted peer",
                peer: "198.51.100.7",
                headers: &[("x-forwarded-for", "1.2.3.4")],
                expect: "198.51.100.7",
            },
            Case {
                name: "trusted proxy",
                peer: "10.0.0.1",
                headers: &[("x-forwarded-for", "203.0.113.9")],
                expect: "203.0.113.9",
            },
            Case {
                name: "client prepends a lie",
                peer: "10.0.0.1",
                headers: &[("x-forwarded-for", "1.2.3.4, 203.0.113.9")],
                expect: "203.0.113.9",
            },
            Case {
                name: "two trusted hops",
                peer: "10.0.0.1",
                headers: &[("x-forwarded-for", "203.0.113.9, 10.0.0.2")],
                expect: "203.0.113.9",
            },
            Case {
                name: "Forwarded wins",
                peer: "10.0.0.1",
                headers: &[
                    ("forwarded", "for=192.0.2.60;proto=https"),
                    ("x-forwarded-for", "1.2.3.4"),
                ],
                expect: "192.0.2.60",
            },
            Case {
                name: "Forwarded IPv6 with port",
                peer: "10.0.0.1",
                headers: &[("forwarded", "for=\"[2001:db8::1]:4711\"")],
                expect: "2001:db8::1",
            },
            Case {
                name: "garbage ends at the peer",
                peer: "10.0.0.1",
                headers: &[("x-forwarded-for", "not-an-ip")],
                expect: "10.0.0.1",
            },
            Case {
                name: "trusted proxy without header",
                peer: "10.0.0.1",
                headers: &[],
                expect: "10.0.0.1",
            },
        ];
        for case in cases {
            let got = client_address(from(case.peer), &headers(case.headers), &trusted);
            assert_eq!(got, Some(case.expect.parse().unwrap()), "{}", case.name);
        }
        assert_eq!(client_address(None, &HeaderMap::new(), &trusted), None);
    }

    #[test]
    fn https_is_believed_only_from_trusted_proxies() {
        let trusted: [IpAddr; 1] = ["10.0.0.1".parse().unwrap()];
        let from = |peer: &str| Some(SocketAddr::new(peer.parse().unwrap(), 5000));
        assert!(forwarded_https(
            from("10.0.0.1"),
            &headers(&[("x-forwarded-proto", "https")]),
            &trusted
        ));
        assert!(forwarded_https(
            from("10.0.0.1"),
            &headers(&[("forwarded", "for=1.2.3.4;proto=https")]),
            &trusted
        ));
        assert!(!forwarded_https(
            from("10.0.0.1"),
            &headers(&[("x-forwarded-proto", "http")]),
            &trusted
        ));
        assert!(!forwarded_https(
            from("198.51.100.7"),
            &headers(&[("x-forwarded-proto", "https")]),
            &trusted
        ));
        assert!(!forwarded_https(
            from("10.0.0.1"),
            &HeaderMap::new(),
            &trusted
        ));
    }
}
