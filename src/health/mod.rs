//! The eight Cal.com health checks and their roll-up: connectivity,
//! authentication, event-type sync, booking activity, webhook processing,
//! error rate, response time and database sync. `gather` reads the figures
//! (the store, recorded calls, a few bounded Cal.com calls), `evaluate`
//! turns figures into a status with pure functions, `sync` compares the
//! database with Cal.com, `recorder` writes every Cal.com call into the
//! store, `cli` is `calsaga health`. `Health` runs them, caches the last report for the quick route
//! and hands status changes to `alerts`.
//! Nothing here writes sagas or calls Cal.com except to read; no report
//! carries a secret or an attendee's personal data.

pub mod alerts;
mod evaluate;
mod gather;
mod recorder;
mod sync;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use evaluate::{
    CLASS_OK, CLASS_REFUSED, CallFigures, Finding, FindingKind, Probe, Thresholds, is_error,
};
pub use gather::LocalFigures;
pub use recorder::{CallRecorder, RECORDER_BUFFER_MAX};

use crate::calcom::{CalcomError, Client};
use crate::catalog::Catalog;
use crate::clock::Clock;
use crate::store::Store;
use alerts::{Alerts, changes};

/// How one check (or the whole) stands. Ordered: the roll-up is the worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Warning,
    Critical,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Critical => "critical",
        }
    }
}

/// The eight checks, in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    Connectivity,
    Authentication,
    EventTypes,
    Activity,
    Webhooks,
    ErrorRate,
    ResponseTime,
    DatabaseSync,
}

impl Check {
    pub fn as_str(self) -> &'static str {
        match self {
            Check::Connectivity => "connectivity",
            Check::Authentication => "authentication",
            Check::EventTypes => "event_types",
            Check::Activity => "activity",
            Check::Webhooks => "webhooks",
            Check::ErrorRate => "error_rate",
            Check::ResponseTime => "response_time",
            Check::DatabaseSync => "database_sync",
        }
    }
}

/// One check's verdict: the status, a sentence that says what to do when
/// it is not ok, and the figures it was judged on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    pub check: Check,
    pub status: Status,
    pub message: String,
    pub figures: serde_json::Value,
}

/// Every check at one instant.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub status: Status,
    pub checked_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub checks: Vec<CheckResult>,
}

impl Report {
    pub fn new(checked_at: DateTime<Utc>, duration_ms: u64, checks: Vec<CheckResult>) -> Report {
        let status = checks.iter().map(|c| c.status).max().unwrap_or(Status::Ok);
        Report {
            status,
            checked_at,
            duration_ms,
            checks,
        }
    }

    pub fn check(&self, check: Check) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.check == check)
    }

    /// The quick roll-up: statuses only, no messages or figures.
    pub fn summary(&self) -> serde_json::Value {
        let checks: serde_json::Map<String, serde_json::Value> = self
            .checks
            .iter()
            .map(|c| (c.check.as_str().to_string(), c.status.as_str().into()))
            .collect();
        serde_json::json!({
            "status": self.status,
            "checkedAt": self.checked_at,
            "checks": checks,
        })
    }
}

/// Tuning of the checks. Every Cal.com read is bounded here.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthConfig {
    pub thresholds: Thresholds,
    /// The quick route reuses a report younger than this.
    pub cache_ttl: Duration,
    /// Window of recorded calls for the error rate and response time.
    pub calls_window: Duration,
    /// Most recorded calls read for one window.
    pub calls_read_max: usize,
    /// Most catalogue event types looked up in Cal.com per run.
    pub event_types_max: usize,
    /// Pages of Cal.com bookings (250 each) read by the database sync.
    pub booking_pages_max: u32,
    /// Upcoming mirror rows compared by the database sync.
    pub mirror_rows_max: usize,
    /// Findings listed in one report (all are counted).
    pub findings_max: usize,
    /// A Cal.com booking younger than this may still be on its way into
    /// our log (a create whose reply is in flight): not called an orphan.
    pub orphan_grace: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            thresholds: Thresholds::default(),
            cache_ttl: Duration::from_secs(30),
            calls_window: Duration::from_secs(15 * 60),
            calls_read_max: 50_000,
            event_types_max: 100,
            booking_pages_max: 20,
            mirror_rows_max: 5_000,
            findings_max: 50,
            orphan_grace: Duration::from_secs(5 * 60),
        }
    }
}

/// Runs the checks; cheap to clone, all clones share the cache.
#[derive(Clone)]
pub struct Health {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    /// `None`: no Cal.com configured (the CLI without flags).
    calcom: Option<Arc<Client>>,
    catalog: Arc<Catalog>,
    clock: Arc<dyn Clock>,
    config: HealthConfig,
    alerts: Option<Alerts>,
    last: Mutex<Option<Report>>,
    /// One run at a time: callers that find the cache stale while a run
    /// is going wait for it instead of starting their own.
    running: tokio::sync::Mutex<()>,
}

/// What the checks read: the database, Cal.com (`None` when none is
/// configured), the catalogue and the clock.
pub struct Sources {
    pub store: Store,
    pub calcom: Option<Arc<Client>>,
    pub catalog: Arc<Catalog>,
    pub clock: Arc<dyn Clock>,
}

impl Health {
    /// `alerts` receives every status change; without it changes are
    /// only logged.
    pub fn new(sources: Sources, config: HealthConfig, alerts: Option<Alerts>) -> Health {
        let Sources {
            store,
            calcom,
            catalog,
            clock,
        } = sources;
        Health {
            inner: Arc::new(Inner {
                store,
                calcom,
                catalog,
                clock,
                config,
                alerts,
                last: Mutex::new(None),
                running: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Runs all eight checks now, keeps the report for the quick route and
    /// alerts on every status that changed since the previous run.
    pub async fn run(&self) -> Report {
        let _one = self.inner.running.lock().await;
        self.run_locked().await
    }

    /// Runs all eight checks for a one-off report (the CLI): nothing is
    /// kept, compared or alerted, since there is no earlier run to differ from.
    pub async fn run_once(&self) -> Report {
        gather::report(self).await
    }

    async fn run_locked(&self) -> Report {
        let report = gather::report(self).await;
        let previous = self.replace_last(report.clone());
        let changed = changes(previous.as_ref(), &report);
        if let Some(alerts) = &self.inner.alerts {
            drop(alerts.notify(&changed));
        } else {
            alerts::log_changes(&changed);
        }
        report
    }

    /// The last report when younger than the cache TTL, else a new run.
    pub async fn cached(&self) -> Report {
        if let Some(fresh) = self.fresh() {
            return fresh;
        }
        let _one = self.inner.running.lock().await;
        // Another caller may have refreshed it while we waited.
        if let Some(fresh) = self.fresh() {
            return fresh;
        }
        self.run_locked().await
    }

    fn fresh(&self) -> Option<Report> {
        let last = self.last()?;
        let age = (self.inner.clock.now() - last.checked_at).to_std().ok()?;
        (age < self.inner.config.cache_ttl).then_some(last)
    }

    /// The last report, if any run finished.
    pub fn last(&self) -> Option<Report> {
        self.inner
            .last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn replace_last(&self, report: Report) -> Option<Report> {
        let mut last = self.inner.last.lock().unwrap_or_else(|e| e.into_inner());
        last.replace(report)
    }

    /// The dashboard figures: local only (log, inbox, recorded calls), no
    /// Cal.com call, so it is cheap to poll.
    pub fn metrics(&self) -> Result<LocalFigures, crate::store::StoreError> {
        gather::local(self)
    }

    /// Runs the checks now and then every `interval` until `stop` turns
    /// true, so alerts fire (an outage at start included) without anyone
    /// calling a route.
    pub async fn run_every(
        &self,
        interval: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            let report = self.run().await;
            tracing::debug!(status = report.status.as_str(), "periodic health check");
            tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => return,
                _ = self.inner.clock.sleep(interval) => {}
            }
        }
    }
}

/// Longest wait for one Cal.com phase of a run (retries included).
pub const PHASE_DEADLINE: Duration = Duration::from_secs(60);

/// Runs `call` with the phase deadline; a timeout is a failure like any.
pub async fn within<T>(
    call: impl Future<Output = Result<T, CalcomError>>,
) -> Result<T, CalcomError> {
    tokio::time::timeout(PHASE_DEADLINE, call)
        .await
        .unwrap_or_else(|_| {
            Err(CalcomError::OutcomeUnknown {
                reason: format!("no answer within {} s", PHASE_DEADLINE.as_secs()),
            })
        })
}

#[cfg(test)]
mod tests;
