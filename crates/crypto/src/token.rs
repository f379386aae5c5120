//! Bearer tokens (API keys and portal sessions). A token is 256 random bits;
//! only its SHA-256 is stored, so a leaked database yields no usable key. A
//! slow hash is not needed: the input is random, not a human password.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::{Secret, SecretString, random_bytes};

/// What a token opens; its prefix tells a reader which kind they hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    ApiKey,
    Session,
}

impl TokenKind {
    fn prefix(self) -> &'static str {
        match self {
            TokenKind::ApiKey => "hrld_",
            TokenKind::Session => "hsess_",
        }
    }
}

/// A freshly generated token: shown once, then only its hash is kept.
#[derive(Debug)]
pub struct BearerToken {
    pub token: SecretString,
    pub hash: TokenHash,
    /// The first characters, safe to display so a person can tell keys apart.
    pub display_prefix: String,
}

/// The stored form of a token: lowercase hex SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHash(pub String);

impl BearerToken {
    pub fn generate(kind: TokenKind) -> Self {
        let token = format!(
            "{}{}",
            kind.prefix(),
            URL_SAFE_NO_PAD.encode(random_bytes(32))
        );
        let display_prefix = token[..kind.prefix().len() + 6].to_owned();
        let hash = TokenHash::of(&token);
        Self {
            token: Secret::new(token),
            hash,
            display_prefix,
        }
    }
}

impl TokenHash {
    pub fn of(token: &str) -> Self {
        let digest = Sha256::digest(token.as_bytes());
        Self(digest.iter().map(|b| format!("{b:02x}")).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_hash_stably() {
        let a = BearerToken::generate(TokenKind::ApiKey);
        let b = BearerToken::generate(TokenKind::ApiKey);
        assert_ne!(a.token.expose(), b.token.expose());
        assert!(a.token.expose().starts_with("hrld_"));
        assert!(a.token.expose().starts_with(&a.display_prefix));
        assert_eq!(TokenHash::of(a.token.expose()), a.hash);
        assert_eq!(a.hash.0.len(), 64);
        assert!(
            BearerToken::generate(TokenKind::Session)
                .token
                .expose()
                .starts_with("hsess_")
        );
    }
}
