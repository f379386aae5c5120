//! /api/v1/oauth-apps/{provider} and the consent endpoints of identities.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use herald_app::{OAuthAppSecret, OAuthAppView};
use herald_domain::{OAuthAppSettings, OAuthProvider};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, TenantAdmin, TenantSender, from_value_at};

#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthAppOut {
    pub provider: OAuthProvider,
    #[serde(flatten)]
    pub settings: OAuthAppSettings,
    /// The client secret is write-only.
    pub client_secret_set: bool,
    /// `tenant` (this tenant's own) or `platform` (herald.toml's default).
    pub source: &'static str,
}

impl From<OAuthAppView> for OAuthAppOut {
    fn from(v: OAuthAppView) -> Self {
        Self {
            provider: v.provider,
            settings: v.settings,
            client_secret_set: v.client_secret_set,
            source: v.source,
        }
    }
}

/// The settings plus `client_secret` (write-only; `null` clears it).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct OAuthAppWrite {
    #[schema(inline)]
    #[serde(flatten)]
    settings: OAuthAppSettings,
    #[schema(format = Password)]
    client_secret: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/oauth-apps/{provider}", tag = "oauth",
    params(("provider" = String, Path, description = "microsoft | google")),
    responses((status = 200, body = OAuthAppOut), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("session" = [])))]
pub async fn get_app(
    State(s): State<AppState>,
    TenantAdmin(actor): TenantAdmin,
    Path(provider): Path<String>,
) -> Result<Json<OAuthAppOut>, ApiError> {
    Ok(Json(s.herald.oauth_app(&actor, &provider).await?.into()))
}

/// Creates or replaces the tenant's app. `redirect_uri` must end in
/// /oauth/callback and match what is registered with the provider.
#[utoipa::path(put, path = "/api/v1/oauth-apps/{provider}", tag = "oauth",
    params(("provider" = String, Path, description = "microsoft | google")), request_body = OAuthAppWrite,
    responses((status = 200, body = OAuthAppOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("session" = [])))]
pub async fn put_app(
    State(s): State<AppState>,
    TenantAdmin(actor): TenantAdmin,
    Path(provider): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<OAuthAppOut>, ApiError> {
    let Value::Object(mut map) = body else {
        return Err(ApiError::invalid("", "the body must be a JSON object"));
    };
    let secret: OAuthAppSecret = match map.remove("client_secret") {
        None => OAuthAppSecret::default(),
        Some(v) => from_value_at(serde_json::json!({ "client_secret": v }), "")?,
    };
    let view = s
        .herald
        .put_oauth_app(&actor, &provider, Value::Object(map), secret)
        .await?;
    Ok(Json(view.into()))
}

#[utoipa::path(delete, path = "/api/v1/oauth-apps/{provider}", tag = "oauth",
    params(("provider" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("session" = [])))]
pub async fn delete_app(
    State(s): State<AppState>,
    TenantAdmin(actor): TenantAdmin,
    Path(provider): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.herald.delete_oauth_app(&actor, &provider).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthStart {
    /// Send the user's browser here; the provider returns to /oauth/callback.
    pub authorize_url: String,
    /// The consent must complete before this time (10 minutes).
    pub expires_at: String,
}

/// Starts "Authenticate with MFA" for an OAuth identity. Needs a signed-in
/// user (the state is bound to them and to the identity).
#[utoipa::path(post, path = "/api/v1/identities/{id}/oauth/start", tag = "identities",
    params(("id" = String, Path)),
    responses((status = 200, body = OAuthStart), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("session" = [])))]
pub async fn start(
    State(s): State<AppState>,
    TenantSender(actor): TenantSender,
    Path(id): Path<String>,
) -> Result<Json<OAuthStart>, ApiError> {
    let (url, expires_at) = s.herald.start_oauth(&actor, &id).await?;
    Ok(Json(OAuthStart {
        authorize_url: url,
        expires_at: expires_at.to_rfc3339(),
    }))
}

/// Wipes the identity's tokens; it must be connected again to send.
#[utoipa::path(post, path = "/api/v1/identities/{id}/oauth/disconnect", tag = "identities",
    params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("session" = [])))]
pub async fn disconnect(
    State(s): State<AppState>,
    TenantSender(actor): TenantSender,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.herald.disconnect_oauth(&actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
