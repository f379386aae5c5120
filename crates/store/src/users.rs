//! A tenant's users. Every function takes the tenant: a user id from another
//! tenant finds nothing.

use herald_domain::{DisplayName, EmailAddress, Role, TenantId, Timestamp, User, UserId};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use crate::StoreError;
use crate::convert::{parse, parse_with};
use crate::entity::tenant_user;

/// A user with the hash of their password, for sign-in.
pub struct UserWithHash {
    pub user: User,
    pub password_hash: Option<String>,
}

pub async fn insert(
    db: &impl ConnectionTrait,
    user: &User,
    password_hash: &str,
) -> Result<(), StoreError> {
    tenant_user::Entity::insert(tenant_user::ActiveModel {
        id: Set(user.id.to_string()),
        tenant_id: Set(user.tenant_id.to_string()),
        email: Set(user.email.to_string()),
        email_key: Set(user.email.as_str().to_lowercase()),
        display_name: Set(user.display_name.as_ref().map(|d| d.to_string())),
        role: Set(user.role.to_string()),
        password_hash: Set(Some(password_hash.to_owned())),
        must_change_password: Set(user.must_change_password),
        created_at: Set(user.created_at.as_micros()),
        updated_at: Set(user.created_at.as_micros()),
    })
    .exec_without_returning(db)
    .await
    .map_err(|e| StoreError::unique_as(e, "email"))?;
    Ok(())
}

/// Saves email, display name, role and the must-change flag.
pub async fn update(db: &impl ConnectionTrait, user: &User) -> Result<(), StoreError> {
    tenant_user::Entity::update_many()
        .col_expr(tenant_user::Column::Email, user.email.to_string().into())
        .col_expr(
            tenant_user::Column::EmailKey,
            user.email.as_str().to_lowercase().into(),
        )
        .col_expr(
            tenant_user::Column::DisplayName,
            user.display_name.as_ref().map(|d| d.to_string()).into(),
        )
        .col_expr(tenant_user::Column::Role, user.role.to_string().into())
        .col_expr(
            tenant_user::Column::MustChangePassword,
            user.must_change_password.into(),
        )
        .col_expr(
            tenant_user::Column::UpdatedAt,
            Timestamp::now().as_micros().into(),
        )
        .filter(tenant_user::Column::TenantId.eq(user.tenant_id.to_string()))
        .filter(tenant_user::Column::Id.eq(user.id.to_string()))
        .exec(db)
        .await
        .map_err(|e| StoreError::unique_as(e, "email"))?;
    Ok(())
}

pub async fn set_password(
    db: &impl ConnectionTrait,
    tenant_id: TenantId,
    id: UserId,
    password_hash: &str,
    must_change: bool,
) -> Result<(), StoreError> {
    tenant_user::Entity::update_many()
        .col_expr(
            tenant_user::Column::PasswordHash,
            Some(password_hash.to_owned()).into(),
        )
        .col_expr(tenant_user::Column::MustChangePassword, must_change.into())
        .col_expr(
            tenant_user::Column::UpdatedAt,
            Timestamp::now().as_micros().into(),
        )
        .filter(tenant_user::Column::TenantId.eq(tenant_id.to_string()))
        .filter(tenant_user::Column::Id.eq(id.to_string()))
        .exec(db)
        .await?;
    Ok(())
}

pub async fn get(
    db: &impl ConnectionTrait,
    tenant_id: TenantId,
    id: UserId,
) -> Result<Option<User>, StoreError> {
    tenant_user::Entity::find()
        .filter(tenant_user::Column::TenantId.eq(tenant_id.to_string()))
        .filter(tenant_user::Column::Id.eq(id.to_string()))
        .one(db)
        .await?
        .map(to_user)
        .transpose()
}

pub async fn by_email(
    db: &impl ConnectionTrait,
    tenant_id: TenantId,
    email: &EmailAddress,
) -> Result<Option<UserWithHash>, StoreError> {
    let Some(row) = tenant_user::Entity::find()
        .filter(tenant_user::Column::TenantId.eq(tenant_id.to_string()))
        .filter(tenant_user::Column::EmailKey.eq(email.as_str().to_lowercase()))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let password_hash = row.password_hash.clone();
    Ok(Some(UserWithHash {
        user: to_user(row)?,
        password_hash,
    }))
}

/// The password hash of one user.
pub async fn password_hash(
    db: &impl ConnectionTrait,
    tenant_id: TenantId,
    id: UserId,
) -> Result<Option<String>, StoreError> {
    Ok(tenant_user::Entity::find()
        .filter(tenant_user::Column::TenantId.eq(tenant_id.to_string()))
        .filter(tenant_user::Column::Id.eq(id.to_string()))
        .one(db)
        .await?
        .and_then(|u| u.password_hash))
}

/// Users in creation order, after `after` when given.
pub async fn list(
    db: &impl ConnectionTrait,
    tenant_id: TenantId,
    after: Option<UserId>,
    limit: u64,
) -> Result<Vec<User>, StoreError> {
    let mut q =
        tenant_user::Entity::find().filter(tenant_user::Column::TenantId.eq(tenant_id.to_string()));
    if let Some(after) = after {
        q = q.filter(tenant_user::Column::Id.gt(after.to_string()));
    }
    q.order_by_asc(tenant_user::Column::Id)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(to_user)
        .collect()
}

pub async fn count_with_role(
    db: &impl ConnectionTrait,
    tenant_id: TenantId,
    role: Role,
) -> Result<u64, StoreError> {
    Ok(tenant_user::Entity::find()
        .filter(tenant_user::Column::TenantId.eq(tenant_id.to_string()))
        .filter(tenant_user::Column::Role.eq(role.as_str()))
        .count(db)
        .await?)
}

pub async fn delete(
    db: &impl ConnectionTrait,
    tenant_id: TenantId,
    id: UserId,
) -> Result<bool, StoreError> {
    let res = tenant_user::Entity::delete_many()
        .filter(tenant_user::Column::TenantId.eq(tenant_id.to_string()))
        .filter(tenant_user::Column::Id.eq(id.to_string()))
        .exec(db)
        .await?;
    Ok(res.rows_affected > 0)
}

pub(crate) fn to_user(row: tenant_user::Model) -> Result<User, StoreError> {
    Ok(User {
        id: parse(&row.id, "user id")?,
        tenant_id: parse(&row.tenant_id, "tenant id")?,
        email: parse_with(&row.email, "user email", EmailAddress::parse)?,
        display_name: row
            .display_name
            .as_deref()
            .map(|d| parse_with(d, "display name", DisplayName::parse))
            .transpose()?,
        role: parse(&row.role, "role")?,
        must_change_password: row.must_change_password,
        created_at: Timestamp::from_micros(row.created_at),
    })
}
