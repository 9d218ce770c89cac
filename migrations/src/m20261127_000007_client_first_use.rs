//! When a registered client first started an authorization (a code or device request):
//! the cleanup removes only clients never used, since apps such as Element X keep their
//! registration and reuse it for every later sign-in, even after an abandoned first one.
//! Clients that already have a grant or a session count as used from their registration
//! on: the cleanup of old grants must not make them look unused.

use sea_orm_migration::prelude::*;

use crate::schema::time_null;

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &'static str {
        "m20261127_000007_client_first_use"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("oauth2_clients"))
                    .add_column(time_null("first_used_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE oauth2_clients SET first_used_at = created_at \
                 WHERE EXISTS (SELECT 1 FROM oauth2_authorization_grants g WHERE g.client_id = oauth2_clients.id) \
                 OR EXISTS (SELECT 1 FROM oauth2_device_code_grants d WHERE d.client_id = oauth2_clients.id) \
                 OR EXISTS (SELECT 1 FROM oauth2_sessions s WHERE s.client_id = oauth2_clients.id)",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("oauth2_clients"))
                    .drop_column(Alias::new("first_used_at"))
                    .to_owned(),
            )
            .await
    }
}
