//! Who is calling: API keys, portal sessions, and the role checks every use
//! case makes before it acts.

use herald_crypto::{
    BearerToken, SecretString, TokenHash, TokenKind, generate_password, hash_password,
    verify_password,
};
use herald_domain::{Actor, EmailAddress, Principal, Role, SessionId, TenantSlug, Timestamp, User};
use herald_store::{api_keys, sessions, tenants, users};

use crate::{AppError, Herald};

/// How long an API key's `last_used_at` may lag, so a busy key does not write
/// on every request.
const TOUCH_EVERY_SECS: i64 = 60;

/// The role check every use case starts with.
pub(crate) trait Require {
    fn require(&self, role: Role) -> Result<(), AppError>;
}

impl Require for Actor {
    fn require(&self, role: Role) -> Result<(), AppError> {
        if self.role.includes(role) {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "this needs the {role} role or higher; you have {}",
                self.role
            )))
        }
    }
}

/// One page of a keyset-paged list and where the next one starts.
#[derive(Debug, Clone)]
pub struct Page<T, C> {
    pub items: Vec<T>,
    pub next: Option<C>,
}

impl<T, C> Page<T, C> {
    /// `items` was fetched with `limit + 1` rows: the extra one tells whether
    /// another page exists.
    pub(crate) fn from_overfetch(items: &mut Vec<T>, limit: u64, cursor: impl Fn(&T) -> C) -> Self {
        let more = items.len() as u64 > limit;
        items.truncate(limit as usize);
        let next = if more { items.last().map(cursor) } else { None };
        Self {
            items: std::mem::take(items),
            next,
        }
    }
}

/// A new portal session: the token goes into the cookie, once.
#[derive(Debug)]
pub struct LoginSession {
    pub token: SecretString,
    pub user: User,
    pub expires_at: Timestamp,
}

fn actor_for_user(user: &User) -> Actor {
    Actor {
        tenant_id: user.tenant_id,
        principal: Principal::User(user.id),
        role: user.role,
        label: user.email.to_string(),
    }
}

impl Herald {
    /// The caller behind an API key, or `Unauthenticated`.
    pub async fn authenticate_api_key(&self, token: &str) -> Result<Actor, AppError> {
        let hash = TokenHash::of(token);
        let key = match self.key_cache.get(&hash) {
            Some(key) => key,
            None => {
                let key = api_keys::by_hash(self.store.read(), &hash)
                    .await?
                    .ok_or(AppError::Unauthenticated)?;
                let now = Timestamp::now();
                let stale = key
                    .last_used_at
                    .is_none_or(|t| t.plus_secs(TOUCH_EVERY_SECS) < now);
                if stale {
                    let tx = self.store.begin().await?;
                    api_keys::touch(tx.conn(), key.id, now).await?;
                    tx.commit().await?;
                }
                self.key_cache.put(&hash, &key);
                key
            }
        };
        Ok(Actor {
            tenant_id: key.tenant_id,
            principal: Principal::ApiKey(key.id),
            role: key.role,
            label: format!("api key {:?}", key.name),
        })
    }

    /// Signs a user in to the portal with tenant, email and password.
    pub async fn login(
        &self,
        tenant: &str,
        email: &str,
        password: &SecretString,
    ) -> Result<LoginSession, AppError> {
        // Every failure is the same `Unauthenticated`, and an unknown user
        // still costs one hash verification, so neither the answer nor its
        // timing tells which part was wrong.
        static DUMMY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let dummy = DUMMY_HASH.get_or_init(|| hash_password(&generate_password()));
        let found = match (TenantSlug::parse(tenant), EmailAddress::parse(email)) {
            (Ok(slug), Ok(email)) => match tenants::by_slug(self.store.read(), &slug).await? {
                Some(t) => users::by_email(self.store.read(), t.id, &email).await?,
                None => None,
            },
            _ => None,
        };
        let hash = found
            .as_ref()
            .and_then(|u| u.password_hash.clone())
            .unwrap_or_else(|| dummy.clone());
        let matches = verify_password(password, &hash).unwrap_or(false);
        let user = match found {
            Some(u) if matches && u.password_hash.is_some() => u.user,
            _ => return Err(AppError::Unauthenticated),
        };
        let token = BearerToken::generate(TokenKind::Session);
        let expires_at = Timestamp::now().plus_secs(self.settings.session_ttl.as_secs() as i64);
        let tx = self.store.begin().await?;
        sessions::insert(
            tx.conn(),
            SessionId::new(),
            user.tenant_id,
            user.id,
            &token.hash,
            expires_at,
        )
        .await?;
        tx.commit().await?;
        tracing::info!(tenant = %user.tenant_id, user = %user.id, "portal sign-in");
        Ok(LoginSession {
            token: token.token,
            user,
            expires_at,
        })
    }

    /// The caller behind a portal session cookie, or `Unauthenticated`.
    pub async fn authenticate_session(&self, token: &str) -> Result<(Actor, User), AppError> {
        let (_, user) =
            sessions::user_for(self.store.read(), &TokenHash::of(token), Timestamp::now())
                .await?
                .ok_or(AppError::Unauthenticated)?;
        Ok((actor_for_user(&user), user))
    }

    /// Ends a portal session. Ending an unknown one is not an error.
    pub async fn logout(&self, token: &str) -> Result<(), AppError> {
        let tx = self.store.begin().await?;
        sessions::delete_by_hash(tx.conn(), &TokenHash::of(token)).await?;
        sessions::delete_expired(tx.conn(), Timestamp::now()).await?;
        tx.commit().await?;
        Ok(())
    }
}
