//! Parts the benchmarks share.
#![allow(dead_code, unreachable_pub)]

pub mod provider;
