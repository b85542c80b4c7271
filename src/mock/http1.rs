//! Just enough HTTP/1.1 for the mock's socket server: reading one request
//! (request line, headers, a Content-Length body, `Expect: 100-continue`,
//! keep-alive) under hard size limits, and writing one response. It knows
//! nothing about Cal.com. It exists because the mock must be able to close a
//! connection WITHOUT answering (a lost reply), which tiny_http 0.12 cannot
//! do: dropping its `Request` sends a 500, and dropping `into_writer()`
//! leaves the keep-alive connection open (tiny-http PR #282, unmerged).

use std::io::{self, BufRead, Read, Write};

/// Request line plus headers.
pub const HEAD_BYTES_MAX: usize = 16 * 1024;
pub const HEADERS_MAX: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRequest {
    pub method: String,
    /// Path and query as sent.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub keep_alive: bool,
}

#[derive(Debug)]
pub enum ReadError {
    /// The peer closed the connection between requests.
    Closed,
    /// Reading failed (timeout, reset); the connection is dropped either way.
    Io,
    Malformed(&'static str),
    HeadTooLarge,
    BodyTooLarge,
    /// A chunked body; the mock takes Content-Length bodies only.
    LengthRequired,
}

impl From<io::Error> for ReadError {
    fn from(_: io::Error) -> Self {
        ReadError::Io
    }
}

/// Reads one request. `w` receives `100 Continue` when the client asks.
pub fn read_request<R: BufRead, W: Write>(
    r: &mut R,
    w: &mut W,
    body_bytes_max: usize,
) -> Result<RawRequest, ReadError> {
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
        return Err(ReadError::Malformed("bad request line"));
    };
    if !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return Err(ReadError::Malformed(
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
            return Err(ReadError::HeadTooLarge);
        }
        let (name, value) = h
            .split_once(':')
            .ok_or(ReadError::Malformed("bad header"))?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.to_ascii_lowercase())
    };
    if header("transfer-encoding").is_some_and(|v| v != "identity") {
        return Err(ReadError::LengthRequired);
    }
    let length = match header("content-length") {
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| ReadError::Malformed("bad Content-Length"))?,
        None => 0,
    };
    if length > body_bytes_max {
        return Err(ReadError::BodyTooLarge);
    }
    if length > 0 && header("expect").is_some_and(|v| v == "100-continue") {
        w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        w.flush()?;
    }
    let mut body = vec![0; length];
    r.read_exact(&mut body)?;
    let connection = header("connection").unwrap_or_default();
    let keep_alive = if version == "HTTP/1.0" {
        connection.contains("keep-alive")
    } else {
        !connection.contains("close")
    };
    Ok(RawRequest {
        method: method.to_string(),
        target: target.to_string(),
        headers,
        body,
        keep_alive,
    })
}

/// One CRLF- (or LF-) terminated line, charged against the head budget.
fn read_line<R: BufRead>(r: &mut R, budget: &mut usize) -> Result<String, ReadError> {
    let mut buf = Vec::new();
    let limit = u64::try_from(*budget).unwrap_or(u64::MAX);
    let n = r.by_ref().take(limit).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Err(if *budget == HEAD_BYTES_MAX {
            ReadError::Closed
        } else {
            ReadError::Malformed("connection closed inside a request head")
        });
    }
    if buf.last() != Some(&b'\n') {
        return Err(ReadError::HeadTooLarge);
    }
    *budget -= n;
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    String::from_utf8(buf).map_err(|_| ReadError::Malformed("head is not UTF-8"))
}

/// Writes a whole response in one go.
pub fn write_response<W: Write>(
    w: &mut W,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    keep_alive: bool,
) -> io::Result<()> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status)).into_bytes();
    for (k, v) in headers {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
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
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}
