//! The event log becomes queryable as Mailgun's Events API: each message
//! event records its sender's domain (what `/v3/{domain}/events` is scoped
//! by), and each tenant chooses how many days of events it keeps.
//! Suppressions page by `(tenant_id, kind, address_key)`, their primary key.

use sea_orm_migration::prelude::*;

#[derive(DeriveIden)]
enum Event {
    Table,
    Domain,
}

#[derive(DeriveIden)]
enum Tenant {
    Table,
    EventRetentionDays,
}

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if !m.has_column("event", "domain").await? {
            m.alter_table(
                Table::alter()
                    .table(Event::Table)
                    .add_column(ColumnDef::new(Event::Domain).string().null())
                    .to_owned(),
            )
            .await?;
            // Events written before this migration: their message's sender.
            let at = match m.get_database_backend() {
                sea_orm_migration::sea_orm::DatabaseBackend::Postgres => "strpos(m.mail_from, '@')",
                _ => "instr(m.mail_from, '@')",
            };
            m.get_connection()
                .execute_unprepared(&format!(
                    "UPDATE event SET domain = (SELECT lower(substr(m.mail_from, {at} + 1)) \
                     FROM message m WHERE m.id = event.message_id) WHERE message_id IS NOT NULL"
                ))
                .await?;
        }
        if !m.has_column("tenant", "event_retention_days").await? {
            m.alter_table(
                Table::alter()
                    .table(Tenant::Table)
                    .add_column(
                        ColumnDef::new(Tenant::EventRetentionDays)
                            .integer()
                            .not_null()
                            .default(30),
                    )
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Event::Table)
                .drop_column(Event::Domain)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Tenant::Table)
                .drop_column(Tenant::EventRetentionDays)
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}
