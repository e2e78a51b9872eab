//! The failure limiter's rules (`tests/common/limiter_cases.rs`) against
//! the in-memory limiter; the Redis limiter runs the same cases in
//! `tests/it/redis.rs`.

use wsgate::limit::InMemoryFailureLimiter;

#[tokio::test]
async fn the_in_memory_limiter_keeps_every_rule() {
    crate::common::limiter_cases::run_all(|clock| async move {
        InMemoryFailureLimiter::with_limits(crate::common::limiter_cases::limits(&clock))
    })
    .await;
}
