//! The integration tests, in one binary: one link, one copy of the
//! harness. Each file is one concern, named as before; run one with
//! `cargo test --test it <file>::` (`cargo test --test it redis::`).
//!
//! Four suites stay binaries of their own, since each installs something
//! for the whole process: `metrics.rs` a metrics recorder, and
//! `no_secrets_in_logs.rs`, `oidc_no_secrets.rs` and `redis_no_secrets.rs`
//! a tracing subscriber that captures every log line.

#[path = "../common/mod.rs"]
mod common;

mod abuse;
mod accounts;
mod certificates;
mod dpop;
mod examples;
mod gate;
mod handshake;
mod hostile;
mod interop;
mod limiter;
mod live;
mod oidc;
mod quick_start;
mod redis;
mod refresh_sessions;
mod sql;
mod tls;
