//! A message's RFC 5322 bytes move to their own table. Delivery rewrites a
//! message's row (its status) once per attempt; with the body inline every
//! such update rewrote the body too (5 KB of WAL per message on SQLite), and
//! every queue listing read it.

use sea_orm_migration::prelude::*;

#[derive(DeriveIden)]
enum Message {
    Table,
    Id,
    Mime,
}

#[derive(DeriveIden)]
enum MessageBody {
    Table,
    MessageId,
    Mime,
}

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if m.has_table("message_body").await? {
            return Ok(());
        }
        m.create_table(
            Table::create()
                .table(MessageBody::Table)
                .col(
                    ColumnDef::new(MessageBody::MessageId)
                        .string_len(36)
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(MessageBody::Mime).blob().not_null())
                .foreign_key(
                    ForeignKey::create()
                        .from(MessageBody::Table, MessageBody::MessageId)
                        .to(Message::Table, Message::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        let db = m.get_connection();
        db.execute_unprepared(
            "INSERT INTO message_body (message_id, mime) SELECT id, mime FROM message",
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Message::Table)
                .drop_column(Message::Mime)
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Message::Table)
                .add_column(ColumnDef::new(Message::Mime).blob().null())
                .to_owned(),
        )
        .await?;
        m.get_connection()
            .execute_unprepared(
                "UPDATE message SET mime = (SELECT b.mime FROM message_body b WHERE b.message_id = message.id)",
            )
            .await?;
        m.drop_table(Table::drop().table(MessageBody::Table).to_owned())
            .await?;
        // Every row has its body back. PostgreSQL can make the column NOT
        // NULL again; SQLite can only add a nullable column at the end of
        // the table, which the code before this migration, writing every
        // message's body, never sees NULL in.
        if m.get_database_backend() == sea_orm_migration::sea_orm::DbBackend::Postgres {
            m.get_connection()
                .execute_unprepared("ALTER TABLE message ALTER COLUMN mime SET NOT NULL")
                .await?;
        }
        Ok(())
    }
}
