//! Sender identities and the users a shared identity serves.

use std::collections::HashMap;

use herald_domain::{
    DisplayName, EmailAddress, IdentityAuth, IdentityId, IdentityStatus, OAuthProvider,
    RelayProfileId, SenderIdentity, SmtpUsername, TenantId, Timestamp, UserId,
};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait,
};

use crate::StoreError;
use crate::convert::{parse, parse_with};
use crate::entity::{identity_user, sender_identity};

fn columns(i: &SenderIdentity) -> sender_identity::ActiveModel {
    let (username, provider, mailbox, expires, generation, scopes) = match &i.auth {
        IdentityAuth::Password { username } => (
            username.as_ref().map(|u| u.to_string()),
            None,
            None,
            None,
            0,
            None,
        ),
        IdentityAuth::OAuth {
            provider,
            granted_mailbox,
            access_expires_at,
            generation,
            scopes,
        } => (
            None,
            Some(provider.to_string()),
            granted_mailbox.as_ref().map(|m| m.to_string()),
            access_expires_at.map(|t| t.as_micros()),
            *generation,
            Some(scopes.join(" ")).filter(|s| !s.is_empty()),
        ),
    };
    sender_identity::ActiveModel {
        id: Set(i.id.to_string()),
        tenant_id: Set(i.tenant_id.to_string()),
        address: Set(i.address.to_string()),
        address_key: Set(i.address.as_str().to_lowercase()),
        display_name: Set(i.display_name.as_ref().map(|d| d.to_string())),
        owner_user_id: Set(i.owner.map(|u| u.to_string())),
        profile_id: Set(i.profile_id.to_string()),
        preferred: Set(i.preferred),
        status: Set(i.status.to_string()),
        auth_method: Set(i.auth.method().to_owned()),
        username: Set(username),
        oauth_provider: Set(provider),
        granted_mailbox: Set(mailbox),
        access_expires_at: Set(expires),
        token_generation: Set(generation),
        oauth_scopes: Set(scopes),
        last_error: Set(i.last_error.clone()),
        last_checked_at: Set(i.last_checked_at.map(|t| t.as_micros())),
        created_at: Set(i.created_at.as_micros()),
        updated_at: Set(Timestamp::now().as_micros()),
    }
}

fn scoped(tenant: TenantId) -> sea_orm::Select<sender_identity::Entity> {
    sender_identity::Entity::find().filter(sender_identity::Column::TenantId.eq(tenant.to_string()))
}

pub async fn insert(db: &impl ConnectionTrait, i: &SenderIdentity) -> Result<(), StoreError> {
    sender_identity::Entity::insert(columns(i))
        .exec_without_returning(db)
        .await
        .map_err(|e| StoreError::unique_as(e, "address"))?;
    set_shared_with(db, i).await
}

/// Saves every field and the list of users a shared identity serves.
pub async fn update(db: &impl ConnectionTrait, i: &SenderIdentity) -> Result<(), StoreError> {
    let mut row = columns(i);
    row.created_at = sea_orm::ActiveValue::NotSet;
    sender_identity::Entity::update_many()
        .set(row)
        .filter(sender_identity::Column::TenantId.eq(i.tenant_id.to_string()))
        .filter(sender_identity::Column::Id.eq(i.id.to_string()))
        .exec(db)
        .await
        .map_err(|e| StoreError::unique_as(e, "address"))?;
    set_shared_with(db, i).await
}

async fn set_shared_with(db: &impl ConnectionTrait, i: &SenderIdentity) -> Result<(), StoreError> {
    identity_user::Entity::delete_many()
        .filter(identity_user::Column::IdentityId.eq(i.id.to_string()))
        .exec(db)
        .await?;
    if i.shared_with.is_empty() {
        return Ok(());
    }
    identity_user::Entity::insert_many(i.shared_with.iter().map(|u| identity_user::ActiveModel {
        tenant_id: Set(i.tenant_id.to_string()),
        identity_id: Set(i.id.to_string()),
        user_id: Set(u.to_string()),
    }))
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// Records the outcome of a test, a consent or a delivery attempt.
pub async fn set_status(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    id: IdentityId,
    status: IdentityStatus,
    last_error: Option<&str>,
) -> Result<(), StoreError> {
    let now = Timestamp::now().as_micros();
    sender_identity::Entity::update_many()
        .col_expr(
            sender_identity::Column::Status,
            Expr::value(status.as_str()),
        )
        .col_expr(
            sender_identity::Column::LastError,
            Expr::value(last_error.map(str::to_owned)),
        )
        .col_expr(sender_identity::Column::LastCheckedAt, Expr::value(now))
        .col_expr(sender_identity::Column::UpdatedAt, Expr::value(now))
        .filter(sender_identity::Column::TenantId.eq(tenant.to_string()))
        .filter(sender_identity::Column::Id.eq(id.to_string()))
        .exec(db)
        .await?;
    Ok(())
}

/// Clears the preferred flag on every identity of `owner`.
pub async fn clear_preferred(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    owner: UserId,
) -> Result<(), StoreError> {
    sender_identity::Entity::update_many()
        .col_expr(sender_identity::Column::Preferred, Expr::value(false))
        .filter(sender_identity::Column::TenantId.eq(tenant.to_string()))
        .filter(sender_identity::Column::OwnerUserId.eq(owner.to_string()))
        .exec(db)
        .await?;
    Ok(())
}

pub async fn get(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    id: IdentityId,
) -> Result<Option<SenderIdentity>, StoreError> {
    let Some(row) = scoped(tenant)
        .filter(sender_identity::Column::Id.eq(id.to_string()))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    Ok(with_users(db, vec![row]).await?.pop())
}

/// Identities in creation order after `after`; with `visible_to`, only those
/// that user owns or is named on.
pub async fn list(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    visible_to: Option<UserId>,
    after: Option<IdentityId>,
    limit: u64,
) -> Result<Vec<SenderIdentity>, StoreError> {
    let mut q = scoped(tenant);
    if let Some(user) = visible_to {
        let shared = identity_user::Entity::find()
            .select_only()
            .column(identity_user::Column::IdentityId)
            .filter(identity_user::Column::UserId.eq(user.to_string()))
            .into_query();
        q = q.filter(
            Condition::any()
                .add(sender_identity::Column::OwnerUserId.eq(user.to_string()))
                .add(sender_identity::Column::Id.in_subquery(shared)),
        );
    }
    if let Some(after) = after {
        q = q.filter(sender_identity::Column::Id.gt(after.to_string()));
    }
    let rows = q
        .order_by_asc(sender_identity::Column::Id)
        .limit(limit)
        .all(db)
        .await?;
    with_users(db, rows).await
}

/// How many identities send through `profile`.
pub async fn count_using_profile(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    profile: RelayProfileId,
) -> Result<u64, StoreError> {
    Ok(scoped(tenant)
        .filter(sender_identity::Column::ProfileId.eq(profile.to_string()))
        .count(db)
        .await?)
}

/// Moves every identity of `from` to `to`.
pub async fn move_profile(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    from: RelayProfileId,
    to: RelayProfileId,
) -> Result<(), StoreError> {
    sender_identity::Entity::update_many()
        .col_expr(
            sender_identity::Column::ProfileId,
            Expr::value(to.to_string()),
        )
        .filter(sender_identity::Column::TenantId.eq(tenant.to_string()))
        .filter(sender_identity::Column::ProfileId.eq(from.to_string()))
        .exec(db)
        .await?;
    Ok(())
}

/// The ids of the identities a user owns (to wipe their secrets when the
/// user goes).
pub async fn owned_by(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    owner: UserId,
) -> Result<Vec<IdentityId>, StoreError> {
    scoped(tenant)
        .filter(sender_identity::Column::OwnerUserId.eq(owner.to_string()))
        .all(db)
        .await?
        .into_iter()
        .map(|r| parse(&r.id, "identity id"))
        .collect()
}

pub async fn delete(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    id: IdentityId,
) -> Result<bool, StoreError> {
    let res = sender_identity::Entity::delete_many()
        .filter(sender_identity::Column::TenantId.eq(tenant.to_string()))
        .filter(sender_identity::Column::Id.eq(id.to_string()))
        .exec(db)
        .await?;
    Ok(res.rows_affected > 0)
}

async fn with_users(
    db: &impl ConnectionTrait,
    rows: Vec<sender_identity::Model>,
) -> Result<Vec<SenderIdentity>, StoreError> {
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let mut users: HashMap<String, Vec<UserId>> = HashMap::new();
    if !ids.is_empty() {
        for link in identity_user::Entity::find()
            .filter(identity_user::Column::IdentityId.is_in(ids))
            .order_by_asc(identity_user::Column::UserId)
            .all(db)
            .await?
        {
            users
                .entry(link.identity_id)
                .or_default()
                .push(parse(&link.user_id, "user id")?);
        }
    }
    rows.into_iter()
        .map(|r| {
            let shared = users.remove(&r.id).unwrap_or_default();
            to_identity(r, shared)
        })
        .collect()
}

fn to_identity(
    r: sender_identity::Model,
    shared_with: Vec<UserId>,
) -> Result<SenderIdentity, StoreError> {
    let auth = match r.auth_method.as_str() {
        "password" => IdentityAuth::Password {
            username: r
                .username
                .as_deref()
                .map(|u| parse_with(u, "identity username", SmtpUsername::parse))
                .transpose()?,
        },
        "oauth" => IdentityAuth::OAuth {
            provider: parse::<OAuthProvider>(
                r.oauth_provider.as_deref().unwrap_or(""),
                "provider",
            )?,
            granted_mailbox: r
                .granted_mailbox
                .as_deref()
                .map(|m| parse_with(m, "granted mailbox", EmailAddress::parse))
                .transpose()?,
            access_expires_at: r.access_expires_at.map(Timestamp::from_micros),
            generation: r.token_generation,
            scopes: r
                .oauth_scopes
                .as_deref()
                .map(|s| s.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default(),
        },
        other => return Err(StoreError::Corrupt(format!("auth method {other:?}"))),
    };
    Ok(SenderIdentity {
        id: parse(&r.id, "identity id")?,
        tenant_id: parse(&r.tenant_id, "tenant id")?,
        address: parse_with(&r.address, "identity address", EmailAddress::parse)?,
        display_name: r
            .display_name
            .as_deref()
            .map(|d| parse_with(d, "display name", DisplayName::parse))
            .transpose()?,
        owner: r
            .owner_user_id
            .as_deref()
            .map(|u| parse(u, "owner"))
            .transpose()?,
        shared_with,
        profile_id: parse(&r.profile_id, "relay profile id")?,
        preferred: r.preferred,
        status: parse(&r.status, "identity status")?,
        auth,
        last_error: r.last_error,
        last_checked_at: r.last_checked_at.map(Timestamp::from_micros),
        created_at: Timestamp::from_micros(r.created_at),
    })
}
