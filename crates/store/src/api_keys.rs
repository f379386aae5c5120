//! API keys: stored as a SHA-256 of the key, scoped to a tenant and a role.

use herald_crypto::TokenHash;
use herald_domain::{ApiKey, ApiKeyId, TenantId, Timestamp};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use crate::StoreError;
use crate::convert::parse;
use crate::entity::api_key;

pub async fn insert(
    db: &impl ConnectionTrait,
    key: &ApiKey,
    hash: &TokenHash,
) -> Result<(), StoreError> {
    api_key::Entity::insert(api_key::ActiveModel {
        id: Set(key.id.to_string()),
        tenant_id: Set(key.tenant_id.to_string()),
        name: Set(key.name.clone()),
        role: Set(key.role.to_string()),
        token_hash: Set(hash.0.clone()),
        display_prefix: Set(key.display_prefix.clone()),
        created_by: Set(key.created_by.clone()),
        created_at: Set(key.created_at.as_micros()),
        last_used_at: Set(None),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

pub async fn by_hash(
    db: &impl ConnectionTrait,
    hash: &TokenHash,
) -> Result<Option<ApiKey>, StoreError> {
    api_key::Entity::find()
        .filter(api_key::Column::TokenHash.eq(&hash.0))
        .one(db)
        .await?
        .map(to_key)
        .transpose()
}

pub async fn get(
    db: &impl ConnectionTrait,
    tenant_id: TenantId,
    id: ApiKeyId,
) -> Result<Option<ApiKey>, StoreError> {
    api_key::Entity::find()
        .filter(api_key::Column::TenantId.eq(tenant_id.to_string()))
        .filter(api_key::Column::Id.eq(id.to_string()))
        .one(db)
        .await?
        .map(to_key)
        .transpose()
}

pub async fn list(
    db: &impl ConnectionTrait,
    tenant_id: TenantId,
    after: Option<ApiKeyId>,
    limit: u64,
) -> Result<Vec<ApiKey>, StoreError> {
    let mut q = api_key::Entity::find().filter(api_key::Column::TenantId.eq(tenant_id.to_string()));
    if let Some(after) = after {
        q = q.filter(api_key::Column::Id.gt(after.to_string()));
    }
    q.order_by_asc(api_key::Column::Id)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(to_key)
        .collect()
}

pub async fn delete(
    db: &impl ConnectionTrait,
    tenant_id: TenantId,
    id: ApiKeyId,
) -> Result<bool, StoreError> {
    let res = api_key::Entity::delete_many()
        .filter(api_key::Column::TenantId.eq(tenant_id.to_string()))
        .filter(api_key::Column::Id.eq(id.to_string()))
        .exec(db)
        .await?;
    Ok(res.rows_affected > 0)
}

/// Records use. Callers throttle this so a busy key does not write on every request.
pub async fn touch(
    db: &impl ConnectionTrait,
    id: ApiKeyId,
    at: Timestamp,
) -> Result<(), StoreError> {
    api_key::Entity::update_many()
        .col_expr(api_key::Column::LastUsedAt, Some(at.as_micros()).into())
        .filter(api_key::Column::Id.eq(id.to_string()))
        .exec(db)
        .await?;
    Ok(())
}

fn to_key(row: api_key::Model) -> Result<ApiKey, StoreError> {
    Ok(ApiKey {
        id: parse(&row.id, "api key id")?,
        tenant_id: parse(&row.tenant_id, "tenant id")?,
        name: row.name,
        role: parse(&row.role, "role")?,
        display_prefix: row.display_prefix,
        created_by: row.created_by,
        created_at: Timestamp::from_micros(row.created_at),
        last_used_at: row.last_used_at.map(Timestamp::from_micros),
    })
}
