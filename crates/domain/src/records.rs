//! The tenant's own records: what a tenant, user, API key or audit entry is,
//! independent of how it is stored.

use serde::Serialize;

use crate::{
    ApiKeyId, AuditAction, AuditEntryId, ChangedFields, DisplayName, DomainName, EmailAddress,
    RetentionDays, Role, TenantId, TenantName, TenantSlug, Timestamp, UserId,
};

/// One customer of the product that runs Herald.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tenant {
    pub id: TenantId,
    pub slug: TenantSlug,
    pub name: TenantName,
    /// The domains this tenant may send from.
    pub domains: Vec<DomainName>,
    /// Days of events kept before the background purge removes them.
    pub event_retention_days: RetentionDays,
    pub created_at: Timestamp,
}

/// A person who signs in to the portal or owns a sender identity.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct User {
    pub id: UserId,
    pub tenant_id: TenantId,
    pub email: EmailAddress,
    pub display_name: Option<DisplayName>,
    pub role: Role,
    /// Set while the user still has the one-time password they were given.
    pub must_change_password: bool,
    pub created_at: Timestamp,
}

/// An API key's public description. The key itself is shown once, at creation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub tenant_id: TenantId,
    pub name: String,
    pub role: Role,
    /// The first characters of the key, so people can tell keys apart.
    pub display_prefix: String,
    pub created_by: String,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
}

/// Who did something.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Principal {
    User(UserId),
    ApiKey(ApiKeyId),
    /// The operator, through the `herald` command line.
    Cli,
}

impl Principal {
    pub fn kind(&self) -> &'static str {
        match self {
            Principal::User(_) => "user",
            Principal::ApiKey(_) => "api_key",
            Principal::Cli => "cli",
        }
    }

    pub fn id(&self) -> String {
        match self {
            Principal::User(id) => id.to_string(),
            Principal::ApiKey(id) => id.to_string(),
            Principal::Cli => String::new(),
        }
    }
}

/// A tenant's authenticated caller: who they are and what they may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub tenant_id: TenantId,
    pub principal: Principal,
    pub role: Role,
    /// A readable name for the audit trail (an email or a key's name).
    pub label: String,
}

impl Actor {
    /// The user behind this actor, if it is a person.
    pub fn user_id(&self) -> Option<UserId> {
        match self.principal {
            Principal::User(id) => Some(id),
            _ => None,
        }
    }
}

/// One change to a tenant's settings, users or keys.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub id: AuditEntryId,
    pub tenant_id: TenantId,
    pub at: Timestamp,
    pub actor_kind: String,
    pub actor_id: String,
    pub actor_label: String,
    pub action: AuditAction,
    pub entity: String,
    pub entity_id: String,
    pub fields: ChangedFields,
}
