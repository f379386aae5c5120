//! What every submission reads and admins rarely change — the tenant (its
//! sending domains), its routing and its relay profiles — kept for a second.
//! A change made through this process clears its tenant's entry at once;
//! another process sees it within the second.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use herald_crypto::TokenHash;
use herald_domain::{ApiKey, ApiKeyId, RelayProfile, RelayProfileId, Tenant, TenantId};
use herald_store::relay_profiles::Routing;

const TTL: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Entry {
    tenant: Option<(Instant, Tenant)>,
    routing: Option<(Instant, Routing)>,
    profiles: HashMap<RelayProfileId, (Instant, RelayProfile)>,
}

#[derive(Default)]
pub(crate) struct PolicyCache {
    entries: Mutex<HashMap<TenantId, Entry>>,
}

fn fresh<T: Clone>(slot: Option<&(Instant, T)>) -> Option<T> {
    slot.filter(|(at, _)| at.elapsed() < TTL)
        .map(|(_, v)| v.clone())
}

impl PolicyCache {
    fn with<R>(&self, tenant: TenantId, f: impl FnOnce(&mut Entry) -> R) -> R {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        f(entries.entry(tenant).or_default())
    }

    pub fn tenant(&self, id: TenantId) -> Option<Tenant> {
        self.with(id, |e| fresh(e.tenant.as_ref()))
    }

    pub fn put_tenant(&self, t: &Tenant) {
        self.with(t.id, |e| e.tenant = Some((Instant::now(), t.clone())));
    }

    pub fn routing(&self, tenant: TenantId) -> Option<Routing> {
        self.with(tenant, |e| fresh(e.routing.as_ref()))
    }

    pub fn put_routing(&self, tenant: TenantId, r: &Routing) {
        self.with(tenant, |e| e.routing = Some((Instant::now(), r.clone())));
    }

    pub fn profile(&self, tenant: TenantId, id: RelayProfileId) -> Option<RelayProfile> {
        self.with(tenant, |e| fresh(e.profiles.get(&id)))
    }

    pub fn put_profile(&self, p: &RelayProfile) {
        self.with(p.tenant_id, |e| {
            e.profiles.insert(p.id, (Instant::now(), p.clone()));
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
    keys: Mutex<HashMap<String, (Instant, ApiKey)>>,
}

impl KeyCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, ApiKey)>> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, hash: &TokenHash) -> Option<ApiKey> {
        fresh(self.lock().get(&hash.0))
    }

    pub fn put(&self, hash: &TokenHash, key: &ApiKey) {
        let mut keys = self.lock();
        if keys.len() >= MAX_KEYS {
            keys.retain(|_, (at, _)| at.elapsed() < TTL);
            if keys.len() >= MAX_KEYS {
                keys.clear();
            }
        }
        keys.insert(hash.0.clone(), (Instant::now(), key.clone()));
    }

    /// Forgets a deleted key.
    pub fn forget(&self, id: ApiKeyId) {
        self.lock().retain(|_, (_, k)| k.id != id);
    }
}
