//! The event log as tenants read it: searches with Mailgun's filters, in
//! either direction, paged by `(ts, id)`; and the retention purge.

use herald_domain::{
    Actor, EventId, EventKind, EventRecord, EventSearch, InvalidInput, Role, Timestamp,
};
use herald_store::{events, tenants};

use crate::access::Require;
use crate::{AppError, Herald};

/// Mailgun event names Herald never produces (opens and clicks are not
/// tracked): a filter may name them, and matches nothing.
const MAILGUN_ONLY: [&str; 5] = [
    "opened",
    "clicked",
    "list_member_uploaded",
    "list_member_upload_error",
    "list_uploaded",
];

/// Where a page ends: the last event's time and id. The next page starts
/// after it, or at it when `inclusive`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventCursor {
    pub ts: i64,
    pub id: EventId,
    pub inclusive: bool,
}

impl EventCursor {
    pub fn of(r: &EventRecord) -> Self {
        Self {
            ts: r.event.at.as_micros(),
            id: r.event.id,
            inclusive: false,
        }
    }

    pub fn encode(&self) -> String {
        format!("{}_{}", self.ts, self.id)
    }

    pub fn decode(s: &str) -> Result<Self, InvalidInput> {
        let bad = || InvalidInput::new("cursor", "is not a cursor this API returned");
        let (ts, id) = s.split_once('_').ok_or_else(bad)?;
        Ok(Self {
            ts: ts.parse().map_err(|_| bad())?,
            id: id.parse().map_err(|_| bad())?,
            inclusive: false,
        })
    }
}

/// Checks the values a search names before it runs.
fn validate(search: &EventSearch) -> Result<(), InvalidInput> {
    for v in search.filter.event.iter().flat_map(|t| &t.values) {
        if v.parse::<EventKind>().is_err() && !MAILGUN_ONLY.contains(&v.as_str()) {
            return Err(InvalidInput::new(
                "event",
                format!("{v:?} is not an event type"),
            ));
        }
    }
    for v in search.filter.severity.iter().flat_map(|t| &t.values) {
        if !matches!(v.to_ascii_lowercase().as_str(), "temporary" | "permanent") {
            return Err(InvalidInput::new(
                "severity",
                format!("{v:?} is not temporary or permanent"),
            ));
        }
    }
    if let (Some(b), Some(e)) = (search.begin, search.end)
        && b > e
    {
        return Err(InvalidInput::new("end", "is before begin"));
    }
    Ok(())
}

impl Herald {
    /// Up to `limit` events of the caller's tenant matching `search`,
    /// strictly after `after` in the search's direction.
    pub async fn search_events(
        &self,
        actor: &Actor,
        search: &EventSearch,
        after: Option<EventCursor>,
        limit: u64,
    ) -> Result<Vec<EventRecord>, AppError> {
        actor.require(Role::Viewer)?;
        validate(search)?;
        let db = self.store.read();
        let to = &search.filter.to;
        if to.is_empty() {
            return Ok(events::search(
                db,
                actor.tenant_id,
                search,
                after.map(|c| (c.ts, c.id, c.inclusive)),
                limit,
            )
            .await?);
        }
        // `to` is matched in SQL as a superset and checked here exactly:
        // read on until the page is full or the range is exhausted.
        let batch = limit.clamp(100, 1000);
        let mut out = Vec::new();
        let mut cursor = after;
        loop {
            let rows = events::search(
                db,
                actor.tenant_id,
                search,
                cursor.map(|c| (c.ts, c.id, c.inclusive)),
                batch,
            )
            .await?;
            let exhausted = (rows.len() as u64) < batch;
            for r in rows {
                cursor = Some(EventCursor::of(&r));
                if events::to_matches(to, r.message.as_ref()) {
                    out.push(r);
                    if out.len() as u64 == limit {
                        return Ok(out);
                    }
                }
            }
            if exhausted {
                return Ok(out);
            }
        }
    }

    /// Deletes every tenant's events older than its retention, `batch` rows
    /// per transaction; returns how many were deleted.
    pub async fn purge_events(&self, batch: u64) -> Result<u64, AppError> {
        let now = Timestamp::now();
        let mut total = 0;
        for (tenant, days) in tenants::retentions(self.store.read()).await? {
            let before = Timestamp::from_micros(now.as_micros() - days.as_micros());
            loop {
                let tx = self.store.begin().await?;
                let n = events::purge_older(tx.conn(), tenant, before, batch).await?;
                tx.commit().await?;
                total += n;
                if n < batch {
                    break;
                }
                // Let writers in between batches.
                tokio::task::yield_now().await;
            }
        }
        Ok(total)
    }
}
