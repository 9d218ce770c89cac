//! Hostile clients against the real server: slow uploads, huge URIs and headers.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::{http_get, start};

fn raw(address: &str, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}

#[test]
fn slow_uploads_do_not_starve_anyone_and_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let address = server.address().to_owned();
    // Twenty clients announce a body and then send next to nothing.
    let mut slow: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut stream = TcpStream::connect(&address).unwrap();
            stream
                .write_all(b"POST /oauth2/token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\ngrant_type=")
                .unwrap();
            stream
        })
        .collect();
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(http_get(&address, "/health").0, 200);
        // A hang detector, not a speed target.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "health waited {:?}",
            started.elapsed()
        );
    }
    // The stalled uploads are answered (and closed) by the read timeout.
    let first = slow.first_mut().unwrap();
    first
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut response = Vec::new();
    let _ = first.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(
        response.contains(r#""error":"invalid_request""#),
        "{response}"
    );
    drop(slow);
    server.terminate();
}

#[test]
fn oversized_uris_and_headers_get_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let address = server.address().to_owned();
    let long = format!(
        "GET /health?pad={} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        "a".repeat(10_000)
    );
    let response = raw(&address, long.as_bytes());
    assert!(
        response.starts_with("HTTP/1.1 414"),
        "{}",
        &response[..response.len().min(200)]
    );
    assert!(response.contains(r#""error":"invalid_request""#));
    let big = format!(
        "GET /health HTTP/1.1\r\nHost: localhost\r\nX-Padding: {}\r\nConnection: close\r\n\r\n",
        "b".repeat(70_000)
    );
    let response = raw(&address, big.as_bytes());
    assert!(
        response.starts_with("HTTP/1.1 431"),
        "{}",
        &response[..response.len().min(200)]
    );
    assert!(response.contains(r#""error":"invalid_request""#));
    let unknown = raw(
        &address,
        b"GET /nowhere HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert!(
        unknown.starts_with("HTTP/1.1 404") && unknown.contains(r#""error":"not_found""#),
        "{unknown}"
    );
    server.terminate();
}
