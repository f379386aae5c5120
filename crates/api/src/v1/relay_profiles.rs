//! /api/v1/relay-profiles and /api/v1/relay-routing (owners and admins).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use herald_app::{ProfileSecrets, ProfileView, Routing};
use herald_domain::{ProfileSettings, ProfileStatus};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, TenantAdmin, from_value_at};

/// Secrets are write-only: a string sets one, `null` clears it, absent keeps it.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SecretsWrite {
    /// The SMTP password (auth mode `password`).
    #[schema(format = Password)]
    password: Option<String>,
    /// The Mailgun API key (kind `mailgun`).
    #[schema(format = Password)]
    api_key: Option<String>,
    /// The bounce mailbox's password.
    #[schema(format = Password)]
    bounce_password: Option<String>,
}

/// A profile's settings with its secrets.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ProfileWrite {
    #[schema(inline)]
    #[serde(flatten)]
    settings: ProfileSettings,
    secrets: Option<SecretsWrite>,
}

/// Which secrets are set (their values are never shown).
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretsSetView {
    pub password: bool,
    pub api_key: bool,
    pub bounce_password: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileOut {
    pub id: String,
    #[serde(flatten)]
    pub settings: ProfileSettings,
    pub secrets: SecretsSetView,
    /// Advice (e.g. a no-reply From); the profile was saved anyway.
    pub warnings: Vec<String>,
    /// The tenant's mail goes through this profile unless a purpose is routed elsewhere.
    pub is_default: bool,
    pub routed_purposes: Vec<String>,
    /// `active`, or `failing` when the relay refused the profile's own
    /// credentials (its mail is held until the profile is saved again).
    pub status: ProfileStatus,
    pub last_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<ProfileView> for ProfileOut {
    fn from(v: ProfileView) -> Self {
        Self {
            id: v.profile.id.to_string(),
            settings: v.profile.settings,
            secrets: SecretsSetView {
                password: v.secrets.password,
                api_key: v.secrets.api_key,
                bounce_password: v.secrets.bounce_password,
            },
            warnings: v.warnings,
            is_default: v.is_default,
            routed_purposes: v.routed_purposes.iter().map(|p| p.to_string()).collect(),
            status: v.profile.status,
            last_error: v.profile.last_error.clone(),
            created_at: v.profile.created_at.to_rfc3339(),
            updated_at: v.profile.updated_at.to_rfc3339(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileList {
    pub items: Vec<ProfileOut>,
}

/// Splits `secrets` off a profile document.
fn split_secrets(body: Value) -> Result<(Value, ProfileSecrets), ApiError> {
    let Value::Object(mut map) = body else {
        return Err(ApiError::invalid("", "the body must be a JSON object"));
    };
    let secrets = match map.remove("secrets") {
        None | Some(Value::Null) => ProfileSecrets::default(),
        Some(v) => from_value_at(v, "secrets")?,
    };
    Ok((Value::Object(map), secrets))
}

#[utoipa::path(get, path = "/api/v1/relay-profiles", tag = "relay-profiles",
    responses((status = 200, body = ProfileList), (status = 403, body = ErrorBody)),
    security(("bearer" = []), ("session" = [])))]
pub async fn list_profiles(
    State(s): State<AppState>,
    TenantAdmin(actor): TenantAdmin,
) -> Result<Json<ProfileList>, ApiError> {
    let items = s.herald.list_relay_profiles(&actor).await?;
    Ok(Json(ProfileList {
        items: items.into_iter().map(Into::into).collect(),
    }))
}

/// Creates a profile. The tenant's first profile becomes its default.
#[utoipa::path(post, path = "/api/v1/relay-profiles", tag = "relay-profiles", request_body = ProfileWrite,
    responses((status = 201, body = ProfileOut), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("session" = [])))]
pub async fn create_profile(
    State(s): State<AppState>,
    TenantAdmin(actor): TenantAdmin,
    ApiJson(body): ApiJson<Value>,
) -> Result<(StatusCode, Json<ProfileOut>), ApiError> {
    let (settings, secrets) = split_secrets(body)?;
    let view = s
        .herald
        .create_relay_profile(&actor, settings, secrets)
        .await?;
    Ok((StatusCode::CREATED, Json(view.into())))
}

#[utoipa::path(get, path = "/api/v1/relay-profiles/{id}", tag = "relay-profiles", params(("id" = String, Path)),
    responses((status = 200, body = ProfileOut), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("session" = [])))]
pub async fn get_profile(
    State(s): State<AppState>,
    TenantAdmin(actor): TenantAdmin,
    Path(id): Path<String>,
) -> Result<Json<ProfileOut>, ApiError> {
    Ok(Json(s.herald.relay_profile(&actor, &id).await?.into()))
}

/// Changes a profile with a JSON Merge Patch (RFC 7396): give only what
/// changes; `null` removes an optional setting.
#[utoipa::path(patch, path = "/api/v1/relay-profiles/{id}", tag = "relay-profiles", params(("id" = String, Path)),
    request_body = ProfileWrite,
    responses((status = 200, body = ProfileOut), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("session" = [])))]
pub async fn update_profile(
    State(s): State<AppState>,
    TenantAdmin(actor): TenantAdmin,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<ProfileOut>, ApiError> {
    let (patch, secrets) = split_secrets(body)?;
    let view = s
        .herald
        .update_relay_profile(&actor, &id, patch, secrets)
        .await?;
    Ok(Json(view.into()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    /// The profile that takes over this one's identities and routes.
    pub move_to: Option<String>,
}

/// Deletes a profile; refused (409) while identities or routes use it
/// unless `move_to` names the profile that takes them over.
#[utoipa::path(delete, path = "/api/v1/relay-profiles/{id}", tag = "relay-profiles",
    params(("id" = String, Path), DeleteQuery),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = []), ("session" = [])))]
pub async fn delete_profile(
    State(s): State<AppState>,
    TenantAdmin(actor): TenantAdmin,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DeleteQuery>,
) -> Result<StatusCode, ApiError> {
    s.herald
        .delete_relay_profile(&actor, &id, q.move_to.as_deref())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurposeRoute {
    pub purpose: String,
    pub profile_id: String,
}

/// Which profile the tenant's mail uses: a default, and purposes routed to
/// other profiles.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoutingBody {
    pub default_profile_id: Option<String>,
    #[serde(default)]
    pub purposes: Vec<PurposeRoute>,
}

impl From<Routing> for RoutingBody {
    fn from(r: Routing) -> Self {
        Self {
            default_profile_id: r.default.map(|d| d.to_string()),
            purposes: r
                .purposes
                .into_iter()
                .map(|(purpose, id)| PurposeRoute {
                    purpose: purpose.to_string(),
                    profile_id: id.to_string(),
                })
                .collect(),
        }
    }
}

#[utoipa::path(get, path = "/api/v1/relay-routing", tag = "relay-profiles",
    responses((status = 200, body = RoutingBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []), ("session" = [])))]
pub async fn get_routing(
    State(s): State<AppState>,
    TenantAdmin(actor): TenantAdmin,
) -> Result<Json<RoutingBody>, ApiError> {
    Ok(Json(s.herald.relay_routing(&actor).await?.into()))
}

/// Replaces the routing.
#[utoipa::path(put, path = "/api/v1/relay-routing", tag = "relay-profiles", request_body = RoutingBody,
    responses((status = 200, body = RoutingBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("session" = [])))]
pub async fn put_routing(
    State(s): State<AppState>,
    TenantAdmin(actor): TenantAdmin,
    ApiJson(body): ApiJson<RoutingBody>,
) -> Result<Json<RoutingBody>, ApiError> {
    let purposes: Vec<(String, String)> = body
        .purposes
        .into_iter()
        .map(|r| (r.purpose, r.profile_id))
        .collect();
    let routing = s
        .herald
        .set_relay_routing(&actor, body.default_profile_id.as_deref(), &purposes)
        .await?;
    Ok(Json(routing.into()))
}
