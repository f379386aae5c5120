//! Master-key housekeeping: the start-up check and rotation.

use herald_store::secrets;

use crate::{AppError, Herald};

/// What the start-up check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealedKeyCheck {
    /// Every key that sealed stored data is in the ring.
    Ok,
    /// Sealed data exists under keys the ring does not have.
    MissingKeys(Vec<String>),
}

/// Key ids in use that `ring_has` does not know. Called before a key ring
/// exists too, so that Herald never generates a key over sealed data.
pub async fn missing_key_ids(
    store: &herald_store::Store,
    ring_has: impl Fn(&str) -> bool,
) -> Result<Vec<String>, AppError> {
    let mut missing: Vec<String> = secrets::key_ids_in_use(store.read())
        .await?
        .into_iter()
        .filter(|id| !ring_has(id))
        .collect();
    missing.sort();
    Ok(missing)
}

impl Herald {
    pub async fn check_sealed_keys(&self) -> Result<SealedKeyCheck, AppError> {
        let missing = missing_key_ids(&self.store, |id| self.keys.contains(id)).await?;
        Ok(if missing.is_empty() {
            SealedKeyCheck::Ok
        } else {
            SealedKeyCheck::MissingKeys(missing)
        })
    }

    /// Re-seals every secret under the newest key, in small committed batches,
    /// and returns how many it re-sealed. Safe to run again after an
    /// interruption: it picks up what is still under an older key.
    pub async fn rotate_keys(&self) -> Result<usize, AppError> {
        let mut total = 0;
        loop {
            let tx = self.store.begin().await?;
            let n = secrets::reseal_batch(tx.conn(), &self.keys, 200).await?;
            tx.commit().await?;
            total += n;
            if n == 0 {
                return Ok(total);
            }
        }
    }
}
