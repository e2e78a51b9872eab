//! Where in a message its token is.

use crate::session::Inbound;

/// Finds the token a message carries.
///
/// [`JsonField`] is the built-in; any `Fn(&Inbound) -> Option<&str>` works
/// too.
pub trait TokenExtractor: Clone + Send + Sync + 'static {
    /// The token in `message`, if any.
    fn token<'a>(&self, message: &'a Inbound) -> Option<&'a str>;
}

/// The token is the string field `name` of a JSON object message. Defaults
/// to `token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonField(pub &'static str);

impl Default for JsonField {
    fn default() -> Self {
        Self("token")
    }
}

impl TokenExtractor for JsonField {
    fn token<'a>(&self, message: &'a Inbound) -> Option<&'a str> {
        message.json_str(self.0)
    }
}

impl<F> TokenExtractor for F
where
    F: for<'a> Fn(&'a Inbound) -> Option<&'a str> + Clone + Send + Sync + 'static,
{
    fn token<'a>(&self, message: &'a Inbound) -> Option<&'a str> {
        self(message)
    }
}
