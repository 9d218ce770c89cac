//! Opening the configured database, shared by the server and the admin commands.

use std::time::Duration;

use anyhow::Context;
use mas_config::RootConfig;
use mas_storage_sql::{PoolOptions, SqlRepositoryFactory};

/// Connects to the configured database and, when `migrate` is set, applies pending
/// migrations (logging each).
pub(crate) async fn open(
    config: &RootConfig,
    migrate: bool,
) -> anyhow::Result<SqlRepositoryFactory> {
    let db = &config.database;
    let options = PoolOptions {
        uri: db.connection_uri()?,
        max_connections: db.max_connections,
        min_connections: db.min_connections,
        connect_timeout: Duration::from_secs(db.connect_timeout),
        idle_timeout: db.idle_timeout.map(Duration::from_secs),
        max_lifetime: db.max_lifetime.map(Duration::from_secs),
    };
    let factory = SqlRepositoryFactory::connect(&options)
        .await
        .with_context(|| format!("database {}", db.display_uri()))?;
    if migrate {
        for name in factory.migrate().await? {
            tracing::info!(migration = %name, "applied migration");
        }
    }
    Ok(factory)
}

/// Fails with advice when migrations are pending (the schema is older than this build).
pub(crate) async fn require_current_schema(factory: &SqlRepositoryFactory) -> anyhow::Result<()> {
    let pending = factory.pending_migrations().await?;
    if pending.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "the database schema is not up to date ({} pending migration(s), first {}); \
             run `mas-cli database migrate` or start without --no-migrate",
            pending.len(),
            pending[0]
        )
    }
}
