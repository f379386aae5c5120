//! OAuth apps (per tenant and provider) and consent states.

use herald_domain::{
    IdentityId, OAuthApp, OAuthAppSettings, OAuthProvider, TenantId, Timestamp, UserId,
};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect,
};

use crate::StoreError;
use crate::convert::parse;
use crate::entity::{oauth_app, oauth_state};

pub async fn put_app(db: &impl ConnectionTrait, app: &OAuthApp) -> Result<(), StoreError> {
    let settings = serde_json::to_string(&app.settings)
        .map_err(|e| StoreError::Corrupt(format!("oauth app settings: {e}")))?;
    oauth_app::Entity::insert(oauth_app::ActiveModel {
        tenant_id: Set(app.tenant_id.to_string()),
        provider: Set(app.provider.to_string()),
        settings: Set(settings),
        updated_at: Set(app.updated_at.as_micros()),
    })
    .on_conflict(
        OnConflict::columns([oauth_app::Column::TenantId, oauth_app::Column::Provider])
            .update_columns([oauth_app::Column::Settings, oauth_app::Column::UpdatedAt])
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(())
}

pub async fn get_app(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    provider: OAuthProvider,
) -> Result<Option<OAuthApp>, StoreError> {
    let Some(row) = oauth_app::Entity::find()
        .filter(oauth_app::Column::TenantId.eq(tenant.to_string()))
        .filter(oauth_app::Column::Provider.eq(provider.as_str()))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let settings: OAuthAppSettings = serde_json::from_str(&row.settings)
        .map_err(|e| StoreError::Corrupt(format!("oauth app {}: {e}", row.provider)))?;
    Ok(Some(OAuthApp {
        tenant_id: tenant,
        provider,
        settings,
        updated_at: Timestamp::from_micros(row.updated_at),
    }))
}

pub async fn delete_app(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    provider: OAuthProvider,
) -> Result<bool, StoreError> {
    let res = oauth_app::Entity::delete_many()
        .filter(oauth_app::Column::TenantId.eq(tenant.to_string()))
        .filter(oauth_app::Column::Provider.eq(provider.as_str()))
        .exec(db)
        .await?;
    Ok(res.rows_affected > 0)
}

/// A consent in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentState {
    pub state_hash: String,
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub identity_id: IdentityId,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
}

pub async fn insert_state(db: &impl ConnectionTrait, s: &ConsentState) -> Result<(), StoreError> {
    oauth_state::Entity::insert(oauth_state::ActiveModel {
        state_hash: Set(s.state_hash.clone()),
        tenant_id: Set(s.tenant_id.to_string()),
        user_id: Set(s.user_id.to_string()),
        identity_id: Set(s.identity_id.to_string()),
        created_at: Set(Timestamp::now().as_micros()),
        expires_at: Set(s.expires_at.as_micros()),
        used_at: Set(None),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// Finds a state by its hash, whatever its tenant (the callback does not
/// know the tenant until it finds the state).
pub async fn state(
    db: &impl ConnectionTrait,
    state_hash: &str,
) -> Result<Option<ConsentState>, StoreError> {
    let Some(r) = oauth_state::Entity::find_by_id(state_hash.to_owned())
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(ConsentState {
        state_hash: r.state_hash,
        tenant_id: parse(&r.tenant_id, "tenant id")?,
        user_id: parse(&r.user_id, "user id")?,
        identity_id: parse(&r.identity_id, "identity id")?,
        expires_at: Timestamp::from_micros(r.expires_at),
        used_at: r.used_at.map(Timestamp::from_micros),
    }))
}

/// Marks a state used; false when it already was (a replay lost the race).
pub async fn use_state(db: &impl ConnectionTrait, state_hash: &str) -> Result<bool, StoreError> {
    let res = oauth_state::Entity::update_many()
        .col_expr(
            oauth_state::Column::UsedAt,
            Expr::value(Timestamp::now().as_micros()),
        )
        .filter(oauth_state::Column::StateHash.eq(state_hash))
        .filter(oauth_state::Column::UsedAt.is_null())
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}

/// Up to `limit` states that expired before `before`, to delete with
/// [`delete_state`] and their sealed verifiers.
pub async fn expired_states(
    db: &impl ConnectionTrait,
    before: Timestamp,
    limit: u64,
) -> Result<Vec<(TenantId, String)>, StoreError> {
    oauth_state::Entity::find()
        .filter(oauth_state::Column::ExpiresAt.lt(before.as_micros()))
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(|r| Ok((parse(&r.tenant_id, "tenant id")?, r.state_hash)))
        .collect()
}

pub async fn delete_state(db: &impl ConnectionTrait, state_hash: &str) -> Result<(), StoreError> {
    oauth_state::Entity::delete_by_id(state_hash.to_owned())
        .exec(db)
        .await?;
    Ok(())
}
