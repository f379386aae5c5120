//! "Authenticate with MFA": OAuth apps, the consent flow, and access tokens
//! for XOAUTH2, refreshed once at a time per identity.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use herald_crypto::{SecretString, TokenHash};
use herald_domain::{
    Actor, AuditAction, ChangedFields, EmailAddress, Event, EventKind, IdentityAuth, IdentityId,
    IdentityStatus, InvalidInput, OAuthApp, OAuthAppSettings, OAuthProvider, Role, SenderIdentity,
    TenantId, Timestamp,
};
use herald_oauth::{Endpoints, OAuthClient, OAuthError};
use herald_store::oauth::{self as store_oauth, ConsentState};
use herald_store::{Connection, events, identities, secrets};
use serde_json::Value;

use crate::access::Require;
use crate::audit::record;
use crate::identities::{identity_slot, parse_identity_id};
use crate::json::{double_option, parse_at};
use crate::{AppError, Herald};

const APP_TABLE: &str = "oauth_app";
const STATE_TABLE: &str = "oauth_state";
/// A consent must come back within ten minutes.
const STATE_TTL_SECS: i64 = 600;
/// Access tokens expiring sooner than this are refreshed before use.
const REFRESH_MARGIN_SECS: i64 = 300;
/// The path Herald serves the provider's redirect at.
pub const CALLBACK_PATH: &str = "/oauth/callback";

/// An OAuth app configured in herald.toml for every tenant without its own.
#[derive(Debug, Clone)]
pub struct PlatformOAuthApp {
    pub provider: OAuthProvider,
    pub settings: OAuthAppSettings,
    pub client_secret: Option<SecretString>,
}

/// Per-identity locks so that concurrent senders wait for one refresh.
#[derive(Default)]
pub(crate) struct RefreshLocks(Mutex<HashMap<IdentityId, Arc<tokio::sync::Mutex<()>>>>);

impl RefreshLocks {
    fn lock_for(&self, id: IdentityId) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(id).or_default().clone()
    }
}

/// The client secret, as a PUT gives it.
#[derive(Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthAppSecret {
    #[serde(default, deserialize_with = "double_option")]
    pub client_secret: Option<Option<SecretString>>,
}

/// An OAuth app as its admins see it.
#[derive(Debug, Clone)]
pub struct OAuthAppView {
    pub provider: OAuthProvider,
    pub settings: OAuthAppSettings,
    pub client_secret_set: bool,
    /// `tenant` (its own) or `platform` (herald.toml's default).
    pub source: &'static str,
}

/// A usable access token.
pub struct AccessToken {
    pub token: SecretString,
    pub expires_at: Option<Timestamp>,
    pub scopes: Vec<String>,
    /// The credential generation this token belongs to (pass it back as
    /// `force_generation` when the server rejects the token).
    pub generation: i64,
}

/// Why no access token could be had.
#[derive(Debug)]
pub enum TokenFailure {
    /// Not connected yet, or the grant was revoked: the owner must consent.
    NeedsConsent(String),
    /// The provider could not be reached or refused for another reason.
    Provider(String),
    Internal(AppError),
}

impl From<AppError> for TokenFailure {
    fn from(e: AppError) -> Self {
        TokenFailure::Internal(e)
    }
}

impl From<herald_store::StoreError> for TokenFailure {
    fn from(e: herald_store::StoreError) -> Self {
        TokenFailure::Internal(e.into())
    }
}

fn state_hash(state: &str) -> String {
    TokenHash::of(state).0
}

fn refused(message: impl Into<String>) -> AppError {
    AppError::Forbidden(message.into())
}

impl Herald {
    fn oauth_client(
        provider: OAuthProvider,
        settings: &OAuthAppSettings,
        secret: Option<SecretString>,
    ) -> OAuthClient {
        let authority = settings
            .authority
            .as_ref()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_else(|| "organizations".into());
        let defaults = Endpoints::defaults(provider, &authority);
        OAuthClient {
            provider,
            client_id: settings.client_id.to_string(),
            client_secret: secret,
            redirect_uri: settings.redirect_uri.to_string(),
            endpoints: Endpoints {
                authorize: settings
                    .authorize_url
                    .as_ref()
                    .map(|u| u.to_string())
                    .unwrap_or(defaults.authorize),
                token: settings
                    .token_url
                    .as_ref()
                    .map(|u| u.to_string())
                    .unwrap_or(defaults.token),
                userinfo: settings
                    .userinfo_url
                    .as_ref()
                    .map(|u| u.to_string())
                    .or(defaults.userinfo),
            },
        }
    }

    /// The tenant's app for `provider`, else the platform's.
    async fn client_for(
        &self,
        db: &impl Connection,
        tenant: TenantId,
        provider: OAuthProvider,
    ) -> Result<OAuthClient, AppError> {
        if let Some(app) = store_oauth::get_app(db, tenant, provider).await? {
            let slot = secrets::Slot {
                tenant,
                table: APP_TABLE,
                row: provider.as_str(),
                field: "client_secret",
            };
            let secret = secrets::get_text(db, &self.keys, slot).await?;
            return Ok(Self::oauth_client(provider, &app.settings, secret));
        }
        match self
            .settings
            .platform_oauth
            .iter()
            .find(|p| p.provider == provider)
        {
            Some(p) => Ok(Self::oauth_client(
                provider,
                &p.settings,
                p.client_secret.clone(),
            )),
            None => Err(InvalidInput::new(
                "provider",
                format!("no OAuth app is configured for {provider}: an admin must add one"),
            )
            .into()),
        }
    }

    pub async fn oauth_app(&self, actor: &Actor, provider: &str) -> Result<OAuthAppView, AppError> {
        actor.require(Role::Admin)?;
        let provider: OAuthProvider = provider
            .parse()
            .map_err(|_: InvalidInput| AppError::NotFound("oauth app"))?;
        let db = self.store.read();
        if let Some(app) = store_oauth::get_app(db, actor.tenant_id, provider).await? {
            let slot = secrets::Slot {
                tenant: actor.tenant_id,
                table: APP_TABLE,
                row: provider.as_str(),
                field: "client_secret",
            };
            return Ok(OAuthAppView {
                provider,
                settings: app.settings,
                client_secret_set: secrets::is_set(db, slot).await?,
                source: "tenant",
            });
        }
        match self
            .settings
            .platform_oauth
            .iter()
            .find(|p| p.provider == provider)
        {
            Some(p) => Ok(OAuthAppView {
                provider,
                settings: p.settings.clone(),
                client_secret_set: p.client_secret.is_some(),
                source: "platform",
            }),
            None => Err(AppError::NotFound("oauth app")),
        }
    }

    /// Creates or replaces the tenant's app for `provider`.
    pub async fn put_oauth_app(
        &self,
        actor: &Actor,
        provider: &str,
        settings: Value,
        secret: OAuthAppSecret,
    ) -> Result<OAuthAppView, AppError> {
        actor.require(Role::Admin)?;
        let provider: OAuthProvider = provider
            .parse()
            .map_err(|_: InvalidInput| AppError::NotFound("oauth app"))?;
        let settings: OAuthAppSettings = parse_at(settings)?;
        if settings.redirect_uri.path() != CALLBACK_PATH {
            return Err(InvalidInput::new(
                "redirect_uri",
                format!("must end in {CALLBACK_PATH}, where Herald receives the provider's answer"),
            )
            .into());
        }
        if provider == OAuthProvider::Google && settings.authority.is_some() {
            return Err(InvalidInput::new("authority", "is for Microsoft apps only").into());
        }
        let tx = self.store.begin().await?;
        let db = tx.conn();
        let before = store_oauth::get_app(db, actor.tenant_id, provider).await?;
        let app = OAuthApp {
            tenant_id: actor.tenant_id,
            provider,
            settings,
            updated_at: Timestamp::now(),
        };
        store_oauth::put_app(db, &app).await?;
        let slot = secrets::Slot {
            tenant: actor.tenant_id,
            table: APP_TABLE,
            row: provider.as_str(),
            field: "client_secret",
        };
        let mut fields = ChangedFields::new();
        match (&before, &app.settings) {
            (Some(b), s) => {
                fields.compare("client_id", &b.settings.client_id, &s.client_id);
                fields.compare("authority", &b.settings.authority, &s.authority);
                fields.compare("redirect_uri", &b.settings.redirect_uri, &s.redirect_uri);
                fields.compare(
                    "endpoints",
                    &(
                        &b.settings.authorize_url,
                        &b.settings.token_url,
                        &b.settings.userinfo_url,
                        &b.settings.jwks_url,
                    ),
                    &(&s.authorize_url, &s.token_url, &s.userinfo_url, &s.jwks_url),
                );
            }
            (None, _) => fields.push("settings"),
        }
        match secret.client_secret {
            Some(Some(value)) => {
                if value.expose().is_empty() || value.expose().chars().any(char::is_control) {
                    return Err(InvalidInput::new(
                        "client_secret",
                        "must be non-empty, without control characters",
                    )
                    .into());
                }
                secrets::put(db, &self.keys, slot, value.expose().as_bytes()).await?;
                fields.push("client_secret");
            }
            Some(None) => {
                secrets::delete(db, slot).await?;
                fields.push("client_secret");
            }
            None => {}
        }
        let action = if before.is_some() {
            AuditAction::Update
        } else {
            AuditAction::Create
        };
        if !fields.is_empty() {
            record(db, actor, action, APP_TABLE, provider.as_str(), fields).await?;
        }
        let client_secret_set = secrets::is_set(db, slot).await?;
        tx.commit().await?;
        Ok(OAuthAppView {
            provider,
            settings: app.settings,
            client_secret_set,
            source: "tenant",
        })
    }

    pub async fn delete_oauth_app(&self, actor: &Actor, provider: &str) -> Result<(), AppError> {
        actor.require(Role::Admin)?;
        let provider: OAuthProvider = provider
            .parse()
            .map_err(|_: InvalidInput| AppError::NotFound("oauth app"))?;
        let tx = self.store.begin().await?;
        if !store_oauth::delete_app(tx.conn(), actor.tenant_id, provider).await? {
            return Err(AppError::NotFound("oauth app"));
        }
        secrets::delete_row(tx.conn(), actor.tenant_id, APP_TABLE, provider.as_str()).await?;
        record(
            tx.conn(),
            actor,
            AuditAction::Delete,
            APP_TABLE,
            provider.as_str(),
            ChangedFields::new(),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Starts a consent for an OAuth identity: the provider's authorize URL,
    /// with a state bound to the calling user and the identity.
    pub async fn start_oauth(
        &self,
        actor: &Actor,
        id: &str,
    ) -> Result<(String, Timestamp), AppError> {
        let id = parse_identity_id(id)?;
        let user = actor.user_id().ok_or_else(|| {
            AppError::Forbidden(
                "consent is given by a signed-in user (the portal or a session), not an API key"
                    .into(),
            )
        })?;
        let db = self.store.read();
        let identity = self.visible_identity(db, actor, id).await?;
        Self::require_manage(actor, &identity)?;
        let IdentityAuth::OAuth { provider, .. } = identity.auth else {
            return Err(InvalidInput::new(
                "auth",
                "this identity signs in with a password; switch it to OAuth first",
            )
            .into());
        };
        let client = self.client_for(db, actor.tenant_id, provider).await?;
        let auth = client
            .authorize(&identity.address)
            .map_err(|e| AppError::InvalidField {
                field: "oauth_app".into(),
                message: e.to_string(),
            })?;
        let hash = state_hash(auth.state.expose());
        let expires_at = Timestamp::now().plus_secs(STATE_TTL_SECS);
        let tx = self.store.begin().await?;
        // Sweep a few long-expired consents (and their verifiers) as we go.
        let stale = Timestamp::now().plus_secs(-3600);
        for (tenant, old) in store_oauth::expired_states(tx.conn(), stale, 50).await? {
            secrets::delete_row(tx.conn(), tenant, STATE_TABLE, &old).await?;
            store_oauth::delete_state(tx.conn(), &old).await?;
        }
        store_oauth::insert_state(
            tx.conn(),
            &ConsentState {
                state_hash: hash.clone(),
                tenant_id: actor.tenant_id,
                user_id: user,
                identity_id: id,
                expires_at,
                used_at: None,
            },
        )
        .await?;
        let slot = secrets::Slot {
            tenant: actor.tenant_id,
            table: STATE_TABLE,
            row: &hash,
            field: "pkce_verifier",
        };
        secrets::put(
            tx.conn(),
            &self.keys,
            slot,
            auth.pkce_verifier.expose().as_bytes(),
        )
        .await?;
        tx.commit().await?;
        Ok((auth.url, expires_at))
    }

    /// The provider's redirect. `actor` is the signed-in user whose browser
    /// brought it. Every refusal stores nothing.
    pub async fn complete_oauth(
        &self,
        actor: &Actor,
        state: &str,
        code: Option<&str>,
        error: Option<(&str, Option<&str>)>,
    ) -> Result<SenderIdentity, AppError> {
        let hash = state_hash(state);
        let consent = store_oauth::state(self.store.read(), &hash)
            .await?
            .ok_or_else(|| refused("this sign-in link is unknown; start again from Herald"))?;
        if consent.tenant_id != actor.tenant_id || actor.user_id() != Some(consent.user_id) {
            return Err(refused(
                "this sign-in was started by another user; start again from your own account",
            ));
        }
        if consent.used_at.is_some() {
            return Err(refused("this sign-in link was already used; start again"));
        }
        if consent.expires_at < Timestamp::now() {
            return Err(refused(
                "this sign-in link expired (10 minutes); start again",
            ));
        }
        // Single use, whatever happens next.
        let verifier = {
            let tx = self.store.begin().await?;
            if !store_oauth::use_state(tx.conn(), &hash).await? {
                return Err(refused("this sign-in link was already used; start again"));
            }
            let slot = secrets::Slot {
                tenant: consent.tenant_id,
                table: STATE_TABLE,
                row: &hash,
                field: "pkce_verifier",
            };
            let verifier = secrets::get_text(tx.conn(), &self.keys, slot).await?;
            secrets::delete(tx.conn(), slot).await?;
            tx.commit().await?;
            verifier
                .ok_or_else(|| AppError::Internal("consent state without its verifier".into()))?
        };
        if let Some((error, description)) = error {
            return Err(match error {
                "access_denied" => refused(
                    "consent was declined at the provider; nothing was connected. Start again to \
                     connect this mailbox.",
                ),
                other => refused(format!(
                    "the provider answered {other}{}; nothing was connected",
                    description.map(|d| format!(": {d}")).unwrap_or_default()
                )),
            });
        }
        let code = code.ok_or_else(|| InvalidInput::new("code", "is missing"))?;
        let db = self.store.read();
        let identity = identities::get(db, consent.tenant_id, consent.identity_id)
            .await?
            .ok_or(AppError::NotFound("sender identity"))?;
        let IdentityAuth::OAuth {
            provider,
            generation,
            ..
        } = identity.auth.clone()
        else {
            return Err(refused("this identity no longer uses OAuth"));
        };
        let client = self.client_for(db, consent.tenant_id, provider).await?;
        let tokens = client
            .exchange_code(&self.http, code, &verifier)
            .await
            .map_err(|e| refused(format!("the code could not be exchanged: {e}")))?;
        let mailbox = match tokens.id_token_mailbox.clone() {
            Some(m) => Some(m),
            None => client
                .userinfo_mailbox(&self.http, &tokens.access_token)
                .await
                .map_err(|e| refused(format!("the mailbox could not be checked: {e}")))?,
        };
        let granted = mailbox
            .as_deref()
            .and_then(|m| EmailAddress::parse(m).ok())
            .ok_or_else(|| refused("the provider did not say which mailbox signed in"))?;
        if !granted.eq_ignore_case(&identity.address) {
            return Err(refused(format!(
                "you signed in as {granted}, but this identity is {}; sign in with that mailbox",
                identity.address
            )));
        }
        let refresh = tokens.refresh_token.as_ref().ok_or_else(|| {
            refused(
                "the provider issued no refresh token (for Google: offline access with consent)",
            )
        })?;
        let mut connected = identity.clone();
        connected.auth = IdentityAuth::OAuth {
            provider,
            granted_mailbox: Some(granted),
            access_expires_at: tokens
                .expires_in
                .map(|d| Timestamp::now().plus_secs(d.as_secs() as i64)),
            generation: generation + 1,
            scopes: tokens.scopes.clone(),
        };
        connected.status = IdentityStatus::Connected;
        connected.last_error = None;
        let tx = self.store.begin().await?;
        let row = identity.id.to_string();
        let slot = |f| identity_slot(consent.tenant_id, &row, f);
        secrets::put(
            tx.conn(),
            &self.keys,
            slot("refresh_token"),
            refresh.expose().as_bytes(),
        )
        .await?;
        secrets::put(
            tx.conn(),
            &self.keys,
            slot("access_token"),
            tokens.access_token.expose().as_bytes(),
        )
        .await?;
        identities::update(tx.conn(), &connected).await?;
        self.release_held(
            tx.conn(),
            consent.tenant_id,
            herald_store::messages::SenderScope::Identity(identity.id),
            "authenticated again",
        )
        .await?;
        events::insert(
            tx.conn(),
            &Event::for_identity(
                consent.tenant_id,
                identity.id,
                EventKind::IdentityConnected,
                Some(format!("{provider} consent as {}", identity.address)),
            ),
        )
        .await?;
        record(
            tx.conn(),
            actor,
            AuditAction::Update,
            crate::identities::TABLE,
            &row,
            ChangedFields::of(&["oauth_tokens", "status"]),
        )
        .await?;
        tx.commit().await?;
        Ok(connected)
    }

    /// Wipes an identity's tokens ("disconnect").
    pub async fn disconnect_oauth(&self, actor: &Actor, id: &str) -> Result<(), AppError> {
        let id = parse_identity_id(id)?;
        let tx = self.store.begin().await?;
        let identity = self.visible_identity(tx.conn(), actor, id).await?;
        Self::require_manage(actor, &identity)?;
        let row = id.to_string();
        for f in ["refresh_token", "access_token"] {
            secrets::delete(tx.conn(), identity_slot(actor.tenant_id, &row, f)).await?;
        }
        let mut after = identity.clone();
        if let IdentityAuth::OAuth {
            provider,
            generation,
            ..
        } = identity.auth
        {
            after.auth = IdentityAuth::OAuth {
                provider,
                granted_mailbox: None,
                access_expires_at: None,
                generation: generation + 1,
                scopes: Vec::new(),
            };
        }
        after.status = IdentityStatus::Unverified;
        identities::update(tx.conn(), &after).await?;
        events::insert(
            tx.conn(),
            &Event::for_identity(actor.tenant_id, id, EventKind::IdentityDisconnected, None),
        )
        .await?;
        record(
            tx.conn(),
            actor,
            AuditAction::Update,
            crate::identities::TABLE,
            &row,
            ChangedFields::of(&["oauth_tokens"]),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// An access token for XOAUTH2, refreshed first when it expires within
    /// five minutes (or when `force`, after the server rejected it). One
    /// refresh per identity at a time: concurrent callers wait for it and
    /// use its result. A rotated refresh token is stored in the same
    /// transaction as the new access token. `invalid_grant` marks the
    /// identity needs_reauth and tells its owner.
    pub async fn access_token(
        &self,
        tenant: TenantId,
        id: IdentityId,
        force_generation: Option<i64>,
    ) -> Result<AccessToken, TokenFailure> {
        let lock = self.refresh_locks.lock_for(id);
        let _guard = lock.lock().await;
        let db = self.store.read();
        let identity = identities::get(db, tenant, id)
            .await?
            .ok_or(AppError::NotFound("sender identity"))?;
        let IdentityAuth::OAuth {
            provider,
            access_expires_at,
            generation,
            scopes,
            granted_mailbox,
        } = identity.auth.clone()
        else {
            return Err(TokenFailure::NeedsConsent(
                "this identity uses a password".into(),
            ));
        };
        let row = id.to_string();
        let slot = |f| identity_slot(tenant, &row, f);
        // A forced refresh that another caller already did counts as done.
        let forced = force_generation.is_some_and(|g| g == generation);
        let fresh =
            access_expires_at.is_some_and(|t| t > Timestamp::now().plus_secs(REFRESH_MARGIN_SECS));
        if fresh
            && !forced
            && let Some(token) = secrets::get_text(db, &self.keys, slot("access_token")).await?
        {
            return Ok(AccessToken {
                token,
                expires_at: access_expires_at,
                scopes,
                generation,
            });
        }
        let refresh = secrets::get_text(db, &self.keys, slot("refresh_token"))
            .await?
            .ok_or_else(|| {
                TokenFailure::NeedsConsent(
                    "this identity is not connected: Authenticate with MFA first".into(),
                )
            })?;
        let client = self.client_for(db, tenant, provider).await?;
        match client.refresh(&self.http, &refresh).await {
            Ok(tokens) => {
                let expires_at = tokens
                    .expires_in
                    .map(|d| Timestamp::now().plus_secs(d.as_secs() as i64));
                let scopes = if tokens.scopes.is_empty() {
                    scopes
                } else {
                    tokens.scopes.clone()
                };
                let mut after = identity.clone();
                after.auth = IdentityAuth::OAuth {
                    provider,
                    granted_mailbox,
                    access_expires_at: expires_at,
                    generation: generation + 1,
                    scopes: scopes.clone(),
                };
                let tx = self.store.begin().await?;
                secrets::put(
                    tx.conn(),
                    &self.keys,
                    slot("access_token"),
                    tokens.access_token.expose().as_bytes(),
                )
                .await?;
                if let Some(rotated) = &tokens.refresh_token {
                    secrets::put(
                        tx.conn(),
                        &self.keys,
                        slot("refresh_token"),
                        rotated.expose().as_bytes(),
                    )
                    .await?;
                }
                identities::update(tx.conn(), &after).await?;
                let note = tokens
                    .refresh_token
                    .as_ref()
                    .map(|_| "refresh token rotated".to_owned());
                events::insert(
                    tx.conn(),
                    &Event::for_identity(tenant, id, EventKind::TokenRefreshed, note),
                )
                .await?;
                tx.commit().await?;
                tracing::info!(%tenant, identity = %id, rotated = tokens.refresh_token.is_some(), "access token refreshed");
                Ok(AccessToken {
                    token: tokens.access_token,
                    expires_at,
                    scopes,
                    generation: generation + 1,
                })
            }
            Err(OAuthError::Revoked(detail)) => {
                let message = format!(
                    "{provider} refused the stored grant ({detail}); the owner must Authenticate \
                     with MFA again"
                );
                let tx = self.store.begin().await?;
                identities::set_status(
                    tx.conn(),
                    tenant,
                    id,
                    IdentityStatus::NeedsReauth,
                    Some(&message),
                )
                .await?;
                events::insert(
                    tx.conn(),
                    &Event::for_identity(
                        tenant,
                        id,
                        EventKind::ReauthRequired,
                        Some(message.clone()),
                    ),
                )
                .await?;
                tx.commit().await?;
                tracing::warn!(%tenant, identity = %id, "OAuth grant revoked; identity needs re-authentication");
                self.tell_owner_to_reauthenticate(&identity).await;
                Err(TokenFailure::NeedsConsent(message))
            }
            Err(e) => Err(TokenFailure::Provider(e.to_string())),
        }
    }

    /// Emails the identity's owner through the tenant's default profile.
    async fn tell_owner_to_reauthenticate(&self, identity: &SenderIdentity) {
        let Some(owner) = identity.owner else {
            return;
        };
        let user =
            match herald_store::users::get(self.store.read(), identity.tenant_id, owner).await {
                Ok(Some(u)) => u,
                _ => return,
            };
        let subject = format!("Action needed: reconnect {}", identity.address);
        let text = format!(
            "Herald can no longer send as {} because its sign-in was revoked or expired.\r\n\
             Sign in to Herald, open Sender identities and choose \"Authenticate with MFA\" for \
             this address. Mail waiting to be sent as it is held until then.\r\n",
            identity.address
        );
        if let Err(e) = self
            .send_notice(identity.tenant_id, &user.email, &subject, &text)
            .await
        {
            tracing::warn!(tenant = %identity.tenant_id, identity = %identity.id, error = %e, "could not notify the identity's owner");
        }
    }
}
