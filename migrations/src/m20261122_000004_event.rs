//! The per-tenant event log. Identity and profile events use it now; the send
//! pipeline adds message events (recipient, message id, severity, reason,
//! delivery status in `detail`). Paged per tenant by `(ts, id)`.

use sea_orm_migration::prelude::*;

use crate::columns::{id, micros, tenant_fk, text};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Event {
    Table,
    Id,
    TenantId,
    Ts,
    Kind,
    Severity,
    Reason,
    Recipient,
    RecipientDomain,
    MessageId,
    IdentityId,
    ProfileId,
    Description,
    Detail,
}

fn nullable(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).string().null().to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Event::Table)
                .if_not_exists()
                .col(id(Event::Id).primary_key())
                .col(id(Event::TenantId))
                .col(micros(Event::Ts))
                .col(text(Event::Kind))
                .col(nullable(Event::Severity))
                .col(nullable(Event::Reason))
                .col(nullable(Event::Recipient))
                .col(nullable(Event::RecipientDomain))
                .col(nullable(Event::MessageId))
                .col(nullable(Event::IdentityId))
                .col(nullable(Event::ProfileId))
                .col(ColumnDef::new(Event::Description).text().null())
                .col(ColumnDef::new(Event::Detail).text().null())
                .foreign_key(&mut tenant_fk(Event::Table, Event::TenantId))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_event_tenant_ts")
                .table(Event::Table)
                .col(Event::TenantId)
                .col(Event::Ts)
                .col(Event::Id)
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Event::Table).if_exists().to_owned())
            .await
    }
}
