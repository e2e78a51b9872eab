//! What every `Boxed*` handle (verifier, authenticator, stores, limiter,
//! pipeline) shares: boxing a value that is already boxed keeps it as it
//! is, so wrapping twice never costs a second indirection per call; and a
//! built-in inside can be reached without the box.

use std::any::Any;

/// A clone of `value` when it is a `B`.
pub(crate) fn clone_as<B: Clone + 'static, T: 'static>(value: &T) -> Option<B> {
    (value as &dyn Any).downcast_ref::<B>().cloned()
}
