//! Tenants and their sending domains.

use herald_domain::{
    DomainName, RetentionDays, Tenant, TenantId, TenantName, TenantSlug, Timestamp,
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder,
};

use crate::StoreError;
use crate::convert::{parse, parse_with};
use crate::entity::{tenant, tenant_domain};

pub async fn insert(db: &impl ConnectionTrait, t: &Tenant) -> Result<(), StoreError> {
    tenant::Entity::insert(tenant::ActiveModel {
        id: Set(t.id.to_string()),
        slug: Set(t.slug.to_string()),
        name: Set(t.name.to_string()),
        event_retention_days: Set(i32::from(t.event_retention_days.days())),
        created_at: Set(t.created_at.as_micros()),
        updated_at: Set(t.created_at.as_micros()),
    })
    .exec_without_returning(db)
    .await
    .map_err(|e| StoreError::unique_as(e, "slug"))?;
    set_domains(db, t.id, &t.domains).await
}

/// Replaces the tenant's sending domains.
pub async fn set_domains(
    db: &impl ConnectionTrait,
    tenant_id: TenantId,
    domains: &[DomainName],
) -> Result<(), StoreError> {
    tenant_domain::Entity::delete_many()
        .filter(tenant_domain::Column::TenantId.eq(tenant_id.to_string()))
        .exec(db)
        .await?;
    if domains.is_empty() {
        return Ok(());
    }
    let now = Timestamp::now().as_micros();
    tenant_domain::Entity::insert_many(domains.iter().map(|d| tenant_domain::ActiveModel {
        tenant_id: Set(tenant_id.to_string()),
        domain: Set(d.to_string()),
        created_at: Set(now),
    }))
    .exec_without_returning(db)
    .await
    .map_err(|e| StoreError::unique_as(e, "domains"))?;
    Ok(())
}

pub async fn rename(
    db: &impl ConnectionTrait,
    tenant_id: TenantId,
    name: &TenantName,
) -> Result<(), StoreError> {
    set_column(db, tenant_id, tenant::Column::Name, name.to_string().into()).await
}

/// Sets one column of the tenant's row, and its `updated_at`.
async fn set_column(
    db: &impl ConnectionTrait,
    tenant_id: TenantId,
    column: tenant::Column,
    value: sea_orm::Value,
) -> Result<(), StoreError> {
    tenant::Entity::update_many()
        .col_expr(column, value.into())
        .col_expr(
            tenant::Column::UpdatedAt,
            Timestamp::now().as_micros().into(),
        )
        .filter(tenant::Column::Id.eq(tenant_id.to_string()))
        .exec(db)
        .await?;
    Ok(())
}

/// Sets how many days of events the tenant keeps.
pub async fn set_retention(
    db: &impl ConnectionTrait,
    tenant_id: TenantId,
    days: herald_domain::RetentionDays,
) -> Result<(), StoreError> {
    set_column(
        db,
        tenant_id,
        tenant::Column::EventRetentionDays,
        i32::from(days.days()).into(),
    )
    .await
}

/// Every tenant's id and event retention (for the purge).
pub async fn retentions(
    db: &impl ConnectionTrait,
) -> Result<Vec<(TenantId, RetentionDays)>, StoreError> {
    tenant::Entity::find()
        .all(db)
        .await?
        .into_iter()
        .map(|r| {
            Ok((
                parse(&r.id, "tenant id")?,
                RetentionDays::new(i64::from(r.event_retention_days))
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            ))
        })
        .collect()
}

pub async fn get(
    db: &impl ConnectionTrait,
    tenant_id: TenantId,
) -> Result<Option<Tenant>, StoreError> {
    let row = tenant::Entity::find_by_id(tenant_id.to_string())
        .one(db)
        .await?;
    match row {
        Some(row) => Ok(Some(with_domains(db, row).await?)),
        None => Ok(None),
    }
}

pub async fn by_slug(
    db: &impl ConnectionTrait,
    slug: &TenantSlug,
) -> Result<Option<Tenant>, StoreError> {
    let row = tenant::Entity::find()
        .filter(tenant::Column::Slug.eq(slug.as_str()))
        .one(db)
        .await?;
    match row {
        Some(row) => Ok(Some(with_domains(db, row).await?)),
        None => Ok(None),
    }
}

pub async fn count(db: &impl ConnectionTrait) -> Result<u64, StoreError> {
    Ok(tenant::Entity::find().count(db).await?)
}

async fn with_domains(db: &impl ConnectionTrait, row: tenant::Model) -> Result<Tenant, StoreError> {
    let domains = tenant_domain::Entity::find()
        .filter(tenant_domain::Column::TenantId.eq(&row.id))
        .order_by_asc(tenant_domain::Column::Domain)
        .all(db)
        .await?
        .iter()
        .map(|d| parse_with(&d.domain, "tenant domain", DomainName::parse))
        .collect::<Result<_, _>>()?;
    Ok(Tenant {
        id: parse(&row.id, "tenant id")?,
        slug: parse_with(&row.slug, "tenant slug", TenantSlug::parse)?,
        name: parse_with(&row.name, "tenant name", TenantName::parse)?,
        domains,
        event_retention_days: RetentionDays::new(i64::from(row.event_retention_days))
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        created_at: Timestamp::from_micros(row.created_at),
    })
}
