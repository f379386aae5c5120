//! Creating tenants (operator, command line) and changing their settings.

use herald_crypto::{SecretString, generate_password, hash_password};
use herald_domain::{
    Actor, AuditAction, ChangedFields, DisplayName, DomainName, EmailAddress, InvalidInput,
    Principal, RetentionDays, Role, Tenant, TenantId, TenantName, TenantSlug, Timestamp, User,
    UserId,
};
use herald_domain::{
    AttachmentPolicy, DeliverySettings, FromMailbox, ProfileName, ProfileSettings, RelayProfile,
    RelayProfileId, SenderPolicy, Transport,
};
use herald_store::{relay_profiles, tenants, users};

use crate::access::Require;
use crate::api_keys::{CreatedApiKey, NewApiKey};
use crate::audit::record;
use crate::{AppError, Herald};

/// What the operator gives to create a tenant.
#[derive(Debug, Clone)]
pub struct NewTenant {
    pub slug: String,
    pub name: Option<String>,
    pub domains: Vec<String>,
    pub owner_email: String,
}

/// A new tenant with its first owner's one-time password and an admin key.
#[derive(Debug)]
pub struct CreatedTenant {
    pub tenant: Tenant,
    pub owner: User,
    pub owner_password: SecretString,
    pub api_key: CreatedApiKey,
}

/// A change to a tenant's settings; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct TenantPatch {
    pub name: Option<String>,
    pub domains: Option<Vec<String>>,
    pub event_retention_days: Option<i64>,
}

pub(crate) fn parse_domains(domains: &[String]) -> Result<Vec<DomainName>, InvalidInput> {
    let mut parsed = domains
        .iter()
        .map(|d| DomainName::parse(d).map_err(|e| e.at("domains")))
        .collect::<Result<Vec<_>, _>>()?;
    parsed.sort();
    parsed.dedup();
    Ok(parsed)
}

/// Every tenant starts with a sandbox profile as its default: mail is
/// accepted and recorded, nothing leaves, until an admin adds a real relay.
fn sandbox_profile(tenant: &Tenant, owner: &User) -> RelayProfile {
    let from = if tenant
        .domains
        .iter()
        .any(|d| d.as_str() == owner.email.domain())
    {
        owner.email.clone()
    } else {
        let domain = tenant
            .domains
            .first()
            .map(|d| d.as_str())
            .unwrap_or_default();
        EmailAddress::parse(&format!("postmaster@{domain}")).unwrap_or_else(|_| owner.email.clone())
    };
    RelayProfile {
        id: RelayProfileId::new(),
        tenant_id: tenant.id,
        status: herald_domain::ProfileStatus::Active,
        last_error: None,
        settings: ProfileSettings {
            name: ProfileName::parse("Sandbox").unwrap_or_else(|_| unreachable!("a valid name")),
            transport: Transport::Sandbox,
            from: FromMailbox {
                address: from,
                name: Some(
                    DisplayName::parse(tenant.name.as_str())
                        .unwrap_or_else(|_| unreachable!("tenant names are display names")),
                ),
            },
            purposes: Vec::new(),
            policy: SenderPolicy::default(),
            attachments: AttachmentPolicy::default(),
            delivery: DeliverySettings::default(),
            bounce_mailbox: None,
        },
        created_at: tenant.created_at,
        updated_at: tenant.created_at,
    }
}

impl Herald {
    /// Creates a tenant, its owner and an admin API key in one transaction.
    pub async fn create_tenant(&self, new: NewTenant) -> Result<CreatedTenant, AppError> {
        let slug = TenantSlug::parse(&new.slug)?;
        let name = TenantName::parse(new.name.as_deref().unwrap_or(&new.slug))?;
        let domains = parse_domains(&new.domains)?;
        if domains.is_empty() {
            return Err(
                InvalidInput::new("domains", "at least one sending domain is required").into(),
            );
        }
        let owner_email = EmailAddress::parse(&new.owner_email).map_err(|e| e.at("owner"))?;
        let now = Timestamp::now();
        let tenant = Tenant {
            id: TenantId::new(),
            slug,
            name,
            domains,
            event_retention_days: RetentionDays::DEFAULT,
            created_at: now,
        };
        let owner = User {
            id: UserId::new(),
            tenant_id: tenant.id,
            email: owner_email,
            display_name: None,
            role: Role::Owner,
            must_change_password: true,
            created_at: now,
        };
        let owner_password = generate_password();
        let cli = Actor {
            tenant_id: tenant.id,
            principal: Principal::Cli,
            role: Role::Owner,
            label: "herald command line".to_owned(),
        };

        let tx = self.store.begin().await?;
        tenants::insert(tx.conn(), &tenant).await?;
        users::insert(tx.conn(), &owner, &hash_password(&owner_password)).await?;
        let fields = ChangedFields::of(&["slug", "name", "domains"]);
        record(
            tx.conn(),
            &cli,
            AuditAction::Create,
            "tenant",
            &tenant.id.to_string(),
            fields,
        )
        .await?;
        let fields = ChangedFields::of(&["email", "role", "password"]);
        record(
            tx.conn(),
            &cli,
            AuditAction::Create,
            "user",
            &owner.id.to_string(),
            fields,
        )
        .await?;
        let sandbox = sandbox_profile(&tenant, &owner);
        relay_profiles::insert(tx.conn(), &sandbox).await?;
        relay_profiles::set_routing(
            tx.conn(),
            tenant.id,
            &relay_profiles::Routing {
                default: Some(sandbox.id),
                purposes: Vec::new(),
            },
        )
        .await?;
        let fields = ChangedFields::of(&["settings", "default"]);
        let sandbox_id = sandbox.id.to_string();
        record(
            tx.conn(),
            &cli,
            AuditAction::Create,
            "relay_profile",
            &sandbox_id,
            fields,
        )
        .await?;
        let api_key = self
            .insert_api_key(
                tx.conn(),
                &cli,
                NewApiKey {
                    name: "initial admin key".to_owned(),
                    role: Role::Admin.as_str().to_owned(),
                },
            )
            .await?;
        tx.commit().await?;
        Ok(CreatedTenant {
            tenant,
            owner,
            owner_password,
            api_key,
        })
    }

    /// The operator acting on a tenant through the command line.
    pub async fn cli_actor(&self, slug: &str) -> Result<Actor, AppError> {
        let slug = TenantSlug::parse(slug)?;
        let tenant = tenants::by_slug(self.store.read(), &slug)
            .await?
            .ok_or(AppError::NotFound("tenant"))?;
        Ok(Actor {
            tenant_id: tenant.id,
            principal: Principal::Cli,
            role: Role::Owner,
            label: "herald command line".to_owned(),
        })
    }

    pub async fn tenant_count(&self) -> Result<u64, AppError> {
        Ok(tenants::count(self.store.read()).await?)
    }

    /// The caller's own tenant.
    pub async fn tenant(&self, actor: &Actor) -> Result<Tenant, AppError> {
        if let Some(t) = self.policy_cache.tenant(actor.tenant_id) {
            return Ok(t);
        }
        let t = tenants::get(self.store.read(), actor.tenant_id)
            .await?
            .ok_or(AppError::NotFound("tenant"))?;
        self.policy_cache.put_tenant(&t);
        Ok(t)
    }

    /// Changes the tenant's name or sending domains (owner or admin).
    pub async fn update_tenant(
        &self,
        actor: &Actor,
        patch: TenantPatch,
    ) -> Result<Tenant, AppError> {
        actor.require(Role::Admin)?;
        let name = patch.name.as_deref().map(TenantName::parse).transpose()?;
        let domains = patch.domains.as_deref().map(parse_domains).transpose()?;
        let retention = patch
            .event_retention_days
            .map(RetentionDays::new)
            .transpose()?;
        if domains.as_ref().is_some_and(Vec::is_empty) {
            return Err(
                InvalidInput::new("domains", "at least one sending domain is required").into(),
            );
        }
        let tx = self.store.begin().await?;
        let before = tenants::get(tx.conn(), actor.tenant_id)
            .await?
            .ok_or(AppError::NotFound("tenant"))?;
        let mut fields = ChangedFields::new();
        if let Some(name) = &name {
            fields.compare("name", &before.name, name);
            tenants::rename(tx.conn(), actor.tenant_id, name).await?;
        }
        if let Some(domains) = &domains {
            fields.compare("domains", &before.domains, domains);
            tenants::set_domains(tx.conn(), actor.tenant_id, domains).await?;
        }
        if let Some(days) = retention {
            fields.compare("event_retention_days", &before.event_retention_days, &days);
            tenants::set_retention(tx.conn(), actor.tenant_id, days).await?;
        }
        if !fields.is_empty() {
            record(
                tx.conn(),
                actor,
                AuditAction::Update,
                "tenant",
                &actor.tenant_id.to_string(),
                fields,
            )
            .await?;
        }
        let after = tenants::get(tx.conn(), actor.tenant_id)
            .await?
            .ok_or(AppError::NotFound("tenant"))?;
        tx.commit().await?;
        self.policy_cache.invalidate(actor.tenant_id);
        Ok(after)
    }
}

/// A display name from input: blank means none.
pub(crate) fn optional_display_name(
    value: Option<&str>,
) -> Result<Option<DisplayName>, InvalidInput> {
    match value {
        Some(v) if !v.trim().is_empty() || v.chars().any(char::is_control) => {
            DisplayName::parse(v).map(Some)
        }
        _ => Ok(None),
    }
}
