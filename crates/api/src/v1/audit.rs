use axum::Json;
use axum::extract::State;
use herald_app::AuditCursor;
use herald_domain::AuditEntry;
use serde::Serialize;
use utoipa::ToSchema;

use super::PageQuery;
use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiQuery, TenantAdmin};

/// One change: who, when, what, and the names of the fields it touched
/// (secret values never appear).
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    pub id: String,
    pub at: String,
    /// user | api_key | cli
    pub actor_kind: String,
    pub actor_id: String,
    pub actor: String,
    /// create | update | delete
    pub action: String,
    pub entity: String,
    pub entity_id: String,
    pub fields: Vec<String>,
}

impl From<AuditEntry> for AuditView {
    fn from(e: AuditEntry) -> Self {
        Self {
            id: e.id.to_string(),
            at: e.at.to_rfc3339(),
            actor_kind: e.actor_kind,
            actor_id: e.actor_id,
            actor: e.actor_label,
            action: e.action.to_string(),
            entity: e.entity,
            entity_id: e.entity_id,
            fields: e.fields.names().to_vec(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditList {
    pub items: Vec<AuditView>,
    pub next_cursor: Option<String>,
}

/// The audit trail, newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(PageQuery),
    responses((status = 200, body = AuditList), (status = 403, body = ErrorBody)),
    security(("bearer" = []), ("session" = [])))]
pub async fn list_audit(
    State(s): State<AppState>,
    TenantAdmin(actor): TenantAdmin,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<AuditList>, ApiError> {
    let cursor = q.cursor.as_deref().map(AuditCursor::decode).transpose()?;
    let page = s.herald.audit_page(&actor, cursor, q.limit()?).await?;
    Ok(Json(AuditList {
        items: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next.map(|c| c.encode()),
    }))
}
