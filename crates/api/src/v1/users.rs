use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use herald_app::{NewUser, UserPatch};
use herald_crypto::SecretString;
use herald_domain::{User, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{PageQuery, double_option};
use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, Caller, TenantAdmin};

#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub email: String,
    pub display_name: Option<String>,
    /// owner | admin | sender | viewer
    pub role: String,
    /// True until the user replaces their one-time password.
    pub must_change_password: bool,
    pub created_at: String,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            id: u.id.to_string(),
            email: u.email.to_string(),
            display_name: u.display_name.map(|d| d.to_string()),
            role: u.role.to_string(),
            must_change_password: u.must_change_password,
            created_at: u.created_at.to_rfc3339(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub items: Vec<UserView>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserCreate {
    pub email: String,
    pub display_name: Option<String>,
    pub role: String,
}

/// A new user and the one-time password to hand them (shown only now).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserCreated {
    pub user: UserView,
    pub one_time_password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    pub email: Option<String>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub display_name: Option<Option<String>>,
    pub role: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    #[schema(value_type = String, format = Password)]
    pub current_password: SecretString,
    /// At least 12 characters.
    #[schema(value_type = String, format = Password)]
    pub new_password: SecretString,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PasswordReset {
    pub one_time_password: String,
}

#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(PageQuery),
    responses((status = 200, body = UserList), (status = 403, body = ErrorBody)),
    security(("bearer" = []), ("session" = [])))]
pub async fn list_users(
    State(s): State<AppState>,
    TenantAdmin(actor): TenantAdmin,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<UserList>, ApiError> {
    let page = s
        .herald
        .list_users(&actor, q.after::<UserId>()?, q.limit()?)
        .await?;
    Ok(Json(UserList {
        items: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next.map(|id| id.to_string()),
    }))
}

#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = UserCreate,
    responses((status = 201, body = UserCreated), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("session" = [])))]
pub async fn create_user(
    State(s): State<AppState>,
    TenantAdmin(actor): TenantAdmin,
    ApiJson(body): ApiJson<UserCreate>,
) -> Result<(StatusCode, Json<UserCreated>), ApiError> {
    let created = s
        .herald
        .create_user(
            &actor,
            NewUser {
                email: body.email,
                display_name: body.display_name,
                role: body.role,
            },
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(UserCreated {
            user: created.user.into(),
            one_time_password: created.one_time_password.expose().clone(),
        }),
    ))
}

/// The signed-in user (for an API key: 404, a key is not a user).
#[utoipa::path(get, path = "/api/v1/users/me", tag = "users",
    responses((status = 200, body = UserView), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("session" = [])))]
pub async fn me(
    State(s): State<AppState>,
    Caller(actor): Caller,
) -> Result<Json<UserView>, ApiError> {
    let id = actor
        .user_id()
        .ok_or(herald_app::AppError::NotFound("user"))?;
    Ok(Json(s.herald.user(&actor, &id.to_string()).await?.into()))
}

#[utoipa::path(post, path = "/api/v1/users/me/password", tag = "users", request_body = PasswordChange,
    responses((status = 204), (status = 422, body = ErrorBody)),
    security(("session" = [])))]
pub async fn change_own_password(
    State(s): State<AppState>,
    Caller(actor): Caller,
    ApiJson(body): ApiJson<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    s.herald
        .change_own_password(&actor, &body.current_password, &body.new_password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path)),
    responses((status = 200, body = UserView), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("session" = [])))]
pub async fn get_user(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(s.herald.user(&actor, &id).await?.into()))
}

#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path)), request_body = UserUpdate,
    responses((status = 200, body = UserView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("session" = [])))]
pub async fn update_user(
    State(s): State<AppState>,
    TenantAdmin(actor): TenantAdmin,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UserUpdate>,
) -> Result<Json<UserView>, ApiError> {
    let patch = UserPatch {
        email: body.email,
        display_name: body.display_name,
        role: body.role,
    };
    Ok(Json(s.herald.update_user(&actor, &id, patch).await?.into()))
}

#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = []), ("session" = [])))]
pub async fn delete_user(
    State(s): State<AppState>,
    TenantAdmin(actor): TenantAdmin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.herald.delete_user(&actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Issues a new one-time password and signs the user out everywhere.
#[utoipa::path(post, path = "/api/v1/users/{id}/password-reset", tag = "users", params(("id" = String, Path)),
    responses((status = 200, body = PasswordReset), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("session" = [])))]
pub async fn reset_password(
    State(s): State<AppState>,
    TenantAdmin(actor): TenantAdmin,
    Path(id): Path<String>,
) -> Result<Json<PasswordReset>, ApiError> {
    let password = s.herald.reset_password(&actor, &id).await?;
    Ok(Json(PasswordReset {
        one_time_password: password.expose().clone(),
    }))
}
