//! Login passwords: argon2id hashes (RFC 9106) in PHC string format.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::{Secret, SecretString, random_bytes};

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("stored password hash is malformed")]
    MalformedHash,
}

/// An argon2id hash with the library's recommended parameters and a random salt.
pub fn hash_password(password: &SecretString) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.expose().as_bytes(), &salt)
        .expect("argon2id with default parameters hashes any input")
        .to_string()
}

/// Whether `password` matches `hash`, in constant time.
pub fn verify_password(password: &SecretString, hash: &str) -> Result<bool, PasswordError> {
    let parsed = PasswordHash::new(hash).map_err(|_| PasswordError::MalformedHash)?;
    Ok(Argon2::default()
        .verify_password(password.expose().as_bytes(), &parsed)
        .is_ok())
}

/// A random one-time password: 20 characters from an alphabet without
/// look-alikes (about 115 bits).
pub fn generate_password() -> SecretString {
    const ALPHABET: &[u8] = b"23456789abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ";
    let mut out = String::with_capacity(20);
    while out.len() < 20 {
        for b in random_bytes(32) {
            // Rejection sampling keeps every character equally likely.
            let limit = 256 - (256 % ALPHABET.len());
            if (b as usize) < limit && out.len() < 20 {
                out.push(ALPHABET[b as usize % ALPHABET.len()] as char);
            }
        }
    }
    Secret::new(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let pw = generate_password();
        assert_eq!(pw.expose().len(), 20);
        let hash = hash_password(&pw);
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password(&pw, &hash).unwrap());
        assert!(!verify_password(&SecretString::from("wrong"), &hash).unwrap());
        assert!(verify_password(&pw, "not a hash").is_err());
    }
}
