//! The seam between the client and whatever answers it: reqwest over HTTP
//! (`calcom::http`) or the embedded mock in-process (`mock`). Requests and
//! replies are plain data so the mock can serve the very bytes the client
//! would send over a socket, faults included.

use async_trait::async_trait;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }

    /// Whether repeating the request cannot create anything new.
    pub fn is_idempotent(self) -> bool {
        !matches!(self, Method::Post)
    }
}

/// One request: path includes the query string (`/v2/slots?eventTypeId=1&...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRequest {
    pub method: Method,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

impl ApiRequest {
    /// The first header with this name, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl ApiResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Why no response was read. The split matters: only `NotSent` proves Cal.com
/// did nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The request never left (connection refused, DNS failure, bad URL).
    #[error(
        "could not reach Cal.com at {url}: {reason}; check the Cal.com base URL and that it is up"
    )]
    NotSent { url: String, reason: String },
    /// The request may have been delivered (timeout, reset, reply dropped).
    #[error("no reply from Cal.com after sending the request: {reason}")]
    MaybeSent { reason: String },
    /// The reply was larger than the client accepts.
    #[error("Cal.com's reply was larger than {limit_bytes} bytes; refusing to read it")]
    ReplyTooLarge { limit_bytes: usize },
}

#[async_trait]
pub trait Transport: Send + Sync {
    async fn send(&self, request: ApiRequest) -> Result<ApiResponse, TransportError>;
}

/// A blocking outbound POST of a finished body to any URL: the mock's webhook
/// deliveries and calsaga's alerts. Called from worker threads, never from
/// inside an async task. Returns the HTTP status the receiver answered.
pub trait Poster: Send + Sync {
    fn post(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<u16, TransportError>;
}
