//! Message bodies may be stored compressed: `message_body.compression` says
//! how (NULL: the bytes as accepted, which every existing row is).

use sea_orm_migration::prelude::*;

#[derive(DeriveIden)]
enum MessageBody {
    Table,
    Compression,
}

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if m.has_column("message_body", "compression").await? {
            return Ok(());
        }
        m.alter_table(
            Table::alter()
                .table(MessageBody::Table)
                .add_column(
                    ColumnDef::new(MessageBody::Compression)
                        .string_len(16)
                        .null(),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // Compressed rows cannot be read without the column: refuse
        // rather than leave bodies nobody can decode.
        let compressed = m
            .get_connection()
            .query_one_raw(sea_orm_migration::sea_orm::Statement::from_string(
                m.get_database_backend(),
                "SELECT 1 AS x FROM message_body WHERE compression IS NOT NULL LIMIT 1",
            ))
            .await?;
        if compressed.is_some() {
            return Err(DbErr::Migration(
                "message bodies are stored compressed; deliver or purge them before going back"
                    .into(),
            ));
        }
        m.alter_table(
            Table::alter()
                .table(MessageBody::Table)
                .drop_column(MessageBody::Compression)
                .to_owned(),
        )
        .await
    }
}
