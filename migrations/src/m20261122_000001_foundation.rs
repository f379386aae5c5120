//! Tenants, users, sessions, API keys, the audit trail and sealed secrets.

use sea_orm_migration::prelude::*;

use crate::columns::{id, micros, tenant_fk, text};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenant {
    Table,
    Id,
    Slug,
    Name,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum TenantDomain {
    Table,
    TenantId,
    Domain,
    CreatedAt,
}

#[derive(DeriveIden)]
enum TenantUser {
    Table,
    Id,
    TenantId,
    Email,
    EmailKey,
    DisplayName,
    Role,
    PasswordHash,
    MustChangePassword,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Session {
    Table,
    Id,
    TenantId,
    UserId,
    TokenHash,
    CreatedAt,
    ExpiresAt,
    LastSeenAt,
}

#[derive(DeriveIden)]
enum ApiKey {
    Table,
    Id,
    TenantId,
    Name,
    Role,
    TokenHash,
    DisplayPrefix,
    CreatedBy,
    CreatedAt,
    LastUsedAt,
}

#[derive(DeriveIden)]
enum AuditEntry {
    Table,
    Id,
    TenantId,
    Ts,
    ActorKind,
    ActorId,
    ActorLabel,
    Action,
    Entity,
    EntityId,
    Fields,
}

#[derive(DeriveIden)]
enum SealedSecret {
    Table,
    TenantId,
    OwnerTable,
    OwnerId,
    Field,
    KeyId,
    Nonce,
    Ciphertext,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Tenant::Table)
                .if_not_exists()
                .col(id(Tenant::Id).primary_key())
                .col(text(Tenant::Slug).unique_key())
                .col(text(Tenant::Name))
                .col(micros(Tenant::CreatedAt))
                .col(micros(Tenant::UpdatedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(TenantDomain::Table)
                .if_not_exists()
                .col(id(TenantDomain::TenantId))
                .col(text(TenantDomain::Domain))
                .col(micros(TenantDomain::CreatedAt))
                .primary_key(
                    Index::create()
                        .col(TenantDomain::TenantId)
                        .col(TenantDomain::Domain),
                )
                .foreign_key(&mut tenant_fk(TenantDomain::Table, TenantDomain::TenantId))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(TenantUser::Table)
                .if_not_exists()
                .col(id(TenantUser::Id).primary_key())
                .col(id(TenantUser::TenantId))
                .col(text(TenantUser::Email))
                .col(text(TenantUser::EmailKey))
                .col(ColumnDef::new(TenantUser::DisplayName).string().null())
                .col(text(TenantUser::Role))
                .col(ColumnDef::new(TenantUser::PasswordHash).string().null())
                .col(
                    ColumnDef::new(TenantUser::MustChangePassword)
                        .boolean()
                        .not_null(),
                )
                .col(micros(TenantUser::CreatedAt))
                .col(micros(TenantUser::UpdatedAt))
                .foreign_key(&mut tenant_fk(TenantUser::Table, TenantUser::TenantId))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_tenant_user_email")
                .table(TenantUser::Table)
                .col(TenantUser::TenantId)
                .col(TenantUser::EmailKey)
                .unique()
                .if_not_exists()
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Session::Table)
                .if_not_exists()
                .col(id(Session::Id).primary_key())
                .col(id(Session::TenantId))
                .col(id(Session::UserId))
                .col(text(Session::TokenHash).unique_key())
                .col(micros(Session::CreatedAt))
                .col(micros(Session::ExpiresAt))
                .col(micros(Session::LastSeenAt))
                .foreign_key(&mut tenant_fk(Session::Table, Session::TenantId))
                .foreign_key(
                    ForeignKey::create()
                        .from(Session::Table, Session::UserId)
                        .to(TenantUser::Table, TenantUser::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(ApiKey::Table)
                .if_not_exists()
                .col(id(ApiKey::Id).primary_key())
                .col(id(ApiKey::TenantId))
                .col(text(ApiKey::Name))
                .col(text(ApiKey::Role))
                .col(text(ApiKey::TokenHash).unique_key())
                .col(text(ApiKey::DisplayPrefix))
                .col(text(ApiKey::CreatedBy))
                .col(micros(ApiKey::CreatedAt))
                .col(ColumnDef::new(ApiKey::LastUsedAt).big_integer().null())
                .foreign_key(&mut tenant_fk(ApiKey::Table, ApiKey::TenantId))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_api_key_tenant")
                .table(ApiKey::Table)
                .col(ApiKey::TenantId)
                .col(ApiKey::Id)
                .if_not_exists()
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(AuditEntry::Table)
                .if_not_exists()
                .col(id(AuditEntry::Id).primary_key())
                .col(id(AuditEntry::TenantId))
                .col(micros(AuditEntry::Ts))
                .col(text(AuditEntry::ActorKind))
                .col(text(AuditEntry::ActorId))
                .col(text(AuditEntry::ActorLabel))
                .col(text(AuditEntry::Action))
                .col(text(AuditEntry::Entity))
                .col(text(AuditEntry::EntityId))
                .col(ColumnDef::new(AuditEntry::Fields).text().not_null())
                .foreign_key(&mut tenant_fk(AuditEntry::Table, AuditEntry::TenantId))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_audit_entry_tenant_ts")
                .table(AuditEntry::Table)
                .col(AuditEntry::TenantId)
                .col(AuditEntry::Ts)
                .col(AuditEntry::Id)
                .if_not_exists()
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(SealedSecret::Table)
                .if_not_exists()
                .col(id(SealedSecret::TenantId))
                .col(text(SealedSecret::OwnerTable))
                .col(
                    ColumnDef::new(SealedSecret::OwnerId)
                        .string_len(64)
                        .not_null(),
                )
                .col(text(SealedSecret::Field))
                .col(text(SealedSecret::KeyId))
                .col(ColumnDef::new(SealedSecret::Nonce).blob().not_null())
                .col(ColumnDef::new(SealedSecret::Ciphertext).blob().not_null())
                .col(micros(SealedSecret::UpdatedAt))
                .primary_key(
                    Index::create()
                        .col(SealedSecret::TenantId)
                        .col(SealedSecret::OwnerTable)
                        .col(SealedSecret::OwnerId)
                        .col(SealedSecret::Field),
                )
                .foreign_key(&mut tenant_fk(SealedSecret::Table, SealedSecret::TenantId))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_sealed_secret_key")
                .table(SealedSecret::Table)
                .col(SealedSecret::KeyId)
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            SealedSecret::Table.into_iden(),
            AuditEntry::Table.into_iden(),
            ApiKey::Table.into_iden(),
            Session::Table.into_iden(),
            TenantUser::Table.into_iden(),
            TenantDomain::Table.into_iden(),
            Tenant::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
