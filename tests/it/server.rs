//! The HTTP/1.1 server under clients that misbehave: many idle and
//! trickling connections, framing that must be refused, pipelining.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::{Served, read_response};

const IDLE: usize = 1_000;
const TRICKLING: usize = 200;

/// Sends raw bytes and reads everything until the server closes.
fn raw(s: &Served, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(s.addr).expect("connect");
    stream.write_all(bytes).expect("send");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn status_line(answer: &str) -> &str {
    answer.lines().next().unwrap_or_default()
}

#[test]
fn a_thousand_idle_and_two_hundred_trickling_connections_do_not_stop_an_answer() {
    calsaga::serve::raise_open_files_limit();
    let s = Served::start(&[]);
    let idle: Vec<TcpStream> = (0..IDLE)
        .map(|_| TcpStream::connect(s.addr).expect("an idle connection"))
        .collect();
    // Each sends half a head and then nothing more (a slow-loris client).
    let trickling: Vec<TcpStream> = (0..TRICKLING)
        .map(|_| {
            let mut c = TcpStream::connect(s.addr).expect("a trickling connection");
            c.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .expect("half a head");
            c
        })
        .collect();
    for _ in 0..3 {
        let started = Instant::now();
        let mut c = TcpStream::connect(s.addr).expect("connect");
        c.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .expect("send");
        let r = read_response(&mut c);
        let took = started.elapsed();
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(took < Duration::from_secs(1), "answered in {took:?}");
    }
    assert_eq!((idle.len(), trickling.len()), (IDLE, TRICKLING));
}

#[test]
fn ambiguous_framing_is_refused_with_400_and_pipelined_requests_are_answered_in_order() {
    let s = Served::start(&[]);
    let post = |headers: &str| {
        format!("POST /api/v2/bookings HTTP/1.1\r\nHost: x\r\n{headers}\r\n\r\n{{}}").into_bytes()
    };
    // Two equal Content-Length values are one (RFC 9112, 6.3): nothing is
    // ambiguous, so the request goes on (here to its token check).
    let same = raw(&s, &post("Content-Length: 2\r\nContent-Length: 2"));
    assert!(status_line(&same).starts_with("HTTP/1.1 401"), "{same}");
    // Content-Length beside Transfer-Encoding, either order: refused before
    // routing (no token is even looked at), the body unread and the
    // connection closed (RFC 9112, 6.1); calsaga takes no chunked body.
    for headers in [
        "Content-Length: 2\r\nTransfer-Encoding: chunked",
        "Transfer-Encoding: chunked\r\nContent-Length: 2",
    ] {
        let answer = raw(&s, &post(headers));
        assert!(
            status_line(&answer).starts_with("HTTP/1.1 411")
                && answer.to_ascii_lowercase().contains("connection: close"),
            "{headers}: {answer}"
        );
    }
    let cases: [(&str, Vec<u8>); 3] = [
        (
            "conflicting Content-Length",
            post("Content-Length: 2\r\nContent-Length: 3"),
        ),
        (
            "an obs-fold header",
            b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n".to_vec(),
        ),
        (
            "a bare CR",
            b"GET /api/health HTTP/1.1\r\nHost: x\rX-Bare: cr\r\n\r\n".to_vec(),
        ),
    ];
    let refused: Vec<String> = cases
        .iter()
        .map(|(what, bytes)| format!("{what}: {}", status_line(&raw(&s, bytes))))
        .collect();
    assert!(
        refused.iter().all(|r| r.ends_with("400 Bad Request")),
        "{refused:#?}"
    );
    // Three requests in one write: three answers, in the order asked.
    let pipelined = b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Request-Id: one\r\n\r\n\
GET /nope HTTP/1.1\r\nHost: x\r\nX-Request-Id: two\r\n\r\n\
GET /api/health HTTP/1.1\r\nHost: x\r\nX-Request-Id: three\r\nConnection: close\r\n\r\n";
    let answer = raw(&s, pipelined);
    let ids: Vec<&str> = answer
        .lines()
        .filter_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("x-request-id"))
        })
        .map(|(_, v)| v.trim())
        .collect();
    assert_eq!(ids, ["one", "two", "three"], "{answer}");
    // Each answer's body runs straight into the next status line.
    let statuses: Vec<&str> = answer
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &answer[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, ["200", "404", "200"], "{answer}");
}
