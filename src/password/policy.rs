//! A strong-password policy for passwords people choose: length, character
//! classes, not the username, not a common or guessable password.

use std::fmt;

use crate::password::DEFAULT_MAX_PASSWORD_BYTES;

/// The rule a refused password broke. Its text names the rule, never the
/// password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordRule {
    /// Fewer characters than the minimum.
    #[error("the password must be at least {0} characters long")]
    TooShort(usize),
    /// More bytes than the maximum (hashing has a cost).
    #[error("the password must be at most {0} bytes long")]
    TooLong(usize),
    /// Fewer character classes (lower case, upper case, digit, other) than
    /// required.
    #[error(
        "the password must mix at least {0} of: lower case, upper case, digits, other characters"
    )]
    TooFewClasses(usize),
    /// It holds the username.
    #[error("the password must not contain the username")]
    ContainsUsername,
    /// A common password, or one a guesser finds quickly (a dictionary
    /// word with digits, a keyboard walk, a date, a repetition).
    #[error("the password is too common or too easy to guess")]
    Guessable,
}

/// What a password must be. Defaults, and why:
///
/// | rule | default | why |
/// |---|---|---|
/// | length | at least 12 characters | length is most of a password's strength against offline guessing |
/// | maximum | 1024 bytes | argon2id's cost grows with the input; the verifier's cap |
/// | classes | three of lower case, upper case, digit, other | shuts out the all-lower-case dictionary phrase |
/// | username | not contained, case-insensitively | the first thing an attacker tries |
/// | guessability | zxcvbn score 3 of 4 at least (about 10⁸ guesses), with the username as a known word | refuses `Password123!`, keyboard walks, dates, repeats, common passwords, leetspeak |
///
/// ```
/// use wsgate::password::{PasswordPolicy, PasswordRule};
///
/// let policy = PasswordPolicy::default();
/// assert_eq!(policy.check("alice", "Password123!"), Err(PasswordRule::Guessable));
/// assert!(policy.check("alice", "violet-Harbour-47-tundra").is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordPolicy {
    min_chars: usize,
    max_bytes: usize,
    min_classes: usize,
    min_score: u8,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_chars: 12,
            max_bytes: DEFAULT_MAX_PASSWORD_BYTES,
            min_classes: 3,
            min_score: 3,
        }
    }
}

impl PasswordPolicy {
    /// The defaults above.
    pub fn new() -> Self {
        Self::default()
    }

    /// The fewest characters (Unicode scalar values). Never below 8.
    pub fn min_length(mut self, chars: usize) -> Self {
        self.min_chars = chars.max(8);
        self
    }

    /// How many of the four classes a password must mix (0 to 4).
    pub fn min_classes(mut self, classes: usize) -> Self {
        self.min_classes = classes.min(4);
        self
    }

    /// The lowest zxcvbn score accepted (0 to 4; 3 by default).
    pub fn min_score(mut self, score: u8) -> Self {
        self.min_score = score.min(4);
        self
    }

    /// Checks `password` for `username`; the first rule it breaks, in the
    /// order of the table above.
    ///
    /// # Errors
    ///
    /// The [`PasswordRule`] broken.
    pub fn check(&self, username: &str, password: &str) -> Result<(), PasswordRule> {
        if password.len() > self.max_bytes {
            return Err(PasswordRule::TooLong(self.max_bytes));
        }
        if password.chars().count() < self.min_chars {
            return Err(PasswordRule::TooShort(self.min_chars));
        }
        let classes = [
            password.chars().any(char::is_lowercase),
            password.chars().any(char::is_uppercase),
            password.chars().any(|c| c.is_ascii_digit()),
            password
                .chars()
                .any(|c| !c.is_lowercase() && !c.is_uppercase() && !c.is_ascii_digit()),
        ]
        .into_iter()
        .filter(|held| *held)
        .count();
        if classes < self.min_classes {
            return Err(PasswordRule::TooFewClasses(self.min_classes));
        }
        let name = username.trim().to_lowercase();
        if !name.is_empty() && password.to_lowercase().contains(&name) {
            return Err(PasswordRule::ContainsUsername);
        }
        let score = u8::from(zxcvbn::zxcvbn(password, &[username]).score());
        if score < self.min_score {
            return Err(PasswordRule::Guessable);
        }
        Ok(())
    }
}

impl fmt::Display for PasswordPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "at least {} characters, {} of 4 classes, not the username, zxcvbn score {}+",
            self.min_chars, self.min_classes, self.min_score
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_refuses_with_its_name_and_never_the_password() {
        struct Case {
            password: String,
            rule: Option<PasswordRule>,
        }
        let case = |password: &str, rule| Case {
            password: password.to_owned(),
            rule,
        };
        let cases = [
            case("Sh0rt!pw", Some(PasswordRule::TooShort(12))),
            case("ÄÖÜäöü12ß!x", Some(PasswordRule::TooShort(12))),
            Case {
                password: "Aa1!".repeat(300),
                rule: Some(PasswordRule::TooLong(1024)),
            },
            case(
                "correcthorsebatterystaple",
                Some(PasswordRule::TooFewClasses(3)),
            ),
            case(
                "CORRECT1HORSE2BATTERY",
                Some(PasswordRule::TooFewClasses(3)),
            ),
            case("xx-Alice-Lantern-93", Some(PasswordRule::ContainsUsername)),
            case("Password123!", Some(PasswordRule::Guessable)),
            case("Qwerty123456!", Some(PasswordRule::Guessable)),
            case("P@ssw0rd1234", Some(PasswordRule::Guessable)),
            case("Aaaaaaaaaaa1!", Some(PasswordRule::Guessable)),
            case("violet-Harbour-47-tundra", None),
            case("Fj#9qL!m2Vx$7Tz", None),
        ];
        let policy = PasswordPolicy::default();
        for case in cases {
            let outcome = policy.check("alice", &case.password);
            assert_eq!(outcome.err(), case.rule, "{}", case.password);
            if let Some(rule) = case.rule {
                assert!(!rule.to_string().contains(&case.password));
            }
        }
    }
}
