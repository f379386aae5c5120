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
    event::Entity::insert(event::ActiveModel {
        id: Set(e.id.to_string()),
        tenant_id: Set(e.tenant_id.to_string()),
        ts: Set(e.at.as_micros()),
        kind: Set(e.kind.to_string()),
        severity: Set(None),
        reason: Set(None),
        recipient: Set(None),
        recipient_domain: Set(None),
        message_id: Set(None),
        identity_id: Set(e.identity_id.map(|i| i.to_string())),
        profile_id: Set(e.profile_id.map(|p| p.to_string())),
        description: Set(e.description.clone()),
        detail: Set(None),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
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
        description: r.description,
    })
}
