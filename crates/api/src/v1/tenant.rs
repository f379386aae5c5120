use axum::Json;
use axum::extract::State;
use herald_app::TenantPatch;
use herald_domain::Tenant;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, TenantAdmin, TenantViewer};

/// The caller's tenant.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantView {
    pub id: String,
    pub slug: String,
    pub name: String,
    /// Domains the tenant may send from.
    pub domains: Vec<String>,
    /// Days of events kept (30 unless changed).
    pub event_retention_days: u16,
    /// RFC 3339.
    pub created_at: String,
}

impl From<Tenant> for TenantView {
    fn from(t: Tenant) -> Self {
        Self {
            id: t.id.to_string(),
            slug: t.slug.to_string(),
            name: t.name.to_string(),
            domains: t.domains.iter().map(ToString::to_string).collect(),
            event_retention_days: t.event_retention_days.days(),
            created_at: t.created_at.to_rfc3339(),
        }
    }
}

/// Fields to change; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantUpdate {
    pub name: Option<String>,
    /// Replaces the whole list; at least one.
    pub domains: Option<Vec<String>>,
    /// Days of events to keep, 1 to 3650.
    pub event_retention_days: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/tenant", tag = "tenant",
    responses((status = 200, body = TenantView), (status = 401, body = ErrorBody)),
    security(("bearer" = []), ("session" = [])))]
pub async fn get_tenant(
    State(s): State<AppState>,
    TenantViewer(actor): TenantViewer,
) -> Result<Json<TenantView>, ApiError> {
    Ok(Json(s.herald.tenant(&actor).await?.into()))
}

#[utoipa::path(patch, path = "/api/v1/tenant", tag = "tenant", request_body = TenantUpdate,
    responses((status = 200, body = TenantView), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("session" = [])))]
pub async fn update_tenant(
    State(s): State<AppState>,
    TenantAdmin(actor): TenantAdmin,
    ApiJson(body): ApiJson<TenantUpdate>,
) -> Result<Json<TenantView>, ApiError> {
    let patch = TenantPatch {
        name: body.name,
        domains: body.domains,
        event_retention_days: body.event_retention_days,
    };
    Ok(Json(s.herald.update_tenant(&actor, patch).await?.into()))
}
