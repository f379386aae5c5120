//! Relay profiles, the tenant's routing of purposes to profiles, and sender
//! identities (with the users a shared identity serves).
//!
//! A profile's settings are one JSON document (`settings`), parsed back into
//! the domain's `ProfileSettings` on every read: they are read and written
//! whole, never queried field by field. The two settings other rows point at
//! (the Notify User and the bounce mailbox's identity) are copied into
//! columns so "who refers to this user / identity" is an indexed query.

use sea_orm_migration::prelude::*;

use crate::columns::{id, index, micros, tenant_fk, text};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RelayProfile {
    Table,
    Id,
    TenantId,
    Name,
    NameKey,
    Kind,
    Settings,
    NotifyUserId,
    BounceIdentityId,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum RelayRoute {
    Table,
    TenantId,
    /// Lowercased purpose; "" is the tenant's default profile.
    PurposeKey,
    Purpose,
    ProfileId,
}

#[derive(DeriveIden)]
enum SenderIdentity {
    Table,
    Id,
    TenantId,
    Address,
    AddressKey,
    DisplayName,
    OwnerUserId,
    ProfileId,
    Preferred,
    Status,
    AuthMethod,
    Username,
    OauthProvider,
    GrantedMailbox,
    AccessExpiresAt,
    TokenGeneration,
    LastError,
    LastCheckedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum IdentityUser {
    Table,
    TenantId,
    IdentityId,
    UserId,
}

#[derive(DeriveIden)]
enum TenantUser {
    Table,
    Id,
}

fn nullable_id(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).string_len(36).null().to_owned()
}

fn to_profile(from: (impl IntoIden + 'static, impl IntoIden)) -> ForeignKeyCreateStatement {
    // No cascade: a profile still in use must not vanish under its users.
    ForeignKey::create()
        .from(from.0, from.1)
        .to(RelayProfile::Table, RelayProfile::Id)
        .on_delete(ForeignKeyAction::Restrict)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(RelayProfile::Table)
                .if_not_exists()
                .col(id(RelayProfile::Id).primary_key())
                .col(id(RelayProfile::TenantId))
                .col(text(RelayProfile::Name))
                .col(text(RelayProfile::NameKey))
                .col(text(RelayProfile::Kind))
                .col(ColumnDef::new(RelayProfile::Settings).text().not_null())
                .col(nullable_id(RelayProfile::NotifyUserId))
                .col(nullable_id(RelayProfile::BounceIdentityId))
                .col(micros(RelayProfile::CreatedAt))
                .col(micros(RelayProfile::UpdatedAt))
                .foreign_key(&mut tenant_fk(RelayProfile::Table, RelayProfile::TenantId))
                .to_owned(),
        )
        .await?;
        m.create_index(index(
            "ux_relay_profile_name",
            RelayProfile::Table,
            &["tenant_id", "name_key"],
            true,
        ))
        .await?;
        m.create_index(index(
            "ix_relay_profile_notify_user",
            RelayProfile::Table,
            &["tenant_id", "notify_user_id"],
            false,
        ))
        .await?;

        m.create_table(
            Table::create()
                .table(RelayRoute::Table)
                .if_not_exists()
                .col(id(RelayRoute::TenantId))
                .col(text(RelayRoute::PurposeKey))
                .col(text(RelayRoute::Purpose))
                .col(id(RelayRoute::ProfileId))
                .primary_key(
                    Index::create()
                        .col(RelayRoute::TenantId)
                        .col(RelayRoute::PurposeKey),
                )
                .foreign_key(&mut tenant_fk(RelayRoute::Table, RelayRoute::TenantId))
                .foreign_key(&mut to_profile((RelayRoute::Table, RelayRoute::ProfileId)))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(SenderIdentity::Table)
                .if_not_exists()
                .col(id(SenderIdentity::Id).primary_key())
                .col(id(SenderIdentity::TenantId))
                .col(text(SenderIdentity::Address))
                .col(text(SenderIdentity::AddressKey))
                .col(ColumnDef::new(SenderIdentity::DisplayName).string().null())
                .col(nullable_id(SenderIdentity::OwnerUserId))
                .col(id(SenderIdentity::ProfileId))
                .col(
                    ColumnDef::new(SenderIdentity::Preferred)
                        .boolean()
                        .not_null(),
                )
                .col(text(SenderIdentity::Status))
                .col(text(SenderIdentity::AuthMethod))
                .col(ColumnDef::new(SenderIdentity::Username).string().null())
                .col(
                    ColumnDef::new(SenderIdentity::OauthProvider)
                        .string()
                        .null(),
                )
                .col(
                    ColumnDef::new(SenderIdentity::GrantedMailbox)
                        .string()
                        .null(),
                )
                .col(
                    ColumnDef::new(SenderIdentity::AccessExpiresAt)
                        .big_integer()
                        .null(),
                )
                .col(
                    ColumnDef::new(SenderIdentity::TokenGeneration)
                        .big_integer()
                        .not_null()
                        .default(0),
                )
                .col(ColumnDef::new(SenderIdentity::LastError).text().null())
                .col(
                    ColumnDef::new(SenderIdentity::LastCheckedAt)
                        .big_integer()
                        .null(),
                )
                .col(micros(SenderIdentity::CreatedAt))
                .col(micros(SenderIdentity::UpdatedAt))
                .foreign_key(&mut tenant_fk(
                    SenderIdentity::Table,
                    SenderIdentity::TenantId,
                ))
                .foreign_key(
                    ForeignKey::create()
                        .from(SenderIdentity::Table, SenderIdentity::OwnerUserId)
                        .to(TenantUser::Table, TenantUser::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(&mut to_profile((
                    SenderIdentity::Table,
                    SenderIdentity::ProfileId,
                )))
                .to_owned(),
        )
        .await?;
        m.create_index(index(
            "ux_sender_identity_address",
            SenderIdentity::Table,
            &["tenant_id", "address_key"],
            true,
        ))
        .await?;
        m.create_index(index(
            "ix_sender_identity_profile",
            SenderIdentity::Table,
            &["tenant_id", "profile_id"],
            false,
        ))
        .await?;
        // One preferred identity per user: a partial unique index, which
        // sea-query cannot express portably, in SQL both databases accept.
        m.get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX IF NOT EXISTS ux_sender_identity_preferred \
                 ON sender_identity (tenant_id, owner_user_id) WHERE preferred",
            )
            .await?;

        m.create_table(
            Table::create()
                .table(IdentityUser::Table)
                .if_not_exists()
                .col(id(IdentityUser::TenantId))
                .col(id(IdentityUser::IdentityId))
                .col(id(IdentityUser::UserId))
                .primary_key(
                    Index::create()
                        .col(IdentityUser::IdentityId)
                        .col(IdentityUser::UserId),
                )
                .foreign_key(&mut tenant_fk(IdentityUser::Table, IdentityUser::TenantId))
                .foreign_key(
                    ForeignKey::create()
                        .from(IdentityUser::Table, IdentityUser::IdentityId)
                        .to(SenderIdentity::Table, SenderIdentity::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(IdentityUser::Table, IdentityUser::UserId)
                        .to(TenantUser::Table, TenantUser::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(index(
            "ix_identity_user_user",
            IdentityUser::Table,
            &["user_id"],
            false,
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            IdentityUser::Table.into_iden(),
            SenderIdentity::Table.into_iden(),
            RelayRoute::Table.into_iden(),
            RelayProfile::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
