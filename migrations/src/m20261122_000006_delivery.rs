//! Delivery: a relay profile whose own credentials were refused is marked
//! failing (its mail is held until the profile is fixed), and messages are
//! found by identity to hold and release an identity's mail.

use sea_orm_migration::prelude::*;

use crate::columns::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RelayProfile {
    Table,
    Status,
    LastError,
}

#[derive(DeriveIden)]
enum Message {
    Table,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        m.alter_table(
            Table::alter()
                .table(RelayProfile::Table)
                .add_column_if_not_exists(
                    ColumnDef::new(RelayProfile::Status)
                        .string()
                        .not_null()
                        .default("active"),
                )
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(RelayProfile::Table)
                .add_column_if_not_exists(ColumnDef::new(RelayProfile::LastError).string().null())
                .to_owned(),
        )
        .await?;
        m.create_index(index(
            "ix_message_identity",
            Message::Table,
            &["identity_id", "status"],
            false,
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name("ix_message_identity")
                .table(Message::Table)
                .to_owned(),
        )
        .await?;
        for col in [RelayProfile::LastError, RelayProfile::Status] {
            m.alter_table(
                Table::alter()
                    .table(RelayProfile::Table)
                    .drop_column(col)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
