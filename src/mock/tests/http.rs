//! The mock on a real socket (127.0.0.1, port 0): keep-alive, limits, the
//! lost reply that closes the connection without a byte, `100 Continue`,
//! racing clients.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use serde_json::{Value, json};

use super::{KEY, World, booking_body};
use crate::mock::MockServer;

const READ_TIMEOUT: Duration = Duration::from_secs(5);

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn connect(addr: SocketAddr) -> (TcpStream, BufReader<TcpStream>) {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let r = BufReader::new(s.try_clone().unwrap());
    (s, r)
}

/// Writes a request with the test key and the family's version.
fn write(s: &mut TcpStream, method: &str, path: &str, body: Option<&Value>, close: bool) {
    let body = body.map(Value::to_string).unwrap_or_default();
    s.write_all(head(method, path, body.len(), close).as_bytes())
        .unwrap();
    s.write_all(body.as_bytes()).unwrap();
}

fn head(method: &str, path: &str, body_bytes: usize, close: bool) -> String {
    let version = if path.starts_with("/v2/slots") {
        "2024-09-04"
    } else {
        "2024-08-13"
    };
    let connection = if close { "close" } else { "keep-alive" };
    format!(
        "{method} {path} HTTP/1.1\r\nHost: mock\r\nAuthorization: Bearer {KEY}\r\ncal-api-version: {version}\r\n\
         Content-Type: application/json\r\nContent-Length: {body_bytes}\r\nConnection: {connection}\r\n\r\n"
    )
}

fn read(r: &mut BufReader<TcpStream>) -> Reply {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        let Some((k, v)) = line.trim_end().split_once(": ") else {
            break;
        };
        headers.push((k.to_string(), v.to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "Content-Length")
        .unwrap()
        .1
        .parse()
        .unwrap();
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    Reply {
        status,
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    }
}

fn once(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> Reply {
    let (mut s, mut r) = connect(addr);
    write(&mut s, method, path, body.as_ref(), true);
    read(&mut r)
}

fn serve() -> (World, MockServer) {
    let w = World::new();
    let server = MockServer::start(w.mock.clone(), "127.0.0.1:0".parse().unwrap()).unwrap();
    (w, server)
}

#[test]
fn the_server_answers_on_one_keep_alive_connection() {
    let (_w, server) = serve();
    assert!(server.url().starts_with("http://127.0.0.1:"));
    let (mut s, mut r) = connect(server.addr());
    let path = "/v2/slots?eventTypeId=101&start=2030-03-04&end=2030-03-04&timeZone=Europe/Berlin";
    write(&mut s, "GET", path, None, false);
    let first = read(&mut r);
    write(&mut s, "GET", path, None, true);
    let second = read(&mut r);
    assert_eq!((first.status, second.status), (200, 200));
    assert_eq!(
        first.body["data"]["2030-03-04"][0]["start"],
        "2030-03-04T09:00:00.000+01:00"
    );
    assert_ne!(first.header("X-Request-Id"), second.header("X-Request-Id"));
    assert_eq!(second.header("X-RateLimit-Remaining-Default"), Some("118"));
}

#[test]
fn a_lost_reply_closes_the_connection_without_a_response_after_applying() {
    let (_w, server) = serve();
    let rule = json!({"route": "POST /v2/bookings", "nth": 1, "replyLost": true});
    assert_eq!(
        once(server.addr(), "POST", "/_mock/faults", Some(rule)).status,
        200
    );
    let (mut s, mut r) = connect(server.addr());
    write(
        &mut s,
        "POST",
        "/v2/bookings",
        Some(&booking_body(101, "2030-03-04T10:00:00Z")),
        false,
    );
    let mut got = Vec::new();
    let _ = r.read_to_end(&mut got);
    assert!(
        got.is_empty(),
        "no response bytes, got {:?}",
        String::from_utf8_lossy(&got)
    );
    let state = once(server.addr(), "GET", "/_mock/state", None).body;
    let made = state["bookings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["start"] == "2030-03-04T10:00:00.000Z")
        .count();
    assert_eq!(made, 1, "the create was applied");
}

#[test]
fn a_client_waiting_for_continue_gets_it_before_sending_the_body() {
    let (_w, server) = serve();
    let (mut s, mut r) = connect(server.addr());
    let body = booking_body(101, "2030-03-04T10:00:00Z").to_string();
    let waiting = head("POST", "/v2/bookings", body.len(), true)
        .replace("\r\n\r\n", "\r\nExpect: 100-continue\r\n\r\n");
    s.write_all(waiting.as_bytes()).unwrap();
    let mut interim = String::new();
    for _ in 0..2 {
        r.read_line(&mut interim).unwrap();
    }
    assert_eq!(interim, "HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(body.as_bytes()).unwrap();
    assert_eq!(read(&mut r).status, 201);
}

#[test]
fn oversized_chunked_and_unknown_method_requests_are_refused() {
    let (_w, server) = serve();
    let (mut s, mut r) = connect(server.addr());
    s.write_all(b"POST /v2/bookings HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n")
        .unwrap();
    let big = read(&mut r);
    assert_eq!(
        (big.status, big.body.clone()),
        (
            413,
            json!({"statusCode": 413, "message": "request entity too large"})
        )
    );
    let (mut s, mut r) = connect(server.addr());
    s.write_all(b"POST /v2/bookings HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    assert_eq!(read(&mut r).status, 411);
    let put = once(server.addr(), "PUT", "/v2/bookings", None);
    assert_eq!(
        (put.status, put.body["error"]["message"].clone()),
        (404, json!("Cannot PUT /v2/bookings"))
    );
}

#[test]
fn racing_clients_over_http_get_exactly_one_booking() {
    let (w, server) = serve();
    let addr = server.addr();
    let go = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let go = go.clone();
            std::thread::spawn(move || {
                let (mut s, mut r) = connect(addr);
                go.wait();
                write(
                    &mut s,
                    "POST",
                    "/v2/bookings",
                    Some(&booking_body(201, "2030-03-06T10:00:00Z")),
                    true,
                );
                read(&mut r).status
            })
        })
        .collect();
    let statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [201, 400, 409].contains(s)),
        "{statuses:?}"
    );
    assert_eq!(w.state()["overlaps"], json!([]));
}

#[test]
fn shutdown_stops_listening() {
    let (_w, mut server) = serve();
    let addr = server.addr();
    let (_open, _reader) = connect(addr);
    server.shutdown();
    server.shutdown();
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
}
