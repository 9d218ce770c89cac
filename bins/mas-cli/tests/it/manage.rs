//! `mas-cli manage register-user` and `set-password`, checked in the database, with a
//! fake homeserver answering the username checks.

use std::path::Path;
use std::process::{Command, Stdio};

use sea_orm::{ConnectionTrait, Database, Statement};

use crate::{mas_cli, stderr};

/// The shared secret the fake homeserver expects.
const SECRET: &str = "fake-homeserver-secret";

/// A stand-in for Synapse's username check, on both APIs (`/_synapse/mas/` and the admin
/// API of the legacy generation), answering as Synapse does: a name starting with `_`
/// breaks its rules, a name in `taken` is in use, any other is available. Serves on a
/// thread of its own for the rest of the test process, so the blocking `mas-cli` runs
/// cannot starve it.
fn fake_homeserver(taken: &'static [&'static str]) -> String {
    use axum::extract::Query;
    use axum::http::{HeaderMap, StatusCode};
    use serde_json::{Value, json};
    use std::collections::HashMap;

    fn answer(
        headers: &HeaderMap,
        name: Option<&String>,
        taken: &[&str],
        available: Value,
    ) -> (StatusCode, axum::Json<Value>) {
        let refuse = |status, errcode: &str, error: &str| {
            (
                status,
                axum::Json(json!({ "errcode": errcode, "error": error })),
            )
        };
        if headers.get("authorization").and_then(|v| v.to_str().ok())
            != Some(&format!("Bearer {SECRET}"))
        {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "M_UNKNOWN_TOKEN",
                "Invalid access token",
            );
        }
        match name {
            None => refuse(
                StatusCode::BAD_REQUEST,
                "M_MISSING_PARAM",
                "Missing localpart",
            ),
            Some(name) if name.starts_with('_') => refuse(
                StatusCode::BAD_REQUEST,
                "M_INVALID_USERNAME",
                "User ID may not begin with _",
            ),
            Some(name) if taken.contains(&name.as_str()) => refuse(
                StatusCode::BAD_REQUEST,
                "M_USER_IN_USE",
                "User ID already taken.",
            ),
            Some(_) => (StatusCode::OK, axum::Json(available)),
        }
    }

    let app = axum::Router::new()
        .route(
            "/_synapse/mas/is_localpart_available",
            axum::routing::get(
                move |headers: HeaderMap, Query(q): Query<HashMap<String, String>>| async move {
                    answer(&headers, q.get("localpart"), taken, json!({}))
                },
            ),
        )
        .route(
            "/_synapse/admin/v1/username_available",
            axum::routing::get(
                move |headers: HeaderMap, Query(q): Query<HashMap<String, String>>| async move {
                    answer(
                        &headers,
                        q.get("username"),
                        taken,
                        json!({ "available": true }),
                    )
                },
            ),
        );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
    });
    format!("http://{address}/")
}

/// Points the configuration at a homeserver (`hs.yaml`, read after `c.yaml`).
fn use_homeserver(dir: &Path, endpoint: &str, kind: &str) {
    std::fs::write(
        dir.join("hs.yaml"),
        format!("matrix:\n  endpoint: {endpoint}\n  kind: {kind}\n  secret: {SECRET}\n"),
    )
    .unwrap();
}

fn setup() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let generated = mas_cli(dir.path(), &["config", "generate"]);
    let uri = format!("sqlite://{}", dir.path().join("mas.db").display());
    let text = String::from_utf8(generated.stdout)
        .unwrap()
        .replace("uri: postgresql://", &format!("uri: {uri}"));
    std::fs::write(dir.path().join("c.yaml"), text).unwrap();
    use_homeserver(dir.path(), &fake_homeserver(&["taken"]), "synapse");
    let migrated = mas_cli(dir.path(), &["-c", "c.yaml", "database", "migrate"]);
    assert!(migrated.status.success(), "{}", stderr(&migrated));
    (dir, uri)
}

fn manage(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["-c", "c.yaml", "-c", "hs.yaml", "manage"];
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
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
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
async fn register_user_asks_the_homeserver_and_creates_nothing_it_refuses() {
    let (dir, uri) = setup();
    let endpoint = fake_homeserver(&["taken"]);
    // Both Synapse generations: the `/_synapse/mas/` API and the admin API.
    for kind in ["synapse", "synapse_legacy"] {
        use_homeserver(dir.path(), &endpoint, kind);
        for (name, rule) in [
            (
                "_bridge_bot",
                "the homeserver refuses the username `_bridge_bot`: User ID may not begin with _ (M_INVALID_USERNAME)",
            ),
            (
                "taken",
                "the homeserver refuses the username `taken`: User ID already taken. (M_USER_IN_USE)",
            ),
        ] {
            let out = manage(
                dir.path(),
                &[
                    "register-user",
                    name,
                    "-p",
                    "correct horse battery staple",
                    "-y",
                ],
            );
            assert_eq!(out.status.code(), Some(1), "{kind} {name}");
            assert!(
                stderr(&out).contains(rule),
                "{kind} {name}: {}",
                stderr(&out)
            );
            assert!(
                out.stdout.is_empty(),
                "{kind} {name}: refused before the summary"
            );
        }
    }
    assert!(rows(&uri, "SELECT username FROM users").await.is_empty());
    assert!(rows(&uri, "SELECT id FROM queue_jobs").await.is_empty());
    let out = manage(dir.path(), &["register-user", "erin", "-y"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[tokio::test]
async fn register_user_refuses_when_the_homeserver_cannot_be_asked() {
    let (dir, uri) = setup();
    // A port nothing listens on any more.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}/", closed.local_addr().unwrap());
    drop(closed);
    use_homeserver(dir.path(), &endpoint, "synapse");
    let out = manage(dir.path(), &["register-user", "dave", "-y"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(
        text.contains(&format!(
            "cannot ask the homeserver at {endpoint} (matrix.endpoint) whether `dave` is available: the homeserver is unreachable"
        )),
        "{text}"
    );

    // A homeserver that refuses the secret cannot answer either.
    use_homeserver(dir.path(), &fake_homeserver(&[]), "synapse");
    std::fs::write(
        dir.path().join("hs.yaml"),
        std::fs::read_to_string(dir.path().join("hs.yaml"))
            .unwrap()
            .replace(SECRET, "not-the-secret"),
    )
    .unwrap();
    let out = manage(dir.path(), &["register-user", "dave", "-y"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("the homeserver refused (401, M_UNKNOWN_TOKEN)"),
        "{}",
        stderr(&out)
    );
    assert!(rows(&uri, "SELECT username FROM users").await.is_empty());
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

/// `bot` and `root` (who may request admin), registered.
fn personal_setup() -> (tempfile::TempDir, String) {
    let (dir, uri) = setup();
    for (name, admin) in [("bot", false), ("root", true)] {
        let mut args = vec!["register-user", name, "-y"];
        if admin {
            args.push("-a");
        }
        let out = manage(dir.path(), &args);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    (dir, uri)
}

fn issue_personal(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["issue-personal-access-token"];
    all.extend_from_slice(args);
    manage(dir, &all)
}

#[tokio::test]
async fn personal_access_tokens_refuse_bad_input_and_store_nothing() {
    let (dir, uri) = personal_setup();
    let issue = |args: &[&str]| issue_personal(dir.path(), args);
    // Refused, each with its reason, and nothing stored.
    for (args, says) in [
        (&["nobody"][..], "no user `nobody`"),
        (
            &["bot", "--scope", "made:up"],
            "--scope: unknown scope `made:up`",
        ),
        (
            &["bot", "--scope", "urn:matrix:client:device:ABC"],
            "personal access tokens carry no device",
        ),
        (
            &["bot", "--scope", "urn:synapse:admin:*"],
            "`bot` may not request admin rights",
        ),
        (
            &["bot", "--expires-in", "0"],
            "--expires-in: between 1 second",
        ),
        (&["bot", "--name", " "], "--name: give 1 to 255 characters"),
    ] {
        let out = issue(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty());
    }
    assert!(
        rows(&uri, "SELECT id FROM personal_sessions")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn personal_access_tokens_are_issued_and_revoked() {
    let (dir, uri) = personal_setup();
    let issue = |args: &[&str]| issue_personal(dir.path(), args);
    // Issued: the token alone on stdout, the rest on stderr; stored as a hash.
    let out = issue(&["bot", "--name", "CI deploys", "--expires-in", "3600"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let token = String::from_utf8(out.stdout.clone()).unwrap();
    let token = token.strip_suffix('\n').unwrap();
    assert!(
        token.starts_with("mpt_") && !token.contains('\n'),
        "{token}"
    );
    assert!(!stderr(&out).contains(token));
    assert!(
        stderr(&out)
            .contains("of `bot` (\"CI deploys\"): scope `urn:matrix:client:api:*`, expires "),
        "{}",
        stderr(&out)
    );
    let sessions = rows(&uri, "SELECT id, human_name, scope FROM personal_sessions").await;
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0][1..], ["CI deploys", "urn:matrix:client:api:*"]);
    let session_id = sessions[0][0].clone();
    let stored = rows(
        &uri,
        "SELECT count(*) FROM personal_access_tokens WHERE expires_at IS NOT NULL",
    )
    .await;
    assert_eq!(stored, vec![vec!["1".to_owned()]]);

    // An admin may carry admin scopes.
    let out = issue(&[
        "root",
        "--scope",
        "urn:matrix:client:api:*",
        "--scope",
        "urn:synapse:admin:*",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("never expires"), "{}", stderr(&out));

    // Revoked by the token, then by the session ID (already), then unknown ones.
    let revoke = |what: &str| manage(dir.path(), &["revoke-personal-access-token", what]);
    let out = revoke(token);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8(out.stdout.clone()).unwrap(),
        format!("revoked personal session {session_id} of `bot`\n")
    );
    let revoked = rows(&uri, &format!("SELECT count(*) FROM personal_sessions WHERE id = '{session_id}' AND revoked_at IS NOT NULL")).await;
    assert_eq!(revoked, vec![vec!["1".to_owned()]]);
    let out = revoke(&session_id);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("was already revoked")
    );
    let wrong = format!("{}x", &token[..token.len() - 1]);
    for (what, says) in [
        (wrong.as_str(), "no such personal access token"),
        (
            "01JF8X4R2ZQK9W7V3N5M6B1C0F",
            "no personal session 01JF8X4R2ZQK9W7V3N5M6B1C0F",
        ),
        ("mct_pasted_by_mistake", "neither a personal access token"),
    ] {
        let out = revoke(what);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains(says), "{}", stderr(&out));
        assert!(!stderr(&out).contains(&wrong), "{}", stderr(&out));
        assert!(!stderr(&out).contains("mct_pasted"), "{}", stderr(&out));
    }
}

#[tokio::test]
async fn registration_tokens_are_issued_as_asked_and_bad_input_stores_nothing() {
    let (dir, uri) = setup();
    let issue = |args: &[&str]| {
        let mut all = vec!["issue-user-registration-token"];
        all.extend_from_slice(args);
        manage(dir.path(), &all)
    };
    for (args, says) in [
        (&["--token", "not a token"][..], "--token: 1 to 64 letters"),
        (&["--usage-limit", "0"], "--usage-limit: between 1 and"),
        (&["--expires-in", "0"], "--expires-in: between 1 second"),
    ] {
        let out = issue(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty());
    }
    assert!(
        rows(&uri, "SELECT token FROM registration_tokens")
            .await
            .is_empty()
    );

    // A random one, alone on stdout.
    let out = issue(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let random = String::from_utf8(out.stdout.clone()).unwrap();
    let random = random.trim_end();
    assert_eq!(random.len(), 20, "{random}");
    assert!(stderr(&out).contains("any number of registrations, never expires"));
    // One as asked, with its limits; the same value twice is refused.
    let out = issue(&[
        "--token",
        "invite-2026",
        "--usage-limit",
        "3",
        "--expires-in",
        "3600",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8(out.stdout.clone()).unwrap(),
        "invite-2026\n"
    );
    assert!(
        stderr(&out).contains("3 registrations, expires"),
        "{}",
        stderr(&out)
    );
    let again = issue(&["--token", "invite-2026"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("a registration token with this value exists"));
    let stored = rows(
        &uri,
        "SELECT token, CAST(usage_limit AS TEXT) FROM registration_tokens ORDER BY token",
    )
    .await;
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert!(
        stored.contains(&vec!["invite-2026".to_owned(), "3".to_owned()]),
        "{stored:?}"
    );
}
