//! Passwords: the policy a new one must meet, and argon2id hashing. The API hashes through the bounded
//! [`PasswordHashing`] pool; `hash` and `verify` here are for one-off callers (the CLI, seeds) and are
//! deliberately slow: call them off the async runtime (`spawn_blocking`).

pub mod hashing;

pub use hashing::{HashingError, Lane, PasswordHashing};

pub const MIN_PASSWORD_CHARS: usize = 12;
pub const MAX_PASSWORD_CHARS: usize = 256;

/// Passwords of at least 12 characters that attackers try first (from published lists of the most used ones).
const COMMON_PASSWORDS: &[&str] = &[
    "123456789012",
    "1234567890123",
    "12345678901234",
    "qwertyuiopasdf",
    "qwertyuiop12",
    "qwerty123456",
    "password1234",
    "password12345",
    "password123456",
    "passwordpassword",
    "iloveyou1234",
    "administrator",
    "admin1234567",
    "welcome12345",
    "letmein12345",
    "changeme1234",
    "abcdefghijkl",
    "111111111111",
    "000000000000",
    "aaaaaaaaaaaa",
    "qwertyqwerty",
    "asdfghjklzxc",
    "1q2w3e4r5t6y",
    "zaq12wsxcde3",
];

/// Why `password` may not be used by the user with `email`, or `None` when it may (issue 9: `password`,
/// `12345678` and eight spaces were accepted).
pub fn policy_problem(password: &str, email: &str) -> Option<String> {
    let length = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&length) {
        return Some(format!("must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"));
    }
    if password.trim().chars().count() < MIN_PASSWORD_CHARS {
        return Some(format!("must have at least {MIN_PASSWORD_CHARS} characters other than spaces"));
    }
    let folded = password.trim().to_lowercase();
    let email = email.trim().to_lowercase();
    let local_part = email.split('@').next().unwrap_or_default();
    if folded == email || (!local_part.is_empty() && folded.contains(local_part) && folded.len() < local_part.len() + 4)
    {
        return Some("must not be the email address or a variation of it".into());
    }
    if COMMON_PASSWORDS.contains(&folded.as_str()) || folded.chars().all(|c| folded.starts_with(c)) {
        return Some("is one of the passwords attackers try first; choose another".into());
    }
    None
}

pub fn hash(password: &str) -> anyhow::Result<String> {
    hashing::hash_with(&mut Vec::new(), password).map_err(anyhow::Error::from)
}

/// False for a wrong password and for a malformed stored hash alike.
pub fn verify(password: &str, stored_hash: &str) -> bool {
    hashing::verify_with(&mut Vec::new(), password, stored_hash)
}

/// A hash of no real password, verified against when the email is unknown so that a login for an unknown
/// email takes as long as one with a wrong password.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash("decoy password that matches nothing").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_policy_refuses_short_spaced_common_and_email_passwords() {
        let email = "ada.lovelace@example.com";
        for weak in [
            "password",
            "12345678",
            "        ",
            "            ",
            "Password1234",
            "ada.lovelace@example.com",
            "ada.lovelace1",
            "zzzzzzzzzzzzzz",
        ] {
            assert!(super::policy_problem(weak, email).is_some(), "{weak:?} was accepted");
        }
        for fine in ["correct-horse-battery", "demo-password", "long-enough-pw"] {
            assert_eq!(super::policy_problem(fine, email), None, "{fine:?}");
        }
    }

    #[test]
    fn a_hash_verifies_only_its_password() {
        let stored = super::hash("correct horse").expect("hash");
        assert!(stored.starts_with("$argon2id$"));
        assert!(super::verify("correct horse", &stored));
        assert!(!super::verify("wrong horse", &stored));
        assert!(!super::verify("correct horse", "not a hash"));
    }
}
