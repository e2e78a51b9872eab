//! Taking credentials out of a handshake request, one transport at a time.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;
use http::header::{AUTHORIZATION, COOKIE};

use crate::authenticate::Credential;
use crate::certificate::ClientCertificate;
use crate::handshake::subprotocol::Offer;
use crate::principal::Transport;
use crate::refusal::RejectionReason;
use crate::secret::Secret;

/// Query parameters that hold raw tokens in the wild. A handshake carrying
/// one is refused: the URL, token included, lands in access logs, proxies
/// and browser history.
const RAW_TOKEN_PARAMETERS: &[&str] = &[
    "access_token",
    "token",
    "id_token",
    "jwt",
    "bearer",
    "auth",
    "authorization",
];

/// The header of a DPoP proof (RFC 9449 §4.1).
static DPOP: http::HeaderName = http::HeaderName::from_static("dpop");

/// The query parameter that carries a ticket.
pub(crate) const TICKET_PARAMETER: &str = "ticket";

/// The parts of a request the transports read.
pub(crate) struct RequestCredentials<'a> {
    pub(crate) headers: &'a HeaderMap,
    pub(crate) query: Option<&'a str>,
    pub(crate) offer: &'a Offer,
    pub(crate) cookie_name: &'a str,
    /// The parameter read by the dangerous query-token transport.
    pub(crate) query_token_parameter: Option<&'a str>,
    /// The client certificate of the connection (or a trusted proxy's
    /// forwarded one).
    pub(crate) certificate: Option<&'a ClientCertificate>,
}

impl RequestCredentials<'_> {
    /// Refuses raw tokens in the query string (other than the parameter the
    /// dangerous opt-in reads).
    pub(crate) fn check_query(&self) -> Result<(), RejectionReason> {
        let refused = query_pairs(self.query).any(|(name, _)| {
            RAW_TOKEN_PARAMETERS
                .iter()
                .any(|raw| raw.eq_ignore_ascii_case(name))
                && self.query_token_parameter != Some(name)
        });
        if refused {
            Err(RejectionReason::TokenInQuery)
        } else {
            Ok(())
        }
    }

    /// The credential `transport` carries: `Ok(None)` when it carries none.
    pub(crate) fn extract(
        &self,
        transport: Transport,
    ) -> Result<Option<Credential>, RejectionReason> {
        match transport {
            // `DPoP` is the scheme of a key-bound token (RFC 9449 §7.1):
            // the same transport, with a proof beside it.
            Transport::Bearer => Ok(self
                .authorization("Bearer")?
                .or(self.authorization("DPoP")?)
                .map(|token| Credential::Bearer(Secret::new(token)))),
            Transport::Basic => self.authorization("Basic")?.map(parse_basic).transpose(),
            Transport::Subprotocol => Ok(self.offer.token.clone().map(Credential::Bearer)),
            Transport::Cookie => Ok(self
                .cookie()?
                .map(|token| Credential::Bearer(Secret::new(token)))),
            Transport::Ticket => Ok(self
                .single_query_value(TICKET_PARAMETER)?
                .map(|ticket| Credential::Ticket(Secret::new(ticket)))),
            Transport::QueryToken => match self.query_token_parameter {
                Some(parameter) => Ok(self
                    .single_query_value(parameter)?
                    .map(|token| Credential::Bearer(Secret::new(token)))),
                None => Ok(None),
            },
            // Carried after the upgrade, by a `DeferredUpgrade`, never in the
            // handshake request.
            Transport::FirstMessage => Ok(None),
            Transport::Certificate => Ok(self.certificate.cloned().map(Credential::Certificate)),
        }
    }

    /// Whether `Authorization` uses the `DPoP` scheme.
    pub(crate) fn uses_dpop_scheme(&self) -> bool {
        matches!(self.authorization("DPoP"), Ok(Some(_)))
    }

    /// The DPoP proof: the `DPoP` header (servers) or the `wsgate.dpop.`
    /// subprotocol entry (browsers). Two of them, in whatever places, are
    /// refused: which would be the one?
    pub(crate) fn dpop_proof(&self) -> Result<Option<Secret>, RejectionReason> {
        let mut headers = self.headers.get_all(&DPOP).iter();
        let header = match (headers.next(), headers.next()) {
            (None, _) => None,
            (Some(value), None) => Some(
                value
                    .to_str()
                    .map_err(|_| RejectionReason::InvalidDpopProof)?,
            ),
            (Some(_), Some(_)) => return Err(RejectionReason::InvalidDpopProof),
        };
        match (header, &self.offer.proof) {
            (Some(_), Some(_)) => Err(RejectionReason::InvalidDpopProof),
            (Some(header), None) => Ok(Some(Secret::new(header))),
            (None, entry) => Ok(entry.clone()),
        }
    }

    /// The credentials of `Authorization` when its scheme is `scheme`
    /// (compared without case, RFC 9110 §11.1).
    fn authorization(&self, scheme: &str) -> Result<Option<&str>, RejectionReason> {
        let mut values = self.headers.get_all(AUTHORIZATION).iter();
        let value = match (values.next(), values.next()) {
            (None, _) => return Ok(None),
            (Some(value), None) => value,
            (Some(_), Some(_)) => return Err(RejectionReason::AmbiguousCredentials),
        };
        let value = value
            .to_str()
            .map_err(|_| RejectionReason::MalformedCredentials)?;
        let (given_scheme, credentials) = value.split_once(' ').unwrap_or((value, ""));
        if !given_scheme.eq_ignore_ascii_case(scheme) {
            return Ok(None);
        }
        // The scheme and the credentials are separated by one or more
        // spaces (`1*SP`, RFC 9110 §11.4). Anything odd in the credentials
        // themselves (inner spaces, padding) is left for the authenticator
        // to refuse as invalid.
        Ok(Some(credentials.trim_start_matches(' ')))
    }

    fn cookie(&self) -> Result<Option<&str>, RejectionReason> {
        let mut found = None;
        for header in self.headers.get_all(COOKIE) {
            let Ok(header) = header.to_str() else {
                continue;
            };
            for pair in header.split(';') {
                let Some((name, value)) = pair.trim().split_once('=') else {
                    continue;
                };
                if name == self.cookie_name {
                    if found.is_some() {
                        return Err(RejectionReason::AmbiguousCredentials);
                    }
                    let value = value
                        .strip_prefix('"')
                        .and_then(|value| value.strip_suffix('"'))
                        .unwrap_or(value);
                    found = Some(value);
                }
            }
        }
        Ok(found)
    }

    fn single_query_value(&self, parameter: &str) -> Result<Option<&str>, RejectionReason> {
        let mut values = query_pairs(self.query).filter(|(name, _)| *name == parameter);
        match (values.next(), values.next()) {
            (None, _) => Ok(None),
            (Some((_, value)), None) => Ok(Some(value)),
            (Some(_), Some(_)) => Err(RejectionReason::AmbiguousCredentials),
        }
    }
}

/// `name=value` pairs of a query string, undecoded: tickets and tokens are
/// made of characters that need no percent-encoding, and an encoded one is
/// refused as not well-formed.
fn query_pairs(query: Option<&str>) -> impl Iterator<Item = (&str, &str)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

/// Removes credential parameters from a query, so the URI handed on (and
/// logged by whatever runs after) holds none.
pub(crate) fn strip_query_credentials(query: &str, query_token_parameter: Option<&str>) -> String {
    query
        .split('&')
        .filter(|pair| {
            let name = pair.split_once('=').map_or(*pair, |(name, _)| name);
            !pair.is_empty() && name != TICKET_PARAMETER && Some(name) != query_token_parameter
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn parse_basic(encoded: &str) -> Result<Credential, RejectionReason> {
    let decoded = STANDARD
        .decode(encoded)
        .map_err(|_| RejectionReason::MalformedCredentials)?;
    let decoded = String::from_utf8(decoded).map_err(|_| RejectionReason::MalformedCredentials)?;
    let (username, password) = decoded
        .split_once(':')
        .ok_or(RejectionReason::MalformedCredentials)?;
    if username.is_empty() {
        return Err(RejectionReason::MalformedCredentials);
    }
    Ok(Credential::Basic {
        username: username.to_owned(),
        password: Secret::new(password),
    })
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn request<'a>(
        headers: &'a HeaderMap,
        query: Option<&'a str>,
        offer: &'a Offer,
    ) -> RequestCredentials<'a> {
        RequestCredentials {
            headers,
            query,
            offer,
            cookie_name: "wsgate_token",
            query_token_parameter: None,
            certificate: None,
        }
    }

    fn describe(credential: Result<Option<Credential>, RejectionReason>) -> String {
        match credential {
            Ok(None) => "none".to_owned(),
            Ok(Some(Credential::Bearer(token))) => format!("bearer {}", token.expose()),
            Ok(Some(Credential::Basic { username, password })) => {
                format!("basic {username}:{}", password.expose())
            }
            Ok(Some(Credential::Ticket(ticket))) => format!("ticket {}", ticket.expose()),
            Ok(Some(Credential::Certificate(certificate))) => {
                format!("certificate {}", certificate.fingerprint())
            }
            Err(reason) => format!("refused: {reason}"),
        }
    }

    #[test]
    fn header_transports() {
        struct Case {
            name: &'static str,
            headers: &'static [(&'static str, &'static str)],
            transport: Transport,
            expect: &'static str,
        }
        let cases = [
            Case {
                name: "bearer",
                headers: &[("authorization", "Bearer abc")],
                transport: Transport::Bearer,
                expect: "bearer abc",
            },
            Case {
                name: "bearer scheme any case",
                headers: &[("authorization", "bEARER abc")],
                transport: Transport::Bearer,
                expect: "bearer abc",
            },
            Case {
                name: "bearer ignores basic",
                headers: &[("authorization", "Basic YTpi")],
                transport: Transport::Bearer,
                expect: "none",
            },
            Case {
                name: "bearer after several spaces (1*SP)",
                headers: &[("authorization", "Bearer   abc")],
                transport: Transport::Bearer,
                expect: "bearer abc",
            },
            Case {
                name: "bearer keeps trailing spaces for the verifier",
                headers: &[("authorization", "Bearer abc ")],
                transport: Transport::Bearer,
                expect: "bearer abc ",
            },
            Case {
                name: "basic after two spaces",
                headers: &[("authorization", "Basic  YTpi")],
                transport: Transport::Basic,
                expect: "basic a:b",
            },
            Case {
                name: "two authorization headers",
                headers: &[("authorization", "Bearer a"), ("authorization", "Bearer b")],
                transport: Transport::Bearer,
                expect: "refused: ambiguous credentials",
            },
            Case {
                name: "basic",
                headers: &[("authorization", "Basic YWxpY2U6cHc6d2l0aDpjb2xvbnM=")],
                transport: Transport::Basic,
                expect: "basic alice:pw:with:colons",
            },
            Case {
                name: "basic not base64",
                headers: &[("authorization", "Basic !!!")],
                transport: Transport::Basic,
                expect: "refused: malformed credentials",
            },
            Case {
                name: "basic without colon",
                headers: &[("authorization", "Basic YWxpY2U=")],
                transport: Transport::Basic,
                expect: "refused: malformed credentials",
            },
            Case {
                name: "basic empty user",
                headers: &[("authorization", "Basic OnB3")],
                transport: Transport::Basic,
                expect: "refused: malformed credentials",
            },
            Case {
                name: "cookie",
                headers: &[("cookie", "a=1; wsgate_token=tok; b=2")],
                transport: Transport::Cookie,
                expect: "bearer tok",
            },
            Case {
                name: "quoted cookie",
                headers: &[("cookie", "wsgate_token=\"tok\"")],
                transport: Transport::Cookie,
                expect: "bearer tok",
            },
            Case {
                name: "cookie prefix is not the cookie",
                headers: &[("cookie", "xwsgate_token=tok")],
                transport: Transport::Cookie,
                expect: "none",
            },
            Case {
                name: "two cookies",
                headers: &[("cookie", "wsgate_token=a"), ("cookie", "wsgate_token=b")],
                transport: Transport::Cookie,
                expect: "refused: ambiguous credentials",
            },
        ];
        let offer = Offer::default();
        for case in cases {
            let mut headers = HeaderMap::new();
            for (name, value) in case.headers {
                headers.append(*name, HeaderValue::from_static(value));
            }
            let got = describe(request(&headers, None, &offer).extract(case.transport));
            assert_eq!(got, case.expect, "{}", case.name);
        }
    }

    #[test]
    fn query_transports() {
        let headers = HeaderMap::new();
        let offer = Offer::default();
        let ticket = request(&headers, Some("room=1&ticket=abc"), &offer);
        assert_eq!(describe(ticket.extract(Transport::Ticket)), "ticket abc");
        assert_eq!(describe(ticket.extract(Transport::QueryToken)), "none");
        let twice = request(&headers, Some("ticket=a&ticket=b"), &offer);
        assert_eq!(
            describe(twice.extract(Transport::Ticket)),
            "refused: ambiguous credentials"
        );

        for query in ["access_token=x", "a=1&TOKEN=x", "jwt=x", "id_token"] {
            assert_eq!(
                request(&headers, Some(query), &offer).check_query(),
                Err(RejectionReason::TokenInQuery),
                "{query}"
            );
        }
        assert_eq!(
            request(&headers, Some("ticket=x&room=a"), &offer).check_query(),
            Ok(())
        );

        let mut dangerous = request(&headers, Some("access_token=x"), &offer);
        dangerous.query_token_parameter = Some("access_token");
        assert_eq!(dangerous.check_query(), Ok(()));
        assert_eq!(
            describe(dangerous.extract(Transport::QueryToken)),
            "bearer x"
        );
    }

    #[test]
    fn credentials_are_stripped_from_the_query() {
        assert_eq!(
            strip_query_credentials("room=1&ticket=abc&x=2", None),
            "room=1&x=2"
        );
        assert_eq!(
            strip_query_credentials("access_token=t", Some("access_token")),
            ""
        );
    }
}
