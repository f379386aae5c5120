//! The audit trail of settings changes.

use herald_domain::{AuditAction, AuditEntry, AuditEntryId, ChangedFields, TenantId, Timestamp};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use crate::StoreError;
use crate::convert::parse;
use crate::entity::audit_entry;

pub async fn insert(db: &impl ConnectionTrait, e: &AuditEntry) -> Result<(), StoreError> {
    let fields =
        serde_json::to_string(&e.fields).map_err(|err| StoreError::Corrupt(err.to_string()))?;
    audit_entry::Entity::insert(audit_entry::ActiveModel {
        id: Set(e.id.to_string()),
        tenant_id: Set(e.tenant_id.to_string()),
        ts: Set(e.at.as_micros()),
        actor_kind: Set(e.actor_kind.clone()),
        actor_id: Set(e.actor_id.clone()),
        actor_label: Set(e.actor_label.clone()),
        action: Set(e.action.to_string()),
        entity: Set(e.entity.clone()),
        entity_id: Set(e.entity_id.clone()),
        fields: Set(fields),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// Newest first; `before` is the (time, id) of the last entry of the previous
/// page, compared as a row value so the index (tenant_id, ts, id) serves it.
pub async fn page(
    db: &impl ConnectionTrait,
    tenant_id: TenantId,
    before: Option<(Timestamp, AuditEntryId)>,
    limit: u64,
) -> Result<Vec<AuditEntry>, StoreError> {
    let mut q =
        audit_entry::Entity::find().filter(audit_entry::Column::TenantId.eq(tenant_id.to_string()));
    if let Some((ts, id)) = before {
        q = q.filter(
            Expr::tuple([
                Expr::col(audit_entry::Column::Ts),
                Expr::col(audit_entry::Column::Id),
            ])
            .lt(Expr::tuple([
                Expr::val(ts.as_micros()),
                Expr::val(id.to_string()),
            ])),
        );
    }
    q.order_by_desc(audit_entry::Column::Ts)
        .order_by_desc(audit_entry::Column::Id)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(to_entry)
        .collect()
}

fn to_entry(row: audit_entry::Model) -> Result<AuditEntry, StoreError> {
    let names: Vec<String> = serde_json::from_str(&row.fields)
        .map_err(|_| StoreError::Corrupt(format!("audit fields: {}", row.fields)))?;
    Ok(AuditEntry {
        id: parse(&row.id, "audit id")?,
        tenant_id: parse(&row.tenant_id, "tenant id")?,
        at: Timestamp::from_micros(row.ts),
        actor_kind: row.actor_kind,
        actor_id: row.actor_id,
        actor_label: row.actor_label,
        action: AuditAction::parse(&row.action)
            .ok_or_else(|| StoreError::Corrupt(format!("audit action: {}", row.action)))?,
        entity: row.entity,
        entity_id: row.entity_id,
        fields: ChangedFields::from(names),
    })
}
