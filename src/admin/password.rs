//! The admin password of single-user setups: Argon2id with the argon2
//! crate's default parameters, kept as a PHC string (the algorithm, its
//! parameters and the salt travel inside it, so stronger defaults later
//! still verify old hashes). Never the password itself, anywhere.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// Fewer characters than this are refused: the password stands alone in
/// front of the admin plane.
pub const MIN_CHARS: usize = 12;
/// More bytes than this are refused: nobody types it, and each byte is
/// hashed on every login attempt.
pub const MAX_BYTES: usize = 1024;

/// Why a password is not accepted as the new one (never the password).
pub fn check_new(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_CHARS {
        return Err(format!(
            "the password must have at least {MIN_CHARS} characters"
        ));
    }
    if password.len() > MAX_BYTES {
        return Err(format!("the password must have at most {MAX_BYTES} bytes"));
    }
    Ok(())
}

/// The Argon2id PHC string of `password` under a fresh random salt.
pub fn hash(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("no randomness for a salt: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| format!("salt: {e}"))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Whether `password` matches the stored PHC string. Deliberately slow
/// (tens of milliseconds): call it off the async workers. A malformed
/// stored string matches nothing.
pub fn verify(password: &str, phc: &str) -> bool {
    if password.len() > MAX_BYTES {
        return false;
    }
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_salted_and_verify() {
        let a = hash("correct horse battery").unwrap();
        let b = hash("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "a fresh salt each time");
        assert!(!a.contains("correct horse"));
        assert!(verify("correct horse battery", &a));
        assert!(verify("correct horse battery", &b));
        assert!(!verify("correct horse batterx", &a));
        assert!(!verify("correct horse battery", "not a phc string"));
    }

    #[test]
    fn new_passwords_need_twelve_characters_and_a_sane_length() {
        assert!(check_new("short").is_err());
        assert!(check_new("elevenchars").is_err());
        assert!(check_new("twelve chars").is_ok());
        // Characters, not bytes: twelve CJK characters are enough.
        assert!(check_new("密码密码密码密码密码密码").is_ok());
        assert!(check_new(&"x".repeat(MAX_BYTES + 1)).is_err());
        let e = check_new("hunter2").unwrap_err();
        assert!(!e.contains("hunter2"));
    }
}
