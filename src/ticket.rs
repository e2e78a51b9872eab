//! Single-use tickets: a short-lived handle a browser puts in `?ticket=`
//! instead of a token.
//!
//! An authenticated client (holding a token) asks the application for a
//! ticket, then opens the WebSocket with `?ticket=<ticket>`. The ticket works
//! once, for at most 30 seconds, so the URL that ends up in access logs and
//! browser history is worthless by the time anyone reads it.
//!
//! # Security
//!
//! - 256 random bits, base64url.
//! - Stored as a SHA-256 digest only, compared in constant time.
//! - Redeemed atomically: of many concurrent redemptions, exactly one wins.
//! - Lifetime at most 30 s (defaults to 30 s).

use std::time::Duration;

use crate::clock::Clock;
use crate::error::{ConfigError, CredentialError, Error, ErrorKind};
use crate::principal::{AuthMethod, Principal};
use crate::random::random_urlsafe;
use crate::secret::Secret;
use crate::store::{InMemoryTicketStore, TicketDigest, TicketStore};

/// The longest a ticket may live.
pub const MAX_TICKET_LIFETIME: Duration = Duration::from_secs(30);

/// Length of a ticket: 32 random bytes in base64url without padding.
const TICKET_CHARS: usize = 43;

/// Refuses a ticket lifetime outside 1 to 30 seconds.
pub(crate) fn check_lifetime(lifetime: Duration) -> Result<(), ConfigError> {
    if lifetime < Duration::from_secs(1) || lifetime > MAX_TICKET_LIFETIME {
        return Err(ConfigError::TicketLifetime);
    }
    Ok(())
}

/// Issues and redeems single-use tickets over a [`TicketStore`].
#[derive(Clone, Debug)]
pub struct Tickets<S = InMemoryTicketStore> {
    store: S,
    lifetime: Duration,
    clock: Clock,
    max_per_subject: Option<usize>,
}

/// A freshly issued ticket.
#[derive(Debug, Clone)]
pub struct IssuedTicket {
    ticket: Secret,
    lifetime: Duration,
}

impl IssuedTicket {
    /// The ticket, for the client's `?ticket=`. Never log it.
    pub fn ticket(&self) -> &Secret {
        &self.ticket
    }

    /// How long it stays redeemable.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }
}

impl Tickets<InMemoryTicketStore> {
    /// Tickets in an [`InMemoryTicketStore`] (single node).
    pub fn in_memory() -> Self {
        Self::new(InMemoryTicketStore::new())
    }
}

impl<S: TicketStore> Tickets<S> {
    /// Tickets in `store`, living 30 seconds.
    pub fn new(store: S) -> Self {
        Self {
            store,
            lifetime: MAX_TICKET_LIFETIME,
            clock: Clock::system(),
            max_per_subject: None,
        }
    }

    /// How long a ticket lives. Defaults to 30 s.
    ///
    /// # Errors
    ///
    /// [`ConfigError::TicketLifetime`] outside 1 to 30 seconds.
    pub fn lifetime(mut self, lifetime: Duration) -> Result<Self, ConfigError> {
        check_lifetime(lifetime)?;
        self.lifetime = lifetime;
        Ok(self)
    }

    /// The clock expiry is measured with. Defaults to the system clock.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// At most `max` unredeemed tickets per subject at once: a token that
    /// leaked cannot mint tickets without end. A redeemed or expired
    /// ticket frees its place at once. `None` (the default) sets no limit.
    /// Counted by the store ([`TicketStore::insert_within`]), so across
    /// processes with a shared store.
    pub fn max_per_subject(mut self, max: Option<usize>) -> Self {
        self.max_per_subject = max;
        self
    }

    /// Issues a ticket that redeems to `principal`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TooManyTickets`] when the subject holds its limit of
    /// unredeemed tickets, a backend error when the store fails.
    pub async fn issue(&self, principal: &Principal) -> Result<IssuedTicket, Error> {
        let ticket = random_urlsafe::<32>()?;
        let now = self.clock.now();
        let expires_at = now + self.lifetime;
        let digest = TicketDigest::of(&ticket);
        let principal = principal.clone();
        let stored = match self.max_per_subject {
            None => self
                .store
                .insert(digest, principal, expires_at)
                .await
                .map(|()| true),
            Some(max) => {
                self.store
                    .insert_within(digest, principal, expires_at, now, max)
                    .await
            }
        }
        .map_err(Error::backend)?;
        if !stored {
            // By then the oldest of the subject's tickets has expired.
            return Err(ErrorKind::TooManyTickets {
                retry_after: self.lifetime,
            }
            .into());
        }
        Ok(IssuedTicket {
            ticket: Secret::new(ticket),
            lifetime: self.lifetime,
        })
    }

    /// Redeems a ticket: returns its principal (authenticated by
    /// [`AuthMethod::Ticket`]) and makes the ticket unusable.
    ///
    /// # Errors
    ///
    /// [`CredentialError::InvalidTicket`] for an unknown, used or expired
    /// ticket; a backend error when the store fails.
    pub async fn redeem(&self, ticket: &str) -> Result<Principal, Error> {
        let well_formed = ticket.len() == TICKET_CHARS
            && ticket
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
        if !well_formed {
            return Err(CredentialError::InvalidTicket.into());
        }
        let principal = self
            .store
            .take(&TicketDigest::of(ticket), self.clock.now())
            .await
            .map_err(Error::backend)?
            .ok_or(CredentialError::InvalidTicket)?;
        Ok(principal.with_method(AuthMethod::Ticket))
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    fn invalid_ticket(error: &Error) -> bool {
        matches!(
            error.kind(),
            crate::ErrorKind::Credentials(CredentialError::InvalidTicket)
        )
    }

    #[tokio::test]
    async fn tickets_are_single_use_and_expire() {
        let clock = Clock::manual(SystemTime::UNIX_EPOCH + Duration::from_secs(5_000));
        let tickets = Tickets::in_memory()
            .lifetime(Duration::from_secs(10))
            .unwrap()
            .clock(clock.clone());
        let alice = Principal::new("alice", AuthMethod::Token).with_roles(["user"]);

        let issued = tickets.issue(&alice).await.unwrap();
        assert_eq!(issued.ticket().len(), TICKET_CHARS);
        let redeemed = tickets.redeem(issued.ticket().expose()).await.unwrap();
        assert_eq!(redeemed.subject(), "alice");
        assert_eq!(redeemed.method(), AuthMethod::Ticket);
        assert!(invalid_ticket(
            &tickets.redeem(issued.ticket().expose()).await.unwrap_err()
        ));

        let stale = tickets.issue(&alice).await.unwrap();
        clock.advance(Duration::from_secs(10));
        assert!(invalid_ticket(
            &tickets.redeem(stale.ticket().expose()).await.unwrap_err()
        ));

        assert!(invalid_ticket(&tickets.redeem("short").await.unwrap_err()));
    }

    #[test]
    fn lifetime_is_bounded() {
        assert!(
            Tickets::in_memory()
                .lifetime(Duration::from_secs(31))
                .is_err()
        );
        assert!(Tickets::in_memory().lifetime(Duration::ZERO).is_err());
        assert!(
            Tickets::in_memory()
                .lifetime(Duration::from_secs(30))
                .is_ok()
        );
    }
}
