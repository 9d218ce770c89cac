//! When a device last polled the token endpoint, so polling faster than the advertised
//! interval can be answered with `slow_down` (RFC 8628 §3.5).

use sea_orm_migration::prelude::*;

use crate::schema::time_null;

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &'static str {
        "m20261127_000003_device_polls"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("oauth2_device_code_grants"))
                    .add_column(time_null("last_polled_at"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("oauth2_device_code_grants"))
                    .drop_column(Alias::new("last_polled_at"))
                    .to_owned(),
            )
            .await
    }
}
