//! The durable queue: messages (with their MIME bytes), one row per
//! recipient carrying its own status, attempts, next attempt and lease;
//! idempotency keys for repeated submissions; and suppression lists.
//!
//! Workers claim due recipients through `ix_recipient_due` (status,
//! next_attempt_at). A message's MIME is read only when it is delivered.

use sea_orm_migration::prelude::*;

use crate::columns::{id, index, micros, tenant_fk, text};

#[derive(DeriveMigrationName)]
pub struct Migration;

// The columns are named as the schema names them.
#[allow(clippy::enum_variant_names)]
#[derive(DeriveIden)]
enum Message {
    Table,
    Id,
    TenantId,
    ProfileId,
    IdentityId,
    Purpose,
    MailFrom,
    MessageIdHeader,
    Subject,
    Headers,
    Tags,
    UserVariables,
    Size,
    Mime,
    TestMode,
    DeliverAfter,
    Status,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Recipient {
    Table,
    MessageId,
    Idx,
    TenantId,
    Address,
    AddressKey,
    Status,
    Attempts,
    NextAttemptAt,
    LeaseOwner,
    LeaseExpiresAt,
    LastReply,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum IdempotencyKey {
    Table,
    TenantId,
    Key,
    RequestHash,
    StatusCode,
    Response,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Suppression {
    Table,
    TenantId,
    Kind,
    AddressKey,
    Address,
    Code,
    Error,
    Tags,
    CreatedAt,
}

#[derive(DeriveIden)]
enum RelayProfile {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Message::Table)
                .if_not_exists()
                .col(id(Message::Id).primary_key())
                .col(id(Message::TenantId))
                .col(ColumnDef::new(Message::ProfileId).string_len(36).null())
                .col(ColumnDef::new(Message::IdentityId).string_len(36).null())
                .col(ColumnDef::new(Message::Purpose).string().null())
                .col(text(Message::MailFrom))
                .col(text(Message::MessageIdHeader))
                .col(ColumnDef::new(Message::Subject).text().not_null())
                .col(ColumnDef::new(Message::Headers).text().not_null())
                .col(ColumnDef::new(Message::Tags).text().not_null())
                .col(ColumnDef::new(Message::UserVariables).text().not_null())
                .col(ColumnDef::new(Message::Size).big_integer().not_null())
                .col(ColumnDef::new(Message::Mime).blob().not_null())
                .col(ColumnDef::new(Message::TestMode).boolean().not_null())
                .col(micros(Message::DeliverAfter))
                .col(text(Message::Status))
                .col(micros(Message::CreatedAt))
                .col(micros(Message::UpdatedAt))
                .foreign_key(&mut tenant_fk(Message::Table, Message::TenantId))
                .foreign_key(
                    ForeignKey::create()
                        .from(Message::Table, Message::ProfileId)
                        .to(RelayProfile::Table, RelayProfile::Id)
                        // History outlives a deleted profile; unfinished
                        // messages must be moved first (checked by Herald).
                        .on_delete(ForeignKeyAction::SetNull),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(index(
            "ix_message_tenant_created",
            Message::Table,
            &["tenant_id", "created_at", "id"],
            false,
        ))
        .await?;
        m.create_index(index(
            "ix_message_tenant_status",
            Message::Table,
            &["tenant_id", "status", "id"],
            false,
        ))
        .await?;
        m.create_index(index(
            "ix_message_profile",
            Message::Table,
            &["profile_id", "status"],
            false,
        ))
        .await?;

        m.create_table(
            Table::create()
                .table(Recipient::Table)
                .if_not_exists()
                .col(id(Recipient::MessageId))
                .col(ColumnDef::new(Recipient::Idx).integer().not_null())
                .col(id(Recipient::TenantId))
                .col(text(Recipient::Address))
                .col(text(Recipient::AddressKey))
                .col(text(Recipient::Status))
                .col(
                    ColumnDef::new(Recipient::Attempts)
                        .integer()
                        .not_null()
                        .default(0),
                )
                .col(micros(Recipient::NextAttemptAt))
                .col(ColumnDef::new(Recipient::LeaseOwner).string().null())
                .col(
                    ColumnDef::new(Recipient::LeaseExpiresAt)
                        .big_integer()
                        .null(),
                )
                .col(ColumnDef::new(Recipient::LastReply).text().null())
                .col(micros(Recipient::UpdatedAt))
                .primary_key(
                    Index::create()
                        .col(Recipient::MessageId)
                        .col(Recipient::Idx),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(Recipient::Table, Recipient::MessageId)
                        .to(Message::Table, Message::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(index(
            "ix_recipient_due",
            Recipient::Table,
            &["status", "next_attempt_at"],
            false,
        ))
        .await?;
        m.create_index(index(
            "ix_recipient_tenant_address",
            Recipient::Table,
            &["tenant_id", "address_key"],
            false,
        ))
        .await?;

        m.create_table(
            Table::create()
                .table(IdempotencyKey::Table)
                .if_not_exists()
                .col(id(IdempotencyKey::TenantId))
                .col(text(IdempotencyKey::Key))
                .col(text(IdempotencyKey::RequestHash))
                .col(
                    ColumnDef::new(IdempotencyKey::StatusCode)
                        .integer()
                        .not_null(),
                )
                .col(ColumnDef::new(IdempotencyKey::Response).text().not_null())
                .col(micros(IdempotencyKey::CreatedAt))
                .primary_key(
                    Index::create()
                        .col(IdempotencyKey::TenantId)
                        .col(IdempotencyKey::Key),
                )
                .foreign_key(&mut tenant_fk(
                    IdempotencyKey::Table,
                    IdempotencyKey::TenantId,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(index(
            "ix_idempotency_created",
            IdempotencyKey::Table,
            &["created_at"],
            false,
        ))
        .await?;

        m.create_table(
            Table::create()
                .table(Suppression::Table)
                .if_not_exists()
                .col(id(Suppression::TenantId))
                .col(text(Suppression::Kind))
                .col(text(Suppression::AddressKey))
                .col(text(Suppression::Address))
                .col(ColumnDef::new(Suppression::Code).string().null())
                .col(ColumnDef::new(Suppression::Error).text().null())
                .col(ColumnDef::new(Suppression::Tags).text().null())
                .col(micros(Suppression::CreatedAt))
                .primary_key(
                    Index::create()
                        .col(Suppression::TenantId)
                        .col(Suppression::Kind)
                        .col(Suppression::AddressKey),
                )
                .foreign_key(&mut tenant_fk(Suppression::Table, Suppression::TenantId))
                .to_owned(),
        )
        .await?;
        m.create_index(index(
            "ix_suppression_address",
            Suppression::Table,
            &["tenant_id", "address_key"],
            false,
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Suppression::Table.into_iden(),
            IdempotencyKey::Table.into_iden(),
            Recipient::Table.into_iden(),
            Message::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
