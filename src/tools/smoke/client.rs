//! The one blocking HTTP client of `calsaga smoke` and `calsaga load`: it
//! talks to a running calsaga's booking API (`API_BASE`, e.g.
//! `http://127.0.0.1:8080/api/v2`) with a Bearer token, times every request
//! and hands back the status, the JSON body and the error code. It judges
//! nothing (the scenarios and the load generator do) and never talks to
//! Cal.com. No connection is reused: calsaga closes idle keep-alive
//! connections when others wait, and a pooled one closed under a request
//! would read as a failure of the server.

use std::time::{Duration, Instant};

use chrono::NaiveDate;
use chrono_tz::Tz;
use serde_json::Value;

/// `API_BASE` when neither the flag nor the variable is given.
pub const API_BASE_DEFAULT: &str = "http://127.0.0.1:8080/api/v2";
/// The longest a `Retry-After` is honoured before a 429 (or a read's 503)
/// is given back.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot build the HTTP client: {0}; the TLS setup of this machine may be broken")]
    Build(reqwest::Error),
    #[error(
        "{method} {url} failed: {detail}; check that calsaga runs there (API_BASE or --api-base) and answers within the timeout"
    )]
    Send {
        method: &'static str,
        url: String,
        detail: String,
    },
}

/// One answer: status, body (`Value::Null` when not JSON), timing.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    /// `Idempotent-Replayed: true` was sent back.
    pub replayed: bool,
    /// `Retry-After` in seconds, when the server sent one.
    pub retry_after: Option<Duration>,
    pub elapsed: Duration,
}

impl Answer {
    /// `error.code` of an error body, or "".
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }

    /// `error.message` of an error body, or the body itself.
    pub fn message(&self) -> String {
        match self.body["error"]["message"].as_str() {
            Some(m) => m.to_string(),
            None => self.body.to_string().chars().take(300).collect(),
        }
    }

    /// "409 slot_unavailable: <message>" for failure details.
    pub fn describe(&self) -> String {
        format!("{} {}: {}", self.status, self.code(), self.message())
    }
}

/// The host (without IPv6 brackets) and port of a base URL, or None when
/// it is not a URL with a host.
pub fn host_port(base: &str) -> Option<(String, u16)> {
    let url = reqwest::Url::parse(base).ok()?;
    let host = url.host_str()?.trim_matches(['[', ']']).to_string();
    Some((host, url.port_or_known_default().unwrap_or(80)))
}

/// One `GET /availability`: local days `start..=end` in `zone`.
#[derive(Debug, Clone, Copy)]
pub struct Search<'a> {
    pub service: &'a str,
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub zone: Tz,
    /// Only this host for every segment they can do.
    pub host: Option<u64>,
    /// Bypass calsaga's slot cache.
    pub fresh: bool,
}

impl<'a> Search<'a> {
    /// One day, cache allowed.
    pub fn day(service: &'a str, day: NaiveDate, zone: Tz) -> Search<'a> {
        Search {
            service,
            start: day,
            end: day,
            zone,
            host: None,
            fresh: false,
        }
    }
}

/// Where calsaga is and who calls it.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::blocking::Client,
    base: String,
    token: String,
    /// Times a 429 is retried after its `Retry-After` (0: given back at once).
    rate_limit_retries: u32,
}

impl Api {
    pub fn new(
        base: &str,
        token: &str,
        timeout: Duration,
        rate_limit_retries: u32,
    ) -> Result<Api, ClientError> {
        let http = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .pool_max_idle_per_host(0)
            .build()
            .map_err(ClientError::Build)?;
        Ok(Api {
            http,
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
            rate_limit_retries,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The same client with another token (to check that a bad one is refused).
    pub fn with_token(&self, token: &str) -> Api {
        Api {
            token: token.to_string(),
            ..self.clone()
        }
    }

    /// The same client retrying a 429 `retries` times after its Retry-After.
    pub fn with_rate_limit_retries(&self, retries: u32) -> Api {
        Api {
            rate_limit_retries: retries,
            ..self.clone()
        }
    }

    /// `GET <base><path>?<query>`.
    pub fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Answer, ClientError> {
        self.send("GET", path, || self.http.get(self.url(path)).query(query))
    }

    /// `GET <base><path>` with `Prefer: <prefer>` (a long-poll).
    pub fn get_waiting(&self, path: &str, prefer: &str) -> Result<Answer, ClientError> {
        self.send("GET", path, || {
            self.http.get(self.url(path)).header("Prefer", prefer)
        })
    }

    /// `GET <base>/availability` as `search` says.
    pub fn availability(&self, search: &Search<'_>) -> Result<Answer, ClientError> {
        let (start, end) = (search.start.to_string(), search.end.to_string());
        let host = search.host.map(|h| h.to_string());
        let mut query = vec![
            ("service", search.service),
            ("start", start.as_str()),
            ("end", end.as_str()),
            ("timeZone", search.zone.name()),
        ];
        if let Some(host) = &host {
            query.push(("host", host.as_str()));
        }
        if search.fresh {
            query.push(("fresh", "true"));
        }
        self.get("/availability", &query)
    }

    /// `POST <base><path>` with a JSON body and extra headers.
    pub fn post(
        &self,
        path: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> Result<Answer, ClientError> {
        self.send("POST", path, || {
            let mut request = self.http.post(self.url(path)).json(body);
            for (k, v) in headers {
                request = request.header(*k, *v);
            }
            request
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends, reads the whole answer, and retries a 429 after its
    /// `Retry-After` (bounded) as often as this client may. A read's 503
    /// with `Retry-After` (a search waiting for Cal.com's request budget)
    /// is retried the same way: asking again changes nothing.
    fn send(
        &self,
        method: &'static str,
        path: &str,
        build: impl Fn() -> reqwest::blocking::RequestBuilder,
    ) -> Result<Answer, ClientError> {
        let mut retries_left = self.rate_limit_retries;
        loop {
            let failed = |e: reqwest::Error| ClientError::Send {
                method,
                url: self.url(path),
                detail: e.to_string(),
            };
            let started = Instant::now();
            let response = build().bearer_auth(&self.token).send().map_err(failed)?;
            let status = response.status().as_u16();
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let replayed = header("idempotent-replayed").as_deref() == Some("true");
            let retry_after = header("retry-after")
                .and_then(|s| s.parse::<u64>().ok())
                .map(Duration::from_secs);
            let text = response.text().map_err(failed)?;
            let answer = Answer {
                status,
                body: serde_json::from_str(&text).unwrap_or(Value::Null),
                replayed,
                retry_after,
                elapsed: started.elapsed(),
            };
            match retry_after {
                Some(wait)
                    if (status == 429 || (status == 503 && method == "GET"))
                        && retries_left > 0
                        && wait <= RETRY_AFTER_MAX =>
                {
                    retries_left -= 1;
                    // The server said when to come back; this is its pace, not a guess.
                    std::thread::sleep(wait);
                }
                _ => return Ok(answer),
            }
        }
    }
}
