//! Random identifiers from the operating system's generator.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::Error;

/// `BYTES` random bytes, base64url without padding: for token ids and
/// tickets. Fails only when the operating system cannot supply randomness.
pub(crate) fn random_urlsafe<const BYTES: usize>() -> Result<String, Error> {
    let mut bytes = [0u8; BYTES];
    getrandom::fill(&mut bytes).map_err(|error| Error::backend(error.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_url_safe_and_distinct() {
        let first = random_urlsafe::<16>().unwrap();
        let second = random_urlsafe::<16>().unwrap();
        assert_eq!(first.len(), 22);
        assert_ne!(first, second);
        assert!(
            first
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
        );
    }
}
