//! `mas-server` as a user runs it: no configuration, a fresh directory.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::missing_panics_doc,
    clippy::must_use_candidate,
    clippy::result_large_err,
    clippy::too_many_lines,
    clippy::large_futures
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A listener on a free port, so tests never collide with each other or port 8080.
const TEST_LISTENERS: &str = r#"[{name="web",resources=[{name="health"},{name="discovery"},{name="oauth"}],binds=[{address="127.0.0.1:0"}]}]"#;

mod embedded;
mod hostile;
mod oidc;
mod postgres;
mod slow_clients;

/// A running `mas-server` process, killed when dropped.
pub struct Server {
    child: Child,
    address: String,
    /// Lines logged before the listening address was known.
    early_logs: Vec<String>,
    logs: mpsc::Receiver<String>,
}

/// Starts `mas-server` in `dir` on the embedded default (with a free port).
pub fn start(dir: &Path) -> Server {
    start_with(dir, &[])
}

/// Starts `mas-server` in `dir` with `args`, listening on a free port.
pub fn start_with(dir: &Path, args: &[&str]) -> Server {
    spawn(dir, args, Some(TEST_LISTENERS), &[])
}

/// Starts `mas-server` in `dir` on a free port, with extra environment variables.
pub fn start_with_env(dir: &Path, env: &[(&str, &str)]) -> Server {
    spawn(dir, &[], Some(TEST_LISTENERS), env)
}

/// Starts `mas-server` in `dir` with `args` and the listeners of its configuration.
pub fn start_configured(dir: &Path, args: &[&str]) -> Server {
    spawn(dir, args, None, &[])
}

fn spawn(dir: &Path, args: &[&str], listeners: Option<&str>, env: &[(&str, &str)]) -> Server {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mas-server"));
    if let Some(listeners) = listeners {
        command.env("MAS_HTTP__LISTENERS", listeners);
    }
    command.envs(env.iter().copied());
    let mut child = command
        .current_dir(dir)
        .args(args)
        .env_remove("MAS_CONFIG")
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
    let mut early_logs = Vec::new();
    let address = loop {
        let line = logs
            .recv_timeout(Duration::from_mins(1))
            .unwrap_or_else(|_| {
                panic!("mas-server did not report a listening address: {early_logs:?}")
            });
        if let Some(rest) = line.split("address=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
        // The same line as JSON (`--log-format json`).
        if let Some(rest) = line.split("\"address\":\"").nth(1) {
            break rest.split('"').next().unwrap().to_owned();
        }
        early_logs.push(line);
    };
    Server {
        child,
        address,
        early_logs,
        logs,
    }
}

impl Server {
    /// GETs `path` from the server.
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(&self.address, path)
    }

    /// Where the server listens.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Sends SIGTERM and returns the exit status and the whole log.
    pub fn terminate(mut self) -> (std::process::ExitStatus, Vec<String>) {
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
        let mut logs = std::mem::take(&mut self.early_logs);
        logs.extend(self.logs.try_iter());
        (status, logs)
    }
}

/// A plain HTTP/1.1 GET: status and body.
pub fn http_get(address: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
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

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

#[test]
fn json_logs_are_one_object_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_env(dir.path(), &[("MAS_LOG_FORMAT", "json")]);
    assert_eq!(server.get("/health").0, 200);
    let (status, logs) = server.terminate();
    assert!(status.success(), "{status:?}");
    assert!(logs.len() >= 3, "{logs:#?}");
    let events: Vec<serde_json::Value> = logs
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    for event in &events {
        for key in ["timestamp", "level", "target", "message"] {
            assert!(event.get(key).is_some(), "no {key} in {event}");
        }
    }
    // The line naming the address was read by `start` (as JSON); the last says so.
    let stopped = events.last().unwrap();
    assert_eq!(
        (&stopped["message"], &stopped["level"]),
        (&"stopped".into(), &"INFO".into())
    );
    // Fields of an event sit beside its message.
    assert!(
        events
            .iter()
            .any(|e| e.as_object().is_some_and(|o| o.len() > 5)),
        "{events:#?}"
    );
}

#[test]
fn metrics_are_served_for_prometheus_when_the_exporter_is_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_env(
        dir.path(),
        &[
            (
                "MAS_HTTP__LISTENERS",
                r#"[{name="web",resources=[{name="health"},{name="prometheus"},{name="compat"}],binds=[{address="127.0.0.1:0"}]}]"#,
            ),
            ("MAS_TELEMETRY__METRICS__EXPORTER", "prometheus"),
        ],
    );
    assert_eq!(server.get("/health").0, 200);
    let (status, text) = server.get("/metrics");
    assert_eq!(status, 200, "{text}");
    assert!(
        text.lines().any(
            |l| l.starts_with("http_server_request_duration_seconds_count{")
                && l.contains(r#"http_route="/health""#)
        ),
        "{text}"
    );
    // The database pool, read at the scrape.
    assert!(
        text.lines()
            .any(|l| l.starts_with("mas_db_connections{") && l.contains(r#"state="idle""#)),
        "{text}"
    );
    assert!(
        text.contains(r#"service_name="matrix-authentication-service""#),
        "{text}"
    );
    let (status, _) = server.terminate();
    assert!(status.success());
}
