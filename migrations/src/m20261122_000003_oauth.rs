//! OAuth apps per tenant and provider, consent states, and the scopes an
//! identity's grant holds.

use sea_orm_migration::prelude::*;

use crate::columns::{id, micros, tenant_fk, text};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum OauthApp {
    Table,
    TenantId,
    Provider,
    Settings,
    UpdatedAt,
}

/// A consent in flight: the hash of its random state, bound to the user who
/// started it and the identity it connects; single-use, short-lived. The
/// PKCE verifier is sealed in sealed_secret under the same row.
#[derive(DeriveIden)]
enum OauthState {
    Table,
    StateHash,
    TenantId,
    UserId,
    IdentityId,
    CreatedAt,
    ExpiresAt,
    UsedAt,
}

#[derive(DeriveIden)]
enum SenderIdentity {
    Table,
    Id,
    OauthScopes,
}

#[derive(DeriveIden)]
enum TenantUser {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(OauthApp::Table)
                .if_not_exists()
                .col(id(OauthApp::TenantId))
                .col(text(OauthApp::Provider))
                .col(ColumnDef::new(OauthApp::Settings).text().not_null())
                .col(micros(OauthApp::UpdatedAt))
                .primary_key(
                    Index::create()
                        .col(OauthApp::TenantId)
                        .col(OauthApp::Provider),
                )
                .foreign_key(&mut tenant_fk(OauthApp::Table, OauthApp::TenantId))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(OauthState::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(OauthState::StateHash)
                        .string_len(64)
                        .not_null()
                        .primary_key(),
                )
                .col(id(OauthState::TenantId))
                .col(id(OauthState::UserId))
                .col(id(OauthState::IdentityId))
                .col(micros(OauthState::CreatedAt))
                .col(micros(OauthState::ExpiresAt))
                .col(ColumnDef::new(OauthState::UsedAt).big_integer().null())
                .foreign_key(&mut tenant_fk(OauthState::Table, OauthState::TenantId))
                .foreign_key(
                    ForeignKey::create()
                        .from(OauthState::Table, OauthState::UserId)
                        .to(TenantUser::Table, TenantUser::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(OauthState::Table, OauthState::IdentityId)
                        .to(SenderIdentity::Table, SenderIdentity::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_oauth_state_expires")
                .table(OauthState::Table)
                .col(OauthState::ExpiresAt)
                .if_not_exists()
                .to_owned(),
        )
        .await?;

        if !m.has_column("sender_identity", "oauth_scopes").await? {
            m.alter_table(
                Table::alter()
                    .table(SenderIdentity::Table)
                    .add_column(ColumnDef::new(SenderIdentity::OauthScopes).text().null())
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(SenderIdentity::Table)
                .drop_column(SenderIdentity::OauthScopes)
                .to_owned(),
        )
        .await?;
        for table in [OauthState::Table.into_iden(), OauthApp::Table.into_iden()] {
            m.drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
