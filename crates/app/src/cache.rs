//! What every submission reads and admins rarely change — the tenant (its
//! sending domains), its routing and its relay profiles — kept for a second.
//! A change made through this process clears its tenant's entry at once;
//! another process sees it within the second.
//!
//! An entry is reloaded ahead of its expiry by one caller, while the others
//! go on with it: when every entry a busy tenant uses expired at the same
//! instant, every submission in flight (64 in the benchmark) read the
//! database at once, once a second, and those pile-ups were the late
//! requests of most acceptance runs at 80% of the peak (see
//! docs/performance.md).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use herald_crypto::TokenHash;
use herald_domain::{ApiKey, ApiKeyId, RelayProfile, RelayProfileId, Tenant, TenantId};
use herald_store::relay_profiles::Routing;

/// How long an entry is used at most after it was loaded.
const TTL: Duration = Duration::from_secs(1);

/// From this age on, the first caller that finds an entry reloads it and
/// the others keep using it until the reload is in, or until [`TTL`].
const REFRESH_AT: Duration = Duration::from_millis(800);

/// A cached value and when it was loaded.
pub(crate) struct Slot<T> {
    at: Instant,
    value: T,
    /// A caller is reloading it (past [`REFRESH_AT`]).
    claimed: bool,
}

impl<T: Clone> Slot<T> {
    pub(crate) fn new(value: &T) -> Self {
        Self {
            at: Instant::now(),
            value: value.clone(),
            claimed: false,
        }
    }

    fn live(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.at) < TTL
    }
}

/// The cached value for a caller at `now`, or `None` when it must load it
/// (and put it back): nothing cached, older than [`TTL`], or past
/// [`REFRESH_AT`] with no other caller reloading it yet.
pub(crate) fn fresh<T: Clone>(slot: Option<&mut Slot<T>>, now: Instant) -> Option<T> {
    let slot = slot?;
    let age = now.saturating_duration_since(slot.at);
    if age >= TTL || (age >= REFRESH_AT && !std::mem::replace(&mut slot.claimed, true)) {
        return None;
    }
    Some(slot.value.clone())
}

#[derive(Default)]
struct Entry {
    tenant: Option<Slot<Tenant>>,
    routing: Option<Slot<Routing>>,
    profiles: HashMap<RelayProfileId, Slot<RelayProfile>>,
}

#[derive(Default)]
pub(crate) struct PolicyCache {
    entries: Mutex<HashMap<TenantId, Entry>>,
}

impl PolicyCache {
    fn with<R>(&self, tenant: TenantId, f: impl FnOnce(&mut Entry) -> R) -> R {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        f(entries.entry(tenant).or_default())
    }

    pub fn tenant(&self, id: TenantId) -> Option<Tenant> {
        self.with(id, |e| fresh(e.tenant.as_mut(), Instant::now()))
    }

    pub fn put_tenant(&self, t: &Tenant) {
        self.with(t.id, |e| e.tenant = Some(Slot::new(t)));
    }

    pub fn routing(&self, tenant: TenantId) -> Option<Routing> {
        self.with(tenant, |e| fresh(e.routing.as_mut(), Instant::now()))
    }

    pub fn put_routing(&self, tenant: TenantId, r: &Routing) {
        self.with(tenant, |e| e.routing = Some(Slot::new(r)));
    }

    pub fn profile(&self, tenant: TenantId, id: RelayProfileId) -> Option<RelayProfile> {
        self.with(tenant, |e| fresh(e.profiles.get_mut(&id), Instant::now()))
    }

    pub fn put_profile(&self, p: &RelayProfile) {
        self.with(p.tenant_id, |e| {
            e.profiles.insert(p.id, Slot::new(p));
        });
    }

    /// Forgets everything of `tenant` (after a change to it).
    pub fn invalidate(&self, tenant: TenantId) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&tenant);
    }
}

/// Entries the key cache holds at most; past that, stale ones go first.
const MAX_KEYS: usize = 10_000;

/// API keys by the hash of their token, kept for a second like the policy
/// cache: a key deleted through this process stops working at once, one
/// deleted elsewhere within the second. Only keys that exist are kept, so a
/// wrong key always reaches the database.
#[derive(Default)]
pub(crate) struct KeyCache {
    keys: Mutex<HashMap<String, Slot<ApiKey>>>,
}

impl KeyCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot<ApiKey>>> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, hash: &TokenHash) -> Option<ApiKey> {
        fresh(self.lock().get_mut(&hash.0), Instant::now())
    }

    pub fn put(&self, hash: &TokenHash, key: &ApiKey) {
        let mut keys = self.lock();
        if keys.len() >= MAX_KEYS {
            let now = Instant::now();
            keys.retain(|_, slot| slot.live(now));
            if keys.len() >= MAX_KEYS {
                keys.clear();
            }
        }
        keys.insert(hash.0.clone(), Slot::new(key));
    }

    /// Forgets a deleted key.
    pub fn forget(&self, id: ApiKeyId) {
        self.lock().retain(|_, slot| slot.value.id != id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_caller_reloads_an_entry_ahead_of_its_expiry_and_the_others_keep_it() {
        let mut slot = Slot::new(&"loaded");
        let t0 = slot.at;
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // Fresh: everyone gets it.
        for ms in [0, 400, 799] {
            assert_eq!(fresh(Some(&mut slot), at(ms)), Some("loaded"), "{ms} ms");
        }
        // Past REFRESH_AT: the first caller reloads, the others keep it.
        assert_eq!(fresh(Some(&mut slot), at(800)), None);
        for ms in [800, 900, 999] {
            assert_eq!(fresh(Some(&mut slot), at(ms)), Some("loaded"), "{ms} ms");
        }
        // Never past TTL, whoever asks.
        assert_eq!(fresh(Some(&mut slot), at(1000)), None);
        assert_eq!(fresh(Some(&mut slot), at(1500)), None);
        assert_eq!(fresh::<&str>(None, at(0)), None);
        // The reload put back: fresh again, and reloaded once more later.
        let mut slot = Slot::new(&"reloaded");
        let t1 = slot.at;
        assert_eq!(fresh(Some(&mut slot), t1), Some("reloaded"));
        assert!(slot.live(t1 + Duration::from_millis(999)));
        assert!(!slot.live(t1 + TTL));
        assert_eq!(fresh(Some(&mut slot), t1 + REFRESH_AT), None);
    }
}
