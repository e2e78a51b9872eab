//! Several authenticators tried in order.

use crate::authenticate::{Authenticator, Credential};
use crate::error::{Error, ErrorKind};
use crate::principal::Principal;
use crate::refusal::{Precedence, RejectionReason};

/// Tries `first`, then `second`. Built by [`Authenticator::or`]; chains nest,
/// so `a.or(b).or(c)` tries `a`, `b`, `c`.
///
/// The first success wins. A disabled account stops the chain at once. When
/// every member refuses, the most telling refusal is returned: a backend
/// failure (503) before a bad credential (401) before "unsupported" — so a
/// chain fails closed, never open.
#[derive(Clone, Debug)]
pub struct Chain<A, B> {
    first: A,
    second: B,
}

impl<A, B> Chain<A, B> {
    /// `first`, then `second`.
    pub fn new(first: A, second: B) -> Self {
        Self { first, second }
    }
}

fn precedence(error: &Error) -> Precedence {
    RejectionReason::from_error(error).precedence()
}

impl<A: Authenticator, B: Authenticator> Authenticator for Chain<A, B> {
    async fn authenticate(&self, credential: &Credential) -> Result<Principal, Error> {
        let first_error = match self.first.authenticate(credential).await {
            Ok(principal) => return Ok(principal),
            Err(error) => error,
        };
        if matches!(first_error.kind(), ErrorKind::AccountDisabled) {
            return Err(first_error);
        }
        match self.second.authenticate(credential).await {
            Ok(principal) => Ok(principal),
            Err(second_error) if precedence(&second_error) > precedence(&first_error) => {
                Err(second_error)
            }
            Err(_) => Err(first_error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{CredentialError, TokenError};
    use crate::principal::AuthMethod;
    use crate::secret::Secret;

    /// An authenticator that always gives the same answer.
    #[derive(Clone)]
    struct Fixed(fn() -> Result<Principal, Error>);

    impl Authenticator for Fixed {
        async fn authenticate(&self, _: &Credential) -> Result<Principal, Error> {
            (self.0)()
        }
    }

    fn ok() -> Result<Principal, Error> {
        Ok(Principal::new("alice", AuthMethod::Token))
    }
    fn unsupported() -> Result<Principal, Error> {
        Err(ErrorKind::UnsupportedCredential.into())
    }
    fn bad_token() -> Result<Principal, Error> {
        Err(TokenError::InvalidSignature.into())
    }
    fn bad_password() -> Result<Principal, Error> {
        Err(CredentialError::InvalidCredentials.into())
    }
    fn down() -> Result<Principal, Error> {
        Err(Error::backend("down"))
    }
    fn disabled() -> Result<Principal, Error> {
        Err(ErrorKind::AccountDisabled.into())
    }

    #[tokio::test]
    async fn chain_outcomes() {
        struct Case {
            name: &'static str,
            first: fn() -> Result<Principal, Error>,
            second: fn() -> Result<Principal, Error>,
            expect: &'static str,
        }
        let cases = [
            Case {
                name: "first accepts",
                first: ok,
                second: down,
                expect: "ok",
            },
            Case {
                name: "unsupported falls through",
                first: unsupported,
                second: ok,
                expect: "ok",
            },
            Case {
                name: "bad token falls through to a second verifier",
                first: bad_token,
                second: ok,
                expect: "ok",
            },
            Case {
                name: "both unsupported",
                first: unsupported,
                second: unsupported,
                expect: "unsupported credential",
            },
            Case {
                name: "bad beats unsupported",
                first: unsupported,
                second: bad_password,
                expect: "invalid credentials",
            },
            Case {
                name: "first bad kept over second unsupported",
                first: bad_token,
                second: unsupported,
                expect: "invalid signature",
            },
            Case {
                name: "backend failure beats a bad credential",
                first: bad_token,
                second: down,
                expect: "backend unavailable",
            },
            Case {
                name: "disabled stops the chain",
                first: disabled,
                second: ok,
                expect: "account disabled",
            },
        ];
        let credential = Credential::Bearer(Secret::new("t"));
        for case in cases {
            let chain = Fixed(case.first).or(Fixed(case.second));
            let outcome = match chain.authenticate(&credential).await {
                Ok(_) => "ok".to_owned(),
                Err(error) => error.to_string(),
            };
            assert_eq!(outcome, case.expect, "{}", case.name);
        }
    }
}
