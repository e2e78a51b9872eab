//! Parts the benchmarks share.
#![allow(dead_code, unreachable_pub)]

pub mod provider;

/// The tests' PostgreSQL harness (`initdb` in a temporary folder).
#[path = "../../tests/common/postgres.rs"]
pub mod postgres;

/// What the PostgreSQL harness shares with the tests' other servers.
#[path = "../../tests/common/servers.rs"]
pub mod servers;
