//! At most one open compatibility session per user and device: two concurrent logins
//! naming the same device cannot both stay open (the second one's insert conflicts and is
//! retried, finding and ending the first). A partial index, the same on both backends.

use sea_orm_migration::prelude::*;

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &'static str {
        "m20261127_000004_one_open_session_per_device"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        // Sessions left open on one device by earlier versions: keep the newest open.
        db.execute_unprepared(
            "UPDATE compat_sessions SET finished_at = created_at \
             WHERE finished_at IS NULL AND device_id IS NOT NULL AND EXISTS ( \
               SELECT 1 FROM compat_sessions AS newer \
               WHERE newer.user_id = compat_sessions.user_id \
                 AND newer.device_id = compat_sessions.device_id \
                 AND newer.finished_at IS NULL \
                 AND newer.id > compat_sessions.id)",
        )
        .await?;
        db.execute_unprepared(
            "CREATE UNIQUE INDEX compat_sessions_one_open_per_device \
             ON compat_sessions (user_id, device_id) \
             WHERE finished_at IS NULL AND device_id IS NOT NULL",
        )
        .await
        .map(drop)
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP INDEX compat_sessions_one_open_per_device")
            .await
            .map(drop)
    }
}
