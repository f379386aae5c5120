//! Writing and reading the audit trail.

use herald_domain::{Actor, AuditAction, AuditEntry, AuditEntryId, ChangedFields, Role, Timestamp};
use herald_store::{Connection, audit};

use crate::access::{Page, Require};
use crate::{AppError, Herald};

/// Records a change made by `actor`, in the caller's transaction.
pub(crate) async fn record(
    db: &impl Connection,
    actor: &Actor,
    action: AuditAction,
    entity: &str,
    entity_id: &str,
    fields: ChangedFields,
) -> Result<(), AppError> {
    let entry = AuditEntry {
        id: AuditEntryId::new(),
        tenant_id: actor.tenant_id,
        at: Timestamp::now(),
        actor_kind: actor.principal.kind().to_owned(),
        actor_id: actor.principal.id(),
        actor_label: actor.label.clone(),
        action,
        entity: entity.to_owned(),
        entity_id: entity_id.to_owned(),
        fields,
    };
    audit::insert(db, &entry).await?;
    Ok(())
}

/// Where the next page of the audit trail starts: the last entry's time and id.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AuditCursor {
    pub at: Timestamp,
    pub id: AuditEntryId,
}

impl AuditCursor {
    pub fn encode(&self) -> String {
        format!("{}_{}", self.at.as_micros(), self.id)
    }

    pub fn decode(s: &str) -> Result<Self, AppError> {
        let bad =
            || herald_domain::InvalidInput::new("cursor", "is not a cursor this API returned");
        let (ts, id) = s.split_once('_').ok_or_else(bad)?;
        Ok(Self {
            at: Timestamp::from_micros(ts.parse().map_err(|_| bad())?),
            id: id.parse().map_err(|_| bad())?,
        })
    }
}

impl Herald {
    /// The audit trail, newest first.
    pub async fn audit_page(
        &self,
        actor: &Actor,
        cursor: Option<AuditCursor>,
        limit: u64,
    ) -> Result<Page<AuditEntry, AuditCursor>, AppError> {
        actor.require(Role::Admin)?;
        let mut items = audit::page(
            self.store.read(),
            actor.tenant_id,
            cursor.map(|c| (c.at, c.id)),
            limit + 1,
        )
        .await?;
        Ok(Page::from_overfetch(&mut items, limit, |e| AuditCursor {
            at: e.at,
            id: e.id,
        }))
    }
}
