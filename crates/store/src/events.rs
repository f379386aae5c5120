//! The per-tenant event log.

use std::borrow::Borrow;

use herald_domain::{
    Event, EventFilter, EventId, EventMessage, EventRecord, EventSearch, IdentityId, TenantId,
    Terms, Timestamp,
};
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, Order, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait,
};

use crate::convert::parse;
use crate::entity::{event, message};
use crate::{Script, StoreError};

/// Writes an event, in the caller's transaction (the one that makes the
/// change the event reports).
pub async fn insert(db: &impl ConnectionTrait, e: &Event) -> Result<(), StoreError> {
    insert_many(db, std::slice::from_ref(e)).await
}

/// Writes many events, 256 per statement (see [`crate::shaped`]).
pub async fn insert_many<E: Borrow<Event>>(
    db: &impl ConnectionTrait,
    events: &[E],
) -> Result<(), StoreError> {
    let mut script = Script::new(db.get_database_backend());
    add_many(&mut script, events);
    script.run(db).await
}

/// Adds to `script` the statements that insert `events`.
pub fn add_many<E: Borrow<Event>>(script: &mut Script, events: &[E]) {
    let backend = script.backend();
    for chunk in crate::shaped(events, 256) {
        script
            .push(event::Entity::insert_many(chunk.iter().map(|e| row(e.borrow()))).build(backend));
    }
}

fn row(e: &Event) -> event::ActiveModel {
    event::ActiveModel {
        id: Set(e.id.to_string()),
        tenant_id: Set(e.tenant_id.to_string()),
        ts: Set(e.at.as_micros()),
        kind: Set(e.kind.to_string()),
        severity: Set(e.severity.map(|s| s.as_str().to_owned())),
        reason: Set(e.reason.clone()),
        recipient: Set(e.recipient.as_ref().map(|r| r.to_string())),
        recipient_domain: Set(e.recipient.as_ref().map(|r| r.domain().to_owned())),
        message_id: Set(e.message_id.map(|m| m.to_string())),
        identity_id: Set(e.identity_id.map(|i| i.to_string())),
        profile_id: Set(e.profile_id.map(|p| p.to_string())),
        description: Set(e.description.clone()),
        detail: Set(e.detail.clone()),
        domain: Set(e.domain.clone()),
    }
}

/// A message's events, oldest first.
pub async fn for_message(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    message: herald_domain::MessageId,
) -> Result<Vec<Event>, StoreError> {
    event::Entity::find()
        .filter(event::Column::TenantId.eq(tenant.to_string()))
        .filter(event::Column::MessageId.eq(message.to_string()))
        .order_by_asc(event::Column::Ts)
        .order_by_asc(event::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(to_event)
        .collect()
}

/// An identity's events, newest first.
pub async fn for_identity(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    identity: IdentityId,
    limit: u64,
) -> Result<Vec<Event>, StoreError> {
    event::Entity::find()
        .filter(event::Column::TenantId.eq(tenant.to_string()))
        .filter(event::Column::IdentityId.eq(identity.to_string()))
        .order_by_desc(event::Column::Ts)
        .order_by_desc(event::Column::Id)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(to_event)
        .collect()
}

fn to_event(r: event::Model) -> Result<Event, StoreError> {
    Ok(Event {
        id: parse(&r.id, "event id")?,
        tenant_id: parse(&r.tenant_id, "tenant id")?,
        at: Timestamp::from_micros(r.ts),
        kind: parse(&r.kind, "event kind")?,
        identity_id: r
            .identity_id
            .as_deref()
            .map(|i| parse(i, "identity id"))
            .transpose()?,
        profile_id: r
            .profile_id
            .as_deref()
            .map(|p| parse(p, "profile id"))
            .transpose()?,
        message_id: r
            .message_id
            .as_deref()
            .map(|m| parse(m, "message id"))
            .transpose()?,
        recipient: r
            .recipient
            .as_deref()
            .map(|a| crate::convert::parse_with(a, "recipient", herald_domain::EmailAddress::parse))
            .transpose()?,
        severity: match r.severity.as_deref() {
            None => None,
            Some("temporary") => Some(herald_domain::Severity::Temporary),
            Some("permanent") => Some(herald_domain::Severity::Permanent),
            Some(other) => return Err(StoreError::Corrupt(format!("severity {other:?}"))),
        },
        domain: r.domain,
        reason: r.reason,
        description: r.description,
        detail: r.detail,
    })
}

/// A page of an event search: events after `after` (in the search's
/// direction; strictly after unless `after.2`, which includes the event
/// itself), with their messages, at most `limit`. The range
/// and the keyset are row-value comparisons on `(ts, id)`, which the
/// `(tenant_id, ts, id)` index answers directly.
pub async fn search(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    search: &EventSearch,
    after: Option<(i64, EventId, bool)>,
    limit: u64,
) -> Result<Vec<EventRecord>, StoreError> {
    let ts = || Expr::col((event::Entity, event::Column::Ts));
    let id = || Expr::col((event::Entity, event::Column::Id));
    let mut q = event::Entity::find()
        .find_also_related(message::Entity)
        .filter(event::Column::TenantId.eq(tenant.to_string()))
        .filter(matches(&search.filter));
    if let Some(begin) = search.begin {
        q = q.filter(ts().gte(begin));
    }
    if let Some(end) = search.end {
        q = q.filter(ts().lte(end));
    }
    if let Some((at, last, inclusive)) = after {
        let pivot = Expr::tuple([Expr::val(at), Expr::val(last.to_string())]);
        let row = Expr::tuple([ts(), id()]);
        q = q.filter(match (search.ascending, inclusive) {
            (true, false) => row.gt(pivot),
            (true, true) => row.gte(pivot),
            (false, false) => row.lt(pivot),
            (false, true) => row.lte(pivot),
        });
    }
    let order = if search.ascending {
        Order::Asc
    } else {
        Order::Desc
    };
    q.order_by(event::Column::Ts, order.clone())
        .order_by(event::Column::Id, order)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(|(e, m)| {
            Ok(EventRecord {
                event: to_event(e)?,
                message: m.map(|m| EventMessage {
                    mail_from: m.mail_from,
                    message_id_header: m.message_id_header,
                    subject: m.subject,
                    headers: m.headers,
                    tags: m.tags,
                    user_variables: m.user_variables,
                    size: u64::try_from(m.size).unwrap_or(0),
                    test_mode: m.test_mode,
                }),
            })
        })
        .collect()
}

/// `LIKE` text that matches `s` literally (with `ESCAPE '\'`).
fn like_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn lower(col: impl sea_orm::sea_query::IntoColumnRef) -> Expr {
    Expr::expr(Func::lower(Expr::col(col)))
}

/// A JSON string as serde_json writes it, for matching inside the stored
/// JSON documents.
fn json_text(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

fn contains(col: Expr, needle: &str) -> Expr {
    col.like(LikeExpr::new(format!("%{}%", like_literal(needle))).escape('\\'))
}

/// One filter: any of its values, negated if asked.
fn terms(t: &Terms, one: impl Fn(&str) -> Expr) -> Condition {
    let any = t.values.iter().fold(Condition::any(), |c, v| c.add(one(v)));
    if t.negated { any.not() } else { any }
}

fn matches(f: &EventFilter) -> Condition {
    let mut all = Condition::all();
    if let Some(d) = &f.domain {
        all = all.add(event::Column::Domain.eq(d.to_ascii_lowercase()));
    }
    if let Some(m) = f.message {
        all = all.add(event::Column::MessageId.eq(m.to_string()));
    }
    if let Some(i) = f.identity {
        all = all.add(event::Column::IdentityId.eq(i.to_string()));
    }
    for t in &f.event {
        all = all.add(terms(t, |v| event::Column::Kind.eq(v)));
    }
    for t in &f.severity {
        all = all.add(terms(t, |v| {
            event::Column::Severity.eq(v.to_ascii_lowercase())
        }));
    }
    for t in &f.recipient {
        all = all.add(terms(t, |v| {
            lower((event::Entity, event::Column::Recipient)).eq(v.to_lowercase())
        }));
    }
    for t in &f.from {
        // The envelope sender, or the From header's address.
        all = all.add(terms(t, |v| {
            let v = v.to_lowercase();
            let header = format!("\"from\":{}", json_text(&v));
            lower((message::Entity, message::Column::MailFrom))
                .eq(v)
                .or(contains(
                    lower((message::Entity, message::Column::Headers)),
                    &header,
                ))
        }));
    }
    // A superset: the To header mentions the address. The caller checks
    // the address list exactly (`to_matches`); a negated `to` is left to
    // that check alone, as NOT of a superset would drop matching rows.
    for t in f.to.iter().filter(|t| !t.negated) {
        all = all.add(terms(t, |v| {
            contains(
                lower((message::Entity, message::Column::Headers)),
                &v.to_lowercase(),
            )
        }));
    }
    for t in &f.subject {
        all = all.add(terms(t, |v| {
            contains(
                lower((message::Entity, message::Column::Subject)),
                &v.to_lowercase(),
            )
        }));
    }
    for t in &f.message_id {
        all = all.add(terms(t, |v| {
            let v = v.trim_start_matches('<').trim_end_matches('>');
            Expr::col((message::Entity, message::Column::MessageIdHeader)).eq(v)
        }));
    }
    for t in &f.tags {
        all = all.add(terms(t, |v| {
            contains(
                Expr::col((message::Entity, message::Column::Tags)),
                &json_text(v),
            )
        }));
    }
    all
}

/// Whether the message's To header names one of the filter's addresses
/// (the exact check behind the `to` filter's SQL superset).
pub fn to_matches(filters: &[Terms], m: Option<&EventMessage>) -> bool {
    if filters.is_empty() {
        return true;
    }
    let to: Vec<String> = m
        .and_then(|m| serde_json::from_str::<serde_json::Value>(&m.headers).ok())
        .and_then(|h| h.get("to").and_then(|v| v.as_str()).map(str::to_owned))
        .map(|to| {
            to.split(',')
                .map(|a| a.trim().to_lowercase())
                .filter(|a| !a.is_empty())
                .collect()
        })
        .unwrap_or_default();
    filters.iter().all(|t| {
        let any = t.values.iter().any(|v| to.contains(&v.to_lowercase()));
        any != t.negated
    })
}

/// Deletes up to `batch` of the tenant's events older than `before`;
/// returns how many went. Small batches keep each write transaction short,
/// so acceptance and delivery never wait long behind the purge.
pub async fn purge_older(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    before: Timestamp,
    batch: u64,
) -> Result<u64, StoreError> {
    let ids = event::Entity::find()
        .select_only()
        .column(event::Column::Id)
        .filter(event::Column::TenantId.eq(tenant.to_string()))
        .filter(event::Column::Ts.lt(before.as_micros()))
        .order_by_asc(event::Column::Ts)
        .limit(batch)
        .into_tuple::<String>()
        .all(db)
        .await?;
    if ids.is_empty() {
        return Ok(0);
    }
    let res = event::Entity::delete_many()
        .filter(event::Column::TenantId.eq(tenant.to_string()))
        .filter(event::Column::Id.is_in(ids))
        .exec(db)
        .await?;
    Ok(res.rows_affected)
}
