//! The one HTTP/1.1 server codec, shared by calsaga's API server and the
//! embedded mock's socket server: read a request head under hard limits,
//! read a Content-Length body only after the caller has looked at the head
//! (so an oversized body is refused with 413 before a byte of it is read,
//! and `100 Continue` is sent only for a body the caller will take), and
//! write one whole response. Reads go through `Deadline`, which bounds the
//! total time of a head or body, not just each read, so a client trickling
//! one byte at a time cannot hold a worker. It never answers on its own: the
//! caller decides every status, and may close a connection without a reply.
//! It knows nothing of calsaga, Cal.com, routes or JSON.

use std::io::{self, BufRead, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Request line plus all headers.
pub const HEAD_BYTES_MAX: usize = 16 * 1024;
pub const HEADERS_MAX: usize = 64;

/// Why no request could be read. The connection is closed after each.
#[derive(Debug, PartialEq, Eq)]
pub enum WireError {
    /// The peer closed (or went idle past the deadline) between requests.
    Closed,
    /// Reading failed or took too long inside a request.
    Io,
    Malformed(&'static str),
    HeadTooLarge,
    /// Chunked bodies are not accepted: send Content-Length.
    LengthRequired,
}

impl From<io::Error> for WireError {
    fn from(_: io::Error) -> Self {
        WireError::Io
    }
}

/// The request line and headers of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    /// Path and query as sent.
    pub target: String,
    pub headers: Vec<(String, String)>,
    http_1_0: bool,
}

impl Head {
    /// A head another parser read (calsaga's API server runs on hyper).
    pub fn new(
        method: String,
        target: String,
        headers: Vec<(String, String)>,
        http_1_0: bool,
    ) -> Head {
        Head {
            method,
            target,
            headers,
            http_1_0,
        }
    }

    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The declared body length (0 without a Content-Length).
    pub fn content_length(&self) -> Result<usize, WireError> {
        if self
            .header("transfer-encoding")
            .is_some_and(|v| !v.eq_ignore_ascii_case("identity"))
        {
            return Err(WireError::LengthRequired);
        }
        match self.header("content-length") {
            None => Ok(0),
            Some(v) => v
                .parse()
                .map_err(|_| WireError::Malformed("Content-Length is not a number")),
        }
    }

    /// Whether the client wants the connection kept open after the answer.
    /// `Connection` is a comma-separated token list (RFC 9110, 7.6.1).
    pub fn keep_alive(&self) -> bool {
        let connection = self.header("connection").unwrap_or_default();
        let has = |token: &str| {
            connection
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        };
        if self.http_1_0 {
            has("keep-alive")
        } else {
            !has("close")
        }
    }

    /// `Expect: 100-continue`: the client waits for a go-ahead before the body.
    pub fn expects_continue(&self) -> bool {
        self.header("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    }
}

/// A reader over a socket that fails once `deadline` has passed, however
/// slowly the bytes come.
pub struct Deadline {
    stream: TcpStream,
    deadline: Instant,
}

impl Deadline {
    pub fn new(stream: TcpStream) -> Deadline {
        Deadline {
            stream,
            deadline: Instant::now(),
        }
    }

    /// Allow the next reads `budget` from now in total.
    pub fn reset(&mut self, budget: Duration) {
        self.deadline = Instant::now() + budget;
    }
}

impl Read for Deadline {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "request deadline passed",
            ));
        }
        self.stream.set_read_timeout(Some(left))?;
        self.stream.read(buf)
    }
}

/// Reads one request head.
pub fn read_head<R: BufRead>(r: &mut R) -> Result<Head, WireError> {
    let mut budget = HEAD_BYTES_MAX;
    let mut line = read_line(r, &mut budget)?;
    // Stray empty lines before a request are allowed (RFC 9112, 2.2).
    while line.is_empty() {
        line = read_line(r, &mut budget)?;
    }
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(WireError::Malformed("bad request line"));
    };
    if !matches!(version, "HTTP/1.1" | "HTTP/1.0") || !target.starts_with('/') {
        return Err(WireError::Malformed(
            "HTTP/1.x with an origin-form target only",
        ));
    }
    let mut headers = Vec::new();
    loop {
        let h = read_line(r, &mut budget)?;
        if h.is_empty() {
            break;
        }
        if headers.len() == HEADERS_MAX {
            return Err(WireError::HeadTooLarge);
        }
        let (name, value) = h
            .split_once(':')
            .ok_or(WireError::Malformed("a header line has no colon"))?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    Ok(Head {
        method: method.to_string(),
        target: target.to_string(),
        headers,
        http_1_0: version == "HTTP/1.0",
    })
}

/// Reads a body of exactly `length` bytes (already checked against the
/// caller's cap). `w` receives `100 Continue` first when the client waits
/// for it.
pub fn read_body<R: Read, W: Write>(
    r: &mut R,
    w: &mut W,
    head: &Head,
    length: usize,
) -> Result<Vec<u8>, WireError> {
    if length > 0 && head.expects_continue() {
        w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        w.flush()?;
    }
    let mut body = vec![0; length];
    r.read_exact(&mut body)?;
    Ok(body)
}

/// One CRLF- (or LF-) terminated line, charged against the head budget.
fn read_line<R: BufRead>(r: &mut R, budget: &mut usize) -> Result<String, WireError> {
    let mut buf = Vec::new();
    let limit = u64::try_from(*budget).unwrap_or(u64::MAX);
    let n = match r.by_ref().take(limit).read_until(b'\n', &mut buf) {
        Ok(n) => n,
        // Nothing of a new request arrived in time: an idle connection.
        Err(_) if *budget == HEAD_BYTES_MAX && buf.is_empty() => return Err(WireError::Closed),
        Err(e) => return Err(e.into()),
    };
    if n == 0 {
        return Err(if *budget == HEAD_BYTES_MAX {
            WireError::Closed
        } else {
            WireError::Malformed("connection closed inside a request head")
        });
    }
    if buf.last() != Some(&b'\n') {
        return Err(WireError::HeadTooLarge);
    }
    *budget -= n;
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    String::from_utf8(buf).map_err(|_| WireError::Malformed("the request head is not UTF-8"))
}

/// Writes a whole response in one go. `Content-Length` and `Connection`
/// are added here; `headers` must not carry them.
pub fn write_response<W: Write, K: AsRef<str>, V: AsRef<str>>(
    w: &mut W,
    status: u16,
    headers: &[(K, V)],
    body: &[u8],
    keep_alive: bool,
) -> io::Result<()> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status)).into_bytes();
    for (k, v) in headers {
        out.extend_from_slice(format!("{}: {}\r\n", k.as_ref(), v.as_ref()).as_bytes());
    }
    let connection = if keep_alive { "keep-alive" } else { "close" };
    out.extend_from_slice(
        format!(
            "Content-Length: {}\r\nConnection: {connection}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(body);
    w.write_all(&out)?;
    w.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> Result<Head, WireError> {
        read_head(&mut raw.as_bytes())
    }

    #[test]
    fn a_head_with_headers_is_read_and_the_body_left_unread() {
        let raw = "POST /api/v2/bookings HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody";
        let mut r = raw.as_bytes();
        let h = read_head(&mut r).unwrap();
        assert_eq!(
            (h.method.as_str(), h.target.as_str()),
            ("POST", "/api/v2/bookings")
        );
        assert_eq!(h.content_length(), Ok(4));
        assert!(h.keep_alive());
        assert_eq!(r, b"body");
    }

    #[test]
    fn limits_and_bad_framing_are_refused() {
        let long = format!(
            "GET / HTTP/1.1\r\nX: {}\r\n\r\n",
            "a".repeat(HEAD_BYTES_MAX)
        );
        assert_eq!(head(&long), Err(WireError::HeadTooLarge));
        let many: String = (0..=HEADERS_MAX).map(|i| format!("H{i}: v\r\n")).collect();
        assert_eq!(
            head(&format!("GET / HTTP/1.1\r\n{many}\r\n")),
            Err(WireError::HeadTooLarge)
        );
        assert!(matches!(
            head("GET / HTTP/2\r\n\r\n"),
            Err(WireError::Malformed(_))
        ));
        assert!(matches!(
            head("GET http://x/ HTTP/1.1\r\n\r\n"),
            Err(WireError::Malformed(_))
        ));
        assert_eq!(head(""), Err(WireError::Closed));
        let chunked = head("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
        assert_eq!(chunked.content_length(), Err(WireError::LengthRequired));
        let bad = head("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n").unwrap();
        assert!(matches!(bad.content_length(), Err(WireError::Malformed(_))));
    }

    #[test]
    fn http_1_0_closes_unless_asked_and_1_1_keeps_unless_asked() {
        assert!(!head("GET / HTTP/1.0\r\n\r\n").unwrap().keep_alive());
        assert!(
            head("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                .unwrap()
                .keep_alive()
        );
        assert!(
            !head("GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
                .unwrap()
                .keep_alive()
        );
        // Connection is a token list: a listed close still closes.
        assert!(
            !head("GET / HTTP/1.1\r\nConnection: TE, Close\r\n\r\n")
                .unwrap()
                .keep_alive()
        );
        assert!(
            head("GET / HTTP/1.0\r\nConnection: Keep-Alive, TE\r\n\r\n")
                .unwrap()
                .keep_alive()
        );
        assert!(
            head("GET / HTTP/1.1\r\nConnection: closed\r\n\r\n")
                .unwrap()
                .keep_alive()
        );
    }

    #[test]
    fn continue_is_sent_only_to_a_client_waiting_to_send_a_body() {
        let body_of = |raw: &str| {
            let mut r = raw.as_bytes();
            let h = read_head(&mut r).unwrap();
            let length = h.content_length().unwrap();
            let mut sent = Vec::new();
            let body = read_body(&mut r, &mut sent, &h, length).unwrap();
            (String::from_utf8(sent).unwrap(), body)
        };
        let waiting = "POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\nhi";
        assert_eq!(
            body_of(waiting),
            ("HTTP/1.1 100 Continue\r\n\r\n".to_string(), b"hi".to_vec())
        );
        let not_waiting = "POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi";
        assert_eq!(body_of(not_waiting), (String::new(), b"hi".to_vec()));
        let no_body = "POST / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n";
        assert_eq!(body_of(no_body), (String::new(), Vec::new()));
        let short = "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhi";
        let mut r = short.as_bytes();
        let h = read_head(&mut r).unwrap();
        assert_eq!(
            read_body(&mut r, &mut Vec::new(), &h, 5),
            Err(WireError::Io)
        );
    }

    #[test]
    fn a_response_takes_borrowed_or_owned_headers_and_adds_its_framing() {
        let mut out = Vec::new();
        write_response(&mut out, 201, &[("X-A", "1".to_string())], b"{}", true).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 201 Created\r\nX-A: 1\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n{}"
        );
        let mut out = Vec::new();
        let owned = [("X-B".to_string(), "2".to_string())];
        write_response(&mut out, 413, &owned, b"", false).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 413 Content Too Large\r\nX-B: 2\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    }
}
