//! Master keys and sealed values.
//!
//! A sealed value is AES-256-GCM ciphertext with a fresh 96-bit nonce, tagged
//! with the id of the key that sealed it. Its associated data binds it to the
//! place it belongs (tenant, table, row, column): a ciphertext copied to
//! another row or another tenant fails authentication and does not open.

use std::fmt;
use std::io::Write;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use herald_domain::TenantId;
use zeroize::Zeroizing;

use crate::{Secret, random_bytes};

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    #[error("master key entry {entry}: {reason}")]
    BadKey { entry: usize, reason: String },
    #[error("no master key given")]
    Empty,
    #[error("master key id {0:?} appears twice")]
    DuplicateId(String),
    #[error("the key {0:?} that sealed this value is not in the key ring")]
    UnknownKey(String),
    #[error(
        "sealed value does not open: it was changed, moved to another row, or sealed under another key"
    )]
    DoesNotOpen,
    #[error("key file {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
}

/// The name of one master key: 1–32 ASCII letters, digits, `-` or `_`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyId(String);

impl KeyId {
    pub fn parse(value: &str) -> Option<Self> {
        let ok = (1..=32).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a sealed value lives. Its fields become the AEAD associated data.
#[derive(Debug, Clone, Copy)]
pub struct SealContext<'a> {
    pub tenant: TenantId,
    pub table: &'a str,
    pub row: &'a str,
    pub column: &'a str,
}

impl SealContext<'_> {
    /// Length-prefixed parts, so no two contexts share an encoding.
    fn associated_data(&self) -> Vec<u8> {
        let tenant = self.tenant.to_string();
        let mut aad = b"herald-seal-v1".to_vec();
        for part in [tenant.as_str(), self.table, self.row, self.column] {
            aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
            aad.extend_from_slice(part.as_bytes());
        }
        aad
    }
}

/// A sealed value as stored: key id, nonce and ciphertext (with its GCM tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// The master keys, newest first. The newest seals; any of them opens.
pub struct KeyRing {
    keys: Vec<(KeyId, Aes256Gcm)>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("KeyRing").field("key_ids", &ids).finish()
    }
}

impl KeyRing {
    /// Parses `id:base64` entries (32-byte keys), newest first, separated by
    /// commas or new lines; blank lines and `#` comments are skipped. This is
    /// the format of HERALD_MASTER_KEYS and of a key file.
    pub fn parse(spec: &Secret<String>) -> Result<Self, KeyRingError> {
        let mut keys: Vec<(KeyId, Aes256Gcm)> = Vec::new();
        let entries = spec
            .expose()
            .lines()
            .filter(|line| !line.trim_start().starts_with('#'))
            .flat_map(|line| line.split(','))
            .map(str::trim)
            .filter(|e| !e.is_empty());
        for (i, entry) in entries.enumerate() {
            let bad = |reason: &str| KeyRingError::BadKey {
                entry: i + 1,
                reason: reason.to_owned(),
            };
            let (id, b64) = entry
                .split_once(':')
                .ok_or_else(|| bad("expected id:base64"))?;
            let id =
                KeyId::parse(id).ok_or_else(|| bad("id must be 1-32 letters, digits, - or _"))?;
            let bytes = Zeroizing::new(
                STANDARD
                    .decode(b64.trim())
                    .map_err(|_| bad("key is not valid base64"))?,
            );
            if bytes.len() != KEY_LEN {
                return Err(bad("key must be 32 bytes (AES-256)"));
            }
            if keys.iter().any(|(k, _)| *k == id) {
                return Err(KeyRingError::DuplicateId(id.0));
            }
            let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| bad("key length"))?;
            keys.push((id, cipher));
        }
        if keys.is_empty() {
            return Err(KeyRingError::Empty);
        }
        Ok(Self { keys })
    }

    /// Reads a key file (same format as [`KeyRing::parse`]).
    pub fn load_file(path: &Path) -> Result<Self, KeyRingError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyRingError::File {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&Secret::new(text))
    }

    /// A new random key as an `id:base64` line, the id taken from `id`.
    pub fn generate_entry(id: &KeyId) -> Secret<String> {
        let key = Zeroizing::new(random_bytes(KEY_LEN));
        Secret::new(format!("{id}:{}", STANDARD.encode(&*key)))
    }

    /// Creates `path` (mode 0600, never overwriting an existing file) holding
    /// one new key, and returns the ring made of it.
    pub fn create_file(path: &Path, id: &KeyId) -> Result<Self, KeyRingError> {
        let entry = Self::generate_entry(id);
        let file_err = |source| KeyRingError::File {
            path: path.display().to_string(),
            source,
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(file_err)?;
        writeln!(
            file,
            "# Herald master keys, newest first (id:base64). Keep a copy outside the data directory."
        )
        .and_then(|_| writeln!(file, "{}", entry.expose()))
        .and_then(|_| file.sync_all())
        .map_err(file_err)?;
        Self::parse(&entry)
    }

    /// The id of the key that seals new values.
    pub fn newest(&self) -> &KeyId {
        &self.keys[0].0
    }

    pub fn contains(&self, id: &str) -> bool {
        self.keys.iter().any(|(k, _)| k.as_str() == id)
    }

    pub fn ids(&self) -> impl Iterator<Item = &KeyId> {
        self.keys.iter().map(|(id, _)| id)
    }

    /// Seals `plaintext` under the newest key, bound to `ctx`.
    pub fn seal(&self, plaintext: &[u8], ctx: &SealContext<'_>) -> Sealed {
        let (id, cipher) = &self.keys[0];
        let nonce = random_bytes(NONCE_LEN);
        let aad = ctx.associated_data();
        let ciphertext = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        Sealed {
            key_id: id.0.clone(),
            nonce,
            ciphertext,
        }
    }

    /// Opens a sealed value found at `ctx`.
    pub fn open(
        &self,
        sealed: &Sealed,
        ctx: &SealContext<'_>,
    ) -> Result<Secret<Vec<u8>>, KeyRingError> {
        let (_, cipher) = self
            .keys
            .iter()
            .find(|(id, _)| id.as_str() == sealed.key_id)
            .ok_or_else(|| KeyRingError::UnknownKey(sealed.key_id.clone()))?;
        if sealed.nonce.len() != NONCE_LEN {
            return Err(KeyRingError::DoesNotOpen);
        }
        let aad = ctx.associated_data();
        cipher
            .decrypt(
                Nonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: &aad,
                },
            )
            .map(Secret::new)
            .map_err(|_| KeyRingError::DoesNotOpen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(ids: &[&str]) -> (KeyRing, Vec<Secret<String>>) {
        let entries: Vec<_> = ids
            .iter()
            .map(|id| KeyRing::generate_entry(&KeyId::parse(id).unwrap()))
            .collect();
        let spec = entries
            .iter()
            .map(|e| e.expose().as_str())
            .collect::<Vec<_>>()
            .join(",");
        (KeyRing::parse(&Secret::new(spec)).unwrap(), entries)
    }

    fn ctx(tenant: TenantId, row: &str) -> SealContext<'_> {
        SealContext {
            tenant,
            table: "relay_profile",
            row,
            column: "password",
        }
    }

    #[test]
    fn round_trip() {
        let (ring, _) = ring(&["k2"]);
        let t = TenantId::new();
        let sealed = ring.seal(b"hunter2", &ctx(t, "row-1"));
        assert_eq!(sealed.key_id, "k2");
        assert_ne!(sealed.ciphertext, b"hunter2");
        assert_eq!(
            ring.open(&sealed, &ctx(t, "row-1")).unwrap().expose(),
            b"hunter2"
        );
    }

    #[test]
    fn nonces_are_fresh() {
        let (ring, _) = ring(&["k"]);
        let t = TenantId::new();
        let a = ring.seal(b"same", &ctx(t, "r"));
        let b = ring.seal(b"same", &ctx(t, "r"));
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn tampering_and_moving_fail() {
        let (ring, _) = ring(&["k"]);
        let t = TenantId::new();
        let sealed = ring.seal(b"hunter2", &ctx(t, "row-1"));

        let mut flipped = sealed.clone();
        flipped.ciphertext[0] ^= 1;
        assert!(matches!(
            ring.open(&flipped, &ctx(t, "row-1")),
            Err(KeyRingError::DoesNotOpen)
        ));

        let mut nonce = sealed.clone();
        nonce.nonce[0] ^= 1;
        assert!(ring.open(&nonce, &ctx(t, "row-1")).is_err());

        assert!(ring.open(&sealed, &ctx(t, "row-2")).is_err(), "other row");
        assert!(
            ring.open(&sealed, &ctx(TenantId::new(), "row-1")).is_err(),
            "other tenant"
        );
        let other_column = SealContext {
            column: "api_key",
            ..ctx(t, "row-1")
        };
        assert!(ring.open(&sealed, &other_column).is_err(), "other column");
    }

    #[test]
    fn wrong_or_missing_key_fails() {
        let (a, _) = ring(&["k"]);
        let (b, _) = ring(&["k"]);
        let t = TenantId::new();
        let sealed = a.seal(b"x", &ctx(t, "r"));
        assert!(matches!(
            b.open(&sealed, &ctx(t, "r")),
            Err(KeyRingError::DoesNotOpen)
        ));
        let (c, _) = ring(&["other"]);
        assert!(
            matches!(c.open(&sealed, &ctx(t, "r")), Err(KeyRingError::UnknownKey(id)) if id == "k")
        );
    }

    #[test]
    fn older_keys_still_open_newest_seals() {
        let (old, entries) = ring(&["old"]);
        let t = TenantId::new();
        let sealed = old.seal(b"x", &ctx(t, "r"));
        let new_entry = KeyRing::generate_entry(&KeyId::parse("new").unwrap());
        let both = KeyRing::parse(&Secret::new(format!(
            "{}\n{}",
            new_entry.expose(),
            entries[0].expose()
        )))
        .unwrap();
        assert_eq!(both.newest().as_str(), "new");
        assert_eq!(both.open(&sealed, &ctx(t, "r")).unwrap().expose(), b"x");
        assert_eq!(both.seal(b"y", &ctx(t, "r")).key_id, "new");
    }

    #[test]
    fn bad_specs_are_refused() {
        for bad in [
            "",
            "nokey",
            "k:notbase64!",
            "k:AAAA",
            "bad id:AAAA",
            "#only a comment",
        ] {
            assert!(
                KeyRing::parse(&Secret::new(bad.to_owned())).is_err(),
                "{bad:?} accepted"
            );
        }
        let e = KeyRing::generate_entry(&KeyId::parse("k").unwrap());
        let dup = format!("{},{}", e.expose(), e.expose());
        assert!(matches!(
            KeyRing::parse(&Secret::new(dup)),
            Err(KeyRingError::DuplicateId(_))
        ));
    }

    #[test]
    fn key_file_is_private_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let id = KeyId::parse("k1").unwrap();
        let ring = KeyRing::create_file(&path, &id).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let t = TenantId::new();
        let sealed = ring.seal(b"x", &ctx(t, "r"));
        assert!(
            KeyRing::create_file(&path, &id).is_err(),
            "overwrote an existing key file"
        );
        let again = KeyRing::load_file(&path).unwrap();
        assert_eq!(again.open(&sealed, &ctx(t, "r")).unwrap().expose(), b"x");
    }
}
