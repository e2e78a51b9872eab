//! The response future of the handshake service.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::response::Response;

pub(super) type BoxedResponse<E> = Pin<Box<dyn Future<Output = Result<Response, E>> + Send>>;

/// Response future of [`Handshake`](crate::handshake::Handshake).
pub struct ResponseFuture<E> {
    state: State<E>,
}

enum State<E> {
    Ready(Option<Response>),
    // Boxed once: the authenticator's future is the user's and has no name.
    Pending(BoxedResponse<E>),
}

impl<E> ResponseFuture<E> {
    pub(super) fn ready(response: Response) -> Self {
        Self {
            state: State::Ready(Some(response)),
        }
    }

    pub(super) fn pending(future: BoxedResponse<E>) -> Self {
        Self {
            state: State::Pending(future),
        }
    }
}

impl<E> Future for ResponseFuture<E> {
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Both states are `Unpin` (an `Option` and a `Pin<Box<_>>`).
        match &mut self.get_mut().state {
            State::Ready(response) => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                None => panic!("ResponseFuture polled after completion"),
            },
            State::Pending(future) => future.as_mut().poll(cx),
        }
    }
}

impl<E> std::fmt::Debug for ResponseFuture<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
