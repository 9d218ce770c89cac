//! Throwaway PostgreSQL databases for tests, from `MAS_TEST_DATABASE_URL` or the local
//! server. Outside CI an unreachable server skips the PostgreSQL half of a test with a
//! loud message; under `CI=true` it fails the test.

use std::time::Duration;

use sea_orm::{ConnectionTrait, Database};

/// The PostgreSQL server of this machine, used when `MAS_TEST_DATABASE_URL` is unset.
pub const DEFAULT_POSTGRES: &str = "postgresql://postgres@127.0.0.1:5432/postgres";

/// A fresh, empty PostgreSQL database, dropped (forcibly) when this is dropped.
#[derive(Debug)]
pub struct TestPostgres {
    admin_url: String,
    name: String,
    url: String,
}

impl TestPostgres {
    /// Creates a database, or returns `None` when no server is reachable outside CI.
    ///
    /// # Panics
    /// Under `CI=true` when the server is unreachable, or when it refuses to create a
    /// database.
    pub async fn create() -> Option<Self> {
        let admin_url =
            std::env::var("MAS_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_POSTGRES.to_owned());
        let admin =
            match tokio::time::timeout(Duration::from_secs(5), Database::connect(&admin_url)).await
            {
                Ok(Ok(admin)) => admin,
                Ok(Err(error)) => return skip(&admin_url, &error.to_string()),
                Err(_) => return skip(&admin_url, "timed out"),
            };
        let name = format!("mas_test_{}", ulid::Ulid::new().to_string().to_lowercase());
        if let Err(error) = admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
        {
            panic!("cannot create test database {name}: {error}");
        }
        let _ = admin.close().await;
        let mut url = match url::Url::parse(&admin_url) {
            Ok(url) => url,
            Err(error) => panic!("MAS_TEST_DATABASE_URL is not a URL: {error}"),
        };
        url.set_path(&format!("/{name}"));
        Some(Self {
            admin_url,
            name,
            url: url.to_string(),
        })
    }

    /// The connection URI of the database.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }
}

fn skip(admin_url: &str, why: &str) -> Option<TestPostgres> {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "PostgreSQL is required under CI=true but {admin_url} is unreachable: {why}"
    );
    eprintln!(
        "\n!!!!! SKIPPED: PostgreSQL at {admin_url} is unreachable ({why}); set \
         MAS_TEST_DATABASE_URL to run the PostgreSQL half of this test !!!!!\n"
    );
    None
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop may run inside a test's runtime: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
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

/// A TCP proxy in front of a server that a test can cut and restore, to play a database
/// outage without stopping the database other tests use.
#[derive(Debug)]
pub struct CuttableProxy {
    address: std::net::SocketAddr,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    cut: tokio::sync::watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl CuttableProxy {
    /// Starts a proxy on a free loopback port forwarding to `target`.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start(target: std::net::SocketAddr) -> Self {
        use std::sync::atomic::Ordering;
        let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
            Ok(listener) => listener,
            Err(error) => panic!("cannot bind a proxy port: {error}"),
        };
        let address = match listener.local_addr() {
            Ok(address) => address,
            Err(error) => panic!("no proxy address: {error}"),
        };
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (cut, cuts) = tokio::sync::watch::channel(0u64);
        let accepting = up.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !accepting.load(Ordering::SeqCst) {
                    // Down: the connection is closed at once, as a dead server's would be.
                    drop(inbound);
                    continue;
                }
                let mut cuts = cuts.clone();
                // Only cuts from now on end this connection.
                cuts.borrow_and_update();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cuts.changed() => {}
                    }
                });
            }
        });
        Self {
            address,
            up,
            cut,
            task,
        }
    }

    /// Where clients connect.
    #[must_use]
    pub fn address(&self) -> std::net::SocketAddr {
        self.address
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for CuttableProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
