//! The tenant's event log on /api/v1: the same filters as Mailgun's Events
//! API (plus `message` and `identity`), keyset pages, and the CSV report
//! ("Generate Report") streamed page by page.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use herald_app::EventCursor;
use herald_domain::{Actor, EventSearch, InvalidInput};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::event_view::{CSV_COLUMNS, MailgunItem, csv_field, csv_row, mailgun_item};
use crate::extract::TenantViewer;
use crate::v3_events::{pairs, parse_search};

#[derive(Serialize, ToSchema)]
pub struct EventList<'a> {
    /// Events in Mailgun's item shape, with Herald's own fields under
    /// `herald`.
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<MailgunItem<'a>>,
    /// Pass as `cursor` for the next page; absent on the last one.
    pub next_cursor: Option<String>,
}

/// Parses the query: Mailgun's filters, `message`, `identity`, `cursor`.
fn parse(raw: Option<&str>) -> Result<(EventSearch, u64, Option<EventCursor>), InvalidInput> {
    let mut cursor = None;
    let (search, limit) = parse_search(&pairs(raw)?, |k, v, f| {
        match k {
            "message" => {
                f.message = Some(
                    v.parse()
                        .map_err(|_| InvalidInput::new("message", "is not a message id"))?,
                )
            }
            "identity" => {
                f.identity = Some(
                    v.parse()
                        .map_err(|_| InvalidInput::new("identity", "is not an identity id"))?,
                )
            }
            "cursor" => cursor = Some(EventCursor::decode(v)?),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok((search, limit, cursor))
}

/// The event log, newest first unless `ascending=yes` or `begin` alone is
/// given. Filters: begin, end (epoch seconds or RFC 2822), ascending,
/// limit (1–300, default 100), event, severity, recipient, from, to,
/// subject, message-id, tags (each `a OR b`, or `NOT a`; a field given
/// twice must match both), message, identity, cursor.
#[utoipa::path(get, path = "/api/v1/events", tag = "events",
    responses((status = 200, body = EventList), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("session" = [])))]
pub async fn list(
    State(s): State<AppState>,
    TenantViewer(actor): TenantViewer,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let (search, limit, cursor) = parse(raw.as_deref()).map_err(herald_app::AppError::from)?;
    let mut items = s
        .herald
        .search_events(&actor, &search, cursor, limit + 1)
        .await?;
    let more = items.len() as u64 > limit;
    items.truncate(limit as usize);
    Ok(Json(EventList {
        next_cursor: items
            .last()
            .filter(|_| more)
            .map(|r| EventCursor::of(r).encode()),
        items: items.iter().map(mailgun_item).collect(),
    })
    .into_response())
}

/// Rows per query while the report streams.
const CSV_BATCH: u64 = 1000;

/// The CSV report of every event the filters select (no `limit`; `cursor`
/// starts after a given event), streamed as it is read.
#[utoipa::path(get, path = "/api/v1/events.csv", tag = "events",
    responses((status = 200, content_type = "text/csv", body = String), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("session" = [])))]
pub async fn csv(
    State(s): State<AppState>,
    TenantViewer(actor): TenantViewer,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let (search, _, cursor) = parse(raw.as_deref()).map_err(herald_app::AppError::from)?;
    // The first page runs before the answer starts, so a refused search is
    // a 4xx rather than a broken download.
    let first = s
        .herald
        .search_events(&actor, &search, cursor, CSV_BATCH)
        .await?;
    let mut head = CSV_COLUMNS.join(",");
    head.push_str("\r\n");
    struct Report {
        s: AppState,
        actor: Actor,
        search: EventSearch,
        pending: Option<Vec<herald_domain::EventRecord>>,
        cursor: Option<EventCursor>,
        done: bool,
    }
    let start = Report {
        s,
        actor,
        search,
        pending: Some(first),
        cursor,
        done: false,
    };
    let rows = futures_util::stream::unfold(start, |mut st| async move {
        if st.done {
            return None;
        }
        let batch = match st.pending.take() {
            Some(b) => b,
            None => match st
                .s
                .herald
                .search_events(&st.actor, &st.search, st.cursor, CSV_BATCH)
                .await
            {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "events.csv stopped");
                    return Some((Err(std::io::Error::other("the report stopped")), st));
                }
            },
        };
        if (batch.len() as u64) < CSV_BATCH {
            st.done = true;
        }
        st.cursor = batch.last().map(EventCursor::of);
        let mut out = String::new();
        for r in &batch {
            let row = csv_row(r);
            let fields: Vec<String> = row.iter().map(|f| csv_field(f)).collect();
            out.push_str(&fields.join(","));
            out.push_str("\r\n");
        }
        Some((Ok(Bytes::from(out)), st))
    });
    let head =
        futures_util::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(head)) });
    let body = Body::from_stream(futures_util::StreamExt::chain(head, rows));
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"herald-events.csv\"",
            ),
        ],
        body,
    )
        .into_response())
}
