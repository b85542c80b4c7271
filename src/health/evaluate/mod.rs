//! Figures -> status: the one place that decides what a number means. Every
//! function here is pure (figures and thresholds in, a `CheckResult` out),
//! so each threshold is unit-tested without Cal.com, a database or a clock.
//! Nothing here reads, calls or waits.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Check, CheckResult, Status};
use crate::store::{ActivityCounts, CallStat, InboxSummary};

/// Where each status starts. `Default` is the documented set (docs/HEALTH.md).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// The connectivity probe answering slower than this is a warning.
    pub probe_latency_warn_ms: u64,
    /// Share of failed Cal.com calls in the window.
    pub error_rate_warn: f64,
    pub error_rate_critical: f64,
    /// Fewer calls than this in the window are too few to judge a rate.
    pub calls_min: usize,
    /// Average latency of Cal.com calls in the window.
    pub latency_avg_warn_ms: u64,
    pub latency_avg_critical_ms: u64,
    /// Share of webhooks (last 24 h) that failed processing.
    pub webhook_failure_warn: f64,
    pub webhook_failure_critical: f64,
    /// A webhook pending longer than this means the inbox is stuck.
    pub webhook_pending_age_warn_s: i64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            probe_latency_warn_ms: 2_000,
            error_rate_warn: 0.05,
            error_rate_critical: 0.15,
            calls_min: 10,
            latency_avg_warn_ms: 1_000,
            latency_avg_critical_ms: 5_000,
            webhook_failure_warn: 0.10,
            webhook_failure_critical: 0.50,
            webhook_pending_age_warn_s: 15 * 60,
        }
    }
}

/// The one cheap authenticated call of checks 1 and 2, as it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// No Cal.com URL/key is configured (the CLI without flags).
    NotConfigured,
    /// Cal.com answered 2xx.
    Answered { latency_ms: u64 },
    /// Cal.com answered with a refusal (`status` 4xx).
    Refused {
        status: u16,
        message: String,
        latency_ms: u64,
    },
    /// No usable answer: unreachable, timed out, 5xx, rate limited.
    Failed { reason: String, latency_ms: u64 },
}

const NOT_CONFIGURED: &str = "not checked: no Cal.com is configured; pass --calcom-url and --calcom-api-key (or set CALCOM_API_URL and CALCOM_API_KEY)";

fn result(check: Check, status: Status, message: String, figures: impl Serialize) -> CheckResult {
    CheckResult {
        check,
        status,
        message,
        figures: serde_json::to_value(figures).unwrap_or_default(),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ProbeFigures {
    configured: bool,
    answered: bool,
    latency_ms: Option<u64>,
    http_status: Option<u16>,
}

fn probe_figures(probe: &Probe) -> ProbeFigures {
    let (answered, latency_ms, http_status) = match probe {
        Probe::NotConfigured => (false, None, None),
        Probe::Answered { latency_ms } => (true, Some(*latency_ms), Some(200)),
        Probe::Refused {
            status, latency_ms, ..
        } => (true, Some(*latency_ms), Some(*status)),
        Probe::Failed { latency_ms, .. } => (false, Some(*latency_ms), None),
    };
    ProbeFigures {
        configured: *probe != Probe::NotConfigured,
        answered,
        latency_ms,
        http_status,
    }
}

/// Check 1: does Cal.com answer at all, and how fast.
pub fn connectivity(probe: &Probe, t: &Thresholds) -> CheckResult {
    let figures = probe_figures(probe);
    let (status, message) = match probe {
        Probe::NotConfigured => (Status::Warning, NOT_CONFIGURED.to_string()),
        Probe::Failed { reason, .. } => (
            Status::Critical,
            format!(
                "Cal.com gave no usable answer: {reason}; check the Cal.com URL, the network and status.cal.com"
            ),
        ),
        Probe::Answered { latency_ms } | Probe::Refused { latency_ms, .. }
            if *latency_ms >= t.probe_latency_warn_ms =>
        {
            (
                Status::Warning,
                format!(
                    "Cal.com answered in {latency_ms} ms (warning from {} ms); bookings will be slow",
                    t.probe_latency_warn_ms
                ),
            )
        }
        Probe::Answered { latency_ms } | Probe::Refused { latency_ms, .. } => {
            (Status::Ok, format!("Cal.com answered in {latency_ms} ms"))
        }
    };
    result(Check::Connectivity, status, message, figures)
}

/// Check 2: is the configured API key accepted.
pub fn authentication(probe: &Probe) -> CheckResult {
    let figures = probe_figures(probe);
    let (status, message) = match probe {
        Probe::NotConfigured => (Status::Warning, NOT_CONFIGURED.to_string()),
        Probe::Answered { .. } => (Status::Ok, "Cal.com accepted the API key".to_string()),
        Probe::Refused {
            status: status @ (401 | 403),
            message,
            ..
        } => (
            Status::Critical,
            format!(
                "Cal.com refused the API key (HTTP {status}: {message}); create a key in Cal.com (Settings > Developer > API keys), set CALCOM_API_KEY and restart calsaga"
            ),
        ),
        Probe::Refused {
            status, message, ..
        } => (
            Status::Warning,
            format!(
                "the key could not be verified: Cal.com answered HTTP {status} ({message}); check the Cal.com URL points at API v2"
            ),
        ),
        Probe::Failed { .. } => (
            Status::Warning,
            "the key could not be verified: Cal.com gave no usable answer (see connectivity)"
                .to_string(),
        ),
    };
    result(Check::Authentication, status, message, figures)
}

/// One catalogue event type that Cal.com does not match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventTypeProblem {
    pub event_type_id: u64,
    /// `service/segment` names that book it.
    pub used_by: Vec<String>,
    pub expected_min: u32,
    /// Cal.com's length; `None` when the event type does not exist.
    pub actual_min: Option<u32>,
}

/// What check 3 found; `unverified` is why it could not look.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventTypeFigures {
    pub checked: usize,
    pub missing: Vec<EventTypeProblem>,
    pub mismatched: Vec<EventTypeProblem>,
    pub unverified: Option<String>,
}

/// Check 3: every event type the catalogue books exists with its duration.
pub fn event_types(f: &EventTypeFigures) -> CheckResult {
    let (status, message) = if let Some(why) = &f.unverified {
        (Status::Warning, format!("not checked: {why}"))
    } else if f.missing.is_empty() && f.mismatched.is_empty() {
        (
            Status::Ok,
            format!(
                "all {} event types of the catalogue exist in Cal.com with their durations",
                f.checked
            ),
        )
    } else {
        let lines: Vec<String> = f
            .missing
            .iter()
            .map(|p| {
                format!(
                    "event type {} is missing (used by {})",
                    p.event_type_id,
                    p.used_by.join(", ")
                )
            })
            .chain(f.mismatched.iter().map(|p| {
                format!(
                    "event type {} lasts {} min in Cal.com, the catalogue says {} min (used by {})",
                    p.event_type_id,
                    p.actual_min.unwrap_or_default(),
                    p.expected_min,
                    p.used_by.join(", ")
                )
            }))
            .collect();
        (
            Status::Critical,
            format!(
                "{}; bookings of these segments fail: fix the event types in Cal.com or the ids and durations in workflows/*.json, then `calsaga catalog check`",
                lines.join("; ")
            ),
        )
    };
    result(Check::EventTypes, status, message, f)
}

/// What check 4 counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivityFigures {
    pub last_24h: ActivityCounts,
    pub last_7d: ActivityCounts,
    /// Sagas in state `failed` now (any age): each needs an admin.
    pub failed_open: u64,
    /// The longest-waiting of them.
    pub failed_ids: Vec<uuid::Uuid>,
}

/// Check 4: booking activity; sagas waiting for an admin are a warning.
pub fn activity(f: &ActivityFigures) -> CheckResult {
    let d = &f.last_24h;
    let summary = format!(
        "last 24 h: {} started, {} booked, {} cancelled, {} compensated",
        d.started, d.booked, d.cancelled, d.compensated
    );
    let (status, message) = if f.failed_open == 0 {
        (Status::Ok, summary)
    } else {
        let ids: Vec<String> = f.failed_ids.iter().map(ToString::to_string).collect();
        (
            Status::Warning,
            format!(
                "{summary}; {} sagas wait for an admin ({}): fix the cause, then `calsaga workflows resume ID` (or `calsaga workflows compensate ID --reason ...`)",
                f.failed_open,
                ids.join(", ")
            ),
        )
    };
    result(Check::Activity, status, message, f)
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookFigures {
    pub last_received_at: Option<DateTime<Utc>>,
    pub pending: u64,
    pub oldest_pending_age_s: Option<i64>,
    pub received_24h: u64,
    pub failing_24h: u64,
    pub failure_rate: f64,
}

impl WebhookFigures {
    pub fn of(inbox: &InboxSummary, now: DateTime<Utc>) -> WebhookFigures {
        WebhookFigures {
            last_received_at: inbox.last_received_at,
            pending: inbox.pending,
            oldest_pending_age_s: inbox.oldest_pending_at.map(|at| (now - at).num_seconds()),
            received_24h: inbox.received,
            failing_24h: inbox.failing,
            failure_rate: ratio(inbox.failing, inbox.received),
        }
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn percent(rate: f64) -> String {
    format!("{:.1} %", rate * 100.0)
}

/// Check 5: webhooks arrive and are processed.
pub fn webhooks(f: &WebhookFigures, t: &Thresholds) -> CheckResult {
    let last = f
        .last_received_at
        .map_or_else(|| "none yet".to_string(), |at| at.to_rfc3339());
    let summary = format!(
        "last webhook received: {last}; {} pending; {} of {} failing in 24 h ({})",
        f.pending,
        f.failing_24h,
        f.received_24h,
        percent(f.failure_rate)
    );
    let fix = "see `last_error` of the failed entries in the log (RUST_LOG=calsaga=debug) and check --webhook-secret matches Cal.com's webhook";
    let stuck = f
        .oldest_pending_age_s
        .is_some_and(|age| age >= t.webhook_pending_age_warn_s);
    let status = if f.failure_rate > t.webhook_failure_critical {
        Status::Critical
    } else if f.failure_rate > t.webhook_failure_warn || stuck {
        Status::Warning
    } else {
        Status::Ok
    };
    let message = match status {
        Status::Ok => summary,
        _ if stuck => format!(
            "{summary}; the oldest pending webhook waits {} s: is calsaga processing its inbox? {fix}",
            f.oldest_pending_age_s.unwrap_or_default()
        ),
        _ => format!("{summary}; {fix}"),
    };
    result(Check::Webhooks, status, message, f)
}

/// Outcome classes the call recorder writes; the last two are Cal.com's
/// considered answers about a request (slot taken, unknown uid), not
/// failures of Cal.com.
pub const CLASS_OK: &str = "ok";
pub const CLASS_REFUSED: &str = "refused";

/// Whether a recorded call counts against Cal.com's error rate.
pub fn is_error(class: &str) -> bool {
    class != CLASS_OK && class != CLASS_REFUSED
}

/// Checks 6 and 7 read the same window of recorded calls.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallFigures {
    pub window_s: u64,
    pub calls: usize,
    pub errors: usize,
    pub error_rate: f64,
    pub latency_avg_ms: u64,
    pub latency_p95_ms: u64,
    pub latency_max_ms: u64,
}

impl CallFigures {
    pub fn of(calls: &[CallStat], window_s: u64) -> CallFigures {
        let errors = calls.iter().filter(|c| is_error(&c.class)).count();
        let mut latencies: Vec<u64> = calls.iter().map(|c| c.latency_ms).collect();
        latencies.sort_unstable();
        let total: u128 = latencies.iter().map(|&l| u128::from(l)).sum();
        let avg = total
            .checked_div(latencies.len() as u128)
            .map_or(0, |a| u64::try_from(a).unwrap_or(u64::MAX));
        CallFigures {
            window_s,
            calls: calls.len(),
            errors,
            error_rate: ratio(errors as u64, calls.len() as u64),
            latency_avg_ms: avg,
            latency_p95_ms: nearest_rank(&latencies, 95),
            latency_max_ms: latencies.last().copied().unwrap_or(0),
        }
    }
}

/// The nearest-rank percentile of sorted values (0 when empty).
fn nearest_rank(sorted: &[u64], pct: usize) -> u64 {
    let rank = (sorted.len() * pct).div_ceil(100).max(1);
    sorted.get(rank - 1).copied().unwrap_or(0)
}

/// Warning from `warn`, critical from `critical` (both inclusive).
fn ladder(value: f64, warn: f64, critical: f64) -> Status {
    if value >= critical {
        Status::Critical
    } else if value >= warn {
        Status::Warning
    } else {
        Status::Ok
    }
}

/// Check 6: share of failed Cal.com calls in the window.
pub fn error_rate(f: &CallFigures, t: &Thresholds) -> CheckResult {
    let window = format!("the last {} min", f.window_s / 60);
    let (status, message) = if f.calls < t.calls_min {
        (
            Status::Ok,
            format!(
                "{} Cal.com calls in {window}: too few to judge a rate (from {})",
                f.calls, t.calls_min
            ),
        )
    } else {
        let summary = format!(
            "{} of {} Cal.com calls failed in {window} ({})",
            f.errors,
            f.calls,
            percent(f.error_rate)
        );
        let status = ladder(f.error_rate, t.error_rate_warn, t.error_rate_critical);
        let message = if status == Status::Ok {
            summary
        } else {
            format!(
                "{summary}; sagas retry on their own: check status.cal.com, then the connectivity and authentication checks"
            )
        };
        (status, message)
    };
    result(Check::ErrorRate, status, message, f)
}

/// Check 7: how fast Cal.com answers.
pub fn response_time(f: &CallFigures, t: &Thresholds) -> CheckResult {
    let summary = format!(
        "Cal.com calls in the last {} min: average {} ms, p95 {} ms over {} calls",
        f.window_s / 60,
        f.latency_avg_ms,
        f.latency_p95_ms,
        f.calls
    );
    let status = ladder(
        f.latency_avg_ms as f64,
        t.latency_avg_warn_ms as f64,
        t.latency_avg_critical_ms as f64,
    );
    let message = if status == Status::Ok {
        summary
    } else {
        format!(
            "{summary} (warning from {} ms, critical from {} ms); bookings wait on Cal.com: check status.cal.com and this host's network",
            t.latency_avg_warn_ms, t.latency_avg_critical_ms
        )
    };
    result(Check::ResponseTime, status, message, f)
}

/// What kind of disagreement check 8 found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A live Cal.com booking with our metadata and no booked saga (I2).
    OrphanBooking,
    /// A mirror row believed live whose Cal.com booking is gone.
    MissingBooking,
    /// A booked composite with some segments live and some not.
    BrokenComposite,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub kind: FindingKind,
    /// The workflow the booking names (it may not exist in this database).
    pub workflow: String,
    pub calcom_uids: Vec<String>,
    pub detail: String,
    /// The command that repairs it.
    pub fix: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncFigures {
    /// Live Cal.com bookings of the catalogue's event types read.
    pub calcom_bookings: usize,
    /// Upcoming mirror rows compared.
    pub mirror_rows: usize,
    /// False when Cal.com had more pages than one check reads.
    pub complete: bool,
    pub orphans: usize,
    pub missing: usize,
    pub broken: usize,
    /// The first findings (all are counted above).
    pub findings: Vec<Finding>,
    pub unverified: Option<String>,
}

/// Check 8: the database and Cal.com agree.
pub fn database_sync(f: &SyncFigures) -> CheckResult {
    let (status, message) = if let Some(why) = &f.unverified {
        (Status::Warning, format!("not checked: {why}"))
    } else if f.orphans + f.broken > 0 {
        (
            Status::Critical,
            format!(
                "{} orphaned Cal.com bookings, {} broken composites, {} booked sagas with bookings gone from Cal.com; each finding names its fix",
                f.orphans, f.broken, f.missing
            ),
        )
    } else if f.missing > 0 || !f.complete {
        let partial = if f.complete {
            String::new()
        } else {
            "; only the first pages of Cal.com's bookings were compared".to_string()
        };
        (
            Status::Warning,
            format!(
                "{} booked sagas have bookings gone from Cal.com{partial}",
                f.missing
            ),
        )
    } else {
        (
            Status::Ok,
            format!(
                "{} live Cal.com bookings and {} upcoming mirror rows agree",
                f.calcom_bookings, f.mirror_rows
            ),
        )
    };
    result(Check::DatabaseSync, status, message, f)
}

#[cfg(test)]
mod tests;
