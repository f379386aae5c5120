//! Saved answers for `Idempotency-Key`: a repeated request gets the first
//! answer instead of a second message.

use herald_domain::{TenantId, Timestamp};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryTrait,
};

use crate::entity::idempotency_key;
use crate::{Script, StoreError};

/// A saved answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    pub request_hash: String,
    pub response: String,
    pub created_at: Timestamp,
}

pub async fn get(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    key: &str,
) -> Result<Option<Saved>, StoreError> {
    Ok(idempotency_key::Entity::find()
        .filter(idempotency_key::Column::TenantId.eq(tenant.to_string()))
        .filter(idempotency_key::Column::Key.eq(key))
        .one(db)
        .await?
        .map(|r| Saved {
            request_hash: r.request_hash,
            response: r.response,
            created_at: Timestamp::from_micros(r.created_at),
        }))
}

/// Saves the answer in the caller's transaction; a key saved meanwhile by
/// a concurrent request is a conflict on `idempotency_key`.
pub async fn insert(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    key: &str,
    request_hash: &str,
    response: &str,
) -> Result<(), StoreError> {
    idempotency_key::Entity::insert(row(tenant, key, request_hash, response))
        .exec_without_returning(db)
        .await
        .map_err(|e| StoreError::unique_as(e, "idempotency_key"))?;
    Ok(())
}

/// The row [`insert`] writes, as a statement of `script` (a group commit's:
/// a key saved meanwhile fails the script).
pub fn add(script: &mut Script, tenant: TenantId, key: &str, request_hash: &str, response: &str) {
    let backend = script.backend();
    script.push(
        idempotency_key::Entity::insert(row(tenant, key, request_hash, response)).build(backend),
    );
}

fn row(
    tenant: TenantId,
    key: &str,
    request_hash: &str,
    response: &str,
) -> idempotency_key::ActiveModel {
    idempotency_key::ActiveModel {
        tenant_id: Set(tenant.to_string()),
        key: Set(key.to_owned()),
        request_hash: Set(request_hash.to_owned()),
        status_code: Set(202),
        response: Set(response.to_owned()),
        created_at: Set(Timestamp::now().as_micros()),
    }
}

pub async fn delete(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    key: &str,
) -> Result<(), StoreError> {
    idempotency_key::Entity::delete_many()
        .filter(idempotency_key::Column::TenantId.eq(tenant.to_string()))
        .filter(idempotency_key::Column::Key.eq(key))
        .exec(db)
        .await?;
    Ok(())
}
