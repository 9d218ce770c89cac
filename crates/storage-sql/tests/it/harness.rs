//! Test databases: a fresh SQLite file, or a fresh PostgreSQL database that is dropped
//! afterwards. PostgreSQL comes from `MAS_TEST_DATABASE_URL` or the local server.

use std::time::Duration;

use mas_storage_sql::{PoolOptions, SqlRepositoryFactory};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

/// The default PostgreSQL server of this machine.
const DEFAULT_PG: &str = "postgresql://postgres@127.0.0.1:5432/postgres";

/// A migrated, empty database for one test.
pub struct TestDb {
    pub factory: SqlRepositoryFactory,
    pub options: PoolOptions,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
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

async fn open(options: PoolOptions, cleanup: Cleanup) -> TestDb {
    let db = mas_storage_sql::connect(&options).await.unwrap();
    mas_storage_sql::migrate(&db).await.unwrap();
    TestDb {
        factory: SqlRepositoryFactory::new(db),
        options,
        cleanup,
    }
}

pub async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let uri = format!("sqlite://{}", dir.path().join("mas.db").display());
    open(options(uri), Cleanup::Sqlite(dir)).await
}

/// A fresh PostgreSQL database, or `None` (with a loud message) when no server is
/// reachable outside CI. Under `CI=true` an unreachable server fails the test.
pub async fn postgres() -> Option<TestDb> {
    let admin_url = std::env::var("MAS_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_PG.to_owned());
    let admin = match tokio::time::timeout(Duration::from_secs(5), Database::connect(&admin_url)).await {
        Ok(Ok(admin)) => admin,
        outcome => {
            let why = match outcome {
                Ok(Err(error)) => error.to_string(),
                Ok(Ok(_)) => unreachable!("handled above"),
                Err(_) => "timed out".to_owned(),
            };
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "PostgreSQL is required under CI=true but {admin_url} is unreachable: {why}"
            );
            eprintln!(
                "\n!!!!! SKIPPED: PostgreSQL at {admin_url} is unreachable ({why}); \
                 set MAS_TEST_DATABASE_URL to run the PostgreSQL half of this test !!!!!\n"
            );
            return None;
        }
    };
    let name = format!("mas_test_{}", ulid::Ulid::new().to_string().to_lowercase());
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    admin.close().await.unwrap();
    let mut url = url::Url::parse(&admin_url).unwrap();
    url.set_path(&format!("/{name}"));
    Some(open(options(url.to_string()), Cleanup::Postgres { admin_url, name }).await)
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Cleanup::Postgres { admin_url, name } = &self.cleanup {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop runs inside the test's runtime: use a thread with its own.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                runtime.block_on(async {
                    if let Ok(admin) = Database::connect(&admin_url).await {
                        let _ = admin
                            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .await;
                        let _ = admin.close().await;
                    }
                });
            })
            .join();
        }
    }
}
