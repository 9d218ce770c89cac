//! `mas-server` as a user runs it: no configuration, a fresh directory.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::missing_panics_doc,
    clippy::must_use_candidate,
    clippy::result_large_err
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A listener on a free port, so tests never collide with each other or port 8080.
const TEST_LISTENERS: &str =
    r#"[{name="web",resources=[{name="health"}],binds=[{address="127.0.0.1:0"}]}]"#;

struct Server {
    child: Child,
    address: String,
    logs: mpsc::Receiver<String>,
}

fn start(dir: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mas-server"))
        .current_dir(dir)
        .env_remove("MAS_CONFIG")
        .env("MAS_HTTP__LISTENERS", TEST_LISTENERS)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, logs) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let address = loop {
        let line = logs
            .recv_timeout(Duration::from_mins(1))
            .expect("mas-server did not report a listening address");
        if let Some(rest) = line.split("address=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    Server {
        child,
        address,
        logs,
    }
}

impl Server {
    fn get(&self, path: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(&self.address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
        let body = response
            .split("\r\n\r\n")
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        (status, body)
    }

    /// Sends SIGTERM and returns the exit status and the rest of the log.
    fn terminate(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let mut waited = Duration::ZERO;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                waited < Duration::from_secs(20),
                "mas-server did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
            waited += Duration::from_millis(50);
        };
        (status, self.logs.try_iter().collect())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

#[test]
fn starts_with_no_configuration_and_reuses_its_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    assert_eq!(server.get("/health"), (200, "ok\n".to_owned()));
    assert_eq!(server.get("/no-such-page").0, 404);

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
    }

    let (status, logs) = server.terminate();
    assert!(status.success(), "graceful shutdown exits 0: {status:?}");
    assert!(logs.iter().any(|l| l.contains("stopped")), "{logs:?}");

    let server = start(dir.path());
    assert_eq!(server.get("/health").0, 200);
    let second = std::fs::read_to_string(&config_path).unwrap();
    assert_eq!(first, second, "a second start keeps the same secrets");
    let (status, _) = server.terminate();
    assert!(status.success());
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
