//! Parts the benchmarks share.
#![allow(dead_code, unreachable_pub)]

pub mod provider;

/// The tests' PostgreSQL harness (`initdb` in a temporary folder).
#[path = "../../tests/common/postgres.rs"]
pub mod postgres;

/// What the PostgreSQL harness needs of the tests' helpers.
pub mod idp {
    /// A loopback port nobody listens on now.
    pub fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }
}
