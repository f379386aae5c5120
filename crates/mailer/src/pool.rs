//! Idle SMTP sessions kept for reuse, keyed by whoever signs in (a profile
//! or an identity) and the generation of the credentials they signed in
//! with: a new password or token never rides on an old connection.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::SmtpSession;

/// Limits on pooled sessions.
#[derive(Debug, Clone, Copy)]
pub struct PoolLimits {
    /// Idle sessions kept per key.
    pub idle_per_key: usize,
    /// An idle session older than this (since it was last returned) is
    /// closed rather than reused: servers drop quiet connections.
    pub idle_for: Duration,
    /// Transactions on one connection before it is closed and a new one
    /// opened (relays limit messages per connection).
    pub transactions_per_session: u32,
}

impl Default for PoolLimits {
    fn default() -> Self {
        Self {
            idle_per_key: 16,
            idle_for: Duration::from_secs(30),
            transactions_per_session: 100,
        }
    }
}

/// Idle sessions by key.
pub struct SessionPool<K> {
    idle: Mutex<HashMap<K, Vec<(SmtpSession, Instant)>>>,
    limits: PoolLimits,
}

impl<K: Eq + Hash + Clone> SessionPool<K> {
    pub fn new(limits: PoolLimits) -> Self {
        Self {
            idle: Mutex::new(HashMap::new()),
            limits,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Vec<(SmtpSession, Instant)>>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The most recently returned idle session for `key`, if one is fresh.
    /// Stale ones are handed back to be closed.
    pub fn take(&self, key: &K) -> (Option<SmtpSession>, Vec<SmtpSession>) {
        let mut idle = self.lock();
        let Some(list) = idle.get_mut(key) else {
            return (None, Vec::new());
        };
        let mut stale = Vec::new();
        let mut found = None;
        while let Some((s, since)) = list.pop() {
            if since.elapsed() < self.limits.idle_for && s.is_usable() {
                found = Some(s);
                break;
            }
            stale.push(s);
        }
        if list.is_empty() {
            idle.remove(key);
        }
        (found, stale)
    }

    /// Returns a session after a transaction. Returns it back when it should
    /// be closed instead (broken, worn out, or the key has enough idle).
    pub fn put(&self, key: K, session: SmtpSession) -> Option<SmtpSession> {
        if !session.is_usable() || session.transactions() >= self.limits.transactions_per_session {
            return Some(session);
        }
        let mut idle = self.lock();
        let list = idle.entry(key).or_default();
        if list.len() >= self.limits.idle_per_key {
            return Some(session);
        }
        list.push((session, Instant::now()));
        None
    }

    /// Removes every idle session of keys for which `stale` is true (a
    /// credential changed) and every session idle too long; returns them to
    /// be closed.
    pub fn evict(&self, stale: impl Fn(&K) -> bool) -> Vec<SmtpSession> {
        let mut idle = self.lock();
        let mut out = Vec::new();
        idle.retain(|k, list| {
            if stale(k) {
                out.extend(list.drain(..).map(|(s, _)| s));
                return false;
            }
            let (keep, old): (Vec<_>, Vec<_>) = list
                .drain(..)
                .partition(|(_, since)| since.elapsed() < self.limits.idle_for);
            out.extend(old.into_iter().map(|(s, _)| s));
            *list = keep;
            !list.is_empty()
        });
        out
    }

    /// Every idle session (shutdown).
    pub fn drain(&self) -> Vec<SmtpSession> {
        self.evict(|_| true)
    }
}
