//! One application instance over Redis stores, for the tests of several
//! processes; the Redis server and the proxy are the test kit's.

pub use wsgate_testkit::redis::*;

use axum::Router;
use axum::routing::get;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use wsgate::authenticate::{Authenticator, BoxedAuthenticator};
use wsgate::redis::RedisStores;
use wsgate::{AuthMethod, Gate, Principal, Transport};

use super::{Handshake, Keys, connect, serve};

/// How long an instance's sockets stay open without contact with Redis.
pub const STALENESS: Duration = Duration::from_secs(3);

/// How long an instance's socket leases last unless renewed, by default
/// (renewed every second).
pub const SOCKET_LEASE: Duration = Duration::from_secs(3);

/// The Origin that Basic handshakes come from.
const ORIGIN: &str = "http://app.test";

/// One application instance: a gate over Redis stores reached at `url`.
pub struct Instance {
    pub addr: SocketAddr,
    pub gate: Gate,
    /// The failure limiter its Basic handshakes (and a login route) use.
    pub limiter: wsgate::redis::RedisFailureLimiter,
    /// A valid token nobody revokes, to see whether the instance serves.
    probe: String,
}

impl Instance {
    pub async fn start(url: &str, keys: &Keys) -> Self {
        let instance = Self::serve_with(url, keys, None::<BoxedAuthenticator>, None).await;
        instance.wait_current().await;
        instance
    }

    /// An instance that serves at once, before its first contact with
    /// Redis.
    pub async fn start_unsynced(url: &str, keys: &Keys) -> Self {
        Self::serve_with(url, keys, None::<BoxedAuthenticator>, None).await
    }

    /// An instance whose subjects hold at most `max` sockets each, counted
    /// in Redis with every other such instance, on leases of `lease`.
    pub async fn start_with_socket_limit(
        url: &str,
        keys: &Keys,
        max: usize,
        at_limit: wsgate::store::AtSocketLimit,
        lease: Duration,
    ) -> Self {
        let limit = Some((max, at_limit, lease));
        let instance = Self::serve_with(url, keys, None::<BoxedAuthenticator>, limit).await;
        instance.wait_current().await;
        instance
    }

    /// An instance that also takes Basic handshakes against `users` (one
    /// credential store several instances share, as processes share a
    /// database).
    pub async fn start_with_users(url: &str, keys: &Keys, users: impl Authenticator) -> Self {
        let instance = Self::serve_with(url, keys, Some(users), None).await;
        instance.wait_current().await;
        instance
    }

    async fn serve_with(
        url: &str,
        keys: &Keys,
        users: Option<impl Authenticator>,
        socket_limit: Option<(usize, wsgate::store::AtSocketLimit, Duration)>,
    ) -> Self {
        let lease = socket_limit.map_or(SOCKET_LEASE, |(_, _, lease)| lease);
        let stores = RedisStores::builder(url)
            .max_staleness(STALENESS)
            .stream_length(5)
            .command_timeout(Duration::from_millis(800))
            .socket_lease(lease)
            .build()
            .unwrap();
        let limiter = stores.failure_limiter(wsgate::limit::FailureLimits::default());
        let dpop = wsgate::dpop::DpopVerifier::builder()
            .replays(stores.proof_replays())
            .build();
        let mut gate = Gate::builder(keys.verifier())
            .dpop_verifier(dpop)
            .revocations(stores.revocations())
            .tickets(stores.tickets())
            .failure_limiter(limiter.clone());
        if let Some((max, at_limit, _)) = socket_limit {
            gate = gate
                .socket_leases(stores.socket_leases())
                .max_sockets_per_subject(max)
                .unwrap()
                .at_socket_limit(at_limit);
        }
        let mut transports = vec![Transport::Bearer, Transport::Ticket];
        if let Some(users) = users {
            gate = gate.passwords(users);
            transports.push(Transport::Basic);
        }
        let gate = gate.build().unwrap();
        let handshake = gate
            .handshake()
            .transports(transports)
            // Basic takes only an allowed Origin (a browser may send
            // cached Basic credentials to any site's request).
            .allowed_origins([ORIGIN])
            .unwrap()
            .build()
            .unwrap();
        let router = Router::new()
            .route("/ws", get(super::welcome_then_echo))
            .route_layer(handshake)
            .with_state(gate.clone());
        Self {
            addr: serve(router).await,
            gate,
            limiter,
            probe: keys.token("probe"),
        }
    }

    /// Waits until the instance is in contact with Redis.
    pub async fn wait_current(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.status(&self.probe).await == 101 {
                return;
            }
            assert!(Instant::now() < deadline, "no contact with Redis");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn status(&self, token: &str) -> u16 {
        connect(self.addr, &Handshake::to("/ws").bearer(token))
            .await
            .status()
    }

    pub async fn basic(&self, username: &str, password: &str) -> u16 {
        let handshake = Handshake::to("/ws")
            .origin(ORIGIN)
            .header("authorization", super::basic(username, password));
        connect(self.addr, &handshake).await.status()
    }

    /// A socket opened with Basic credentials.
    pub async fn open_basic(&self, username: &str, password: &str) -> super::Client {
        let authorization = super::basic(username, password);
        super::open_with(
            self.addr,
            &[("origin", ORIGIN), ("authorization", &authorization)],
        )
        .await
    }

    pub async fn open(&self, token: &str) -> super::Client {
        super::open_bearer(self.addr, token).await
    }

    pub async fn ticket(&self, subject: &str) -> Result<String, wsgate::Error> {
        let principal = Principal::new(subject, AuthMethod::Token).with_roles(["user"]);
        Ok(self
            .gate
            .issue_ticket(&principal)
            .await?
            .ticket()
            .expose()
            .to_owned())
    }
}
