//! Fewer index entries for every accepted message.
//!
//! - `ix_recipient_tenant_address` goes: no query reads recipients by
//!   address (suppressions are looked up in their own table), and its
//!   entries land at random places, so it dirtied a page of its own for
//!   nearly every recipient: about a sixth of the WAL that acceptance wrote.
//! - `ix_message_identity` keeps only messages sent as an identity. It is
//!   read only as `identity_id = ?`, which never matches NULL, and the
//!   messages of relay profiles (most of them) no longer add a
//!   `(NULL, status)` entry when they are stored and again at every status
//!   change.

use sea_orm_migration::prelude::*;

use crate::columns::{drop_index, index};

#[derive(DeriveIden)]
enum Message {
    Table,
    IdentityId,
}

#[derive(DeriveIden)]
enum Recipient {
    Table,
}

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(drop_index("ix_recipient_tenant_address", Recipient::Table))
            .await?;
        m.drop_index(drop_index("ix_message_identity", Message::Table))
            .await?;
        m.create_index(
            index(
                "ix_message_identity",
                Message::Table,
                &["identity_id", "status"],
                false,
            )
            .and_where(Expr::col(Message::IdentityId).is_not_null())
            .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(drop_index("ix_message_identity", Message::Table))
            .await?;
        m.create_index(index(
            "ix_message_identity",
            Message::Table,
            &["identity_id", "status"],
            false,
        ))
        .await?;
        m.create_index(index(
            "ix_recipient_tenant_address",
            Recipient::Table,
            &["tenant_id", "address_key"],
            false,
        ))
        .await
    }
}
