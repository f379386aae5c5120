//! Column and key shapes shared by every migration.

use sea_orm_migration::prelude::*;

#[derive(DeriveIden)]
enum Tenant {
    Table,
    Id,
}

pub(crate) fn id(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).string_len(36).not_null().to_owned()
}

pub(crate) fn micros(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).big_integer().not_null().to_owned()
}

pub(crate) fn text(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).string().not_null().to_owned()
}

pub(crate) fn tenant_fk<T: IntoIden + 'static>(
    table: T,
    column: impl IntoIden,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(table, column)
        .to(Tenant::Table, Tenant::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}
