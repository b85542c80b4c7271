//! The real wire: `HttpTransport` sends `ApiRequest`s to Cal.com with one
//! pooled reqwest client, and `HttpPoster` makes blocking POSTs (webhook
//! deliveries of the mock, alerts). Both bound everything: connect and
//! request timeouts, no redirects, and replies read with a hard size cap
//! while streaming. Errors are split by whether the request may have left
//! the machine, because only "not sent" proves Cal.com did nothing.
//! This module never interprets statuses or bodies (that is `retry::classify`)
//! and never logs headers, which carry the API key.

use std::io::Read;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::redirect::Policy;

use super::{ApiRequest, ApiResponse, Method, Poster, Transport, TransportError};

/// Bounds of one HTTP exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    pub connect_timeout: Duration,
    /// The whole exchange: connect, send, and read the reply.
    pub request_timeout: Duration,
    /// Replies longer than this are refused (`ReplyTooLarge`).
    pub reply_bytes_max: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            reply_bytes_max: 4 * 1024 * 1024,
        }
    }
}

/// Why an HTTP client could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpSetupError {
    #[error(
        "the Cal.com base URL {url:?} is not usable: {reason}; give an absolute http(s) URL such as https://api.cal.com"
    )]
    BadBaseUrl { url: String, reason: String },
    #[error(
        "could not set up the HTTP client: {0}; check the TLS and network setup of this machine"
    )]
    Client(String),
}

/// The one set of client settings. The async and blocking reqwest builders
/// take the same calls but are different types, hence a macro.
macro_rules! bounded_client {
    ($builder:expr, $limits:expr) => {
        $builder
            .connect_timeout($limits.connect_timeout)
            .timeout($limits.request_timeout)
            .redirect(Policy::none())
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| HttpSetupError::Client(error_chain(&e)))
    };
}

const USER_AGENT: &str = concat!("calsaga/", env!("CARGO_PKG_VERSION"));

/// Sends requests to `base_url` + `request.path` over one connection pool.
#[derive(Debug, Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
    base_url: String,
    reply_bytes_max: usize,
}

impl HttpTransport {
    pub fn new(base_url: &str, limits: HttpLimits) -> Result<Self, HttpSetupError> {
        let client = bounded_client!(reqwest::Client::builder(), limits)?;
        Ok(Self {
            client,
            base_url: checked_base_url(base_url)?,
            reply_bytes_max: limits.reply_bytes_max,
        })
    }

    async fn read_capped(&self, mut reply: reqwest::Response) -> Result<Vec<u8>, TransportError> {
        let limit_bytes = self.reply_bytes_max;
        let too_large = TransportError::ReplyTooLarge { limit_bytes };
        let announced = reply.content_length().unwrap_or(0);
        if announced > limit_bytes as u64 {
            return Err(too_large);
        }
        let mut body = Vec::with_capacity(usize::try_from(announced).unwrap_or(0));
        while let Some(chunk) = reply.chunk().await.map_err(|e| maybe_sent(&e))? {
            if body.len() + chunk.len() > limit_bytes {
                return Err(too_large);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

#[async_trait]
impl Transport for HttpTransport {
    async fn send(&self, request: ApiRequest) -> Result<ApiResponse, TransportError> {
        let url = format!("{}{}", self.base_url, request.path);
        let mut builder = self.client.request(http_method(request.method), &url);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        let reply = builder.send().await.map_err(|e| send_error(&url, &e))?;
        let status = reply.status().as_u16();
        let headers = header_pairs(reply.headers());
        let body = self.read_capped(reply).await?;
        Ok(ApiResponse {
            status,
            headers,
            body,
        })
    }
}

/// Blocking POSTs with timeouts and no redirects. It owns a blocking reqwest
/// client, which runs its own runtime: create and drop it on a plain thread,
/// never inside a tokio runtime (reqwest panics there).
#[derive(Debug, Clone)]
pub struct HttpPoster {
    client: reqwest::blocking::Client,
    reply_bytes_max: usize,
}

impl HttpPoster {
    /// Must not be called from inside a tokio runtime (see the type).
    pub fn new(limits: HttpLimits) -> Result<Self, HttpSetupError> {
        let client = bounded_client!(reqwest::blocking::Client::builder(), limits)?;
        Ok(Self {
            client,
            reply_bytes_max: limits.reply_bytes_max,
        })
    }
}

impl Poster for HttpPoster {
    fn post(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<u16, TransportError> {
        let mut builder = self.client.post(url).body(body.to_vec());
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        let reply = builder.send().map_err(|e| send_error(url, &e))?;
        let status = reply.status().as_u16();
        // Read (and drop) a bounded part of the reply so the connection can
        // go back to the pool; the receiver's words do not matter here.
        let mut sink = Vec::new();
        let _ = reply
            .take(self.reply_bytes_max as u64)
            .read_to_end(&mut sink);
        Ok(status)
    }
}

/// Base URL without a trailing slash, so `base + "/v2/..."` is one URL.
fn checked_base_url(base_url: &str) -> Result<String, HttpSetupError> {
    let bad = |reason: String| HttpSetupError::BadBaseUrl {
        url: base_url.to_string(),
        reason,
    };
    let parsed = reqwest::Url::parse(base_url).map_err(|e| bad(e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad(format!(
            "scheme {:?} is not http or https",
            parsed.scheme()
        )));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(bad("it has a query or fragment".into()));
    }
    Ok(base_url.trim_end_matches('/').to_string())
}

fn http_method(method: Method) -> reqwest::Method {
    match method {
        Method::Get => reqwest::Method::GET,
        Method::Post => reqwest::Method::POST,
        Method::Patch => reqwest::Method::PATCH,
        Method::Delete => reqwest::Method::DELETE,
    }
}

fn header_pairs(headers: &reqwest::header::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
            (k.as_str().to_string(), value)
        })
        .collect()
}

/// Whether a failed send may have reached the server. Builder errors (bad
/// URL, bad header) and connect errors (refused, DNS, TLS handshake, connect
/// timeout) happen before any byte of the request is written.
fn send_error(url: &str, e: &reqwest::Error) -> TransportError {
    if e.is_builder() || e.is_connect() {
        TransportError::NotSent {
            url: url.to_string(),
            reason: error_chain(e),
        }
    } else {
        maybe_sent(e)
    }
}

fn maybe_sent(e: &reqwest::Error) -> TransportError {
    let kind = if e.is_timeout() {
        "timed out"
    } else {
        "failed"
    };
    TransportError::MaybeSent {
        reason: format!("the exchange {kind}: {}", error_chain(e)),
    }
}

/// reqwest's top-level message is generic ("error sending request"); the
/// cause chain says what actually happened.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests;
