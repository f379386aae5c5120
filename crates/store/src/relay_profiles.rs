//! Relay profiles and the tenant's routing of purposes to them. Every
//! function takes the tenant: another tenant's profile id finds nothing.

use herald_domain::{
    IdentityId, ProfileName, ProfileSettings, ProfileStatus, PurposeName, RelayProfile,
    RelayProfileId, TenantId, Timestamp, UserId,
};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder,
};

use crate::StoreError;
use crate::convert::parse;
use crate::entity::{relay_profile, relay_route};

fn settings_json(s: &ProfileSettings) -> Result<String, StoreError> {
    serde_json::to_string(s).map_err(|e| StoreError::Corrupt(format!("profile settings: {e}")))
}

fn columns(p: &RelayProfile) -> Result<relay_profile::ActiveModel, StoreError> {
    let s = &p.settings;
    Ok(relay_profile::ActiveModel {
        id: Set(p.id.to_string()),
        tenant_id: Set(p.tenant_id.to_string()),
        name: Set(s.name.to_string()),
        name_key: Set(s.name.as_str().to_lowercase()),
        kind: Set(s.transport.kind().to_owned()),
        settings: Set(settings_json(s)?),
        notify_user_id: Set(s.attachments.notify_user_id.map(|u| u.to_string())),
        bounce_identity_id: Set(s.bounce_identity().map(|i| i.to_string())),
        status: Set(p.status.as_str().to_owned()),
        last_error: Set(p.last_error.clone()),
        created_at: Set(p.created_at.as_micros()),
        updated_at: Set(p.updated_at.as_micros()),
    })
}

pub async fn insert(db: &impl ConnectionTrait, p: &RelayProfile) -> Result<(), StoreError> {
    relay_profile::Entity::insert(columns(p)?)
        .exec_without_returning(db)
        .await
        .map_err(|e| StoreError::unique_as(e, "name"))?;
    Ok(())
}

/// Saves the settings (and `updated_at`) of an existing profile.
pub async fn update(db: &impl ConnectionTrait, p: &RelayProfile) -> Result<(), StoreError> {
    let mut row = columns(p)?;
    row.created_at = sea_orm::ActiveValue::NotSet;
    relay_profile::Entity::update_many()
        .set(row)
        .filter(relay_profile::Column::TenantId.eq(p.tenant_id.to_string()))
        .filter(relay_profile::Column::Id.eq(p.id.to_string()))
        .exec(db)
        .await
        .map_err(|e| StoreError::unique_as(e, "name"))?;
    Ok(())
}

pub async fn get(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    id: RelayProfileId,
) -> Result<Option<RelayProfile>, StoreError> {
    relay_profile::Entity::find()
        .filter(relay_profile::Column::TenantId.eq(tenant.to_string()))
        .filter(relay_profile::Column::Id.eq(id.to_string()))
        .one(db)
        .await?
        .map(to_profile)
        .transpose()
}

/// Marks a profile active or failing (its own credentials refused).
pub async fn set_status(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    id: RelayProfileId,
    status: ProfileStatus,
    error: Option<&str>,
) -> Result<(), StoreError> {
    relay_profile::Entity::update_many()
        .col_expr(relay_profile::Column::Status, Expr::value(status.as_str()))
        .col_expr(
            relay_profile::Column::LastError,
            Expr::value(error.map(str::to_owned)),
        )
        .filter(relay_profile::Column::TenantId.eq(tenant.to_string()))
        .filter(relay_profile::Column::Id.eq(id.to_string()))
        .exec(db)
        .await?;
    Ok(())
}

/// All of a tenant's profiles by name (a tenant has a handful).
pub async fn list(
    db: &impl ConnectionTrait,
    tenant: TenantId,
) -> Result<Vec<RelayProfile>, StoreError> {
    relay_profile::Entity::find()
        .filter(relay_profile::Column::TenantId.eq(tenant.to_string()))
        .order_by_asc(relay_profile::Column::NameKey)
        .all(db)
        .await?
        .into_iter()
        .map(to_profile)
        .collect()
}

pub async fn delete(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    id: RelayProfileId,
) -> Result<bool, StoreError> {
    let res = relay_profile::Entity::delete_many()
        .filter(relay_profile::Column::TenantId.eq(tenant.to_string()))
        .filter(relay_profile::Column::Id.eq(id.to_string()))
        .exec(db)
        .await?;
    Ok(res.rows_affected > 0)
}

/// Every tenant's profiles that have a bounce mailbox (for the poller).
pub async fn with_bounce_mailbox(
    db: &impl ConnectionTrait,
) -> Result<Vec<RelayProfile>, StoreError> {
    relay_profile::Entity::find()
        .filter(relay_profile::Column::Settings.like("%\"bounce_mailbox\":{%"))
        .order_by_asc(relay_profile::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(to_profile)
        .filter(|p| {
            p.as_ref()
                .map_or(true, |p| p.settings.bounce_mailbox.is_some())
        })
        .collect()
}

/// Names of the profiles whose Notify User is `user`.
pub async fn notifying(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    user: UserId,
) -> Result<Vec<ProfileName>, StoreError> {
    names_where(
        db,
        tenant,
        relay_profile::Column::NotifyUserId,
        user.to_string(),
    )
    .await
}

/// Names of the profiles whose bounce mailbox signs in as `identity`.
pub async fn bouncing_to(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    identity: IdentityId,
) -> Result<Vec<ProfileName>, StoreError> {
    names_where(
        db,
        tenant,
        relay_profile::Column::BounceIdentityId,
        identity.to_string(),
    )
    .await
}

async fn names_where(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    column: relay_profile::Column,
    value: String,
) -> Result<Vec<ProfileName>, StoreError> {
    relay_profile::Entity::find()
        .filter(relay_profile::Column::TenantId.eq(tenant.to_string()))
        .filter(column.eq(value))
        .order_by_asc(relay_profile::Column::NameKey)
        .all(db)
        .await?
        .into_iter()
        .map(|r| {
            ProfileName::parse(&r.name)
                .map_err(|_| StoreError::Corrupt(format!("profile name {:?}", r.name)))
        })
        .collect()
}

fn to_profile(row: relay_profile::Model) -> Result<RelayProfile, StoreError> {
    let settings: ProfileSettings = serde_json::from_str(&row.settings)
        .map_err(|e| StoreError::Corrupt(format!("settings of relay profile {}: {e}", row.id)))?;
    Ok(RelayProfile {
        id: parse(&row.id, "relay profile id")?,
        tenant_id: parse(&row.tenant_id, "tenant id")?,
        settings,
        status: parse(&row.status, "relay profile status")?,
        last_error: row.last_error,
        created_at: Timestamp::from_micros(row.created_at),
        updated_at: Timestamp::from_micros(row.updated_at),
    })
}

/// Which profile a tenant's mail uses: its default, and purposes bound to
/// other profiles (Sitefinity's per-module profile).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routing {
    pub default: Option<RelayProfileId>,
    pub purposes: Vec<(PurposeName, RelayProfileId)>,
}

pub async fn routing(db: &impl ConnectionTrait, tenant: TenantId) -> Result<Routing, StoreError> {
    let rows = relay_route::Entity::find()
        .filter(relay_route::Column::TenantId.eq(tenant.to_string()))
        .order_by_asc(relay_route::Column::PurposeKey)
        .all(db)
        .await?;
    let mut out = Routing::default();
    for r in rows {
        let profile = parse(&r.profile_id, "relay profile id")?;
        if r.purpose_key.is_empty() {
            out.default = Some(profile);
        } else {
            let name = PurposeName::parse(&r.purpose)
                .map_err(|_| StoreError::Corrupt(format!("purpose {:?}", r.purpose)))?;
            out.purposes.push((name, profile));
        }
    }
    Ok(out)
}

/// Replaces the tenant's routing.
pub async fn set_routing(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    routing: &Routing,
) -> Result<(), StoreError> {
    relay_route::Entity::delete_many()
        .filter(relay_route::Column::TenantId.eq(tenant.to_string()))
        .exec(db)
        .await?;
    let rows = routing
        .default
        .map(|p| (String::new(), String::new(), p))
        .into_iter()
        .chain(
            routing
                .purposes
                .iter()
                .map(|(name, p)| (name.key(), name.to_string(), *p)),
        )
        .map(|(key, purpose, profile)| relay_route::ActiveModel {
            tenant_id: Set(tenant.to_string()),
            purpose_key: Set(key),
            purpose: Set(purpose),
            profile_id: Set(profile.to_string()),
        })
        .collect::<Vec<_>>();
    if !rows.is_empty() {
        relay_route::Entity::insert_many(rows)
            .exec_without_returning(db)
            .await
            .map_err(|e| StoreError::unique_as(e, "purposes"))?;
    }
    Ok(())
}

/// How many routes (default or purposes) point at `profile`.
pub async fn routes_to(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    profile: RelayProfileId,
) -> Result<u64, StoreError> {
    Ok(relay_route::Entity::find()
        .filter(relay_route::Column::TenantId.eq(tenant.to_string()))
        .filter(relay_route::Column::ProfileId.eq(profile.to_string()))
        .count(db)
        .await?)
}

/// Points every route at `from` to `to` instead.
pub async fn move_routes(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    from: RelayProfileId,
    to: RelayProfileId,
) -> Result<(), StoreError> {
    relay_route::Entity::update_many()
        .col_expr(relay_route::Column::ProfileId, Expr::value(to.to_string()))
        .filter(relay_route::Column::TenantId.eq(tenant.to_string()))
        .filter(relay_route::Column::ProfileId.eq(from.to_string()))
        .exec(db)
        .await?;
    Ok(())
}
