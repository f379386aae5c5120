//! Managing relay profiles and the tenant's routing (owners and admins).
//! Secrets are write-only: a view tells whether each is set, never its value.

use herald_crypto::SecretString;
use herald_domain::{
    Actor, AuditAction, ChangedFields, InvalidInput, ProfileSecret, ProfileSettings, ProfileStatus,
    PurposeName, RelayProfile, RelayProfileId, Role, TenantId, Timestamp,
};
use herald_store::relay_profiles::{self, Routing};
use herald_store::{Connection, identities, messages, secrets, tenants, users};
use serde::Deserialize;
use serde_json::Value;

use crate::access::Require;
use crate::audit::record;
use crate::json::{changed_paths, merge_patch, parse_at};
use crate::{AppError, Herald};

pub(crate) const TABLE: &str = "relay_profile";

/// Secrets sent with a create or update: absent leaves a secret as it is,
/// `null` clears it, a string sets it.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileSecrets {
    #[serde(default, deserialize_with = "crate::json::double_option")]
    pub password: Option<Option<SecretString>>,
    #[serde(default, deserialize_with = "crate::json::double_option")]
    pub api_key: Option<Option<SecretString>>,
    #[serde(default, deserialize_with = "crate::json::double_option")]
    pub bounce_password: Option<Option<SecretString>>,
}

impl ProfileSecrets {
    fn get(&self, which: ProfileSecret) -> &Option<Option<SecretString>> {
        match which {
            ProfileSecret::Password => &self.password,
            ProfileSecret::ApiKey => &self.api_key,
            ProfileSecret::BouncePassword => &self.bounce_password,
        }
    }
}

/// Which of a profile's secrets are set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SecretsSet {
    pub password: bool,
    pub api_key: bool,
    pub bounce_password: bool,
}

/// A profile as its admins see it.
#[derive(Debug, Clone)]
pub struct ProfileView {
    pub profile: RelayProfile,
    pub secrets: SecretsSet,
    /// Advice such as a no-reply From; the profile is saved anyway.
    pub warnings: Vec<String>,
    /// Whether the tenant's mail goes through it unless a purpose says otherwise.
    pub is_default: bool,
    /// The purposes the tenant routes to it.
    pub routed_purposes: Vec<PurposeName>,
}

pub(crate) fn parse_profile_id(id: &str) -> Result<RelayProfileId, AppError> {
    id.parse()
        .map_err(|_: InvalidInput| AppError::NotFound("relay profile"))
}

pub(crate) fn slot(tenant: TenantId, row: &str, which: ProfileSecret) -> secrets::Slot<'_> {
    secrets::Slot {
        tenant,
        table: TABLE,
        row,
        field: which.field(),
    }
}

impl Herald {
    pub async fn list_relay_profiles(&self, actor: &Actor) -> Result<Vec<ProfileView>, AppError> {
        actor.require(Role::Admin)?;
        let db = self.store.read();
        let routing = relay_profiles::routing(db, actor.tenant_id).await?;
        let mut out = Vec::new();
        for p in relay_profiles::list(db, actor.tenant_id).await? {
            out.push(self.view(db, p, &routing).await?);
        }
        Ok(out)
    }

    pub async fn relay_profile(&self, actor: &Actor, id: &str) -> Result<ProfileView, AppError> {
        actor.require(Role::Admin)?;
        let id = parse_profile_id(id)?;
        let db = self.store.read();
        let p = relay_profiles::get(db, actor.tenant_id, id)
            .await?
            .ok_or(AppError::NotFound("relay profile"))?;
        let routing = relay_profiles::routing(db, actor.tenant_id).await?;
        self.view(db, p, &routing).await
    }

    /// Creates a profile from its settings document. The tenant's first
    /// profile becomes its default.
    pub async fn create_relay_profile(
        &self,
        actor: &Actor,
        settings: Value,
        secrets: ProfileSecrets,
    ) -> Result<ProfileView, AppError> {
        actor.require(Role::Admin)?;
        let settings: ProfileSettings = parse_at(settings)?;
        let tx = self.store.begin().await?;
        self.check_settings(tx.conn(), actor.tenant_id, &settings)
            .await?;
        let now = Timestamp::now();
        let profile = RelayProfile {
            id: RelayProfileId::new(),
            tenant_id: actor.tenant_id,
            settings,
            status: ProfileStatus::Active,
            last_error: None,
            created_at: now,
            updated_at: now,
        };
        relay_profiles::insert(tx.conn(), &profile).await?;
        let mut fields = ChangedFields::of(&["settings"]);
        self.store_secrets(tx.conn(), &profile, &secrets, false, &mut fields)
            .await?;
        let mut routing = relay_profiles::routing(tx.conn(), actor.tenant_id).await?;
        if routing.default.is_none() {
            routing.default = Some(profile.id);
            relay_profiles::set_routing(tx.conn(), actor.tenant_id, &routing).await?;
            fields.push("default");
        }
        let id = profile.id.to_string();
        record(tx.conn(), actor, AuditAction::Create, TABLE, &id, fields).await?;
        let view = self.view(tx.conn(), profile, &routing).await?;
        tx.commit().await?;
        self.policy_cache.invalidate(actor.tenant_id);
        Ok(view)
    }

    /// Applies a JSON Merge Patch (RFC 7396) to a profile's settings and the
    /// given secrets.
    pub async fn update_relay_profile(
        &self,
        actor: &Actor,
        id: &str,
        patch: Value,
        secrets: ProfileSecrets,
    ) -> Result<ProfileView, AppError> {
        actor.require(Role::Admin)?;
        let id = parse_profile_id(id)?;
        let tx = self.store.begin().await?;
        let before = relay_profiles::get(tx.conn(), actor.tenant_id, id)
            .await?
            .ok_or(AppError::NotFound("relay profile"))?;
        let old_doc = to_value(&before.settings)?;
        let mut doc = old_doc.clone();
        merge_patch(&mut doc, &patch);
        let settings: ProfileSettings = parse_at(doc)?;
        self.check_settings(tx.conn(), actor.tenant_id, &settings)
            .await?;
        let mut fields: ChangedFields = changed_paths(&old_doc, &to_value(&settings)?).into();
        let failing = before.status == ProfileStatus::Failing;
        let after = RelayProfile {
            settings,
            updated_at: Timestamp::now(),
            // Saved again: the new settings or credentials get a try.
            status: ProfileStatus::Active,
            last_error: None,
            ..before
        };
        self.store_secrets(tx.conn(), &after, &secrets, true, &mut fields)
            .await?;
        if !fields.is_empty() {
            relay_profiles::update(tx.conn(), &after).await?;
            if failing {
                self.release_held(
                    tx.conn(),
                    actor.tenant_id,
                    herald_store::messages::SenderScope::Profile(id),
                    "the profile was changed",
                )
                .await?;
            }
            record(
                tx.conn(),
                actor,
                AuditAction::Update,
                TABLE,
                &id.to_string(),
                fields,
            )
            .await?;
        }
        let routing = relay_profiles::routing(tx.conn(), actor.tenant_id).await?;
        let view = self.view(tx.conn(), after, &routing).await?;
        tx.commit().await?;
        self.policy_cache.invalidate(actor.tenant_id);
        Ok(view)
    }

    /// Deletes a profile. While identities send through it or the tenant
    /// routes mail to it, it is refused unless `move_to` names the profile
    /// that takes them over.
    pub async fn delete_relay_profile(
        &self,
        actor: &Actor,
        id: &str,
        move_to: Option<&str>,
    ) -> Result<(), AppError> {
        actor.require(Role::Admin)?;
        let id = parse_profile_id(id)?;
        let tx = self.store.begin().await?;
        let db = tx.conn();
        let profile = relay_profiles::get(db, actor.tenant_id, id)
            .await?
            .ok_or(AppError::NotFound("relay profile"))?;
        let identities_using = identities::count_using_profile(db, actor.tenant_id, id).await?;
        let routes = relay_profiles::routes_to(db, actor.tenant_id, id).await?;
        let queued = messages::unfinished_using_profile(db, actor.tenant_id, id).await?;
        let mut fields = ChangedFields::new();
        if identities_using + routes + queued > 0 {
            let Some(target) = move_to else {
                return Err(AppError::conflict(
                    Some("move_to"),
                    format!(
                        "relay profile {:?} is in use ({identities_using} sender identities, \
                         {routes} routes of the tenant's mail, {queued} unsent messages); pass \
                         move_to=<profile id> to move them to another profile first",
                        profile.settings.name.as_str()
                    ),
                ));
            };
            let target = parse_profile_id(target).map_err(|_| {
                InvalidInput::new("move_to", "is not a relay profile of this tenant")
            })?;
            if target == id
                || relay_profiles::get(db, actor.tenant_id, target)
                    .await?
                    .is_none()
            {
                return Err(InvalidInput::new(
                    "move_to",
                    "must be another relay profile of this tenant",
                )
                .into());
            }
            identities::move_profile(db, actor.tenant_id, id, target).await?;
            relay_profiles::move_routes(db, actor.tenant_id, id, target).await?;
            messages::move_profile(db, actor.tenant_id, id, target).await?;
            fields.push("moved_to");
        }
        secrets::delete_row(db, actor.tenant_id, TABLE, &id.to_string()).await?;
        relay_profiles::delete(db, actor.tenant_id, id).await?;
        record(
            db,
            actor,
            AuditAction::Delete,
            TABLE,
            &id.to_string(),
            fields,
        )
        .await?;
        tx.commit().await?;
        self.policy_cache.invalidate(actor.tenant_id);
        Ok(())
    }

    /// Checks what the settings refer to: the tenant's domains, the Notify
    /// User, the bounce mailbox's identity.
    async fn check_settings(
        &self,
        db: &impl Connection,
        tenant_id: TenantId,
        s: &ProfileSettings,
    ) -> Result<(), AppError> {
        let tenant = tenants::get(db, tenant_id)
            .await?
            .ok_or(AppError::NotFound("tenant"))?;
        s.check(&tenant.domains)?;
        if let herald_domain::Transport::Smtp(smtp) = &s.transport
            && let Some(pem) = &smtp.trust.extra_ca_pem
        {
            herald_mailer::parse_ca_pem(pem.as_str()).map_err(|e| AppError::InvalidField {
                field: "transport.smtp.trust.extra_ca_pem".into(),
                message: format!("transport.smtp.trust.extra_ca_pem: {}", e.reason),
            })?;
        }
        if let Some(user) = s.attachments.notify_user_id
            && users::get(db, tenant_id, user).await?.is_none()
        {
            return Err(InvalidInput::new(
                "attachments.notify_user_id",
                "is not a user of this tenant",
            )
            .into());
        }
        if let Some(identity) = s.bounce_identity()
            && identities::get(db, tenant_id, identity).await?.is_none()
        {
            return Err(InvalidInput::new(
                "bounce_mailbox.auth.identity_id",
                "is not a sender identity of this tenant",
            )
            .into());
        }
        Ok(())
    }

    /// Seals, clears or refuses each secret; drops secrets the settings no
    /// longer use; refuses when a needed secret would be missing.
    async fn store_secrets(
        &self,
        db: &impl Connection,
        p: &RelayProfile,
        given: &ProfileSecrets,
        existing: bool,
        fields: &mut ChangedFields,
    ) -> Result<(), AppError> {
        let row = p.id.to_string();
        let needed = p.settings.required_secrets();
        for which in ProfileSecret::ALL {
            let slot = slot(p.tenant_id, &row, which);
            let field = format!("secrets.{}", which.field());
            let in_use = needed.contains(&which);
            match given.get(which) {
                Some(Some(_)) if !in_use => {
                    return Err(AppError::InvalidField {
                        field,
                        message: format!(
                            "is not used by this profile's settings ({} transport{})",
                            p.settings.transport.kind(),
                            if which == ProfileSecret::BouncePassword {
                                ", bounce mailbox"
                            } else {
                                ""
                            }
                        ),
                    });
                }
                Some(Some(value)) => {
                    if value.expose().is_empty() || value.expose().contains(['\r', '\n', '\0']) {
                        return Err(AppError::InvalidField {
                            field,
                            message: "must be non-empty, without line breaks or NUL".into(),
                        });
                    }
                    secrets::put(db, &self.keys, slot, value.expose().as_bytes()).await?;
                    fields.push(&field);
                }
                Some(None) | None if !in_use => {
                    if existing && secrets::is_set(db, slot).await? {
                        secrets::delete(db, slot).await?;
                        fields.push(&field);
                    }
                }
                Some(None) => {
                    return Err(AppError::InvalidField {
                        field,
                        message: "is required by this profile's settings and cannot be cleared"
                            .into(),
                    });
                }
                None => {
                    if !(existing && secrets::is_set(db, slot).await?) {
                        return Err(AppError::InvalidField {
                            field,
                            message: "is required by this profile's settings".into(),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    async fn view(
        &self,
        db: &impl Connection,
        profile: RelayProfile,
        routing: &Routing,
    ) -> Result<ProfileView, AppError> {
        let row = profile.id.to_string();
        let set = |which| secrets::is_set(db, slot(profile.tenant_id, &row, which));
        let secrets = SecretsSet {
            password: set(ProfileSecret::Password).await?,
            api_key: set(ProfileSecret::ApiKey).await?,
            bounce_password: set(ProfileSecret::BouncePassword).await?,
        };
        Ok(ProfileView {
            warnings: profile.settings.warnings(),
            is_default: routing.default == Some(profile.id),
            routed_purposes: routing
                .purposes
                .iter()
                .filter(|(_, p)| *p == profile.id)
                .map(|(n, _)| n.clone())
                .collect(),
            secrets,
            profile,
        })
    }

    /// The tenant's routing: its default profile and purposes bound to others.
    pub async fn relay_routing(&self, actor: &Actor) -> Result<Routing, AppError> {
        actor.require(Role::Admin)?;
        Ok(relay_profiles::routing(self.store.read(), actor.tenant_id).await?)
    }

    /// Replaces the tenant's routing. Every profile must be the tenant's.
    pub async fn set_relay_routing(
        &self,
        actor: &Actor,
        default: Option<&str>,
        purposes: &[(String, String)],
    ) -> Result<Routing, AppError> {
        actor.require(Role::Admin)?;
        let tx = self.store.begin().await?;
        let db = tx.conn();
        let known = |field: &'static str, id: &str| {
            let parsed = id
                .parse::<RelayProfileId>()
                .map_err(|_| InvalidInput::new(field, format!("{id:?} is not a relay profile")));
            async move {
                let id = parsed?;
                match relay_profiles::get(db, actor.tenant_id, id).await? {
                    Some(_) => Ok::<_, AppError>(id),
                    None => Err(InvalidInput::new(
                        field,
                        format!("{id} is not a relay profile of this tenant"),
                    )
                    .into()),
                }
            }
        };
        let mut routing = Routing {
            default: match default {
                Some(id) => Some(known("default_profile_id", id).await?),
                None => None,
            },
            purposes: Vec::new(),
        };
        for (name, id) in purposes {
            let name = PurposeName::parse(name).map_err(|e| e.at("purposes"))?;
            if routing.purposes.iter().any(|(n, _)| n.key() == name.key()) {
                return Err(InvalidInput::new(
                    "purposes",
                    format!("purpose {:?} is routed twice", name.as_str()),
                )
                .into());
            }
            routing.purposes.push((name, known("purposes", id).await?));
        }
        relay_profiles::set_routing(db, actor.tenant_id, &routing).await?;
        let fields = ChangedFields::of(&["default_profile_id", "purposes"]);
        record(db, actor, AuditAction::Update, "relay_routing", "", fields).await?;
        tx.commit().await?;
        self.policy_cache.invalidate(actor.tenant_id);
        Ok(routing)
    }
}

fn to_value(s: &ProfileSettings) -> Result<Value, AppError> {
    serde_json::to_value(s).map_err(|e| AppError::Internal(format!("profile settings: {e}")))
}
