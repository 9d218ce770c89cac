//! Test databases: a fresh SQLite file, or a fresh PostgreSQL database that is dropped
//! afterwards. PostgreSQL comes from `MAS_TEST_DATABASE_URL` or the local server.

use std::time::Duration;

use mas_storage_sql::{PoolOptions, SqlRepositoryFactory};
use sea_orm::DatabaseConnection;

/// A migrated, empty database for one test.
pub struct TestDb {
    pub factory: SqlRepositoryFactory,
    pub options: PoolOptions,
    /// Held for its `Drop`: removes the database when the test ends.
    _cleanup: Cleanup,
}

/// What to remove when the test ends (by being dropped).
enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres(#[allow(dead_code)] mas_testing::TestPostgres),
}

impl TestDb {
    pub fn db(&self) -> &DatabaseConnection {
        self.factory.connection()
    }

    /// Another pool on the same database (a second replica, say).
    pub async fn second_pool(&self) -> SqlRepositoryFactory {
        SqlRepositoryFactory::new(mas_storage_sql::connect(&self.options).await.unwrap())
    }
}

fn options(uri: String) -> PoolOptions {
    PoolOptions {
        uri,
        max_connections: 5,
        min_connections: 0,
        connect_timeout: Duration::from_secs(5),
        idle_timeout: None,
        max_lifetime: None,
    }
}

/// Pool settings with a single connection, for tests that must not find a spare one.
pub fn one_connection(uri: &str) -> PoolOptions {
    PoolOptions {
        max_connections: 1,
        ..options(uri.to_owned())
    }
}

/// Waits (up to 5 s) until `revocations` hears announcements; says whether it does.
pub async fn until_live(revocations: &mas_storage::Revocations) -> bool {
    for _ in 0..500 {
        if revocations.is_live() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

async fn open(options: PoolOptions, cleanup: Cleanup) -> TestDb {
    let db = mas_storage_sql::connect(&options).await.unwrap();
    mas_storage_sql::migrate(&db).await.unwrap();
    TestDb {
        factory: SqlRepositoryFactory::new(db),
        options,
        _cleanup: cleanup,
    }
}

pub async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let uri = format!("sqlite://{}", dir.path().join("mas.db").display());
    open(options(uri), Cleanup::Sqlite(dir)).await
}

/// A fresh PostgreSQL database, or `None` when no server is reachable outside CI.
pub async fn postgres() -> Option<TestDb> {
    let pg = mas_testing::TestPostgres::create().await?;
    let uri = pg.url().to_owned();
    Some(open(options(uri), Cleanup::Postgres(pg)).await)
}
