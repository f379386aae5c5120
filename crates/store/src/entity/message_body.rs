use sea_orm::entity::prelude::*;

/// A message's RFC 5322 bytes, apart from its often-updated row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "message_body")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub message_id: String,
    /// The stored bytes: raw, or compressed as `compression` says.
    pub mime: Vec<u8>,
    /// NULL (raw) or `lz4`; see `crate::body`.
    pub compression: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    /// The message's bytes, decompressed if they were stored so.
    pub fn into_mime(self) -> Result<Vec<u8>, crate::StoreError> {
        crate::body::unpack(self.mime, self.compression.as_deref())
    }
}
