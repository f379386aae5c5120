//! Finding the master keys at start-up, and refusing to start without the
//! ones stored secrets need.

use std::path::PathBuf;

use herald_crypto::{KeyId, KeyRing, SecretString};
use herald_domain::Timestamp;
use herald_store::Store;

use crate::Config;

#[derive(Debug, thiserror::Error)]
pub enum KeySetupError {
    #[error(
        "sealed secrets in the database were sealed with key(s) {missing:?}, which the key ring does not have. \
         Restore the key file ({path}) or set HERALD_MASTER_KEYS with those keys. \
         Herald will not generate a new key over sealed data."
    )]
    MissingKeys { missing: Vec<String>, path: String },
    #[error(
        "master key file {0} not found (master_key_path is set, so Herald will not generate one)"
    )]
    ConfiguredFileMissing(String),
    #[error("{0}")]
    Ring(#[from] herald_crypto::KeyRingError),
    #[error("checking sealed data: {0}")]
    App(#[from] herald_app::AppError),
}

fn default_key_path(config: &Config) -> PathBuf {
    config.data_dir.join("master.key")
}

/// The key ring from HERALD_MASTER_KEYS, else the key file. On a first run
/// with neither, generates data/master.key (mode 0600), but only when no
/// sealed data exists; then checks that every key in use is present.
pub async fn resolve(config: &Config, store: &Store) -> Result<KeyRing, KeySetupError> {
    let path = config
        .master_key_path
        .clone()
        .unwrap_or_else(|| default_key_path(config));
    let ring = if let Some(spec) = config.master_keys.expose() {
        KeyRing::parse(&SecretString::from(spec))?
    } else if path.exists() {
        KeyRing::load_file(&path)?
    } else {
        let missing = herald_app::missing_key_ids(store, |_| false).await?;
        if !missing.is_empty() {
            return Err(KeySetupError::MissingKeys {
                missing,
                path: path.display().to_string(),
            });
        }
        if config.master_key_path.is_some() {
            return Err(KeySetupError::ConfiguredFileMissing(
                path.display().to_string(),
            ));
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| herald_crypto::KeyRingError::File {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let ring = KeyRing::create_file(&path, &new_key_id())?;
        tracing::warn!(
            path = %path.display(),
            "generated a master key for secrets at rest. Production needs a key kept outside the data \
             directory: set HERALD_MASTER_KEYS (or HERALD_MASTER_KEYS_FILE) and keep a copy safe; \
             losing it makes every sealed secret unreadable"
        );
        ring
    };
    let missing = herald_app::missing_key_ids(store, |id| ring.contains(id)).await?;
    if !missing.is_empty() {
        return Err(KeySetupError::MissingKeys {
            missing,
            path: path.display().to_string(),
        });
    }
    Ok(ring)
}

/// `k` and today's date, e.g. `k20261122`.
pub fn new_key_id() -> KeyId {
    let date: String = Timestamp::now()
        .to_rfc3339()
        .chars()
        .take(10)
        .filter(char::is_ascii_digit)
        .collect();
    KeyId::parse(&format!("k{date}")).expect("k and digits is a valid key id")
}
