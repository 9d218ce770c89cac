//! `mas-server` on PostgreSQL: migrations and client sync at start, and a database outage.

use std::time::{Duration, Instant};

use mas_testing::{CuttableProxy, TestPostgres};

use crate::{Server, start_with};

const CONFIG: &str = "\
matrix:
  secret: test-secret
clients:
  - client_id: 0000000000000000000SYNAPSE
    client_auth_method: client_secret_basic
    client_secret: SomeRandomSecret
secrets:
  encryption: 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
";

fn write_config(dir: &std::path::Path, uri: &str) {
    // Signing keys as `config generate` makes them.
    let generated = mas_config::generate().unwrap();
    let keys =
        serde_yaml::to_string(&serde_yaml::to_value(&generated.secrets.keys).unwrap()).unwrap();
    let keys: String = keys.lines().flat_map(|l| ["    ", l, "\n"]).collect();
    let text = format!("{CONFIG}  keys:\n{keys}database:\n  uri: {uri}\n  connect_timeout: 5\n");
    std::fs::write(dir.join("config.yaml"), text).unwrap();
}

async fn get(server: &Server, path: &'static str) -> (u16, Duration) {
    let address = server.address().to_owned();
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let (status, _) = crate::http_get(&address, path);
        (status, started.elapsed())
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrates_and_syncs_clients_at_start() {
    let Some(pg) = TestPostgres::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), pg.url());
    let server = start_with(dir.path(), &["-c", "config.yaml"]);
    assert_eq!(server.get("/health").0, 200);
    let (status, logs) = server.terminate();
    assert!(status.success());
    let synced = logs
        .iter()
        .any(|l| l.contains("config sync: client 0000000000000000000SYNAPSE: created"));
    assert!(synced, "{logs:?}");

    // A second start finds everything in place.
    let server = start_with(dir.path(), &["-c", "config.yaml"]);
    assert_eq!(server.get("/health").0, 200);
    let (_, logs) = server.terminate();
    assert!(
        logs.iter()
            .any(|l| l.contains("config sync: static clients: no change")),
        "{logs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_a_fast_503_and_recovery_needs_no_restart() {
    let Some(pg) = TestPostgres::create().await else {
        return;
    };
    let target = tokio::net::lookup_host(("127.0.0.1", 5432))
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = CuttableProxy::start(target).await;
    let mut url = url::Url::parse(pg.url()).unwrap();
    url.set_port(Some(proxy.address().port())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), url.as_str());
    let server = start_with(dir.path(), &["-c", "config.yaml"]);
    assert_eq!(get(&server, "/health").await.0, 200);

    proxy.cut();
    let (status, took) = get(&server, "/health").await;
    assert_eq!(status, 503);
    // A hang detector, not a speed target: the pool must not wait its 30 s default.
    assert!(
        took < Duration::from_secs(5),
        "an outage answered after {took:?}"
    );
    let (status, _) = get(&server, "/health").await;
    assert_eq!(status, 503, "still down");

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if get(&server, "/health").await.0 == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the service did not recover after the database came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, logs) = server.terminate();
    assert!(
        status.success(),
        "the outage did not take the process down: {logs:?}"
    );
}
