//! Prometheus metrics of one calsaga process, in the text exposition format
//! 0.0.4 (`GET /metrics`, see docs/METRICS.md). Three kinds of figures:
//! in-process histograms fed by observers (HTTP requests from the server,
//! Cal.com attempts from the client's `CallObserver`, commits from the
//! store writer's `CommitObserver`); gauges read from the database at
//! scrape time (workflows by state, webhook inbox); and counters read from
//! the append-only event log (compensations, reconciliations), which stay
//! true across restarts because the log does.
//! A small own writer rather than a metrics crate: we need three fixed
//! families of histograms and a handful of values computed at scrape time,
//! which a registry would only wrap. Every label value comes from a fixed
//! set (route patterns, status classes, store states), never from raw
//! input, so the number of series stays bounded. Observers take one short
//! mutex each and never block on I/O; nothing here writes to the store.

use std::collections::BTreeMap;
use std::fmt::{Display, Write as _};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::calcom::{CallObserver, CallOutcome, CallRecord};
use crate::status::{self, Status, StatusError};
use crate::store::{CommitObserver, InboxState, Store, StoreError};

/// Content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds (seconds) of request latency buckets: HTTP and Cal.com.
pub const REQUEST_BUCKETS_S: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Upper bounds (seconds) of commit latency buckets: an fsync is 0.1-20 ms.
pub const COMMIT_BUCKETS_S: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// Label of a request that matched no route (404, 405): one series for
/// all of them, whatever path was asked.
pub const UNMATCHED: &str = "unmatched";

/// How stale the counters read from the event log may be.
pub const LOG_COUNT_REFRESH: Duration = Duration::from_secs(30);

/// Event kinds counted from the log, with the metric and label they feed.
const LOG_COUNTERS: &[(&str, &str, &str)] = &[
    (
        "compensation_started",
        "calsaga_compensations_total",
        "started",
    ),
    ("compensated", "calsaga_compensations_total", "finished"),
    (
        "segment_reconciled",
        "calsaga_reconciliations_total",
        "resolved",
    ),
    (
        "reconcile_failed",
        "calsaga_reconciliations_total",
        "failed",
    ),
];

/// A cumulative histogram over fixed bucket bounds.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    bounds_s: &'static [f64],
    /// Observations at or below each bound (not yet cumulative).
    buckets: Vec<u64>,
    sum_s: f64,
    count: u64,
}

impl Histogram {
    pub fn new(bounds_s: &'static [f64]) -> Histogram {
        Histogram {
            bounds_s,
            buckets: vec![0; bounds_s.len()],
            sum_s: 0.0,
            count: 0,
        }
    }

    pub fn observe(&mut self, value_s: f64) {
        if let Some(i) = self.bounds_s.iter().position(|&b| value_s <= b) {
            self.buckets[i] += 1;
        }
        self.sum_s += value_s;
        self.count += 1;
    }

    pub fn count(&self) -> u64 {
        self.count
    }
}

/// Metric type of a family, as `# TYPE` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Writes the text exposition format: one `family` header, then its samples.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// `# HELP` and `# TYPE` of the family `name`.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
    }

    /// One sample line.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (key, raw)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{key}=\"{}\"", escape(raw));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// The `_bucket` (cumulative, ending in `+Inf`), `_sum` and `_count`
    /// samples of one histogram series.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram) {
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0;
        for (bound, n) in h.bounds_s.iter().zip(&h.buckets) {
            cumulative += n;
            let le = bound.to_string();
            self.sample(&bucket, &with(labels, ("le", &le)), cumulative);
        }
        self.sample(&bucket, &with(labels, ("le", "+Inf")), h.count);
        self.sample(&format!("{name}_sum"), labels, h.sum_s);
        self.sample(&format!("{name}_count"), labels, h.count);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

fn with<'a>(labels: &[(&'a str, &'a str)], extra: (&'a str, &'a str)) -> Vec<(&'a str, &'a str)> {
    labels.iter().copied().chain([extra]).collect()
}

/// A label value as the format wants it: `\`, `"` and newlines escaped.
fn escape(raw: &str) -> String {
    raw.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct HttpKey {
    route: &'static str,
    method: &'static str,
    status: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct CalcomKey {
    family: &'static str,
    class: &'static str,
}

/// The in-process figures of one calsaga process; share it behind an `Arc`.
#[derive(Debug)]
pub struct Metrics {
    http: Mutex<BTreeMap<HttpKey, Histogram>>,
    calcom: Mutex<BTreeMap<CalcomKey, Histogram>>,
    commits: Mutex<Histogram>,
    /// The counts of `LOG_COUNTERS`.
    log_counts: Recount<Vec<u64>>,
    /// Upcoming bookings by status.
    upcoming: Recount<Vec<(Status, u64)>>,
}

/// A count read from the database at most every `LOG_COUNT_REFRESH`: it
/// scans rows that grow with the business, so frequent scrapes must not
/// each pay for it.
#[derive(Debug)]
struct Recount<T> {
    last: Mutex<Option<(Instant, T)>>,
}

impl<T: Clone> Recount<T> {
    fn new() -> Self {
        Recount {
            last: Mutex::new(None),
        }
    }

    fn get<E>(&self, count: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        let mut last = lock(&self.last);
        if let Some((at, value)) = last.as_ref()
            && at.elapsed() < LOG_COUNT_REFRESH
        {
            return Ok(value.clone());
        }
        let value = count()?;
        *last = Some((Instant::now(), value.clone()));
        Ok(value)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            http: Mutex::default(),
            calcom: Mutex::default(),
            commits: Mutex::new(Histogram::new(COMMIT_BUCKETS_S)),
            log_counts: Recount::new(),
            upcoming: Recount::new(),
        }
    }
}

impl Metrics {
    /// One answered request. `route` is the matched route's method and
    /// pattern, `None` when no route matched.
    pub fn observe_request(
        &self,
        route: Option<(&'static str, &'static str)>,
        status: u16,
        elapsed: Duration,
    ) {
        let (method, route) = route.unwrap_or((UNMATCHED, UNMATCHED));
        let key = HttpKey {
            route,
            method,
            status: status_class(status),
        };
        observe(&self.http, key, REQUEST_BUCKETS_S, elapsed.as_secs_f64());
    }

    /// The whole exposition: in-process histograms and what the store
    /// holds now (`now` decides which bookings are upcoming).
    pub fn render(&self, store: &Store, now: DateTime<Utc>) -> Result<String, StatusError> {
        let mut out = Exposition::default();
        self.render_http(&mut out);
        self.render_calcom(&mut out);
        self.render_store(&mut out, store)?;
        self.render_bookings(&mut out, store, now)?;
        let counts = self.log_counts(store)?;
        render_log(&mut out, &counts);
        Ok(out.finish())
    }

    fn render_bookings(
        &self,
        out: &mut Exposition,
        store: &Store,
        now: DateTime<Utc>,
    ) -> Result<(), StatusError> {
        let name = "calsaga_bookings_upcoming";
        out.family(
            name,
            Kind::Gauge,
            "Bookings whose first segment starts from now on, by the status their users see (the one the API and CLI show), counted at most every 30 s.",
        );
        let counts = self.upcoming.get(|| status::upcoming(store, now))?;
        for (status, count) in counts {
            out.sample(name, &[("status", status.as_str())], count);
        }
        Ok(())
    }

    fn render_http(&self, out: &mut Exposition) {
        let name = "calsaga_http_request_duration_seconds";
        out.family(
            name,
            Kind::Histogram,
            "Time from reading a request's head to writing its answer, by route pattern, method and status class; _count is the request count (since this process started).",
        );
        for (key, h) in lock(&self.http).iter() {
            let labels = [
                ("route", key.route),
                ("method", key.method),
                ("status", key.status),
            ];
            out.histogram(name, &labels, h);
        }
    }

    fn render_calcom(&self, out: &mut Exposition) {
        let name = "calsaga_calcom_request_duration_seconds";
        out.family(
            name,
            Kind::Histogram,
            "Latency of each attempt of a Cal.com call, by route family and outcome class (2xx, 4xx, 429, 5xx, not_sent, maybe_sent, reply_too_large); _count is the attempt count (since this process started).",
        );
        for (key, h) in lock(&self.calcom).iter() {
            out.histogram(name, &[("family", key.family), ("class", key.class)], h);
        }
    }

    fn render_store(&self, out: &mut Exposition, store: &Store) -> Result<(), StoreError> {
        let name = "calsaga_store_commit_duration_seconds";
        out.family(
            name,
            Kind::Histogram,
            "Duration of each SQLite write transaction (group commit, fsync included); _count is the commit count (since this process started).",
        );
        out.histogram(name, &[], &lock(&self.commits));
        let name = "calsaga_store_commit_batches_total";
        out.family(
            name,
            Kind::Counter,
            "Write batches answered by those commits; batches per commit shows how much group commit shares an fsync (since this process started).",
        );
        out.sample(name, &[], store.commit_stats().batches);
        let name = "calsaga_store_poisoned";
        out.family(
            name,
            Kind::Gauge,
            "1 once a database write failed: calsaga takes no new work until the disk is fixed and it is restarted.",
        );
        out.sample(name, &[], u8::from(store.is_poisoned()));
        let name = "calsaga_workflows";
        out.family(
            name,
            Kind::Gauge,
            "Workflows (sagas) in the database by kind and current state, read at scrape time.",
        );
        for c in store.workflow_counts()? {
            out.sample(name, &[("kind", &c.kind), ("state", &c.state)], c.count);
        }
        let name = "calsaga_webhook_inbox_entries";
        out.family(
            name,
            Kind::Gauge,
            "Cal.com webhooks in the inbox by state, read at scrape time: pending is the backlog, failed needs an admin.",
        );
        // Every state, zero too: an alert on `failed > 0` needs the series.
        let counts = store.inbox_counts()?;
        for state in InboxState::ALL {
            let count = counts
                .iter()
                .find(|c| c.state == state)
                .map_or(0, |c| c.count);
            out.sample(name, &[("state", state.as_str())], count);
        }
        Ok(())
    }
}

impl Metrics {
    /// The `LOG_COUNTERS` counts (the event log grows without bound).
    fn log_counts(&self, store: &Store) -> Result<Vec<u64>, StoreError> {
        let kinds: Vec<&str> = LOG_COUNTERS.iter().map(|(kind, ..)| *kind).collect();
        self.log_counts.get(|| store.event_counts(&kinds))
    }
}

/// Counters counted in the event log: they survive restarts and never go
/// down, because events are never removed.
fn render_log(out: &mut Exposition, counts: &[u64]) {
    let families = [
        (
            "calsaga_compensations_total",
            "Compensations in the event log, all time (they survive restarts; recounted at most every 30 s): started (a saga began undoing its segments) and finished (it has undone them).",
        ),
        (
            "calsaga_reconciliations_total",
            "Reconciliations of uncertain Cal.com creates in the event log, all time (they survive restarts; recounted at most every 30 s): resolved (Cal.com's bookings were read) and failed (the read failed; it is retried).",
        ),
    ];
    for (family, help) in families {
        out.family(family, Kind::Counter, help);
        for ((_, name, phase), n) in LOG_COUNTERS.iter().zip(counts) {
            if *name == family {
                out.sample(family, &[("phase", *phase)], n);
            }
        }
    }
}

impl CallObserver for Metrics {
    fn record(&self, call: &CallRecord) {
        let key = CalcomKey {
            family: route_family(call.route),
            class: outcome_class(call.outcome),
        };
        let seconds = Duration::from_millis(call.latency_ms).as_secs_f64();
        observe(&self.calcom, key, REQUEST_BUCKETS_S, seconds);
    }
}

impl CommitObserver for Metrics {
    fn committed(&self, elapsed: Duration) {
        lock(&self.commits).observe(elapsed.as_secs_f64());
    }
}

fn observe<K: Ord>(
    series: &Mutex<BTreeMap<K, Histogram>>,
    key: K,
    bounds_s: &'static [f64],
    value_s: f64,
) {
    lock(series)
        .entry(key)
        .or_insert_with(|| Histogram::new(bounds_s))
        .observe(value_s);
}

/// A panic elsewhere cannot leave a histogram half-updated in a way that
/// matters more than losing the scrape, so a poisoned lock is used as is.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// `POST /v2/bookings/{uid}/cancel` -> `bookings`: the first path segment
/// after `/v2`.
fn route_family(route: &'static str) -> &'static str {
    let path = route.split_once(' ').map_or(route, |(_, path)| path);
    let path = path.strip_prefix("/v2/").unwrap_or(path);
    path.split('/')
        .next()
        .filter(|f| !f.is_empty())
        .unwrap_or("other")
}

fn outcome_class(outcome: CallOutcome) -> &'static str {
    match outcome {
        CallOutcome::Status(429) => "429",
        CallOutcome::Status(s) => status_class(s),
        CallOutcome::NotSent => "not_sent",
        CallOutcome::MaybeSent => "maybe_sent",
        CallOutcome::ReplyTooLarge => "reply_too_large",
    }
}

#[cfg(test)]
mod tests;
