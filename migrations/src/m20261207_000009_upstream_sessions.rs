//! Sign-ins through upstream providers: each trip to a provider (its state, nonce and
//! PKCE verifier), what came back (the link, the claims, the provider's session ID), and
//! the browser session it opened, which a back-channel logout finds by that session ID.
//! Providers also get their place in the configuration, the order of their buttons.

use sea_orm_migration::prelude::*;

use crate::schema::{
    cascade, id, index, int, set_null, table, text, text_null, time, time_null, ulid, ulid_null,
};

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &'static str {
        "m20261207_000009_upstream_sessions"
    }
}

const TABLE: &str = "upstream_oauth_authorization_sessions";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("upstream_oauth_providers"))
                    .add_column(int("ui_order").default(0).to_owned())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                table(TABLE)
                    .col(id("id"))
                    .col(ulid("provider_id"))
                    .col(text("state"))
                    .col(text("nonce"))
                    .col(text_null("code_verifier"))
                    .col(text("next"))
                    .col(time("created_at"))
                    .col(time_null("completed_at"))
                    .col(ulid_null("link_id"))
                    .col(text_null("id_token"))
                    .col(text_null("claims"))
                    .col(text_null("sid"))
                    .col(time_null("consumed_at"))
                    .col(ulid_null("browser_session_id"))
                    .foreign_key(&mut cascade(
                        TABLE,
                        "provider_id",
                        "upstream_oauth_providers",
                    ))
                    .foreign_key(&mut cascade(TABLE, "link_id", "upstream_oauth_links"))
                    .foreign_key(&mut set_null(
                        TABLE,
                        "browser_session_id",
                        "browser_sessions",
                    ))
                    .to_owned(),
            )
            .await?;
        let mut state = index("upstream_oauth_sessions_state", TABLE, &["state"]);
        manager.create_index(state.unique().to_owned()).await?;
        manager
            .create_index(index(
                "upstream_oauth_sessions_sid",
                TABLE,
                &["provider_id", "sid"],
            ))
            .await?;
        manager
            .create_index(index("upstream_oauth_sessions_link", TABLE, &["link_id"]))
            .await?;
        manager
            .create_index(index(
                "upstream_oauth_sessions_browser",
                TABLE,
                &["browser_session_id"],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Alias::new(TABLE)).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("upstream_oauth_providers"))
                    .drop_column(Alias::new("ui_order"))
                    .to_owned(),
            )
            .await
    }
}
