//! Registrations waiting for their email code (the name, the password's hash, the
//! address, the token to count, the terms accepted, the code encrypted), account recovery
//! tickets (the link sent to an address, kept as a hash only), and which terms of service
//! each user accepted.

use sea_orm_migration::prelude::*;

use crate::schema::{
    cascade, hash, id, index, int, set_null, table, text, text_null, time, time_null, ulid,
    ulid_null,
};

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &'static str {
        "m20261207_000011_registrations_and_recovery"
    }
}

const REGISTRATIONS: &str = "user_registrations";
const TICKETS: &str = "user_recovery_tickets";
const TERMS: &str = "user_terms";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                table(REGISTRATIONS)
                    .col(id("id"))
                    .col(text("username"))
                    .col(text("email"))
                    .col(int("password_version"))
                    .col(text("password_hash"))
                    .col(ulid_null("registration_token_id"))
                    .col(text_null("terms_url"))
                    .col(text("encrypted_code"))
                    .col(int("attempts"))
                    .col(time("created_at"))
                    .col(time("expires_at"))
                    .col(time_null("completed_at"))
                    .foreign_key(&mut set_null(
                        REGISTRATIONS,
                        "registration_token_id",
                        "registration_tokens",
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "user_registrations_expires",
                REGISTRATIONS,
                &["expires_at"],
            ))
            .await?;
        manager
            .create_table(
                table(TICKETS)
                    .col(id("id"))
                    .col(ulid("user_id"))
                    .col(text("email"))
                    .col(hash("ticket_hash"))
                    .col(time("created_at"))
                    .col(time("expires_at"))
                    .col(time_null("consumed_at"))
                    .foreign_key(&mut cascade(TICKETS, "user_id", "users"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("user_recovery_tickets_user", TICKETS, &["user_id"]))
            .await?;
        manager
            .create_index(index(
                "user_recovery_tickets_expires",
                TICKETS,
                &["expires_at"],
            ))
            .await?;
        manager
            .create_table(
                table(TERMS)
                    .col(id("id"))
                    .col(ulid("user_id"))
                    .col(text("terms_url"))
                    .col(time("created_at"))
                    .foreign_key(&mut cascade(TERMS, "user_id", "users"))
                    .to_owned(),
            )
            .await?;
        let mut accepted = index("user_terms_user_url", TERMS, &["user_id", "terms_url"]);
        manager.create_index(accepted.unique().to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for name in [TERMS, TICKETS, REGISTRATIONS] {
            manager
                .drop_table(Table::drop().table(Alias::new(name)).to_owned())
                .await?;
        }
        Ok(())
    }
}
