//! The innermost service of every pipeline. A socket gate's pipeline
//! until it is given one, so it stands below the socket stage (the
//! layering rule lists this file on its own).

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use tower_service::Service;

use crate::session::{Inbound, Verdict};

/// The innermost service of a pipeline: delivers every message to the
/// application.
#[derive(Debug, Clone, Copy, Default)]
pub struct Deliver;

impl Service<Inbound> for Deliver {
    type Response = Verdict;
    type Error = Infallible;
    type Future = Ready<Result<Verdict, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, inbound: Inbound) -> Self::Future {
        ready(Ok(Verdict::Deliver(inbound)))
    }
}
