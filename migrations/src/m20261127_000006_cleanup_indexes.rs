//! Indexes for the periodic cleanup: grants are deleted by age, device grants by expiry,
//! and a registered client only when no device grant names it (the other tables that
//! refer to clients are indexed on `client_id` already).

use sea_orm_migration::prelude::*;

use crate::schema::index;

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &'static str {
        "m20261127_000006_cleanup_indexes"
    }
}

/// Each index as (name, table, column).
const INDEXES: &[(&str, &str, &str)] = &[
    (
        "oauth2_authorization_grants_created_at",
        "oauth2_authorization_grants",
        "created_at",
    ),
    (
        "oauth2_device_code_grants_expires_at",
        "oauth2_device_code_grants",
        "expires_at",
    ),
    (
        "oauth2_device_code_grants_client_id",
        "oauth2_device_code_grants",
        "client_id",
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table, column) in INDEXES {
            manager.create_index(index(name, table, &[column])).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table, _) in INDEXES {
            manager
                .drop_index(
                    Index::drop()
                        .name(*name)
                        .table(Alias::new(*table))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
