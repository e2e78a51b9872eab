//! What every test server harness shares (the OpenID provider, Redis,
//! PostgreSQL): a free loopback port, and the rule for a missing server.

use std::net::TcpListener;

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server the tests need is missing: prints `what` is needed and
/// returns `false` (the test skips), or fails when
/// `WSGATE_TEST_REQUIRE_SERVERS=1` (CI), where every server must be there.
pub fn missing(what: &str) -> bool {
    if std::env::var("WSGATE_TEST_REQUIRE_SERVERS").as_deref() == Ok("1") {
        panic!("{what} (WSGATE_TEST_REQUIRE_SERVERS=1)");
    }
    eprintln!("skipping: {what}");
    false
}
