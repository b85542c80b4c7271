//! What a Cal.com reply means for the caller and how long to wait before
//! trying again: the one classification of replies into `CalcomError`s, the
//! one backoff formula (capped exponential with full jitter, never shorter
//! than the server asked) and the one in-memory retry loop. The saga runner
//! reuses `RetryPolicy::backoff_delay` for its durable retries.
//! This module never repeats anything that is not `Retryable`: a create whose
//! outcome is unknown must be reconciled, not sent again.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use rand::rngs::SmallRng;

use super::{ApiResponse, CalcomError, TransportError};
use crate::clock::Clock;

/// The longest wait a server header is believed for: a garbled or hostile
/// header must not park the client for hours.
pub const SERVER_WAIT_MAX: Duration = Duration::from_secs(600);

/// Cal.com names its rate-limit reset headers `X-RateLimit-Reset-<Name>`.
const RESET_HEADER_PREFIX: &str = "x-ratelimit-reset-";
/// How much of an unreadable error body goes into a message.
const BODY_EXCERPT_CHARS_MAX: usize = 200;

/// How often and how patiently a call is retried in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Sends per call, the first included; 0 is treated as 1.
    pub attempts_max: u32,
    /// The cap of the first backoff; it doubles per failure.
    pub base_delay: Duration,
    /// No backoff is longer. A server that asks for a longer wait gets its
    /// error handed back instead, so the caller can schedule a durable retry
    /// rather than hold a task in memory.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts_max: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The wait after `failures` failed attempts (1 for the first failure):
    /// a `jitter_unit` fraction (0.0..=1.0, drawn by the caller) of
    /// `min(max_delay, base_delay * 2^(failures-1))` ("full jitter", so many
    /// clients that failed together do not return together), but never less
    /// than what the server asked for. Pure, so durable retries can reuse it.
    pub fn backoff_delay(
        &self,
        failures: u32,
        server_after: Option<Duration>,
        jitter_unit: f64,
    ) -> Duration {
        let doubling = 2u32.saturating_pow(failures.saturating_sub(1));
        let cap = self.base_delay.saturating_mul(doubling).min(self.max_delay);
        let unit = if jitter_unit.is_finite() {
            jitter_unit.clamp(0.0, 1.0)
        } else {
            1.0
        };
        cap.mul_f64(unit).max(server_after.unwrap_or_default())
    }

    /// `backoff_delay` with the jitter drawn from `rng`.
    pub fn delay(
        &self,
        failures: u32,
        server_after: Option<Duration>,
        rng: &mut SmallRng,
    ) -> Duration {
        self.backoff_delay(failures, server_after, rng.gen_range(0.0..=1.0))
    }
}

/// Runs `attempt(n)` for n = 1, 2, .. until it returns anything other than
/// `Retryable`, the policy's attempts are spent, or the server asks for a
/// wait longer than `max_delay`; sleeps on `clock` in between.
pub async fn with_retries<T, F, Fut>(
    policy: &RetryPolicy,
    clock: &dyn Clock,
    rng: &Mutex<SmallRng>,
    mut attempt: F,
) -> Result<T, CalcomError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, CalcomError>>,
{
    let attempts_max = policy.attempts_max.max(1);
    let mut n = 1;
    loop {
        let (after, reason) = match attempt(n).await {
            Err(CalcomError::Retryable { after, reason }) if n < attempts_max => (after, reason),
            done => return done,
        };
        if after.is_some_and(|a| a > policy.max_delay) {
            // Too long to hold a task in memory: the caller schedules it.
            return Err(CalcomError::Retryable { after, reason });
        }
        let delay = {
            // A poisoned lock only means another call panicked mid-draw; the
            // generator state is still a valid generator.
            let mut rng = rng.lock().unwrap_or_else(|e| e.into_inner());
            policy.delay(n, after, &mut rng)
        };
        if !delay.is_zero() {
            clock.sleep(delay).await;
        }
        n += 1;
    }
}

/// Turns one exchange into the 2xx reply to parse, or the error the caller
/// acts on. `repeat_safe` says whether sending the request twice could do
/// anything twice (false for creates); `now` dates a `Retry-After` given as
/// an HTTP date.
pub fn classify(
    route: &str,
    repeat_safe: bool,
    exchange: Result<ApiResponse, TransportError>,
    now: DateTime<Utc>,
) -> Result<ApiResponse, CalcomError> {
    let reply = match exchange {
        Ok(reply) => reply,
        Err(e @ TransportError::NotSent { .. }) => {
            return Err(CalcomError::Retryable {
                after: None,
                reason: format!("{route}: {e}"),
            });
        }
        Err(e) => return Err(unreadable(route, repeat_safe, &e.to_string())),
    };
    let status = reply.status;
    match status {
        200..=299 => Ok(reply),
        429 => Err(CalcomError::Retryable {
            after: server_wait(&reply, now),
            reason: format!(
                "{route}: rate limited (HTTP 429): {}",
                error_message(&reply)
            ),
        }),
        408 | 500..=599 if repeat_safe => Err(CalcomError::Retryable {
            after: server_wait(&reply, now),
            reason: format!("{route}: HTTP {status}: {}", error_message(&reply)),
        }),
        408 | 500..=599 => Err(CalcomError::OutcomeUnknown {
            reason: format!(
                "{route} answered HTTP {status} ({}); Cal.com may have committed it before failing",
                error_message(&reply)
            ),
        }),
        401 => Err(CalcomError::Permanent {
            status,
            message: format!(
                "{}; check CALCOM_API_KEY (a Cal.com API key starting with cal_)",
                error_message(&reply)
            ),
        }),
        300..=399 => Err(CalcomError::Permanent {
            status,
            message: format!(
                "{route} was redirected to {:?}, which the client does not follow; check the Cal.com base URL",
                reply.header("location").unwrap_or("(no Location)")
            ),
        }),
        _ => Err(CalcomError::Permanent {
            status,
            message: error_message(&reply),
        }),
    }
}

/// The error for a reply that could not be read (lost, too large, not the
/// expected JSON): harmless to repeat for reads, unknown for creates.
pub fn unreadable(route: &str, repeat_safe: bool, what: &str) -> CalcomError {
    if repeat_safe {
        CalcomError::Retryable {
            after: None,
            reason: format!("{route}: {what}"),
        }
    } else {
        CalcomError::OutcomeUnknown {
            reason: format!("{route}: {what}"),
        }
    }
}

/// Cal.com's own message, verbatim, from either error body shape: the Nest
/// envelope `{"error":{"message"}}` or the bare `{"statusCode","message"}`.
fn error_message(reply: &ApiResponse) -> String {
    let json = serde_json::from_slice::<serde_json::Value>(&reply.body).ok();
    let message = json.as_ref().and_then(|v| {
        v.pointer("/error/message")
            .or_else(|| v.get("message"))
            .and_then(message_text)
    });
    message.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(&reply.body);
        let excerpt: String = text.chars().take(BODY_EXCERPT_CHARS_MAX).collect();
        format!(
            "HTTP {} with no Cal.com error message (body: {excerpt:?})",
            reply.status
        )
    })
}

/// Nest sends a string, or a list of strings for validation failures.
fn message_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Array(items) => {
            let parts: Vec<&str> = items.iter().filter_map(|i| i.as_str()).collect();
            (!parts.is_empty()).then(|| parts.join("; "))
        }
        _ => None,
    }
}

/// How long the server asked us to wait: the longest of `Retry-After` and
/// every `X-RateLimit-Reset-<Name>` (Cal.com sends only the latter, in
/// seconds), capped at `SERVER_WAIT_MAX`.
fn server_wait(reply: &ApiResponse, now: DateTime<Utc>) -> Option<Duration> {
    let retry_after = reply
        .header("retry-after")
        .and_then(|v| seconds(v).or_else(|| http_date_wait(v, now)));
    let resets = reply
        .headers
        .iter()
        .filter(|(k, _)| {
            k.get(..RESET_HEADER_PREFIX.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(RESET_HEADER_PREFIX))
        })
        .filter_map(|(_, v)| seconds(v));
    retry_after
        .into_iter()
        .chain(resets)
        .max()
        .map(|d| d.min(SERVER_WAIT_MAX))
}

fn seconds(v: &str) -> Option<Duration> {
    let s: f64 = v.trim().parse().ok()?;
    (s.is_finite() && s >= 0.0)
        .then(|| Duration::from_secs_f64(s.min(SERVER_WAIT_MAX.as_secs_f64())))
}

fn http_date_wait(v: &str, now: DateTime<Utc>) -> Option<Duration> {
    let at = DateTime::parse_from_rfc2822(v.trim()).ok()?.to_utc();
    Some((at - now).to_std().unwrap_or_default())
}

#[cfg(test)]
mod tests;
