//! Replay protection of client assertions (`client_secret_jwt`, `private_key_jwt`): each
//! `jti` is recorded until the assertion expires.

use sea_orm_migration::prelude::*;

use crate::schema::{hash, id, index, table, time, ulid};

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &'static str {
        "m20261127_000002_client_assertions"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                table("oauth2_client_assertion_jtis")
                    .col(id("id"))
                    .col(ulid("client_id"))
                    .col(hash("jti_hash"))
                    .col(time("expires_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "oauth2_client_assertion_jtis_expires_at",
                "oauth2_client_assertion_jtis",
                &["expires_at"],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(Alias::new("oauth2_client_assertion_jtis"))
                    .to_owned(),
            )
            .await
    }
}
