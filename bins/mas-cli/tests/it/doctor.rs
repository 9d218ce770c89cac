//! `mas-cli doctor` against a small fake homeserver that answers the requests doctor
//! makes, so each check can be made to pass or fail here (the real-Synapse run is in
//! `tests/synapse/test_doctor.py`).

use std::path::Path;

use axum::Json;
use axum::extract::Path as UrlPath;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;

use crate::{mas_cli, stderr};

/// How the fake Synapse names itself.
#[derive(Clone, Copy)]
struct Naming {
    /// The server name it really has.
    real: &'static str,
    /// Whether `/_matrix/key/v2/server` is served (a listener with `keys`).
    keys_served: bool,
}

/// Starts the fake on a free port and returns its base URL. It is this service too, as
/// far as doctor can tell: `http.public_base` points at it.
async fn fake_homeserver(naming: Naming) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/", listener.local_addr().unwrap());
    let issuer = json!({ "issuer": base });
    let metadata = move || {
        let issuer = issuer.clone();
        async move { Json(issuer) }
    };
    let app = axum::Router::new()
        .route(
            "/_matrix/client/versions",
            get(|| async { Json(json!({ "versions": ["v1.11"] })) }),
        )
        .route(
            "/_matrix/key/v2/server",
            get(move || async move {
                if naming.keys_served {
                    Json(json!({ "server_name": naming.real })).into_response()
                } else {
                    StatusCode::NOT_FOUND.into_response()
                }
            }),
        )
        .route(
            "/_synapse/mas/is_localpart_available",
            get(|| async { Json(json!({})) }),
        )
        .route(
            "/_synapse/admin/v1/username_available",
            get(|| async { Json(json!({ "available": true })) }),
        )
        .route(
            "/_synapse/admin/v2/users/{user_id}",
            get(move |UrlPath(user_id): UrlPath<String>| async move {
                // As Synapse: a user ID on another server name is refused.
                let local = user_id
                    .split_once(':')
                    .is_some_and(|(_, server)| server == naming.real);
                let (status, errcode) = if local {
                    (StatusCode::NOT_FOUND, "M_NOT_FOUND")
                } else {
                    (StatusCode::BAD_REQUEST, "M_UNKNOWN")
                };
                (status, Json(json!({ "errcode": errcode }))).into_response()
            }),
        )
        .route("/_matrix/client/v1/auth_metadata", get(metadata.clone()))
        .route("/.well-known/openid-configuration", get(metadata));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

/// Runs doctor in a fresh directory with a generated configuration pointed at `base`.
async fn doctor(base: &str, kind: &str, homeserver: &str) -> (Option<i32>, Vec<String>, String) {
    let dir = tempfile::tempdir().unwrap();
    let generated = mas_cli(dir.path(), &["config", "generate"]);
    std::fs::write(dir.path().join("c.yaml"), &generated.stdout).unwrap();
    std::fs::write(
        dir.path().join("hs.yaml"),
        format!(
            "http:\n  public_base: {base}\nmatrix:\n  kind: {kind}\n  homeserver: '{homeserver}'\n  endpoint: {base}\n"
        ),
    )
    .unwrap();
    let path = dir.path().to_owned();
    let out = tokio::task::spawn_blocking(move || run_doctor(&path))
        .await
        .unwrap();
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    (out.status.code(), lines, stderr(&out))
}

fn run_doctor(dir: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_mas-cli"))
        .current_dir(dir)
        .env_remove("MAS_CONFIG")
        .env("NO_PROXY", "127.0.0.1")
        .args(["-c", "c.yaml", "-c", "hs.yaml", "doctor"])
        .output()
        .unwrap()
}

/// The line of the `matrix.homeserver` check.
fn homeserver_line(lines: &[String]) -> &str {
    lines
        .iter()
        .find(|l| l.split_whitespace().nth(1) == Some("matrix.homeserver:"))
        .unwrap_or_else(|| panic!("no matrix.homeserver line: {lines:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_name_that_differs_from_synapse_fails_and_names_the_key() {
    let base = fake_homeserver(Naming {
        real: "localhost",
        keys_served: true,
    })
    .await;
    // The generated default, next to a Synapse named `localhost`.
    let (code, lines, err) = doctor(&base, "synapse", "localhost:8008").await;
    assert_eq!(code, Some(1), "{lines:?} {err}");
    let line = homeserver_line(&lines);
    assert!(line.starts_with("FAIL  matrix.homeserver: "), "{line}");
    assert!(
        line.contains("set matrix.homeserver to `localhost`"),
        "{line}"
    );
    assert!(!lines.iter().any(|l| l == "all checks passed"), "{lines:?}");
    let failed: Vec<_> = lines.iter().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(failed.len(), 1, "the only problem is the name: {lines:?}");

    let (code, lines, err) = doctor(&base, "synapse", "localhost").await;
    assert_eq!(code, Some(0), "{lines:?} {err}");
    assert!(
        homeserver_line(&lines).starts_with("ok    matrix.homeserver: "),
        "{lines:?}"
    );
    assert_eq!(lines.last().map(String::as_str), Some("all checks passed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_key_document_legacy_asks_the_admin_api_and_modern_warns() {
    let base = fake_homeserver(Naming {
        real: "example.com",
        keys_served: false,
    })
    .await;
    let (code, lines, err) = doctor(&base, "synapse_legacy", "localhost:8008").await;
    assert_eq!(code, Some(1), "{lines:?} {err}");
    let line = homeserver_line(&lines);
    assert!(line.starts_with("FAIL  matrix.homeserver: "), "{line}");
    assert!(line.contains("set matrix.homeserver"), "{line}");

    let (code, lines, err) = doctor(&base, "synapse_legacy", "example.com").await;
    assert_eq!(code, Some(0), "{lines:?} {err}");
    assert!(homeserver_line(&lines).starts_with("ok"), "{lines:?}");

    // The modern API has no such question: doctor says it could not check.
    let (code, lines, err) = doctor(&base, "synapse", "localhost:8008").await;
    assert_eq!(code, Some(0), "{lines:?} {err}");
    let line = homeserver_line(&lines);
    assert!(line.starts_with("warn  matrix.homeserver: "), "{line}");
    assert!(line.contains("server_name in homeserver.yaml"), "{line}");
}
