//! The connection every Redis store sends its commands on: redis's
//! `ConnectionManager`, kept in use so a lost link is found and replaced
//! in the background, and with one more try for a command that found its
//! link broken.
//!
//! A `ConnectionManager` finds out that its link is gone only when a
//! command fails on it, and that command fails: after a Redis restart, a
//! dropped link or a load balancer closing an idle one, the first request
//! of a quiet process got 503 however long Redis had been back. So:
//!
//! - a command that fails because its link was broken (not a timeout: a
//!   command that timed out may have run) is tried once more, on the link
//!   the manager opens in its place;
//! - a `PING` every few seconds keeps the link from looking idle, and
//!   finds a broken one before a request does.
//!
//! Trying once more is safe for every command the stores send: the
//! limiter's admission carries its attempt's id (a second run adds
//! nothing), a ticket is written with `NX`, a revocation applied twice is
//! harmless; taking a ticket or recording an attempt twice could only
//! spend the ticket or count a failure once more (failing closed), and
//! needs the link to break between the command's write and its reply.

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use redis::RedisResult;
use redis::aio::ConnectionManager;

/// How often the link is used when nothing else uses it.
const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// The stores' shared connection. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Commands {
    manager: ConnectionManager,
    /// The keep-alive task stops once every clone is gone.
    _alive: Arc<()>,
}

impl Commands {
    /// Takes over `manager` and starts its keep-alive. Call it inside a
    /// tokio runtime.
    pub(crate) fn new(manager: ConnectionManager) -> Self {
        let alive = Arc::new(());
        tokio::spawn(keep_alive(manager.clone(), Arc::downgrade(&alive)));
        Self {
            manager,
            _alive: alive,
        }
    }

    /// Runs `command` on the connection, and once more on a new link when
    /// it failed because its link was broken.
    pub(crate) async fn run<T, F, Fut>(&self, mut command: F) -> RedisResult<T>
    where
        F: FnMut(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        match command(self.manager.clone()).await {
            Err(error) if broken_link(&error) => {
                tracing::debug!(target: "wsgate::redis", %error, "the link to Redis was broken; trying once more on a new one");
                command(self.manager.clone()).await
            }
            answer => answer,
        }
    }

    /// Runs a Lua script's `invocation`, as [`run`](Self::run) runs a
    /// command (the script is loaded first where Redis lacks it).
    pub(crate) async fn invoke<T: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> RedisResult<T> {
        self.run(|mut connection| async move { invocation.invoke_async(&mut connection).await })
            .await
    }
}

/// Whether a command failed because its link was gone (closed, reset, not
/// connected), rather than slow or refused by Redis.
fn broken_link(error: &redis::RedisError) -> bool {
    error.is_connection_dropped() && !error.is_timeout()
}

/// Pings on the link every [`KEEP_ALIVE`] until the stores are gone: a
/// failed ping makes the manager open a new link at once, before any
/// request needs it.
async fn keep_alive(manager: ConnectionManager, alive: Weak<()>) {
    let mut interval = tokio::time::interval(KEEP_ALIVE);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    loop {
        interval.tick().await;
        if alive.upgrade().is_none() {
            return;
        }
        let mut connection = manager.clone();
        let _: RedisResult<String> = redis::cmd("PING").query_async(&mut connection).await;
    }
}
