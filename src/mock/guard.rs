//! Who is calling and how often: the `Authorization` header read the way
//! Cal.com's guards read it, and the global throttler (per API key, per IP
//! when anonymous; a 60 s window, a 60 s block once over the limit; headers
//! on every answer, no Retry-After). It decides refusals, never serves data.

use std::collections::HashMap;
use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};

use super::fixture::Fixture;
use super::reply::{ApiError, INVALID_KEY, NO_AUTH};
use super::route::AuthNeed;

/// Cal.com's `RATE_LIMIT_DEFAULT_TTL_MS` and block duration.
const WINDOW_S: i64 = 60;
const BLOCK_S: i64 = 60;
/// Trackers kept before expired ones are swept (bounds memory).
const TRACKERS_MAX: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A `cal_` key from the fixture, and the user it belongs to.
    ApiKey {
        key: String,
        user_id: u64,
    },
    /// A bearer token that is not an API key: a managed-user access token.
    /// The mock knows none, so it authenticates nothing.
    AccessToken(String),
    /// An `Authorization` header without the `Bearer ` prefix (#20808).
    Malformed,
    Anonymous,
}

impl Caller {
    /// Reads the header. An unknown `cal_` key is refused on every route by
    /// the throttler guard, before anything else.
    pub fn identify(authorization: Option<&str>, fixture: &Fixture) -> Result<Caller, ApiError> {
        let Some(raw) = authorization.map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(Caller::Anonymous);
        };
        let Some(token) = raw.strip_prefix("Bearer ").map(str::trim) else {
            return Ok(Caller::Malformed);
        };
        if !token.starts_with("cal_") {
            return Ok(Caller::AccessToken(token.to_string()));
        }
        match fixture.api_key(token) {
            Some(k) => Ok(Caller::ApiKey {
                key: k.key.clone(),
                user_id: k.user_id,
            }),
            None => Err(ApiError::nest(401, INVALID_KEY)),
        }
    }

    /// The throttler's bucket name.
    pub fn tracker(&self, peer: IpAddr) -> String {
        match self {
            Caller::ApiKey { key, .. } => format!("api_key_{key}"),
            Caller::AccessToken(t) => format!("access_token_{t}"),
            Caller::Malformed | Caller::Anonymous => format!("ip_{peer}"),
        }
    }

    /// The user behind the call, when it authenticated.
    pub fn user_id(&self) -> Option<u64> {
        match self {
            Caller::ApiKey { user_id, .. } => Some(*user_id),
            _ => None,
        }
    }

    /// The auth guard of a route. A header without `Bearer ` on a guarded
    /// route ends in the bare 500 of #20808; optional routes then treat the
    /// caller as anonymous.
    pub fn authorize(&self, need: AuthNeed) -> Result<(), ApiError> {
        match (need, self) {
            (AuthNeed::Required, Caller::Malformed) => Err(ApiError::internal()),
            (AuthNeed::Required, Caller::Anonymous) => Err(ApiError::nest(401, NO_AUTH)),
            (AuthNeed::Required, Caller::AccessToken(_)) => Err(ApiError::nest(
                401,
                "ApiAuthStrategy - access token - Invalid access token",
            )),
            _ => Ok(()),
        }
    }
}

/// The throttler's answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the window (or the block) ends.
    pub reset_s: i64,
}

impl Verdict {
    /// `X-RateLimit-*-Default` headers, on every answer, 429 included.
    pub fn headers(&self) -> Vec<(String, String)> {
        vec![
            ("X-RateLimit-Limit-Default".into(), self.limit.to_string()),
            (
                "X-RateLimit-Remaining-Default".into(),
                self.remaining.to_string(),
            ),
            ("X-RateLimit-Reset-Default".into(), self.reset_s.to_string()),
        ]
    }

    /// What a canned 429 fault shows: blocked for a whole window.
    pub fn blocked(limit: u32) -> Verdict {
        Verdict {
            allowed: false,
            limit,
            remaining: 0,
            reset_s: BLOCK_S,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: DateTime<Utc>,
    hits: u32,
    blocked_until: Option<DateTime<Utc>>,
}

#[derive(Debug)]
pub struct Throttler {
    limit: u32,
    windows: HashMap<String, Window>,
}

impl Throttler {
    pub fn new(limit_per_minute: u32) -> Self {
        Self {
            limit: limit_per_minute,
            windows: HashMap::new(),
        }
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Counts one request of `tracker` at `now`.
    pub fn hit(&mut self, tracker: &str, now: DateTime<Utc>) -> Verdict {
        if self.windows.len() >= TRACKERS_MAX {
            self.sweep(now);
        }
        let limit = self.limit;
        let w = self.windows.entry(tracker.to_string()).or_insert(Window {
            started: now,
            hits: 0,
            blocked_until: None,
        });
        if let Some(until) = w.blocked_until.filter(|u| *u > now) {
            return Verdict {
                allowed: false,
                limit,
                remaining: 0,
                reset_s: seconds_until(now, until),
            };
        }
        if now >= w.started + Duration::seconds(WINDOW_S) || w.blocked_until.is_some() {
            *w = Window {
                started: now,
                hits: 0,
                blocked_until: None,
            };
        }
        w.hits += 1;
        if w.hits > limit {
            w.blocked_until = Some(now + Duration::seconds(BLOCK_S));
            return Verdict::blocked(limit);
        }
        Verdict {
            allowed: true,
            limit,
            remaining: limit - w.hits,
            reset_s: seconds_until(now, w.started + Duration::seconds(WINDOW_S)),
        }
    }

    fn sweep(&mut self, now: DateTime<Utc>) {
        self.windows.retain(|_, w| {
            let end = w.started + Duration::seconds(WINDOW_S);
            end > now || w.blocked_until.is_some_and(|u| u > now)
        });
    }
}

/// Whole seconds, rounded up, as `nestjs/throttler` reports them.
fn seconds_until(now: DateTime<Utc>, then: DateTime<Utc>) -> i64 {
    let ms = (then - now).num_milliseconds().max(0);
    (ms + 999) / 1000
}
