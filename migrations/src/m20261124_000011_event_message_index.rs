//! A message's events through an index of their own.
//!
//! The queue view (`GET /api/v1/messages/{id}`) and the event log's
//! `message-id` filter read one message's events in time order. Without
//! this index the only way in was the tenant's whole `(tenant_id, ts, id)`
//! range, every event the tenant ever had. Keyed `(message_id, ts, id)` so
//! that the rows come out in the order the readers want; events that
//! belong to no message are left out.

use sea_orm_migration::prelude::*;

use crate::columns::{drop_index, index};

#[derive(DeriveIden)]
enum Event {
    Table,
    MessageId,
}

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_index(
            index(
                "ix_event_message",
                Event::Table,
                &["message_id", "ts", "id"],
                false,
            )
            .and_where(Expr::col(Event::MessageId).is_not_null())
            .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(drop_index("ix_event_message", Event::Table))
            .await
    }
}
