//! /api/v1/identities: sender identities. Senders manage their own; owners
//! and admins manage all of them, including shared department addresses.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use herald_app::{AuthInput, IdentityPatch, IdentityView, NewIdentity};
use herald_crypto::SecretString;
use herald_domain::{
    DisplayName, EmailAddress, IdentityAuth, IdentityId, IdentityStatus, OAuthProvider,
    RelayProfileId, SmtpUsername, UserId,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{PageQuery, double_option};
use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, TenantSender, TenantViewer};

/// How the identity signs in: its own password, or OAuth2 ("Authenticate
/// with MFA"; the tokens arrive through the consent flow).
#[derive(Deserialize, ToSchema)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthWrite {
    Password {
        /// Defaults to the address.
        #[serde(default)]
        username: Option<SmtpUsername>,
        /// Write-only. Omitted on an update, the current password stays.
        #[serde(default)]
        #[schema(value_type = Option<String>, format = Password)]
        password: Option<SecretString>,
    },
    #[serde(rename = "oauth")]
    OAuth { provider: OAuthProvider },
}

impl From<AuthWrite> for AuthInput {
    fn from(a: AuthWrite) -> Self {
        match a {
            AuthWrite::Password { username, password } => {
                AuthInput::Password { username, password }
            }
            AuthWrite::OAuth { provider } => AuthInput::OAuth { provider },
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityCreate {
    pub address: EmailAddress,
    #[serde(default)]
    pub display_name: Option<DisplayName>,
    /// Omitted: the caller. `null`: a shared identity (admins only).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub owner_user_id: Option<Option<UserId>>,
    /// For a shared identity: the users who may send as it.
    #[serde(default)]
    pub shared_with: Vec<UserId>,
    /// Omitted: the tenant's default profile.
    #[serde(default)]
    pub profile_id: Option<RelayProfileId>,
    /// The owner's default identity (one per user).
    #[serde(default)]
    pub preferred: bool,
    pub auth: AuthWrite,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityUpdate {
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub display_name: Option<Option<DisplayName>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub owner_user_id: Option<Option<UserId>>,
    pub shared_with: Option<Vec<UserId>>,
    pub profile_id: Option<RelayProfileId>,
    pub preferred: Option<bool>,
    pub auth: Option<AuthWrite>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuthView {
    /// password | oauth
    pub method: &'static str,
    pub username: Option<String>,
    pub provider: Option<OAuthProvider>,
    /// The mailbox the provider vouched for at the last consent.
    pub granted_mailbox: Option<String>,
    pub access_expires_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IdentityOut {
    pub id: String,
    pub address: String,
    pub display_name: Option<String>,
    pub owner_user_id: Option<String>,
    pub shared_with: Vec<String>,
    pub profile_id: String,
    pub preferred: bool,
    pub status: IdentityStatus,
    pub auth: AuthView,
    pub password_set: bool,
    pub tokens_set: bool,
    /// The diagnosis of the last failure.
    pub last_error: Option<String>,
    pub last_checked_at: Option<String>,
    pub created_at: String,
}

impl From<IdentityView> for IdentityOut {
    fn from(v: IdentityView) -> Self {
        let i = v.identity;
        let auth = match &i.auth {
            IdentityAuth::Password { username } => AuthView {
                method: "password",
                username: Some(i.username().to_owned()).filter(|_| username.is_some()),
                provider: None,
                granted_mailbox: None,
                access_expires_at: None,
            },
            IdentityAuth::OAuth {
                provider,
                granted_mailbox,
                access_expires_at,
                ..
            } => AuthView {
                method: "oauth",
                username: None,
                provider: Some(*provider),
                granted_mailbox: granted_mailbox.as_ref().map(|m| m.to_string()),
                access_expires_at: access_expires_at.map(|t| t.to_rfc3339()),
            },
        };
        Self {
            id: i.id.to_string(),
            address: i.address.to_string(),
            display_name: i.display_name.map(|d| d.to_string()),
            owner_user_id: i.owner.map(|u| u.to_string()),
            shared_with: i.shared_with.iter().map(|u| u.to_string()).collect(),
            profile_id: i.profile_id.to_string(),
            preferred: i.preferred,
            status: i.status,
            auth,
            password_set: v.password_set,
            tokens_set: v.tokens_set,
            last_error: i.last_error,
            last_checked_at: i.last_checked_at.map(|t| t.to_rfc3339()),
            created_at: i.created_at.to_rfc3339(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IdentityList {
    pub items: Vec<IdentityOut>,
    pub next_cursor: Option<String>,
}

/// Admins see every identity; others the ones they own or are named on.
#[utoipa::path(get, path = "/api/v1/identities", tag = "identities", params(PageQuery),
    responses((status = 200, body = IdentityList)),
    security(("bearer" = []), ("session" = [])))]
pub async fn list_identities(
    State(s): State<AppState>,
    TenantViewer(actor): TenantViewer,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<IdentityList>, ApiError> {
    let page = s
        .herald
        .list_identities(&actor, q.after::<IdentityId>()?, q.limit()?)
        .await?;
    Ok(Json(IdentityList {
        items: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next.map(|c| c.to_string()),
    }))
}

#[utoipa::path(post, path = "/api/v1/identities", tag = "identities", request_body = IdentityCreate,
    responses((status = 201, body = IdentityOut), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("session" = [])))]
pub async fn create_identity(
    State(s): State<AppState>,
    TenantSender(actor): TenantSender,
    ApiJson(body): ApiJson<IdentityCreate>,
) -> Result<(StatusCode, Json<IdentityOut>), ApiError> {
    let new = NewIdentity {
        address: body.address,
        display_name: body.display_name,
        owner: body.owner_user_id,
        shared_with: body.shared_with,
        profile_id: body.profile_id,
        preferred: body.preferred,
        auth: body.auth.into(),
    };
    let view = s.herald.create_identity(&actor, new).await?;
    Ok((StatusCode::CREATED, Json(view.into())))
}

#[utoipa::path(get, path = "/api/v1/identities/{id}", tag = "identities", params(("id" = String, Path)),
    responses((status = 200, body = IdentityOut), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("session" = [])))]
pub async fn get_identity(
    State(s): State<AppState>,
    TenantViewer(actor): TenantViewer,
    Path(id): Path<String>,
) -> Result<Json<IdentityOut>, ApiError> {
    Ok(Json(s.herald.identity(&actor, &id).await?.into()))
}

/// Changes an identity. New credentials or a new profile make it
/// `unverified` until the next test or consent.
#[utoipa::path(patch, path = "/api/v1/identities/{id}", tag = "identities", params(("id" = String, Path)),
    request_body = IdentityUpdate,
    responses((status = 200, body = IdentityOut), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("session" = [])))]
pub async fn update_identity(
    State(s): State<AppState>,
    TenantSender(actor): TenantSender,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<IdentityUpdate>,
) -> Result<Json<IdentityOut>, ApiError> {
    let patch = IdentityPatch {
        display_name: body.display_name,
        owner: body.owner_user_id,
        shared_with: body.shared_with,
        profile_id: body.profile_id,
        preferred: body.preferred,
        auth: body.auth.map(Into::into),
    };
    Ok(Json(
        s.herald.update_identity(&actor, &id, patch).await?.into(),
    ))
}

/// Deletes an identity and wipes its password and tokens.
#[utoipa::path(delete, path = "/api/v1/identities/{id}", tag = "identities", params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)),
    security(("bearer" = []), ("session" = [])))]
pub async fn delete_identity(
    State(s): State<AppState>,
    TenantSender(actor): TenantSender,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.herald.delete_identity(&actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
