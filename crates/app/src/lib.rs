//! Herald's use cases. Handlers and the command line call these; these call
//! the store. Access rules are checked here, once, whatever the caller.

mod accept;
mod access;
mod api_keys;
mod audit;
mod bounces;
mod cache;
mod delivery;
mod error;
mod events;
mod identities;
mod json;
mod keys;
mod oauth;
mod queue_view;
mod relay_profiles;
mod send;
mod suppressions;
mod tenants;
mod test_send;
mod unsubscribe;
mod users;
pub mod writer_thread;

use std::sync::Arc;
use std::time::Duration;

use herald_crypto::KeyRing;
use herald_store::Store;

pub use access::{LoginSession, Page};
pub use api_keys::{CreatedApiKey, NewApiKey};
pub use audit::AuditCursor;
pub use bounces::BouncePoll;
pub use delivery::{Delivered, DeliveryContext, Job};
pub use error::AppError;
pub use events::EventCursor;
pub use herald_mailer::{Diagnosis, Reply, Stage};
pub use herald_store::relay_profiles::Routing;
pub use herald_store::suppressions::{Suppression, SuppressionKind};
pub use identities::{AuthInput, IdentityPatch, IdentityView, NewIdentity};
pub use keys::{SealedKeyCheck, missing_key_ids};
pub use oauth::{
    AccessToken, CALLBACK_PATH, OAuthAppSecret, OAuthAppView, PlatformOAuthApp, TokenFailure,
};
pub use queue_view::{MessageCursor, MessageDetail};
pub use relay_profiles::{ProfileSecrets, ProfileView, SecretsSet};
pub use send::{Accepted, Idempotency, NewAttachment, Submission};
pub use suppressions::{MAX_ADD as MAX_SUPPRESSIONS_PER_ADD, NewSuppression};
pub use tenants::{CreatedTenant, NewTenant, TenantPatch};
pub use test_send::TestSendReport;
pub use unsubscribe::{TAG_UNSUBSCRIBE_URL, UNSUBSCRIBE_PATH, UNSUBSCRIBE_URL, UnsubscribeView};
pub use users::{CreatedUser, NewUser, UserPatch};

/// Settings the use cases need.
#[derive(Debug, Clone)]
pub struct AppSettings {
    /// How long a portal session lasts without sign-in.
    pub session_ttl: Duration,
    /// OAuth apps from herald.toml, used by tenants without their own.
    pub platform_oauth: Vec<PlatformOAuthApp>,
}

impl Default for AppSettings {
    fn default() -> Self {
        Self {
            session_ttl: Duration::from_secs(12 * 3600),
            platform_oauth: Vec::new(),
        }
    }
}

/// The application: the store, the key ring and settings. Cheap to clone.
#[derive(Clone)]
pub struct Herald {
    store: Store,
    keys: Arc<KeyRing>,
    settings: AppSettings,
    /// For HTTP relays (Mailgun) and OAuth providers; never follows redirects.
    http: reqwest::Client,
    refresh_locks: Arc<oauth::RefreshLocks>,
    /// Rung when mail becomes due (accepted, resent, released), so an idle
    /// worker in this process starts at once instead of at its next poll.
    queue_signal: Arc<tokio::sync::Notify>,
    /// The acceptance writer, started on first use (inside the runtime).
    group_commit: Arc<std::sync::OnceLock<accept::GroupCommit>>,
    policy_cache: Arc<cache::PolicyCache>,
    key_cache: Arc<cache::KeyCache>,
    /// Bounce mailbox polls failed in a row, per profile.
    bounce_failures: Arc<bounces::PollFailures>,
    /// POP3 bounce mailboxes: keys of the messages left in place.
    pop3_kept: Arc<
        std::sync::Mutex<std::collections::HashMap<herald_domain::RelayProfileId, Vec<String>>>,
    >,
}

impl Herald {
    pub fn new(store: Store, keys: Arc<KeyRing>, settings: AppSettings) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self {
            store,
            keys,
            settings,
            http,
            refresh_locks: Arc::default(),
            queue_signal: Arc::default(),
            group_commit: Arc::default(),
            policy_cache: Arc::default(),
            key_cache: Arc::default(),
            bounce_failures: Arc::default(),
            pop3_kept: Arc::default(),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    fn group_commit(&self) -> &accept::GroupCommit {
        self.group_commit
            .get_or_init(|| accept::GroupCommit::start(self.store.clone()))
    }

    /// Notified when mail becomes due.
    pub fn queue_signal(&self) -> Arc<tokio::sync::Notify> {
        self.queue_signal.clone()
    }
}
