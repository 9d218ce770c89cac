//! The embedded default: no configuration, a fresh directory.

use std::process::Command;
use std::time::Duration;

use crate::start;

#[test]
fn starts_with_no_configuration_and_reuses_its_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    // The embedded default is one whole deployment: it runs the job worker and hears
    // its own revocations (within a poll of the revocation log after start).
    let mut health = String::new();
    for _ in 0..50 {
        let (status, body) = server.get("/health");
        assert_eq!(status, 200, "{body}");
        health = body;
        if health.contains("revocation feed: live") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        health,
        "ok\ndatabase: reachable\nrevocation feed: live\njob worker: running\n"
    );
    assert_eq!(server.get("/no-such-page").0, 404);
    let (status, discovery) = server.get("/.well-known/openid-configuration");
    assert_eq!(status, 200);
    assert!(
        discovery.contains(r#""issuer":"http://localhost:8080/""#),
        "{discovery}"
    );
    let (status, jwks) = server.get("/oauth2/keys.json");
    assert_eq!(status, 200);
    assert!(
        jwks.contains(r#""kty":"RSA""#) && jwks.contains(r#""kty":"EC""#),
        "{jwks}"
    );

    let config_path = dir.path().join("mas-data/config.yaml");
    let first = std::fs::read_to_string(&config_path).unwrap();
    assert!(
        first.contains("address: 127.0.0.1:8080"),
        "the default listens on loopback:8080"
    );
    assert!(first.contains("uri: sqlite://mas-data/mas.db"));
    assert!(dir.path().join("mas-data/mas.db").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&config_path)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the config holds secrets");
        let mode_of = |name: &str| {
            std::fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode_of("mas-data"), 0o700);
        assert_eq!(mode_of("mas-data/mas.db"), 0o600, "the database holds keys");
        // In WAL mode SQLite keeps these open while running, with the database's mode.
        assert_eq!(mode_of("mas-data/mas.db-wal"), 0o600);
        assert_eq!(mode_of("mas-data/mas.db-shm"), 0o600);
    }

    let (status, logs) = server.terminate();
    assert!(status.success(), "graceful shutdown exits 0: {status:?}");
    assert!(logs.iter().any(|l| l.contains("stopped")), "{logs:?}");

    let server = start(dir.path());
    assert_eq!(server.get("/health").0, 200);
    let second = std::fs::read_to_string(&config_path).unwrap();
    assert_eq!(first, second, "a second start keeps the same secrets");
    let (status, logs) = server.terminate();
    assert!(
        status.success(),
        "graceful shutdown exits 0: {status:?} {logs:?}"
    );
}

#[test]
fn the_startup_line_says_where_things_are() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let mut lines = Vec::new();
    while let Ok(line) = server.logs.recv_timeout(Duration::from_secs(10)) {
        if line.contains("embedded default") {
            lines.push(line);
            break;
        }
    }
    let line = lines
        .pop()
        .expect("a start-up line about the embedded default");
    assert!(line.contains("mas-data/config.yaml"), "{line}");
    assert!(line.contains("sqlite://mas-data/mas.db"), "{line}");
    assert!(
        line.contains("matrix_authentication_service.endpoint"),
        "{line}"
    );
    // Synapse calls the listener directly, not the public (proxied) address.
    assert!(
        line.contains(&format!("endpoint at http://{}/ ", server.address())),
        "{line}"
    );
    assert!(
        line.contains("matrix.homeserver there (now `localhost:8008`) to Synapse's server_name"),
        "{line}"
    );
    let config = std::fs::read_to_string(dir.path().join("mas-data/config.yaml")).unwrap();
    let secret = config
        .lines()
        .skip_while(|l| !l.starts_with("matrix:"))
        .find_map(|l| l.trim().strip_prefix("secret: "))
        .unwrap()
        .to_owned();
    assert!(!line.contains(&secret), "the secret is never logged");
    server.terminate();
}

#[test]
fn a_broken_configuration_stops_start_with_the_key_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.yaml"),
        "matrix:\n  kind: synapse_legcy\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_mas-server"))
        .current_dir(dir.path())
        .args(["-c", "c.yaml"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "c.yaml: matrix.kind: unknown value `synapse_legcy`; did you mean `synapse_legacy`?"
        ),
        "{stderr}"
    );
    assert!(
        !dir.path().join("mas-data").exists(),
        "no embedded default when a config is given"
    );
}

#[test]
fn account_keys_that_are_not_honoured_are_named_at_start() {
    let dir = tempfile::tempdir().unwrap();
    // Recovery sets a password: with passwords off it can do nothing.
    let server = crate::start_with_env(
        dir.path(),
        &[
            ("MAS_ACCOUNT__PASSWORD_RECOVERY_ENABLED", "true"),
            ("MAS_PASSWORDS__ENABLED", "false"),
        ],
    );
    let (_, logs) = server.terminate();
    let warnings: Vec<_> = logs.iter().filter(|l| l.contains("WARN")).collect();
    assert!(
        warnings
            .iter()
            .any(|l| l.contains("account.password_recovery_enabled is true")
                && l.contains("has no effect")),
        "{logs:?}"
    );
    assert_eq!(
        warnings.iter().filter(|l| l.contains("account.")).count(),
        1,
        "only the key that was set: {warnings:?}"
    );
}
