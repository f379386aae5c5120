//! The per-tenant event log.

use herald_domain::{Event, IdentityId, TenantId, Timestamp};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use crate::StoreError;
use crate::convert::parse;
use crate::entity::event;

/// Writes an event, in the caller's transaction (the one that makes the
/// change the event reports).
pub async fn insert(db: &impl ConnectionTrait, e: &Event) -> Result<(), StoreError> {
    insert_many(db, std::slice::from_ref(e)).await
}

/// Writes many events in one statement per 500.
pub async fn insert_many(db: &impl ConnectionTrait, events: &[Event]) -> Result<(), StoreError> {
    for chunk in events.chunks(500) {
        event::Entity::insert_many(chunk.iter().map(row))
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
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
        reason: r.reason,
        description: r.description,
        detail: r.detail,
    })
}
