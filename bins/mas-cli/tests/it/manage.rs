//! `mas-cli manage register-user` and `set-password`, checked in the database.

use std::path::Path;
use std::process::{Command, Stdio};

use sea_orm::{ConnectionTrait, Database, Statement};

use crate::{mas_cli, stderr};

fn setup() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let generated = mas_cli(dir.path(), &["config", "generate"]);
    let uri = format!("sqlite://{}", dir.path().join("mas.db").display());
    let text = String::from_utf8(generated.stdout)
        .unwrap()
        .replace("uri: postgresql://", &format!("uri: {uri}"));
    std::fs::write(dir.path().join("c.yaml"), text).unwrap();
    let migrated = mas_cli(dir.path(), &["-c", "c.yaml", "database", "migrate"]);
    assert!(migrated.status.success(), "{}", stderr(&migrated));
    (dir, uri)
}

fn manage(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["-c", "c.yaml", "manage"];
    all.extend_from_slice(args);
    Command::new(env!("CARGO_BIN_EXE_mas-cli"))
        .current_dir(dir)
        .env_remove("MAS_CONFIG")
        .args(&all)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

async fn rows(uri: &str, sql: &str) -> Vec<Vec<String>> {
    let db = Database::connect(uri).await.unwrap();
    let result = db
        .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap();
    let out = result
        .iter()
        .map(|row| {
            (0..)
                .map_while(|i| {
                    row.try_get_by_index::<String>(i)
                        .ok()
                        .or_else(|| row.try_get_by_index::<i64>(i).ok().map(|n| n.to_string()))
                        .or_else(|| row.try_get_by_index::<bool>(i).ok().map(|b| b.to_string()))
                })
                .collect()
        })
        .collect();
    db.close().await.unwrap();
    out
}

#[tokio::test]
async fn register_user_creates_the_user_with_a_hashed_password() {
    let (dir, uri) = setup();
    let out = manage(
        dir.path(),
        &[
            "register-user",
            "alice",
            "-p",
            "correct horse battery staple",
            "-e",
            "alice@example.com",
            "-a",
            "-d",
            "Alice",
            "-y",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("User `alice` created"), "{stdout}");

    let users = rows(&uri, "SELECT username, can_request_admin FROM users").await;
    assert_eq!(users, vec![vec!["alice".to_owned(), "1".to_owned()]]);
    let passwords = rows(&uri, "SELECT hashed_password, version FROM user_passwords").await;
    assert!(
        passwords[0][0].starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{passwords:?}"
    );
    assert!(!passwords[0][0].contains("correct horse"));
    assert_eq!(passwords[0][1], "1");
    let emails = rows(&uri, "SELECT email FROM user_emails").await;
    assert_eq!(emails, vec![vec!["alice@example.com".to_owned()]]);
    let jobs = rows(&uri, "SELECT queue, payload FROM queue_jobs").await;
    assert_eq!(jobs[0][0], "provision-user");
    assert!(jobs[0][1].contains(r#""display_name":"Alice""#), "{jobs:?}");

    let again = manage(
        dir.path(),
        &[
            "register-user",
            "alice",
            "-p",
            "another long passphrase",
            "-y",
        ],
    );
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("the username `alice` is taken"),
        "{}",
        stderr(&again)
    );
}

#[tokio::test]
async fn register_user_refuses_bad_input_and_creates_nothing() {
    let (dir, uri) = setup();
    let cases: &[(&[&str], &str)] = &[
        (&["register-user", "Bob", "-y"], "is not a valid username"),
        (
            &["register-user", "bob", "-p", "password", "-y"],
            "the password is too weak",
        ),
        (
            &["register-user", "bob", "-e", "not-an-email", "-y"],
            "is not a valid email address",
        ),
        (&["register-user", "bob"], "pass --yes to confirm"),
    ];
    for (args, message) in cases {
        let out = manage(dir.path(), args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }
    assert!(rows(&uri, "SELECT username FROM users").await.is_empty());
    let out = manage(
        dir.path(),
        &[
            "register-user",
            "bob",
            "-p",
            "password",
            "--ignore-password-complexity",
            "-y",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

#[tokio::test]
async fn set_password_adds_a_new_current_hash() {
    let (dir, uri) = setup();
    assert!(
        manage(dir.path(), &["register-user", "carol", "-y"])
            .status
            .success()
    );
    assert!(rows(&uri, "SELECT id FROM user_passwords").await.is_empty());
    let weak = manage(dir.path(), &["set-password", "carol", "carol123"]);
    assert_eq!(weak.status.code(), Some(1));
    let out = manage(
        dir.path(),
        &[
            "set-password",
            "carol",
            "a very long and unusual passphrase",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(rows(&uri, "SELECT id FROM user_passwords").await.len(), 1);
    let missing = manage(
        dir.path(),
        &[
            "set-password",
            "nobody",
            "a very long and unusual passphrase",
        ],
    );
    assert!(
        stderr(&missing).contains("no user `nobody`"),
        "{}",
        stderr(&missing)
    );
}
