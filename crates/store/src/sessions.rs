//! Portal sessions: the cookie holds a random token, the table its hash.

use herald_crypto::TokenHash;
use herald_domain::{SessionId, TenantId, Timestamp, User, UserId};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use crate::StoreError;
use crate::entity::{session, tenant_user};
use crate::users::to_user;

pub async fn insert(
    db: &impl ConnectionTrait,
    id: SessionId,
    tenant_id: TenantId,
    user_id: UserId,
    hash: &TokenHash,
    expires_at: Timestamp,
) -> Result<(), StoreError> {
    let now = Timestamp::now().as_micros();
    session::Entity::insert(session::ActiveModel {
        id: Set(id.to_string()),
        tenant_id: Set(tenant_id.to_string()),
        user_id: Set(user_id.to_string()),
        token_hash: Set(hash.0.clone()),
        created_at: Set(now),
        expires_at: Set(expires_at.as_micros()),
        last_seen_at: Set(now),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// The user of a live (unexpired) session.
pub async fn user_for(
    db: &impl ConnectionTrait,
    hash: &TokenHash,
    now: Timestamp,
) -> Result<Option<(SessionId, User)>, StoreError> {
    let Some(s) = session::Entity::find()
        .filter(session::Column::TokenHash.eq(&hash.0))
        .filter(session::Column::ExpiresAt.gt(now.as_micros()))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let user = tenant_user::Entity::find()
        .filter(tenant_user::Column::TenantId.eq(&s.tenant_id))
        .filter(tenant_user::Column::Id.eq(&s.user_id))
        .one(db)
        .await?;
    match user {
        Some(u) => Ok(Some((
            crate::convert::parse(&s.id, "session id")?,
            to_user(u)?,
        ))),
        None => Ok(None),
    }
}

pub async fn delete_by_hash(db: &impl ConnectionTrait, hash: &TokenHash) -> Result<(), StoreError> {
    session::Entity::delete_many()
        .filter(session::Column::TokenHash.eq(&hash.0))
        .exec(db)
        .await?;
    Ok(())
}

/// Ends every session of a user (after a password change or removal).
pub async fn delete_for_user(
    db: &impl ConnectionTrait,
    tenant_id: TenantId,
    user_id: UserId,
) -> Result<(), StoreError> {
    session::Entity::delete_many()
        .filter(session::Column::TenantId.eq(tenant_id.to_string()))
        .filter(session::Column::UserId.eq(user_id.to_string()))
        .exec(db)
        .await?;
    Ok(())
}

pub async fn delete_expired(db: &impl ConnectionTrait, now: Timestamp) -> Result<u64, StoreError> {
    let res = session::Entity::delete_many()
        .filter(session::Column::ExpiresAt.lte(now.as_micros()))
        .exec(db)
        .await?;
    Ok(res.rows_affected)
}
