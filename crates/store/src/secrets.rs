//! Sealed secrets. Every secret of every table is stored here under the
//! (tenant, table, row, field) it belongs to, sealed with AES-256-GCM whose
//! associated data is that same address: copied to another row or tenant, it
//! does not open.

use herald_crypto::{KeyRing, SealContext, Sealed, Secret};
use herald_domain::{TenantId, Timestamp};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QuerySelect,
};

use crate::StoreError;
use crate::convert::parse;
use crate::entity::sealed_secret;

/// Where a secret lives.
#[derive(Debug, Clone, Copy)]
pub struct Slot<'a> {
    pub tenant: TenantId,
    pub table: &'a str,
    pub row: &'a str,
    pub field: &'a str,
}

impl<'a> Slot<'a> {
    fn context(&self) -> SealContext<'a> {
        SealContext {
            tenant: self.tenant,
            table: self.table,
            row: self.row,
            column: self.field,
        }
    }
}

fn by_slot(slot: &Slot<'_>) -> sea_orm::Condition {
    sea_orm::Condition::all()
        .add(sealed_secret::Column::TenantId.eq(slot.tenant.to_string()))
        .add(sealed_secret::Column::OwnerTable.eq(slot.table))
        .add(sealed_secret::Column::OwnerId.eq(slot.row))
        .add(sealed_secret::Column::Field.eq(slot.field))
}

/// Seals `plaintext` under the newest key and stores it, replacing any value.
pub async fn put(
    db: &impl ConnectionTrait,
    ring: &KeyRing,
    slot: Slot<'_>,
    plaintext: &[u8],
) -> Result<(), StoreError> {
    let sealed = ring.seal(plaintext, &slot.context());
    sealed_secret::Entity::insert(sealed_secret::ActiveModel {
        tenant_id: Set(slot.tenant.to_string()),
        owner_table: Set(slot.table.to_owned()),
        owner_id: Set(slot.row.to_owned()),
        field: Set(slot.field.to_owned()),
        key_id: Set(sealed.key_id),
        nonce: Set(sealed.nonce),
        ciphertext: Set(sealed.ciphertext),
        updated_at: Set(Timestamp::now().as_micros()),
    })
    .on_conflict(
        OnConflict::columns([
            sealed_secret::Column::TenantId,
            sealed_secret::Column::OwnerTable,
            sealed_secret::Column::OwnerId,
            sealed_secret::Column::Field,
        ])
        .update_columns([
            sealed_secret::Column::KeyId,
            sealed_secret::Column::Nonce,
            sealed_secret::Column::Ciphertext,
            sealed_secret::Column::UpdatedAt,
        ])
        .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// Opens the secret at `slot`, if one is set.
pub async fn get(
    db: &impl ConnectionTrait,
    ring: &KeyRing,
    slot: Slot<'_>,
) -> Result<Option<Secret<Vec<u8>>>, StoreError> {
    let Some(row) = sealed_secret::Entity::find()
        .filter(by_slot(&slot))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let sealed = Sealed {
        key_id: row.key_id,
        nonce: row.nonce,
        ciphertext: row.ciphertext,
    };
    Ok(Some(ring.open(&sealed, &slot.context())?))
}

/// Opens a text secret (a password, token or key) at `slot`, if one is set.
pub async fn get_text(
    db: &impl ConnectionTrait,
    ring: &KeyRing,
    slot: Slot<'_>,
) -> Result<Option<herald_crypto::SecretString>, StoreError> {
    Ok(get(db, ring, slot).await?.map(|bytes| {
        herald_crypto::SecretString::new(String::from_utf8_lossy(bytes.expose()).into_owned())
    }))
}

/// Whether a secret is set (what an API shows instead of the value).
pub async fn is_set(db: &impl ConnectionTrait, slot: Slot<'_>) -> Result<bool, StoreError> {
    Ok(sealed_secret::Entity::find()
        .filter(by_slot(&slot))
        .count(db)
        .await?
        > 0)
}

pub async fn delete(db: &impl ConnectionTrait, slot: Slot<'_>) -> Result<(), StoreError> {
    sealed_secret::Entity::delete_many()
        .filter(by_slot(&slot))
        .exec(db)
        .await?;
    Ok(())
}

/// Deletes every secret of one row (when the row itself is deleted).
pub async fn delete_row(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    table: &str,
    row: &str,
) -> Result<(), StoreError> {
    sealed_secret::Entity::delete_many()
        .filter(sealed_secret::Column::TenantId.eq(tenant.to_string()))
        .filter(sealed_secret::Column::OwnerTable.eq(table))
        .filter(sealed_secret::Column::OwnerId.eq(row))
        .exec(db)
        .await?;
    Ok(())
}

/// The ids of every key that sealed something still stored.
pub async fn key_ids_in_use(db: &impl ConnectionTrait) -> Result<Vec<String>, StoreError> {
    Ok(sealed_secret::Entity::find()
        .select_only()
        .column(sealed_secret::Column::KeyId)
        .distinct()
        .into_tuple::<String>()
        .all(db)
        .await?)
}

/// Re-seals up to `limit` secrets that are not under the newest key and
/// returns how many it re-sealed. Run it in a transaction per batch until it
/// returns 0: an interrupted rotation resumes where it stopped.
pub async fn reseal_batch(
    db: &impl ConnectionTrait,
    ring: &KeyRing,
    limit: u64,
) -> Result<usize, StoreError> {
    let newest = ring.newest().as_str().to_owned();
    let rows = sealed_secret::Entity::find()
        .filter(sealed_secret::Column::KeyId.ne(newest.clone()))
        .limit(limit)
        .all(db)
        .await?;
    for row in &rows {
        let slot = Slot {
            tenant: parse(&row.tenant_id, "tenant id")?,
            table: &row.owner_table,
            row: &row.owner_id,
            field: &row.field,
        };
        let old = Sealed {
            key_id: row.key_id.clone(),
            nonce: row.nonce.clone(),
            ciphertext: row.ciphertext.clone(),
        };
        let plaintext = ring.open(&old, &slot.context())?;
        let new = ring.seal(plaintext.expose(), &slot.context());
        sealed_secret::Entity::update_many()
            .col_expr(sealed_secret::Column::KeyId, new.key_id.into())
            .col_expr(sealed_secret::Column::Nonce, new.nonce.into())
            .col_expr(sealed_secret::Column::Ciphertext, new.ciphertext.into())
            .col_expr(
                sealed_secret::Column::UpdatedAt,
                Timestamp::now().as_micros().into(),
            )
            .filter(by_slot(&slot))
            .filter(sealed_secret::Column::KeyId.eq(row.key_id.clone()))
            .exec(db)
            .await?;
    }
    Ok(rows.len())
}
