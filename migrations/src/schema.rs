//! Column helpers shared by migrations, so every table spells its types the same way.

use sea_orm_migration::prelude::*;

/// A ULID primary key (26 characters of Crockford base32, sortable as text).
pub(crate) fn id(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name))
        .string_len(26)
        .not_null()
        .primary_key()
        .to_owned()
}

/// A ULID reference, required.
pub(crate) fn ulid(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name))
        .string_len(26)
        .not_null()
        .to_owned()
}

/// A ULID reference, optional.
pub(crate) fn ulid_null(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name))
        .string_len(26)
        .null()
        .to_owned()
}

/// A UTC timestamp, required.
pub(crate) fn time(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name))
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

/// A UTC timestamp, optional.
pub(crate) fn time_null(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name))
        .timestamp_with_time_zone()
        .null()
        .to_owned()
}

/// Text, required.
pub(crate) fn text(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name))
        .text()
        .not_null()
        .to_owned()
}

/// Text, optional.
pub(crate) fn text_null(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name)).text().null().to_owned()
}

/// A SHA-256 hash of a token, unique: tokens are found by hash, never stored plain.
pub(crate) fn hash(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name))
        .binary()
        .not_null()
        .unique_key()
        .to_owned()
}

/// A boolean with a default.
pub(crate) fn flag(name: &str, default: bool) -> ColumnDef {
    ColumnDef::new(Alias::new(name))
        .boolean()
        .not_null()
        .default(default)
        .to_owned()
}

/// An integer, required.
pub(crate) fn int(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name))
        .integer()
        .not_null()
        .to_owned()
}

/// An integer, optional.
pub(crate) fn int_null(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name)).integer().null().to_owned()
}

/// A foreign key from `table.column` to `target.id`, deleting along with the target.
pub(crate) fn cascade(table: &str, column: &str, target: &str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(Alias::new(table), Alias::new(column))
        .to(Alias::new(target), Alias::new("id"))
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

/// A foreign key from `table.column` to `target.id`, cleared when the target goes.
pub(crate) fn set_null(table: &str, column: &str, target: &str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(Alias::new(table), Alias::new(column))
        .to(Alias::new(target), Alias::new("id"))
        .on_delete(ForeignKeyAction::SetNull)
        .to_owned()
}

/// An index on some columns of a table.
pub(crate) fn index(name: &str, table: &str, columns: &[&str]) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(Alias::new(table));
    for column in columns {
        index.col(Alias::new(*column));
    }
    index
}

/// A table definition to fill with columns.
pub(crate) fn table(name: &str) -> TableCreateStatement {
    Table::create().table(Alias::new(name)).to_owned()
}
