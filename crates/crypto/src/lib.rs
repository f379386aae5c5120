//! Herald's cryptography: a key ring that seals secrets at rest with
//! AES-256-GCM, a [`Secret`] wrapper that never prints its value, argon2id
//! password hashes and hashed bearer tokens.

mod keyring;
mod password;
mod secret;
mod token;

pub use keyring::{KeyId, KeyRing, KeyRingError, SealContext, Sealed};
pub use password::{PasswordError, generate_password, hash_password, verify_password};
pub use secret::{Secret, SecretString};
pub use token::{BearerToken, TokenHash, TokenKind};

use aes_gcm::aead::OsRng;
use aes_gcm::aead::rand_core::RngCore;

/// `n` bytes from the operating system's CSPRNG.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    OsRng.fill_bytes(&mut bytes);
    bytes
}
