//! `mas-cli database migrate` and `config sync [--prune] [--dry-run]`, on SQLite and
//! PostgreSQL, with the rows checked in the database itself.

use std::path::Path;

use sea_orm::{ConnectionTrait, Database, Statement, TransactionTrait};

use crate::{mas_cli, stderr};

const BASE: &str = "\
matrix:
  secret: test-secret
secrets:
  encryption: 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
";

const TWO_CLIENTS: &str = "\
clients:
  - client_id: 0000000000000000000SYNAPSE
    client_auth_method: client_secret_basic
    client_secret: SomeRandomSecret
  - client_id: 01J2ZQ9Y3XW6RMK1VF8H0N5D7B
    client_auth_method: none
    redirect_uris: [https://app.example.com/cb]
";

const ONE_CLIENT_CHANGED: &str = "\
clients:
  - client_id: 0000000000000000000SYNAPSE
    client_auth_method: client_secret_basic
    client_secret: SomeRandomSecret
    redirect_uris: [https://synapse.example.com/cb]
";

fn write(dir: &Path, uri: &str, clients: &str) {
    std::fs::write(
        dir.join("c.yaml"),
        format!("{BASE}database:\n  uri: {uri}\n{clients}"),
    )
    .unwrap();
}

fn run(dir: &Path, args: &[&str]) -> String {
    let mut all = vec!["-c", "c.yaml"];
    all.extend_from_slice(args);
    let output = mas_cli(dir, &all);
    assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    String::from_utf8(output.stdout).unwrap()
}

/// The rows `sql` selects, each made by `row`.
async fn rows<T>(uri: &str, sql: &str, row: impl Fn(sea_orm::QueryResult) -> T) -> Vec<T> {
    let db = Database::connect(uri).await.unwrap();
    let backend = db.get_database_backend();
    let rows = db
        .query_all_raw(Statement::from_string(backend, sql))
        .await
        .unwrap();
    db.close().await.unwrap();
    rows.into_iter().map(row).collect()
}

async fn client_rows(uri: &str) -> Vec<(String, Option<String>)> {
    rows(
        uri,
        "SELECT id, encrypted_secret FROM oauth2_clients WHERE is_static ORDER BY id",
        |r| {
            (
                r.try_get_by_index(0).unwrap(),
                r.try_get_by_index(1).unwrap(),
            )
        },
    )
    .await
}

async fn the_whole_sync_story(dir: &Path, uri: &str) {
    write(dir, uri, TWO_CLIENTS);
    // A dry run neither migrates nor works on an old schema: it says what to do.
    let output = mas_cli(dir, &["-c", "c.yaml", "config", "sync", "--dry-run"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("run `mas-cli database migrate`"),
        "{}",
        stderr(&output)
    );
    let out = run(dir, &["database", "migrate"]);
    let applied: Vec<&str> = out.lines().collect();
    assert!(applied.len() >= 3, "{out}");
    assert_eq!(applied[0], "applied m20261127_000001_initial");
    assert!(
        applied.iter().all(|line| line.starts_with("applied m2026")),
        "{out}"
    );
    assert_eq!(
        run(dir, &["database", "migrate"]).trim(),
        "database is up to date"
    );

    let out = run(dir, &["config", "sync", "--dry-run"]);
    assert!(
        out.contains("client 0000000000000000000SYNAPSE: would be created"),
        "{out}"
    );
    assert!(out.contains("dry run: nothing was written"), "{out}");
    assert!(
        out.contains("static clients: would create 2, update 0, delete 0; 0 unchanged"),
        "{out}"
    );
    assert!(
        client_rows(uri).await.is_empty(),
        "a dry run writes nothing"
    );

    let out = run(dir, &["config", "sync"]);
    assert!(
        out.contains("static clients: 2 created, 0 updated, 0 deleted, 0 unchanged"),
        "{out}"
    );
    let rows = client_rows(uri).await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].0, "0000000000000000000SYNAPSE");
    let sealed = rows[0].1.as_deref().unwrap();
    assert!(
        !sealed.contains("SomeRandomSecret"),
        "the secret is stored encrypted: {sealed}"
    );
    assert_eq!(rows[1].1, None);

    let out = run(dir, &["config", "sync"]);
    assert!(
        out.contains("static clients: no change"),
        "a second run is idempotent: {out}"
    );
    assert_eq!(
        client_rows(uri).await,
        rows,
        "not even the ciphertext changes"
    );

    write(dir, uri, ONE_CLIENT_CHANGED);
    let out = run(dir, &["config", "sync"]);
    assert!(
        out.contains("client 0000000000000000000SYNAPSE: updated (redirect_uris)"),
        "{out}"
    );
    assert!(
        out.contains("client 01J2ZQ9Y3XW6RMK1VF8H0N5D7B: no longer in the configuration, kept"),
        "{out}"
    );
    assert_eq!(client_rows(uri).await.len(), 2);

    let out = run(dir, &["config", "sync", "--prune", "--dry-run"]);
    assert!(
        out.contains("client 01J2ZQ9Y3XW6RMK1VF8H0N5D7B: would be deleted"),
        "{out}"
    );
    assert_eq!(client_rows(uri).await.len(), 2);
    let out = run(dir, &["config", "sync", "--prune"]);
    assert!(
        out.contains("client 01J2ZQ9Y3XW6RMK1VF8H0N5D7B: deleted"),
        "{out}"
    );
    assert_eq!(client_rows(uri).await.len(), 1);
    let out = run(dir, &["config", "sync", "--prune"]);
    assert!(out.contains("static clients: no change"), "{out}");
}

#[tokio::test]
async fn sync_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let uri = format!("sqlite://{}", dir.path().join("mas.db").display());
    the_whole_sync_story(dir.path(), &uri).await;
}

#[tokio::test]
async fn sync_on_postgres() {
    let Some(pg) = mas_testing::TestPostgres::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    the_whole_sync_story(dir.path(), pg.url()).await;
}

#[cfg(unix)]
#[test]
fn the_sqlite_database_file_is_created_private() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "sqlite://mas.db", "");
    run(dir.path(), &["database", "migrate"]);
    let db = dir.path().join("mas.db");
    assert_eq!(
        crate::mode(&db),
        0o600,
        "the database holds hashes and keys"
    );
    // SQLite gives its side files the database file's mode.
    for side in ["mas.db-wal", "mas.db-shm"] {
        let path = dir.path().join(side);
        if path.exists() {
            assert_eq!(crate::mode(&path), 0o600, "{side}");
        }
    }
}

#[tokio::test]
async fn a_wrong_password_fails_at_once_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "postgresql://nobody:wrong@127.0.0.1:5432/postgres\n  connect_timeout: 2",
        "",
    );
    let output = mas_cli(dir.path(), &["-c", "c.yaml", "database", "migrate"]);
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(text.contains("cannot connect to the database"), "{text}");
    assert!(!text.contains("wrong"), "the password is not shown: {text}");
}

/// Replicas starting together on one PostgreSQL database sync the same new client at
/// once (issue #14). The second insert waits for the first transaction and is then
/// refused by the primary key; that sync must run again and find the client, not fail
/// (which stopped the replica's start-up). Here the other replica is a transaction
/// held open between its insert and its commit.
#[tokio::test]
async fn a_sync_that_loses_the_race_for_a_new_client_syncs_again() {
    let Some(pg) = mas_testing::TestPostgres::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), pg.url(), TWO_CLIENTS);
    run(dir.path(), &["database", "migrate"]);

    let db = Database::connect(pg.url()).await.unwrap();
    let other = db.begin().await.unwrap();
    other
        .execute_unprepared(
            "INSERT INTO oauth2_clients \
             (id, is_static, auth_method, redirect_uris, grant_types, contacts, created_at) \
             VALUES ('0000000000000000000SYNAPSE', TRUE, 'client_secret_basic', '[]', '[]', '[]', now())",
        )
        .await
        .unwrap();
    let sync = std::process::Command::new(env!("CARGO_BIN_EXE_mas-cli"))
        .current_dir(dir.path())
        .env_remove("MAS_CONFIG")
        .args(["-c", "c.yaml", "config", "sync"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Until the sync's own insert waits for the other transaction.
    let waiting = "SELECT count(*) FROM pg_stat_activity \
                   WHERE datname = current_database() AND wait_event_type = 'Lock'";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let row = db
            .query_one_raw(Statement::from_string(db.get_database_backend(), waiting))
            .await
            .unwrap()
            .unwrap();
        let count: i64 = row.try_get_by_index(0).unwrap();
        if count > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the sync never waited for the other insert"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    other.commit().await.unwrap();
    let output = tokio::task::spawn_blocking(move || sync.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let out = String::from_utf8(output.stdout).unwrap();
    // The second round found the other's row (which differs from the configuration).
    assert!(
        out.contains("client 0000000000000000000SYNAPSE: updated"),
        "{out}"
    );
    assert!(
        out.contains("client 01J2ZQ9Y3XW6RMK1VF8H0N5D7B: created"),
        "{out}"
    );
    assert_eq!(client_rows(pg.url()).await.len(), 2);
    db.close().await.unwrap();
}

const TWO_PROVIDERS: &str = "\
upstream_oauth2:
  providers:
    - id: 01HFVBY12TMNTYTBV8W921M5FA
      issuer: https://sso.example.com/
      human_name: Example SSO
      client_id: mas
      client_secret: UpstreamSecret
      token_endpoint_auth_method: client_secret_basic
    - id: 01HFVBY12TMNTYTBV8W921M5FB
      issuer: https://other.example.com/
      client_id: mas2
      token_endpoint_auth_method: none
";

const ONE_PROVIDER_RENAMED: &str = "\
upstream_oauth2:
  providers:
    - id: 01HFVBY12TMNTYTBV8W921M5FB
      enabled: false
      issuer: https://other.example.com/
      human_name: Other
      client_id: mas2
      token_endpoint_auth_method: none
";

/// Each provider's ID, sealed secret, stored settings and whether it is disabled.
async fn provider_rows(uri: &str) -> Vec<(String, Option<String>, String, bool)> {
    rows(
        uri,
        "SELECT id, encrypted_client_secret, config, disabled_at IS NOT NULL \
         FROM upstream_oauth_providers ORDER BY id",
        |r| {
            (
                r.try_get_by_index(0).unwrap(),
                r.try_get_by_index(1).unwrap(),
                r.try_get_by_index(2).unwrap(),
                r.try_get_by_index(3).unwrap(),
            )
        },
    )
    .await
}

async fn the_provider_sync_story(dir: &Path, uri: &str) {
    write(dir, uri, TWO_PROVIDERS);
    run(dir, &["database", "migrate"]);
    let out = run(dir, &["config", "sync", "--dry-run"]);
    assert!(
        out.contains("upstream provider 01HFVBY12TMNTYTBV8W921M5FA: would be created"),
        "{out}"
    );
    assert!(
        provider_rows(uri).await.is_empty(),
        "a dry run writes nothing"
    );

    let out = run(dir, &["config", "sync"]);
    assert!(
        out.contains("upstream provider 01HFVBY12TMNTYTBV8W921M5FB: created"),
        "{out}"
    );
    let rows = provider_rows(uri).await;
    assert_eq!(rows.len(), 2);
    let sealed = rows[0].1.as_deref().unwrap();
    assert!(!sealed.contains("UpstreamSecret"), "{sealed}");
    assert!(
        !rows[0].2.contains("UpstreamSecret") && rows[0].2.contains("Example SSO"),
        "the settings are stored without the secret: {}",
        rows[0].2
    );
    assert!(!rows[0].3 && !rows[1].3);
    let out = run(dir, &["config", "sync"]);
    assert!(
        out.contains("upstream provider 01HFVBY12TMNTYTBV8W921M5FA: unchanged"),
        "{out}"
    );
    assert_eq!(
        provider_rows(uri).await,
        rows,
        "not even the ciphertext changes"
    );

    write(dir, uri, ONE_PROVIDER_RENAMED);
    let out = run(dir, &["config", "sync"]);
    assert!(
        out.contains(
            "upstream provider 01HFVBY12TMNTYTBV8W921M5FB: updated (position, enabled, human_name)"
        ),
        "{out}"
    );
    assert!(
        out.contains("upstream provider 01HFVBY12TMNTYTBV8W921M5FA: no longer in the configuration, kept enabled"),
        "{out}"
    );
    let rows = provider_rows(uri).await;
    assert_eq!(
        (rows[0].3, rows[1].3),
        (false, true),
        "enabled: false disables"
    );
    let out = run(dir, &["config", "sync", "--prune"]);
    assert!(
        out.contains("upstream provider 01HFVBY12TMNTYTBV8W921M5FA: disabled"),
        "{out}"
    );
    let rows = provider_rows(uri).await;
    assert_eq!(
        rows.len(),
        2,
        "a pruned provider is disabled, its links kept"
    );
    assert!(rows[0].3 && rows[1].3);
    let out = run(dir, &["config", "sync", "--prune"]);
    assert!(!out.contains("disabled"), "nothing left to do: {out}");
}

#[tokio::test]
async fn providers_sync_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let uri = format!("sqlite://{}", dir.path().join("mas.db").display());
    the_provider_sync_story(dir.path(), &uri).await;
}

#[tokio::test]
async fn providers_sync_on_postgres() {
    let Some(pg) = mas_testing::TestPostgres::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    the_provider_sync_story(dir.path(), pg.url()).await;
}
