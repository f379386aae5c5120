//! Suppression lists: addresses a tenant's mail must no longer go to.

use herald_domain::{EmailAddress, TenantId, Timestamp};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use crate::StoreError;
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

    fn parse(s: &str) -> Option<Self> {
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
    suppression::Entity::insert(suppression::ActiveModel {
        tenant_id: Set(tenant.to_string()),
        kind: Set(kind.as_str().to_owned()),
        address_key: Set(address.as_str().to_lowercase()),
        address: Set(address.to_string()),
        code: Set(code.map(str::to_owned)),
        error: Set(error.map(str::to_owned)),
        tags: Set(None),
        created_at: Set(Timestamp::now().as_micros()),
    })
    .on_conflict(
        OnConflict::columns([
            suppression::Column::TenantId,
            suppression::Column::Kind,
            suppression::Column::AddressKey,
        ])
        .update_columns([
            suppression::Column::Code,
            suppression::Column::Error,
            suppression::Column::CreatedAt,
        ])
        .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// For each of `addresses` that is suppressed, the list it is on (bounce
/// first, then complaint, then unsubscribe).
pub async fn lookup(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    addresses: &[&EmailAddress],
) -> Result<Vec<(String, SuppressionKind)>, StoreError> {
    if addresses.is_empty() {
        return Ok(Vec::new());
    }
    let mut keys: Vec<String> = addresses
        .iter()
        .map(|a| a.as_str().to_lowercase())
        .collect();
    keys.sort_unstable();
    keys.dedup();
    // A group commit asks for many messages' recipients at once: a few
    // hundred keys per statement stay far below any bind-parameter limit.
    let mut found: Vec<(String, SuppressionKind)> = Vec::new();
    for chunk in keys.chunks(500) {
        let rows = suppression::Entity::find()
            .filter(suppression::Column::TenantId.eq(tenant.to_string()))
            .filter(suppression::Column::AddressKey.is_in(chunk.iter().cloned()))
            .all(db)
            .await?;
        found.extend(
            rows.into_iter()
                .filter_map(|r| SuppressionKind::parse(&r.kind).map(|k| (r.address_key, k))),
        );
    }
    let rank = |k: SuppressionKind| match k {
        SuppressionKind::Bounce => 0,
        SuppressionKind::Complaint => 1,
        SuppressionKind::Unsubscribe => 2,
    };
    found.sort_by_key(|(a, k)| (a.clone(), rank(*k)));
    found.dedup_by(|a, b| a.0 == b.0);
    Ok(found)
}
