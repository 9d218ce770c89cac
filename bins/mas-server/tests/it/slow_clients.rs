//! Clients that open connections and then send nothing, too little, or stop using them,
//! against the real server: each is disconnected in time, and a full connection table
//! empties itself.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::{Server, http_get, start, start_with_env};

/// Figures small enough for quick tests (see `MAS_TEST_CONNECTION_LIMITS` in
/// `crates/cli/src/serve/connections.rs`); the idle timeout stays well apart from the
/// header timeout so a loaded machine cannot mistake one for the other.
fn start_short(dir: &std::path::Path, header_ms: u64, idle_ms: u64, max: usize) -> Server {
    let spec = format!("header_read_ms={header_ms},idle_ms={idle_ms},max_connections={max}");
    start_with_env(dir, &[("MAS_TEST_CONNECTION_LIMITS", &spec)])
}

/// Waits up to `limit` for the server to close `stream`, and says after how long. Bytes
/// the server sends first (a response) are returned with it.
fn closed_within(stream: &mut TcpStream, limit: Duration) -> (Duration, Vec<u8>) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.saturating_sub(started.elapsed());
        assert!(
            !left.is_zero(),
            "the connection is still open after {limit:?} (received {:?})",
            String::from_utf8_lossy(&received)
        );
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return (started.elapsed(), received),
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
                return (started.elapsed(), received);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("reading: {e}"),
        }
    }
}

/// Sends a keep-alive `GET /health` on `stream` and reads exactly its response.
fn keep_alive_health(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "closed before the response ended: {response:?}");
        response.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&response).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .expect("a content-length");
            if body.len() >= length {
                return text;
            }
        }
    }
}

#[test]
fn a_silent_connection_is_closed_by_the_shipped_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let mut silent = TcpStream::connect(server.address()).unwrap();
    // The shipped figure is 10 s; before, the connection stayed open for good.
    let (after, received) = closed_within(&mut silent, Duration::from_secs(25));
    assert!(after >= Duration::from_secs(9), "closed after {after:?}");
    assert!(received.is_empty(), "{received:?}");
    assert_eq!(server.get("/health").0, 200);
    server.terminate();
}

#[test]
fn partial_request_heads_are_cut_off_even_when_trickled() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_short(dir.path(), 1500, 8000, 64);

    // Half a request line, then nothing.
    let mut partial = TcpStream::connect(server.address()).unwrap();
    partial.write_all(b"GET /health HT").unwrap();
    let (after, received) = closed_within(&mut partial, Duration::from_secs(12));
    assert!(
        after >= Duration::from_millis(1200),
        "closed after {after:?}"
    );
    assert!(received.is_empty(), "{received:?}");

    // A byte every 300 ms: activity does not buy more time for the head.
    let mut trickle = TcpStream::connect(server.address()).unwrap();
    trickle
        .write_all(b"GET /health HTTP/1.1\r\nX-Pad: ")
        .unwrap();
    trickle
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 64];
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(12),
            "a trickled head kept the connection open"
        );
        match trickle.read(&mut buf) {
            Ok(0) => break,
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
                break;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                // The server may close between the read and this write.
                let _ = trickle.write_all(b"a");
            }
            other => panic!("unexpected read: {other:?}"),
        }
    }
    assert_eq!(http_get(server.address(), "/health").0, 200);
    server.terminate();
}

#[test]
fn kept_alive_connections_outlive_the_header_timeout_and_close_when_idle() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_short(dir.path(), 1000, 8000, 64);

    // After a response, a half-sent next request gets the header timeout, not the idle one.
    let mut stream = TcpStream::connect(server.address()).unwrap();
    assert!(keep_alive_health(&mut stream).starts_with("HTTP/1.1 200"));
    stream.write_all(b"GET /hea").unwrap();
    let (after, _) = closed_within(&mut stream, Duration::from_secs(12));
    assert!(after < Duration::from_secs(6), "closed after {after:?}");

    // Unused for longer than the header timeout, the connection still serves requests...
    let mut stream = TcpStream::connect(server.address()).unwrap();
    assert!(keep_alive_health(&mut stream).starts_with("HTTP/1.1 200"));
    std::thread::sleep(Duration::from_secs(3));
    assert!(keep_alive_health(&mut stream).starts_with("HTTP/1.1 200"));
    // ...and is closed once idle for the idle timeout.
    let (after, received) = closed_within(&mut stream, Duration::from_secs(25));
    assert!(after >= Duration::from_secs(6), "closed after {after:?}");
    assert!(received.is_empty(), "{received:?}");
    server.terminate();
}

#[test]
fn at_the_connection_cap_clients_wait_until_silent_ones_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_short(dir.path(), 2000, 8000, 4);
    // Four silent connections fill every slot.
    let mut silent: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(server.address()).unwrap())
        .collect();
    // The fifth waits in the backlog (connected, not accepted) until the header timeout
    // frees a slot, and is then answered.
    let started = Instant::now();
    let (status, _) = http_get(server.address(), "/health");
    let waited = started.elapsed();
    assert_eq!(status, 200);
    assert!(
        waited >= Duration::from_millis(1500),
        "over the cap, /health was answered after only {waited:?}"
    );
    for stream in &mut silent {
        let (_, received) = closed_within(stream, Duration::from_secs(5));
        assert!(received.is_empty(), "{received:?}");
    }
    // Freed slots are reused: the table is not left full.
    for _ in 0..8 {
        assert_eq!(server.get("/health").0, 200);
    }
    server.terminate();
}

#[test]
fn sigterm_finishes_the_request_in_flight_and_does_not_wait_for_idle_connections() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let address = server.address().to_owned();
    let _silent = TcpStream::connect(&address).unwrap();
    let mut idle = TcpStream::connect(&address).unwrap();
    assert!(keep_alive_health(&mut idle).starts_with("HTTP/1.1 200"));
    // A request whose body is still on its way when the signal comes.
    let mut upload = TcpStream::connect(&address).unwrap();
    upload
        .write_all(b"POST /oauth2/token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 18\r\n\r\ngrant_type=")
        .unwrap();
    let finisher = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        upload.write_all(b"nothing").unwrap();
        let mut response = Vec::new();
        upload
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let _ = upload.read_to_end(&mut response);
        String::from_utf8_lossy(&response).into_owned()
    });
    // The server must have read the headers for the request to be in flight: on a busy
    // machine it may not have by the time the signal comes, and then rightly closes the
    // connection as idle.
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let (status, _) = server.terminate();
    let stopped_after = started.elapsed();
    let response = finisher.join().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(response.starts_with("HTTP/1.1 4"), "{response}");
    // Neither the silent nor the idle connection holds the shutdown up to their timeouts.
    assert!(
        stopped_after < Duration::from_secs(9),
        "stopped after {stopped_after:?}"
    );
}
