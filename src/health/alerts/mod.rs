//! Alerts on health status changes. `changes` compares two reports (pure);
//! `Alerts::notify` logs every change as one structured line and POSTs one
//! message per run to each configured URL: Slack's incoming-webhook shape
//! `{"text": ...}` or a generic JSON body with the full structured change.
//! Deliveries are retried a bounded number of times with doubling backoff
//! (on the injected clock), the same transition is not re-sent within the
//! de-duplication window, and at most `per_hour_max` messages leave per
//! hour. Alert URLs are secrets (Slack's carry a token): they are never
//! logged or shown; targets are named by their position and kind.
//! This module never runs checks or decides a status.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use super::{Report, Status};
use crate::calcom::{Poster, RetryPolicy};
use crate::clock::Clock;

/// The body a target receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertFormat {
    /// `{"text": "..."}`: Slack, Mattermost, Rocket.Chat incoming webhooks.
    Slack,
    /// `{"source":"calsaga","status":..,"changes":[..]}`.
    Generic,
}

impl AlertFormat {
    fn as_str(self) -> &'static str {
        match self {
            AlertFormat::Slack => "slack",
            AlertFormat::Generic => "generic",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertTarget {
    pub url: String,
    pub format: AlertFormat,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertConfig {
    pub targets: Vec<AlertTarget>,
    /// Sends per message and target, the first included.
    pub attempts_max: u32,
    /// Wait after the first failed send; it doubles per failure, capped.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// The same transition of the same check is not re-sent within this.
    pub dedupe_window: Duration,
    /// Messages (per target) per rolling hour; more are logged only.
    pub per_hour_max: usize,
}

impl Default for AlertConfig {
    fn default() -> Self {
        AlertConfig {
            targets: Vec::new(),
            attempts_max: 3,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            dedupe_window: Duration::from_secs(15 * 60),
            per_hour_max: 20,
        }
    }
}

/// One status change of one check, or of the whole (`subject` "overall").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub subject: String,
    /// `None` on the first run after start.
    pub from: Option<Status>,
    pub to: Status,
    pub message: String,
    pub at: DateTime<Utc>,
}

pub const OVERALL: &str = "overall";

/// What changed from `previous` to `next`. On the first run every status
/// that is not ok counts as a change (an outage at start is news).
pub fn changes(previous: Option<&Report>, next: &Report) -> Vec<Change> {
    let was = |subject: &str| -> Option<Status> {
        let p = previous?;
        if subject == OVERALL {
            return Some(p.status);
        }
        p.checks
            .iter()
            .find(|c| c.check.as_str() == subject)
            .map(|c| c.status)
    };
    let overall = (OVERALL, next.status, overall_message(next));
    let checks = next
        .checks
        .iter()
        .map(|c| (c.check.as_str(), c.status, c.message.clone()));
    std::iter::once(overall)
        .chain(checks)
        .filter_map(|(subject, to, message)| {
            let from = was(subject);
            let changed = match from {
                Some(from) => from != to,
                None => to != Status::Ok,
            };
            changed.then(|| Change {
                subject: subject.to_string(),
                from,
                to,
                message,
                at: next.checked_at,
            })
        })
        .collect()
}

fn overall_message(report: &Report) -> String {
    let bad: Vec<&str> = report
        .checks
        .iter()
        .filter(|c| c.status != Status::Ok)
        .map(|c| c.check.as_str())
        .collect();
    if bad.is_empty() {
        "every check is ok".to_string()
    } else {
        format!("not ok: {}", bad.join(", "))
    }
}

fn from_str(from: Option<Status>) -> &'static str {
    from.map_or("unknown", Status::as_str)
}

/// One structured log line per change, whether or not any URL is set.
pub fn log_changes(changes: &[Change]) {
    for c in changes {
        let (subject, from, to) = (c.subject.as_str(), from_str(c.from), c.to.as_str());
        match c.to {
            Status::Ok => {
                tracing::info!(subject, from, to, message = %c.message, "health status changed")
            }
            Status::Warning => {
                tracing::warn!(subject, from, to, message = %c.message, "health status changed")
            }
            Status::Critical => {
                tracing::error!(subject, from, to, message = %c.message, "health status changed")
            }
        }
    }
}

/// What one `notify` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifyOutcome {
    /// Changes in the message (after de-duplication).
    pub sent_changes: usize,
    pub deduplicated: usize,
    /// Targets that acknowledged (2xx).
    pub delivered: usize,
    pub failed: usize,
    /// Targets skipped by the hourly limit.
    pub rate_limited: usize,
}

/// Sends alerts; cheap to clone.
#[derive(Clone)]
pub struct Alerts {
    inner: Arc<AlertsInner>,
}

struct AlertsInner {
    config: AlertConfig,
    poster: Arc<dyn Poster>,
    clock: Arc<dyn Clock>,
    state: Mutex<AlertState>,
}

#[derive(Default)]
struct AlertState {
    /// Last send of each (subject, from, to).
    sent: HashMap<(String, Option<Status>, Status), DateTime<Utc>>,
    /// Send instants of the last hour, per target index.
    recent: HashMap<usize, VecDeque<DateTime<Utc>>>,
}

impl Alerts {
    pub fn new(config: AlertConfig, poster: Arc<dyn Poster>, clock: Arc<dyn Clock>) -> Alerts {
        Alerts {
            inner: Arc::new(AlertsInner {
                config,
                poster,
                clock,
                state: Mutex::new(AlertState::default()),
            }),
        }
    }

    /// Logs `changes` and starts delivering them; the returned task ends
    /// when every target acknowledged or ran out of attempts (a caller
    /// that does not wait for it lets it finish on its own).
    pub fn notify(&self, changes: &[Change]) -> tokio::task::JoinHandle<NotifyOutcome> {
        log_changes(changes);
        let (fresh, deduplicated) = self.deduplicate(changes);
        let this = self.clone();
        tokio::spawn(async move {
            let mut outcome = NotifyOutcome {
                sent_changes: fresh.len(),
                deduplicated,
                ..NotifyOutcome::default()
            };
            if fresh.is_empty() {
                return outcome;
            }
            for (index, target) in this.inner.config.targets.iter().enumerate() {
                if !this.admit(index) {
                    tracing::warn!(
                        target = index,
                        kind = target.format.as_str(),
                        limit = this.inner.config.per_hour_max,
                        "health alert not sent: the hourly limit of alert messages is reached"
                    );
                    outcome.rate_limited += 1;
                    continue;
                }
                if this.deliver(index, target, &fresh).await {
                    outcome.delivered += 1;
                } else {
                    outcome.failed += 1;
                }
            }
            outcome
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, AlertState> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops changes sent within the window; remembers the rest as sent.
    fn deduplicate(&self, changes: &[Change]) -> (Vec<Change>, usize) {
        let window = chrono::Duration::from_std(self.inner.config.dedupe_window)
            .unwrap_or(chrono::Duration::zero());
        let now = self.inner.clock.now();
        let mut state = self.state();
        let mut fresh = Vec::new();
        for c in changes {
            let key = (c.subject.clone(), c.from, c.to);
            if state.sent.get(&key).is_some_and(|at| now - *at < window) {
                continue;
            }
            state.sent.insert(key, now);
            fresh.push(c.clone());
        }
        // Forget what can no longer suppress anything (bounds the map).
        state.sent.retain(|_, at| now - *at < window);
        let deduplicated = changes.len() - fresh.len();
        (fresh, deduplicated)
    }

    /// Counts one message against the target's hourly limit.
    fn admit(&self, target: usize) -> bool {
        let now = self.inner.clock.now();
        let hour_ago = now - chrono::Duration::hours(1);
        let mut state = self.state();
        let recent = state.recent.entry(target).or_default();
        while recent.front().is_some_and(|at| *at <= hour_ago) {
            recent.pop_front();
        }
        if recent.len() >= self.inner.config.per_hour_max {
            return false;
        }
        recent.push_back(now);
        true
    }

    /// Sends one message to one target, retrying with backoff.
    async fn deliver(&self, index: usize, target: &AlertTarget, changes: &[Change]) -> bool {
        let config = &self.inner.config;
        let body = body(target.format, changes).to_string().into_bytes();
        let attempts_max = config.attempts_max.max(1);
        let retry = RetryPolicy {
            attempts_max,
            base_delay: config.backoff_base,
            max_delay: config.backoff_max,
        };
        for attempt in 1..=attempts_max {
            let poster = Arc::clone(&self.inner.poster);
            let (url, bytes) = (target.url.clone(), body.clone());
            let headers = vec![("Content-Type".to_string(), "application/json".to_string())];
            let sent =
                tokio::task::spawn_blocking(move || poster.post(&url, &headers, &bytes)).await;
            let problem = match sent {
                Ok(Ok(200..=299)) => return true,
                Ok(Ok(status)) => format!("the receiver answered HTTP {status}"),
                Ok(Err(e)) => e.to_string().replace(&target.url, "<alert url>"),
                Err(e) => format!("the sending thread failed: {e}"),
            };
            tracing::warn!(target = index, kind = target.format.as_str(), attempt, attempts_max, problem = %problem, "health alert not delivered; check the alert URL and that the receiver is up");
            if attempt < attempts_max {
                // No jitter: one sender, one receiver.
                let delay = retry.backoff_delay(attempt, None, 1.0);
                self.inner.clock.sleep(delay).await;
            }
        }
        false
    }
}

/// The JSON body for a format.
pub fn body(format: AlertFormat, changes: &[Change]) -> serde_json::Value {
    match format {
        AlertFormat::Slack => {
            let lines: Vec<String> = changes
                .iter()
                .map(|c| {
                    format!(
                        "• {}: {} → {}: {}",
                        c.subject,
                        from_str(c.from),
                        c.to.as_str(),
                        c.message
                    )
                })
                .collect();
            json!({ "text": format!("calsaga health\n{}", lines.join("\n")) })
        }
        AlertFormat::Generic => {
            let overall = changes.iter().find(|c| c.subject == OVERALL).map(|c| c.to);
            json!({
                "source": "calsaga",
                "kind": "health_status_changed",
                "status": overall,
                "changes": changes,
            })
        }
    }
}

#[cfg(test)]
mod tests;
