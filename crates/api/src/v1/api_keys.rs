use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use herald_app::NewApiKey;
use herald_domain::{ApiKey, ApiKeyId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::PageQuery;
use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, TenantAdmin};

/// An API key's description; the key itself is never shown again.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyView {
    pub id: String,
    pub name: String,
    pub role: String,
    /// The key's first characters.
    pub prefix: String,
    pub created_by: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

impl From<ApiKey> for ApiKeyView {
    fn from(k: ApiKey) -> Self {
        Self {
            id: k.id.to_string(),
            name: k.name,
            role: k.role.to_string(),
            prefix: k.display_prefix,
            created_by: k.created_by,
            created_at: k.created_at.to_rfc3339(),
            last_used_at: k.last_used_at.map(|t| t.to_rfc3339()),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyList {
    pub items: Vec<ApiKeyView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyCreate {
    pub name: String,
    /// No higher than the caller's own role.
    pub role: String,
}

/// The new key, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyCreated {
    pub api_key: ApiKeyView,
    pub key: String,
}

#[utoipa::path(get, path = "/api/v1/api-keys", tag = "api-keys", params(PageQuery),
    responses((status = 200, body = ApiKeyList), (status = 403, body = ErrorBody)),
    security(("bearer" = []), ("session" = [])))]
pub async fn list_keys(
    State(s): State<AppState>,
    TenantAdmin(actor): TenantAdmin,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<ApiKeyList>, ApiError> {
    let page = s
        .herald
        .list_api_keys(&actor, q.after::<ApiKeyId>()?, q.limit()?)
        .await?;
    Ok(Json(ApiKeyList {
        items: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next.map(|id| id.to_string()),
    }))
}

#[utoipa::path(post, path = "/api/v1/api-keys", tag = "api-keys", request_body = ApiKeyCreate,
    responses((status = 201, body = ApiKeyCreated), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("session" = [])))]
pub async fn create_key(
    State(s): State<AppState>,
    TenantAdmin(actor): TenantAdmin,
    ApiJson(body): ApiJson<ApiKeyCreate>,
) -> Result<(StatusCode, Json<ApiKeyCreated>), ApiError> {
    let created = s
        .herald
        .create_api_key(
            &actor,
            NewApiKey {
                name: body.name,
                role: body.role,
            },
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(ApiKeyCreated {
            api_key: created.key.into(),
            key: created.token.expose().clone(),
        }),
    ))
}

#[utoipa::path(get, path = "/api/v1/api-keys/{id}", tag = "api-keys", params(("id" = String, Path)),
    responses((status = 200, body = ApiKeyView), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("session" = [])))]
pub async fn get_key(
    State(s): State<AppState>,
    TenantAdmin(actor): TenantAdmin,
    Path(id): Path<String>,
) -> Result<Json<ApiKeyView>, ApiError> {
    Ok(Json(s.herald.api_key(&actor, &id).await?.into()))
}

/// Revokes the key at once.
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "api-keys", params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("session" = [])))]
pub async fn delete_key(
    State(s): State<AppState>,
    TenantAdmin(actor): TenantAdmin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.herald.delete_api_key(&actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
