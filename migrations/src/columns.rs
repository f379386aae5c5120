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

/// A named index on `cols` of `table` (created only if missing).
pub(crate) fn index(
    name: &str,
    table: impl IntoIden,
    cols: &[&'static str],
    unique: bool,
) -> IndexCreateStatement {
    let mut i = Index::create();
    i.name(name).table(table).if_not_exists();
    for c in cols {
        i.col(Alias::new(*c));
    }
    if unique {
        i.unique();
    }
    i.to_owned()
}

/// Drops the index `name` of `table`, if it exists.
pub(crate) fn drop_index(name: &str, table: impl IntoIden) -> IndexDropStatement {
    Index::drop().name(name).table(table).if_exists().to_owned()
}
