//! The initial schema: users, clients, OAuth 2.0 and compatibility sessions and tokens,
//! personal sessions, upstream providers, registration tokens and the job queue.

use sea_orm_migration::prelude::*;

use crate::schema::{
    cascade, flag, hash, id, index, int, int_null, set_null, table, text, text_null, time,
    time_null, ulid, ulid_null,
};

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &'static str {
        "m20261127_000001_initial"
    }
}

// One declarative list of every table reads better than a function per table.
#[allow(clippy::too_many_lines)]
fn tables() -> Vec<TableCreateStatement> {
    vec![
        table("users")
            .col(id("id"))
            .col(
                ColumnDef::new(Alias::new("username"))
                    .string()
                    .not_null()
                    .unique_key(),
            )
            .col(time("created_at"))
            .col(time_null("locked_at"))
            .col(time_null("deactivated_at"))
            .col(flag("can_request_admin", false))
            .to_owned(),
        table("user_passwords")
            .col(id("id"))
            .col(ulid("user_id"))
            .col(text("hashed_password"))
            .col(int("version"))
            .col(ulid_null("upgraded_from_id"))
            .col(time("created_at"))
            .foreign_key(&mut cascade("user_passwords", "user_id", "users"))
            .to_owned(),
        table("user_emails")
            .col(id("id"))
            .col(ulid("user_id"))
            .col(text("email"))
            .col(
                ColumnDef::new(Alias::new("email_lower"))
                    .text()
                    .not_null()
                    .unique_key(),
            )
            .col(time("created_at"))
            .foreign_key(&mut cascade("user_emails", "user_id", "users"))
            .to_owned(),
        table("browser_sessions")
            .col(id("id"))
            .col(ulid("user_id"))
            .col(time("created_at"))
            .col(time_null("finished_at"))
            .col(text_null("user_agent"))
            .col(time_null("last_active_at"))
            .col(text_null("last_active_ip"))
            .foreign_key(&mut cascade("browser_sessions", "user_id", "users"))
            .to_owned(),
        table("browser_session_authentications")
            .col(id("id"))
            .col(ulid("browser_session_id"))
            .col(ulid_null("user_password_id"))
            .col(ulid_null("upstream_link_id"))
            .col(time("created_at"))
            .foreign_key(&mut cascade(
                "browser_session_authentications",
                "browser_session_id",
                "browser_sessions",
            ))
            .to_owned(),
        table("registration_tokens")
            .col(id("id"))
            .col(
                ColumnDef::new(Alias::new("token"))
                    .text()
                    .not_null()
                    .unique_key(),
            )
            .col(int_null("usage_limit"))
            .col(int("times_used"))
            .col(time("created_at"))
            .col(time_null("last_used_at"))
            .col(time_null("expires_at"))
            .col(time_null("revoked_at"))
            .to_owned(),
        table("oauth2_clients")
            .col(id("id"))
            .col(flag("is_static", false))
            .col(text("auth_method"))
            .col(text_null("encrypted_secret"))
            .col(text_null("jwks"))
            .col(text_null("jwks_uri"))
            .col(text("redirect_uris"))
            .col(text("grant_types"))
            .col(text_null("name"))
            .col(text_null("client_uri"))
            .col(text_null("logo_uri"))
            .col(text_null("policy_uri"))
            .col(text_null("tos_uri"))
            .col(text_null("application_type"))
            .col(text("contacts"))
            .col(text_null("metadata"))
            .col(time("created_at"))
            .to_owned(),
        table("oauth2_sessions")
            .col(id("id"))
            .col(ulid_null("user_id"))
            .col(ulid_null("browser_session_id"))
            .col(ulid("client_id"))
            .col(text("scope"))
            .col(time("created_at"))
            .col(time_null("finished_at"))
            .col(text_null("user_agent"))
            .col(time_null("last_active_at"))
            .col(text_null("last_active_ip"))
            .col(text_null("human_name"))
            .foreign_key(&mut cascade("oauth2_sessions", "user_id", "users"))
            .foreign_key(&mut set_null(
                "oauth2_sessions",
                "browser_session_id",
                "browser_sessions",
            ))
            .foreign_key(&mut cascade(
                "oauth2_sessions",
                "client_id",
                "oauth2_clients",
            ))
            .to_owned(),
        table("oauth2_authorization_grants")
            .col(id("id"))
            .col(ulid("client_id"))
            .col(text("redirect_uri"))
            .col(text("scope"))
            .col(text_null("state"))
            .col(text_null("nonce"))
            .col(text("response_mode"))
            .col(flag("response_type_id_token", false))
            .col(
                ColumnDef::new(Alias::new("code_hash"))
                    .binary()
                    .null()
                    .unique_key(),
            )
            .col(text_null("code_challenge"))
            .col(text_null("code_challenge_method"))
            .col(int_null("max_age"))
            .col(text_null("login_hint"))
            .col(text_null("prompt"))
            .col(time("created_at"))
            .col(time_null("fulfilled_at"))
            .col(time_null("exchanged_at"))
            .col(time_null("cancelled_at"))
            .col(ulid_null("session_id"))
            .foreign_key(&mut cascade(
                "oauth2_authorization_grants",
                "client_id",
                "oauth2_clients",
            ))
            .foreign_key(&mut cascade(
                "oauth2_authorization_grants",
                "session_id",
                "oauth2_sessions",
            ))
            .to_owned(),
        table("oauth2_access_tokens")
            .col(id("id"))
            .col(ulid("session_id"))
            .col(hash("token_hash"))
            .col(time("created_at"))
            .col(time_null("expires_at"))
            .col(time_null("revoked_at"))
            .col(time_null("first_used_at"))
            .foreign_key(&mut cascade(
                "oauth2_access_tokens",
                "session_id",
                "oauth2_sessions",
            ))
            .to_owned(),
        table("oauth2_refresh_tokens")
            .col(id("id"))
            .col(ulid("session_id"))
            .col(ulid_null("access_token_id"))
            .col(hash("token_hash"))
            .col(time("created_at"))
            .col(time_null("consumed_at"))
            .col(time_null("revoked_at"))
            .col(ulid_null("next_token_id"))
            .foreign_key(&mut cascade(
                "oauth2_refresh_tokens",
                "session_id",
                "oauth2_sessions",
            ))
            .foreign_key(&mut set_null(
                "oauth2_refresh_tokens",
                "access_token_id",
                "oauth2_access_tokens",
            ))
            .to_owned(),
        table("oauth2_device_code_grants")
            .col(id("id"))
            .col(ulid("client_id"))
            .col(text("scope"))
            .col(hash("device_code_hash"))
            .col(
                ColumnDef::new(Alias::new("user_code"))
                    .text()
                    .not_null()
                    .unique_key(),
            )
            .col(time("created_at"))
            .col(time("expires_at"))
            .col(time_null("fulfilled_at"))
            .col(time_null("rejected_at"))
            .col(time_null("exchanged_at"))
            .col(ulid_null("browser_session_id"))
            .col(ulid_null("session_id"))
            .col(text_null("ip_address"))
            .col(text_null("user_agent"))
            .foreign_key(&mut cascade(
                "oauth2_device_code_grants",
                "client_id",
                "oauth2_clients",
            ))
            .to_owned(),
        table("compat_sessions")
            .col(id("id"))
            .col(ulid("user_id"))
            .col(text_null("device_id"))
            .col(ulid_null("browser_session_id"))
            .col(time("created_at"))
            .col(time_null("finished_at"))
            .col(flag("is_synapse_admin", false))
            .col(text_null("user_agent"))
            .col(time_null("last_active_at"))
            .col(text_null("last_active_ip"))
            .col(text_null("human_name"))
            .foreign_key(&mut cascade("compat_sessions", "user_id", "users"))
            .to_owned(),
        table("compat_access_tokens")
            .col(id("id"))
            .col(ulid("session_id"))
            .col(hash("token_hash"))
            .col(time("created_at"))
            .col(time_null("expires_at"))
            .foreign_key(&mut cascade(
                "compat_access_tokens",
                "session_id",
                "compat_sessions",
            ))
            .to_owned(),
        table("compat_refresh_tokens")
            .col(id("id"))
            .col(ulid("session_id"))
            .col(ulid("access_token_id"))
            .col(hash("token_hash"))
            .col(time("created_at"))
            .col(time_null("consumed_at"))
            .foreign_key(&mut cascade(
                "compat_refresh_tokens",
                "session_id",
                "compat_sessions",
            ))
            .to_owned(),
        table("compat_sso_logins")
            .col(id("id"))
            .col(text("redirect_uri"))
            .col(hash("login_token_hash"))
            .col(time("created_at"))
            .col(time_null("fulfilled_at"))
            .col(time_null("exchanged_at"))
            .col(ulid_null("session_id"))
            .foreign_key(&mut cascade(
                "compat_sso_logins",
                "session_id",
                "compat_sessions",
            ))
            .to_owned(),
        table("personal_sessions")
            .col(id("id"))
            .col(ulid("owner_user_id"))
            .col(ulid("actor_user_id"))
            .col(text("human_name"))
            .col(text("scope"))
            .col(time("created_at"))
            .col(time_null("revoked_at"))
            .col(time_null("last_active_at"))
            .col(text_null("last_active_ip"))
            .foreign_key(&mut cascade("personal_sessions", "owner_user_id", "users"))
            .foreign_key(&mut cascade("personal_sessions", "actor_user_id", "users"))
            .to_owned(),
        table("personal_access_tokens")
            .col(id("id"))
            .col(ulid("session_id"))
            .col(hash("token_hash"))
            .col(time("created_at"))
            .col(time_null("expires_at"))
            .col(time_null("revoked_at"))
            .foreign_key(&mut cascade(
                "personal_access_tokens",
                "session_id",
                "personal_sessions",
            ))
            .to_owned(),
        table("upstream_oauth_providers")
            .col(id("id"))
            .col(text_null("issuer"))
            .col(text_null("human_name"))
            .col(text("client_id"))
            .col(text_null("encrypted_client_secret"))
            .col(text("config"))
            .col(time("created_at"))
            .col(time_null("disabled_at"))
            .to_owned(),
        table("upstream_oauth_links")
            .col(id("id"))
            .col(ulid("provider_id"))
            .col(ulid_null("user_id"))
            .col(text("subject"))
            .col(text_null("human_account_name"))
            .col(time("created_at"))
            .foreign_key(&mut cascade(
                "upstream_oauth_links",
                "provider_id",
                "upstream_oauth_providers",
            ))
            .foreign_key(&mut cascade("upstream_oauth_links", "user_id", "users"))
            .to_owned(),
        table("queue_jobs")
            .col(id("id"))
            .col(text("queue"))
            .col(text("payload"))
            .col(text("state"))
            .col(int("attempts"))
            .col(time("scheduled_at"))
            .col(time_null("lease_expires_at"))
            .col(time("created_at"))
            .col(time_null("completed_at"))
            .col(text_null("last_error"))
            .to_owned(),
    ]
}

/// Indexes of every lookup on a hot path and of every foreign key that is searched.
fn indexes() -> Vec<IndexCreateStatement> {
    vec![
        index(
            "user_passwords_user_id",
            "user_passwords",
            &["user_id", "created_at"],
        ),
        index("user_emails_user_id", "user_emails", &["user_id"]),
        index("browser_sessions_user_id", "browser_sessions", &["user_id"]),
        index(
            "browser_session_authentications_session",
            "browser_session_authentications",
            &["browser_session_id", "created_at"],
        ),
        index("oauth2_sessions_user_id", "oauth2_sessions", &["user_id"]),
        index(
            "oauth2_sessions_client_id",
            "oauth2_sessions",
            &["client_id"],
        ),
        index(
            "oauth2_access_tokens_session_id",
            "oauth2_access_tokens",
            &["session_id"],
        ),
        index(
            "oauth2_refresh_tokens_session_id",
            "oauth2_refresh_tokens",
            &["session_id"],
        ),
        index(
            "oauth2_authorization_grants_client_id",
            "oauth2_authorization_grants",
            &["client_id"],
        ),
        index(
            "compat_sessions_user_device",
            "compat_sessions",
            &["user_id", "device_id"],
        ),
        index(
            "compat_access_tokens_session_id",
            "compat_access_tokens",
            &["session_id"],
        ),
        index(
            "compat_refresh_tokens_session_id",
            "compat_refresh_tokens",
            &["session_id"],
        ),
        index(
            "personal_sessions_actor",
            "personal_sessions",
            &["actor_user_id"],
        ),
        index(
            "personal_access_tokens_session_id",
            "personal_access_tokens",
            &["session_id"],
        ),
        index(
            "upstream_oauth_links_user_id",
            "upstream_oauth_links",
            &["user_id"],
        ),
        index(
            "queue_jobs_due",
            "queue_jobs",
            &["state", "queue", "scheduled_at"],
        ),
        Index::create()
            .name("upstream_oauth_links_subject")
            .table(Alias::new("upstream_oauth_links"))
            .col(Alias::new("provider_id"))
            .col(Alias::new("subject"))
            .unique()
            .to_owned(),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in tables() {
            manager.create_table(table).await?;
        }
        for index in indexes() {
            manager.create_index(index).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in tables().into_iter().rev() {
            let name = table
                .get_table_name()
                .cloned()
                .ok_or_else(|| DbErr::Custom("a table without a name".to_owned()))?;
            manager
                .drop_table(Table::drop().table(name).to_owned())
                .await?;
        }
        Ok(())
    }
}
