//! A log of revocations for processes that share an SQLite file: a `mas-cli` command that
//! ends sessions or locks a user writes a row, and the running server reads it to drop
//! the introspection answers it cached. (PostgreSQL announces the same with `NOTIFY`.)

use sea_orm_migration::prelude::*;

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &'static str {
        "m20261127_000005_revocation_log"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("revocation_log"))
                    .col(
                        ColumnDef::new(Alias::new("id"))
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    // The revoked session, user and client ids, separated by commas.
                    .col(ColumnDef::new(Alias::new("keys")).text().not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Alias::new("revocation_log")).to_owned())
            .await
    }
}
