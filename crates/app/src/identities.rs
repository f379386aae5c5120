//! Sender identities. A user manages the identities they own; owners and
//! admins manage every identity, including shared department addresses
//! (admissions@, billing@) and the users named on them.

use herald_crypto::SecretString;
use herald_domain::{
    Actor, AuditAction, ChangedFields, DisplayName, EmailAddress, IdentityAuth, IdentityId,
    IdentityStatus, InvalidInput, OAuthProvider, RelayProfileId, Role, SenderIdentity,
    SmtpUsername, TenantId, Timestamp, UserId,
};
use herald_store::{Connection, identities, relay_profiles, secrets, users};

use crate::access::{Page, Require};
use crate::audit::record;
use crate::{AppError, Herald};

pub(crate) const TABLE: &str = "sender_identity";
/// The sealed fields an identity may hold.
pub(crate) const SECRET_FIELDS: [&str; 3] = ["password", "refresh_token", "access_token"];

/// How a new or changed identity signs in.
#[derive(Debug)]
pub enum AuthInput {
    /// A password (sealed); omitted on an update, the current one stays.
    Password {
        username: Option<SmtpUsername>,
        password: Option<SecretString>,
    },
    /// OAuth2: the owner connects it with "Authenticate with MFA".
    OAuth { provider: OAuthProvider },
}

#[derive(Debug)]
pub struct NewIdentity {
    pub address: EmailAddress,
    pub display_name: Option<DisplayName>,
    /// `None`: the caller owns it. `Some(None)`: a shared identity.
    pub owner: Option<Option<UserId>>,
    pub shared_with: Vec<UserId>,
    /// `None`: the tenant's default profile.
    pub profile_id: Option<RelayProfileId>,
    pub preferred: bool,
    pub auth: AuthInput,
}

/// `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct IdentityPatch {
    pub display_name: Option<Option<DisplayName>>,
    pub owner: Option<Option<UserId>>,
    pub shared_with: Option<Vec<UserId>>,
    pub profile_id: Option<RelayProfileId>,
    pub preferred: Option<bool>,
    pub auth: Option<AuthInput>,
}

/// An identity and which of its secrets are set.
#[derive(Debug, Clone)]
pub struct IdentityView {
    pub identity: SenderIdentity,
    pub password_set: bool,
    pub tokens_set: bool,
}

pub(crate) fn parse_identity_id(id: &str) -> Result<IdentityId, AppError> {
    id.parse()
        .map_err(|_: InvalidInput| AppError::NotFound("sender identity"))
}

pub(crate) fn identity_slot<'a>(
    tenant: TenantId,
    row: &'a str,
    field: &'a str,
) -> secrets::Slot<'a> {
    secrets::Slot {
        tenant,
        table: TABLE,
        row,
        field,
    }
}

fn check_secret(field: &'static str, value: &SecretString) -> Result<(), AppError> {
    if value.expose().is_empty() || value.expose().contains(['\r', '\n', '\0']) {
        return Err(
            InvalidInput::new(field, "must be non-empty, without line breaks or NUL").into(),
        );
    }
    Ok(())
}

impl Herald {
    /// The identity, if the actor may see it (else "not found").
    pub(crate) async fn visible_identity(
        &self,
        db: &impl Connection,
        actor: &Actor,
        id: IdentityId,
    ) -> Result<SenderIdentity, AppError> {
        let identity = identities::get(db, actor.tenant_id, id)
            .await?
            .ok_or(AppError::NotFound("sender identity"))?;
        let mine = actor.user_id().is_some_and(|u| identity.usable_by(u));
        if !mine && !actor.role.includes(Role::Admin) {
            return Err(AppError::NotFound("sender identity"));
        }
        Ok(identity)
    }

    /// Admins manage any identity; others only the ones they own.
    pub(crate) fn require_manage(actor: &Actor, identity: &SenderIdentity) -> Result<(), AppError> {
        if actor.role.includes(Role::Admin) {
            return Ok(());
        }
        actor.require(Role::Sender)?;
        match actor.user_id() {
            Some(u) if identity.owner == Some(u) => Ok(()),
            _ => Err(AppError::Forbidden(
                "only the owner or an admin may change this identity".into(),
            )),
        }
    }

    pub async fn list_identities(
        &self,
        actor: &Actor,
        after: Option<IdentityId>,
        limit: u64,
    ) -> Result<Page<IdentityView, IdentityId>, AppError> {
        let db = self.store.read();
        let visible_to = if actor.role.includes(Role::Admin) {
            None
        } else {
            Some(actor.user_id().ok_or_else(|| {
                AppError::Forbidden("this API key's role may not list identities".into())
            })?)
        };
        let mut items = identities::list(db, actor.tenant_id, visible_to, after, limit + 1).await?;
        let page = Page::from_overfetch(&mut items, limit, |i| i.id);
        let mut views = Vec::with_capacity(page.items.len());
        for i in page.items {
            views.push(self.identity_view(db, i).await?);
        }
        Ok(Page {
            items: views,
            next: page.next,
        })
    }

    pub async fn identity(&self, actor: &Actor, id: &str) -> Result<IdentityView, AppError> {
        let id = parse_identity_id(id)?;
        let db = self.store.read();
        let identity = self.visible_identity(db, actor, id).await?;
        self.identity_view(db, identity).await
    }

    pub async fn create_identity(
        &self,
        actor: &Actor,
        new: NewIdentity,
    ) -> Result<IdentityView, AppError> {
        actor.require(Role::Sender)?;
        let admin = actor.role.includes(Role::Admin);
        let owner = match new.owner {
            None => Some(actor.user_id().ok_or_else(|| {
                InvalidInput::new(
                    "owner_user_id",
                    "is required when an API key creates an identity (null for a shared one)",
                )
            })?),
            Some(owner) => owner,
        };
        if !admin && (owner != actor.user_id() || !new.shared_with.is_empty()) {
            return Err(AppError::Forbidden(
                "only admins create identities for other users or shared identities".into(),
            ));
        }
        let tx = self.store.begin().await?;
        let db = tx.conn();
        let profile_id = match new.profile_id {
            Some(p) => p,
            None => relay_profiles::routing(db, actor.tenant_id)
                .await?
                .default
                .ok_or_else(|| {
                    InvalidInput::new(
                        "profile_id",
                        "is required: the tenant has no default relay profile",
                    )
                })?,
        };
        let (auth, password) = match new.auth {
            AuthInput::Password { username, password } => {
                (IdentityAuth::Password { username }, password)
            }
            AuthInput::OAuth { provider } => (
                IdentityAuth::OAuth {
                    provider,
                    granted_mailbox: None,
                    access_expires_at: None,
                    generation: 0,
                    scopes: Vec::new(),
                },
                None,
            ),
        };
        let identity = SenderIdentity {
            id: IdentityId::new(),
            tenant_id: actor.tenant_id,
            address: new.address,
            display_name: new.display_name,
            owner,
            shared_with: new.shared_with,
            profile_id,
            preferred: new.preferred,
            status: IdentityStatus::Unverified,
            auth,
            last_error: None,
            last_checked_at: None,
            created_at: Timestamp::now(),
        };
        self.check_identity(db, &identity).await?;
        if identity.preferred
            && let Some(owner) = identity.owner
        {
            identities::clear_preferred(db, actor.tenant_id, owner).await?;
        }
        identities::insert(db, &identity).await?;
        let row = identity.id.to_string();
        let mut fields = ChangedFields::of(&["address", "owner_user_id", "profile_id", "auth"]);
        if let Some(password) = password {
            check_secret("auth.password", &password)?;
            let slot = identity_slot(actor.tenant_id, &row, "password");
            secrets::put(db, &self.keys, slot, password.expose().as_bytes()).await?;
            fields.push("password");
        }
        record(db, actor, AuditAction::Create, TABLE, &row, fields).await?;
        let view = self.identity_view(db, identity).await?;
        tx.commit().await?;
        Ok(view)
    }

    pub async fn update_identity(
        &self,
        actor: &Actor,
        id: &str,
        patch: IdentityPatch,
    ) -> Result<IdentityView, AppError> {
        let id = parse_identity_id(id)?;
        let tx = self.store.begin().await?;
        let db = tx.conn();
        let before = self.visible_identity(db, actor, id).await?;
        Self::require_manage(actor, &before)?;
        let admin = actor.role.includes(Role::Admin);
        if !admin && (patch.owner.is_some() || patch.shared_with.is_some()) {
            return Err(AppError::Forbidden(
                "only admins change who owns or shares an identity".into(),
            ));
        }
        let mut after = before.clone();
        let row = id.to_string();
        let mut fields = ChangedFields::new();
        if let Some(d) = patch.display_name {
            after.display_name = d;
        }
        if let Some(o) = patch.owner {
            after.owner = o;
        }
        match patch.shared_with {
            Some(s) => after.shared_with = s,
            // Given an owner, an identity is no longer shared.
            None if after.owner.is_some() => after.shared_with.clear(),
            None => {}
        }
        if let Some(p) = patch.profile_id {
            after.profile_id = p;
        }
        if let Some(p) = patch.preferred {
            after.preferred = p;
        }
        if let Some(auth) = patch.auth {
            let wipe: &[&str] = match (auth, &before.auth) {
                (AuthInput::Password { username, password }, old) => {
                    after.auth = IdentityAuth::Password { username };
                    if let Some(password) = password {
                        check_secret("auth.password", &password)?;
                        let slot = identity_slot(actor.tenant_id, &row, "password");
                        secrets::put(db, &self.keys, slot, password.expose().as_bytes()).await?;
                        fields.push("password");
                    }
                    if matches!(old, IdentityAuth::OAuth { .. }) {
                        &["refresh_token", "access_token"]
                    } else {
                        &[]
                    }
                }
                (AuthInput::OAuth { provider }, IdentityAuth::OAuth { provider: p, .. })
                    if provider == *p =>
                {
                    &[]
                }
                (AuthInput::OAuth { provider }, _) => {
                    after.auth = IdentityAuth::OAuth {
                        provider,
                        granted_mailbox: None,
                        access_expires_at: None,
                        generation: 0,
                        scopes: Vec::new(),
                    };
                    &SECRET_FIELDS
                }
            };
            for field in wipe {
                secrets::delete(db, identity_slot(actor.tenant_id, &row, field)).await?;
            }
        }
        fields.compare("display_name", &before.display_name, &after.display_name);
        fields.compare("owner_user_id", &before.owner, &after.owner);
        fields.compare("shared_with", &before.shared_with, &after.shared_with);
        fields.compare("profile_id", &before.profile_id, &after.profile_id);
        fields.compare("preferred", &before.preferred, &after.preferred);
        fields.compare("auth", &before.auth, &after.auth);
        if before.profile_id != after.profile_id
            || before.auth != after.auth
            || fields.names().iter().any(|f| f == "password")
        {
            // New credentials or a new relay: unproven until tested again.
            after.status = IdentityStatus::Unverified;
            after.last_error = None;
        }
        self.check_identity(db, &after).await?;
        if !fields.is_empty() {
            if after.preferred
                && !before.preferred
                && let Some(owner) = after.owner
            {
                identities::clear_preferred(db, actor.tenant_id, owner).await?;
            }
            identities::update(db, &after).await?;
            if matches!(
                before.status,
                IdentityStatus::Failing | IdentityStatus::NeedsReauth
            ) && after.status == IdentityStatus::Unverified
            {
                self.release_held(
                    db,
                    actor.tenant_id,
                    herald_store::messages::SenderScope::Identity(id),
                    "new credentials",
                )
                .await?;
            }
            record(db, actor, AuditAction::Update, TABLE, &row, fields).await?;
        }
        let view = self.identity_view(db, after).await?;
        tx.commit().await?;
        Ok(view)
    }

    /// Deletes an identity and wipes its password and tokens.
    pub async fn delete_identity(&self, actor: &Actor, id: &str) -> Result<(), AppError> {
        let id = parse_identity_id(id)?;
        let tx = self.store.begin().await?;
        let db = tx.conn();
        let identity = self.visible_identity(db, actor, id).await?;
        Self::require_manage(actor, &identity)?;
        let bouncing = relay_profiles::bouncing_to(db, actor.tenant_id, id).await?;
        if let Some(p) = bouncing.first() {
            return Err(AppError::conflict(
                None,
                format!(
                    "relay profile {:?} reads its bounce mailbox as this identity; change it first",
                    p.as_str()
                ),
            ));
        }
        let row = id.to_string();
        secrets::delete_row(db, actor.tenant_id, TABLE, &row).await?;
        identities::delete(db, actor.tenant_id, id).await?;
        record(
            db,
            actor,
            AuditAction::Delete,
            TABLE,
            &row,
            ChangedFields::new(),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// What an identity refers to must be the tenant's.
    async fn check_identity(
        &self,
        db: &impl Connection,
        i: &SenderIdentity,
    ) -> Result<(), AppError> {
        if relay_profiles::get(db, i.tenant_id, i.profile_id)
            .await?
            .is_none()
        {
            return Err(
                InvalidInput::new("profile_id", "is not a relay profile of this tenant").into(),
            );
        }
        if let Some(owner) = i.owner
            && users::get(db, i.tenant_id, owner).await?.is_none()
        {
            return Err(InvalidInput::new("owner_user_id", "is not a user of this tenant").into());
        }
        if i.owner.is_some() && !i.shared_with.is_empty() {
            return Err(InvalidInput::new(
                "shared_with",
                "only a shared identity (no owner) names the users who may send as it",
            )
            .into());
        }
        if i.owner.is_none() && i.preferred {
            return Err(InvalidInput::new(
                "preferred",
                "only an identity with an owner can be that owner's preferred one",
            )
            .into());
        }
        for u in &i.shared_with {
            if users::get(db, i.tenant_id, *u).await?.is_none() {
                return Err(InvalidInput::new(
                    "shared_with",
                    format!("{u} is not a user of this tenant"),
                )
                .into());
            }
        }
        Ok(())
    }

    async fn identity_view(
        &self,
        db: &impl Connection,
        identity: SenderIdentity,
    ) -> Result<IdentityView, AppError> {
        let row = identity.id.to_string();
        let slot = |f| identity_slot(identity.tenant_id, &row, f);
        let password_set = secrets::is_set(db, slot("password")).await?;
        let tokens_set = secrets::is_set(db, slot("refresh_token")).await?;
        Ok(IdentityView {
            identity,
            password_set,
            tokens_set,
        })
    }
}
