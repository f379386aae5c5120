//! The tenant's suppression lists on /api/v1: bounces, unsubscribes and
//! complaints, in address order with keyset pages.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use herald_app::{AppError, NewSuppression};
use herald_app::{Suppression, SuppressionKind};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, Caller, TenantViewer};

#[derive(Debug, Serialize, ToSchema)]
pub struct SuppressionView {
    /// bounce | unsubscribe | complaint
    pub kind: String,
    pub address: String,
    pub code: Option<String>,
    pub error: Option<String>,
    pub tags: Vec<String>,
    /// RFC 3339.
    pub created_at: String,
}

impl From<Suppression> for SuppressionView {
    fn from(s: Suppression) -> Self {
        Self {
            kind: s.kind.as_str().to_owned(),
            address: s.address.to_string(),
            code: s.code,
            error: s.error,
            tags: s.tags,
            created_at: s.created_at.to_rfc3339(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SuppressionList {
    pub items: Vec<SuppressionView>,
    /// Pass as `cursor` for the next page; absent on the last one.
    pub next_cursor: Option<String>,
}

/// `kind` (required), `limit` (1–1000, default 100), `cursor`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SuppressionQuery {
    /// bounce | unsubscribe | complaint
    pub kind: String,
    pub limit: Option<u64>,
    pub cursor: Option<String>,
}

fn kind(s: &str) -> Result<SuppressionKind, ApiError> {
    SuppressionKind::parse(s)
        .ok_or_else(|| ApiError::invalid("kind", "must be bounce, unsubscribe or complaint"))
}

/// One list, in address order.
#[utoipa::path(get, path = "/api/v1/suppressions", tag = "suppressions", params(SuppressionQuery),
    responses((status = 200, body = SuppressionList), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("session" = [])))]
pub async fn list(
    State(s): State<AppState>,
    TenantViewer(actor): TenantViewer,
    ApiQuery(q): ApiQuery<SuppressionQuery>,
) -> Result<Json<SuppressionList>, ApiError> {
    let kind = kind(&q.kind)?;
    let limit = match q.limit {
        None => 100,
        Some(n @ 1..=1000) => n,
        Some(_) => return Err(ApiError::invalid("limit", "must be between 1 and 1000")),
    };
    let mut items = s
        .herald
        .list_suppressions(&actor, kind, q.cursor.as_deref(), true, limit + 1)
        .await?;
    let more = items.len() as u64 > limit;
    items.truncate(limit as usize);
    Ok(Json(SuppressionList {
        next_cursor: items
            .last()
            .filter(|_| more)
            .map(|i| i.address.as_str().to_lowercase()),
        items: items.into_iter().map(Into::into).collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSuppressionBody {
    /// bounce | unsubscribe | complaint
    pub kind: String,
    pub address: String,
    /// Bounces: the SMTP code (default 550).
    pub code: Option<String>,
    /// Bounces: the reply or reason.
    pub error: Option<String>,
    /// Unsubscribes: the tags it applies to (none or `*`: all mail).
    #[serde(default)]
    pub tags: Vec<String>,
    /// When it happened (epoch seconds, RFC 2822 or RFC 3339); now if absent.
    pub created_at: Option<String>,
}

/// Adds an address to a list (or refreshes it). Senders and above.
#[utoipa::path(post, path = "/api/v1/suppressions", tag = "suppressions", request_body = NewSuppressionBody,
    responses((status = 201, body = SuppressionView), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("session" = [])))]
pub async fn add(
    State(s): State<AppState>,
    Caller(actor): Caller,
    ApiJson(b): ApiJson<NewSuppressionBody>,
) -> Result<(StatusCode, Json<SuppressionView>), ApiError> {
    let kind = kind(&b.kind)?;
    let address = b.address.trim().to_owned();
    s.herald
        .add_suppressions(
            &actor,
            kind,
            &[NewSuppression {
                address: address.clone(),
                code: b.code,
                error: b.error,
                tags: b.tags,
                created_at: b.created_at,
            }],
        )
        .await?;
    let stored = s.herald.suppression(&actor, kind, &address).await?;
    Ok((StatusCode::CREATED, Json(stored.into())))
}

#[utoipa::path(get, path = "/api/v1/suppressions/{kind}/{address}", tag = "suppressions",
    params(("kind" = String, Path), ("address" = String, Path)),
    responses((status = 200, body = SuppressionView), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("session" = [])))]
pub async fn get_one(
    State(s): State<AppState>,
    TenantViewer(actor): TenantViewer,
    Path((k, address)): Path<(String, String)>,
) -> Result<Json<SuppressionView>, ApiError> {
    let kind = SuppressionKind::parse(&k).ok_or(AppError::NotFound("suppression list"))?;
    Ok(Json(
        s.herald.suppression(&actor, kind, &address).await?.into(),
    ))
}

/// Removes an address from a list, so mail goes to it again. Admins only.
#[utoipa::path(delete, path = "/api/v1/suppressions/{kind}/{address}", tag = "suppressions",
    params(("kind" = String, Path), ("address" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("session" = [])))]
pub async fn delete_one(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path((k, address)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let kind = SuppressionKind::parse(&k).ok_or(AppError::NotFound("suppression list"))?;
    s.herald
        .delete_suppressions(&actor, kind, Some(&address))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
