//! What every `Boxed*` handle (verifier, authenticator, stores, limiter,
//! pipeline) shares: boxing a value that is already boxed keeps it as it
//! is, so wrapping twice never costs a second indirection per call.

use std::any::Any;

/// `value` itself when it already is a `B`.
pub(crate) fn already_boxed<B: Clone + 'static, T: 'static>(value: &T) -> Option<B> {
    (value as &dyn Any).downcast_ref::<B>().cloned()
}
