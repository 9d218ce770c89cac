//! Codes sent to an address before it is added to an account: who asked, from which
//! browser session, the code (encrypted), and how it was used.

use sea_orm_migration::prelude::*;

use crate::schema::{cascade, id, index, int, table, text, time, time_null, ulid};

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &'static str {
        "m20261207_000008_email_authentications"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                table("user_email_authentications")
                    .col(id("id"))
                    .col(ulid("user_id"))
                    .col(ulid("browser_session_id"))
                    .col(text("email"))
                    .col(text("encrypted_code"))
                    .col(time("created_at"))
                    .col(time("expires_at"))
                    .col(int("attempts"))
                    .col(time_null("completed_at"))
                    .foreign_key(&mut cascade(
                        "user_email_authentications",
                        "user_id",
                        "users",
                    ))
                    .foreign_key(&mut cascade(
                        "user_email_authentications",
                        "browser_session_id",
                        "browser_sessions",
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "user_email_authentications_session",
                "user_email_authentications",
                &["browser_session_id"],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(Alias::new("user_email_authentications"))
                    .to_owned(),
            )
            .await
    }
}
