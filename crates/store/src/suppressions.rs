//! Suppression lists: addresses a tenant's mail must no longer go to.

use std::collections::HashMap;

use herald_domain::{EmailAddress, TenantId, Timestamp};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult, Order,
    QueryFilter, QueryOrder, QueryResult, QuerySelect, QueryTrait, Statement,
};

use crate::StoreError;
use crate::convert::parse_with;
use crate::entity::suppression;

/// Why an address is suppressed (Mailgun's three lists).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuppressionKind {
    Bounce,
    Unsubscribe,
    Complaint,
}

impl SuppressionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bounce => "bounce",
            Self::Unsubscribe => "unsubscribe",
            Self::Complaint => "complaint",
        }
    }

    /// Mailgun's `reason` for a message dropped because of this list.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Bounce => "suppress-bounce",
            Self::Unsubscribe => "suppress-unsubscribe",
            Self::Complaint => "suppress-complaint",
        }
    }

    /// Mailgun's list name: bounces, unsubscribes, complaints.
    pub fn list_name(self) -> &'static str {
        match self {
            Self::Bounce => "bounces",
            Self::Unsubscribe => "unsubscribes",
            Self::Complaint => "complaints",
        }
    }

    pub fn from_list_name(s: &str) -> Option<Self> {
        [Self::Bounce, Self::Unsubscribe, Self::Complaint]
            .into_iter()
            .find(|k| k.list_name() == s)
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Bounce, Self::Unsubscribe, Self::Complaint]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// Adds (or refreshes) an address on a list.
pub async fn add(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    kind: SuppressionKind,
    address: &EmailAddress,
    code: Option<&str>,
    error: Option<&str>,
) -> Result<(), StoreError> {
    let entry = Suppression {
        kind,
        address: address.clone(),
        code: code.map(str::to_owned),
        error: error.map(str::to_owned),
        tags: Vec::new(),
        created_at: Timestamp::now(),
    };
    put_many(db, tenant, std::slice::from_ref(&entry)).await
}

/// What suppresses an address: its list and, for an unsubscribe, the tags
/// it applies to (none: all mail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub kind: SuppressionKind,
    pub tags: Vec<String>,
}

impl Hit {
    /// Whether this entry stops a message carrying `message_tags`: bounces
    /// and complaints always; an unsubscribe from some tags (Mailgun's
    /// per-tag unsubscribe) only a message with one of them, and `*` or no
    /// tag means every message.
    pub fn applies_to(&self, message_tags: &[String]) -> bool {
        self.kind != SuppressionKind::Unsubscribe
            || self.tags.is_empty()
            || self
                .tags
                .iter()
                .any(|t| t == "*" || message_tags.contains(t))
    }
}

/// The entries found for some tenants' addresses, by tenant and lowercased
/// address, bounce first, then complaint, then unsubscribe.
#[derive(Debug, Default)]
pub struct Found(HashMap<(String, String), Vec<Hit>>);

impl Found {
    /// Reads the rows of [`lookup_statements`].
    fn from_rows(rows: impl IntoIterator<Item = QueryResult>) -> Result<Self, StoreError> {
        let mut entries = Vec::new();
        for row in rows {
            let r = suppression::Model::from_query_result(&row, "")?;
            entries.push((r.tenant_id, r.address_key, r.kind, r.tags));
        }
        Ok(Self::from_entries(entries))
    }

    /// From (tenant, lowercased address, list, tags as JSON) of each row.
    fn from_entries(entries: Vec<(String, String, String, Option<String>)>) -> Self {
        let mut found: HashMap<(String, String), Vec<Hit>> = HashMap::new();
        for (tenant, address_key, kind, tags) in entries {
            let Some(kind) = SuppressionKind::parse(&kind) else {
                continue;
            };
            let tags = tags
                .as_deref()
                .and_then(|t| serde_json::from_str(t).ok())
                .unwrap_or_default();
            found
                .entry((tenant, address_key))
                .or_default()
                .push(Hit { kind, tags });
        }
        let rank = |k: SuppressionKind| match k {
            SuppressionKind::Bounce => 0,
            SuppressionKind::Complaint => 1,
            SuppressionKind::Unsubscribe => 2,
        };
        for hits in found.values_mut() {
            hits.sort_by_key(|h| rank(h.kind));
        }
        Self(found)
    }

    /// `address`'s entries on `tenant`'s lists (none: not suppressed).
    pub fn get(&self, tenant: TenantId, address: &EmailAddress) -> &[Hit] {
        self.0
            .get(&(tenant.to_string(), address.as_str().to_lowercase()))
            .map_or(&[], Vec::as_slice)
    }

    /// Whether no address was on any list (the usual answer).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The queries that find which of each tenant's `addresses` are on a list
/// (read by [`Found::from_rows`] or in [`lookup_locked`]). A group commit
/// asks for many messages' recipients at once: each statement takes a few
/// hundred addresses at most, far below any bind-parameter limit.
fn lookup_statements(
    backend: DbBackend,
    wanted: &[(TenantId, Vec<&EmailAddress>)],
) -> Vec<Statement> {
    let mut statements = Vec::new();
    for (tenant, addresses) in wanted {
        let mut keys: Vec<String> = addresses
            .iter()
            .map(|a| a.as_str().to_lowercase())
            .collect();
        keys.sort_unstable();
        keys.dedup();
        for chunk in crate::shaped(&keys, 256) {
            statements.push(
                suppression::Entity::find()
                    .filter(suppression::Column::TenantId.eq(tenant.to_string()))
                    .filter(suppression::Column::AddressKey.is_in(chunk.iter().cloned()))
                    .build(backend),
            );
        }
    }
    statements
}

/// Which of each tenant's `addresses` are on a list.
pub async fn lookup(
    db: &impl ConnectionTrait,
    wanted: &[(TenantId, Vec<&EmailAddress>)],
) -> Result<Found, StoreError> {
    let mut rows = Vec::new();
    for statement in lookup_statements(db.get_database_backend(), wanted) {
        rows.extend(db.query_all_raw(statement).await?);
    }
    Found::from_rows(rows)
}

/// [`lookup`] inside a transaction on SQLite's writer handle
/// ([`crate::Batch`]).
pub fn lookup_locked(
    tx: &crate::LockedTx<'_>,
    wanted: &[(TenantId, Vec<&EmailAddress>)],
) -> Result<Found, StoreError> {
    let mut entries = Vec::new();
    for statement in lookup_statements(DbBackend::Sqlite, wanted) {
        entries.extend(tx.rows(&statement, |row| {
            Ok((
                row.get("tenant_id")?,
                row.get("address_key")?,
                row.get("kind")?,
                row.get("tags")?,
            ))
        })?);
    }
    Ok(Found::from_entries(entries))
}

/// One suppressed address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    pub kind: SuppressionKind,
    pub address: EmailAddress,
    /// SMTP reply code (bounces).
    pub code: Option<String>,
    /// The reply's text or why it was added (bounces).
    pub error: Option<String>,
    /// Tags an unsubscribe applies to (empty: all mail).
    pub tags: Vec<String>,
    pub created_at: Timestamp,
}

fn to_suppression(r: suppression::Model) -> Result<Suppression, StoreError> {
    Ok(Suppression {
        kind: SuppressionKind::parse(&r.kind)
            .ok_or_else(|| StoreError::Corrupt(format!("suppression kind {:?}", r.kind)))?,
        address: parse_with(&r.address, "suppressed address", EmailAddress::parse)?,
        code: r.code,
        error: r.error,
        tags: r
            .tags
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default(),
        created_at: Timestamp::from_micros(r.created_at),
    })
}

/// Adds or replaces entries (a repeated address keeps its newest values).
pub async fn put_many(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    entries: &[Suppression],
) -> Result<(), StoreError> {
    for chunk in crate::shaped(entries, 128) {
        suppression::Entity::insert_many(chunk.iter().map(|e| suppression::ActiveModel {
            tenant_id: Set(tenant.to_string()),
            kind: Set(e.kind.as_str().to_owned()),
            address_key: Set(e.address.as_str().to_lowercase()),
            address: Set(e.address.to_string()),
            code: Set(e.code.clone()),
            error: Set(e.error.clone()),
            tags: Set(
                (!e.tags.is_empty()).then(|| serde_json::to_string(&e.tags).unwrap_or_default()),
            ),
            created_at: Set(e.created_at.as_micros()),
        }))
        .on_conflict(
            OnConflict::columns([
                suppression::Column::TenantId,
                suppression::Column::Kind,
                suppression::Column::AddressKey,
            ])
            .update_columns([
                suppression::Column::Address,
                suppression::Column::Code,
                suppression::Column::Error,
                suppression::Column::Tags,
                suppression::Column::CreatedAt,
            ])
            .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    }
    Ok(())
}

/// A page of one list in address order: after `after` (ascending) or
/// before it (descending, for a previous page), at most `limit`.
pub async fn page(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    kind: SuppressionKind,
    after: Option<&str>,
    ascending: bool,
    limit: u64,
) -> Result<Vec<Suppression>, StoreError> {
    let mut q = suppression::Entity::find()
        .filter(suppression::Column::TenantId.eq(tenant.to_string()))
        .filter(suppression::Column::Kind.eq(kind.as_str()));
    if let Some(a) = after {
        let a = a.to_lowercase();
        q = q.filter(if ascending {
            suppression::Column::AddressKey.gt(a)
        } else {
            suppression::Column::AddressKey.lt(a)
        });
    }
    let order = if ascending { Order::Asc } else { Order::Desc };
    q.order_by(suppression::Column::AddressKey, order)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(to_suppression)
        .collect()
}

/// One address on one list.
pub async fn get(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    kind: SuppressionKind,
    address: &str,
) -> Result<Option<Suppression>, StoreError> {
    suppression::Entity::find()
        .filter(suppression::Column::TenantId.eq(tenant.to_string()))
        .filter(suppression::Column::Kind.eq(kind.as_str()))
        .filter(suppression::Column::AddressKey.eq(address.to_lowercase()))
        .one(db)
        .await?
        .map(to_suppression)
        .transpose()
}

/// Removes one address from a list, or (`address` `None`) the whole list;
/// returns how many entries went.
pub async fn delete(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    kind: SuppressionKind,
    address: Option<&str>,
) -> Result<u64, StoreError> {
    let mut q = suppression::Entity::delete_many()
        .filter(suppression::Column::TenantId.eq(tenant.to_string()))
        .filter(suppression::Column::Kind.eq(kind.as_str()));
    if let Some(a) = address {
        q = q.filter(suppression::Column::AddressKey.eq(a.to_lowercase()));
    }
    Ok(q.exec(db).await?.rows_affected)
}
