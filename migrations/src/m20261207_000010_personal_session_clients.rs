//! Personal sessions a client creates (through the admin API with a `client_credentials`
//! token) are owned by that client. `owner_user_id` stays required, so such a session
//! holds its actor there and names the client in `owner_client_id`, which the
//! repository reads first.

use sea_orm_migration::prelude::*;

use crate::schema::{index, ulid_null};

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &'static str {
        "m20261207_000010_personal_session_clients"
    }
}

const TABLE: &str = "personal_sessions";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new(TABLE))
                    .add_column(ulid_null("owner_client_id"))
                    .to_owned(),
            )
            .await?;
        // The admin API lists sessions by owner (by actor has its index already).
        manager
            .create_index(index("personal_sessions_owner", TABLE, &["owner_user_id"]))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("personal_sessions_owner")
                    .table(Alias::new(TABLE))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new(TABLE))
                    .drop_column(Alias::new("owner_client_id"))
                    .to_owned(),
            )
            .await
    }
}
