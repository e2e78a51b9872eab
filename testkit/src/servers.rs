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

/// A server the tests need is missing: says so on the terminal (once per
/// test binary and server) and returns `false` (the test skips), or fails
/// when `WSGATE_TEST_REQUIRE_SERVERS=1` (CI), where every server must be
/// there.
///
/// The notice goes to the process's standard error itself, not through
/// `eprintln!`: libtest captures that for every test that passes, and a
/// skipped test passes, so the skip would go unseen.
pub fn missing(what: &str) -> bool {
    use std::io::Write as _;
    static SAID: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    if std::env::var("WSGATE_TEST_REQUIRE_SERVERS").as_deref() == Ok("1") {
        panic!("{what} (WSGATE_TEST_REQUIRE_SERVERS=1)");
    }
    let mut said = SAID.lock().unwrap_or_else(|poison| poison.into_inner());
    if !said.iter().any(|said| said == what) {
        said.push(what.to_owned());
        let _ = writeln!(
            std::io::stderr().lock(),
            "\n*** SKIPPED: {what}; these tests pass without running ***"
        );
    }
    false
}
