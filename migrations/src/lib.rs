//! Herald's schema. The same migrations run on SQLite and PostgreSQL, at
//! start-up and with `herald migrate`; running them again changes nothing.
//!
//! Conventions: ids are UUIDv7 text; times are BIGINT microseconds since the
//! Unix epoch (portable, and exact for keyset paging); every tenant-owned
//! table carries `tenant_id`.

pub use sea_orm_migration::prelude::*;

mod columns;
mod m20261122_000001_foundation;
mod m20261122_000002_relay;
mod m20261122_000003_oauth;
mod m20261122_000004_event;
mod m20261122_000005_queue;
mod m20261122_000006_delivery;
mod m20261123_000007_message_body;
mod m20261123_000008_event_log;
mod m20261123_000009_body_compression;
mod m20261124_000010_lean_queue_indexes;
mod m20261124_000011_event_message_index;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_foundation::Migration),
            Box::new(m20261122_000002_relay::Migration),
            Box::new(m20261122_000003_oauth::Migration),
            Box::new(m20261122_000004_event::Migration),
            Box::new(m20261122_000005_queue::Migration),
            Box::new(m20261122_000006_delivery::Migration),
            Box::new(m20261123_000007_message_body::Migration),
            Box::new(m20261123_000008_event_log::Migration),
            Box::new(m20261123_000009_body_compression::Migration),
            Box::new(m20261124_000010_lean_queue_indexes::Migration),
            Box::new(m20261124_000011_event_message_index::Migration),
        ]
    }
}
