//! `calsaga bench all`: `bench engine` and `bench http` run one after the
//! other in one process with smaller sizes (a minute or two on a small
//! machine), and one report: both full reports plus a headline per area
//! (engine, recovery, http, webhooks, availability cache, Cal.com requests
//! per operation), each a ratio against the baseline measured in the same
//! run or the floor the operation cannot go below. It measures nothing
//! itself: the figures are the two benchmarks' own.

use std::fmt::Write as _;

use serde::Serialize;

use super::report::{BenchReport, Machine, fmt};
use super::{BenchConfig, HttpBenchConfig, HttpBenchError, HttpBenchReport};

/// Both benchmarks' settings, with the sizes of one combined run.
#[derive(Debug, Clone)]
pub struct AllConfig {
    pub engine: BenchConfig,
    pub http: HttpBenchConfig,
}

/// One headline: a figure against its same-run baseline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Headline {
    pub area: &'static str,
    pub figure: String,
    pub value: f64,
    pub baseline: String,
    pub baseline_value: f64,
    pub ratio: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AllReport {
    pub command: String,
    pub machine: Machine,
    pub headlines: Vec<Headline>,
    pub engine: BenchReport,
    pub http: HttpBenchReport,
}

/// Runs `bench engine`, then `bench http`, and sums them up.
pub fn run_all(config: &AllConfig) -> Result<AllReport, HttpBenchError> {
    tracing::info!("bench all: engine");
    let engine = super::run_engine(&config.engine)?;
    tracing::info!("bench all: http");
    let http = super::run_http(&config.http)?;
    Ok(AllReport {
        command: config.engine.command.clone(),
        machine: Machine::probe(&config.engine.dir),
        headlines: headlines(&engine, &http),
        engine,
        http,
    })
}

fn headline(
    area: &'static str,
    figure: String,
    value: f64,
    baseline: String,
    baseline_value: f64,
) -> Headline {
    Headline {
        area,
        figure,
        value,
        baseline,
        baseline_value,
        ratio: value / baseline_value.max(1e-9),
    }
}

/// One figure per area; HTTP figures at the most clients measured. Engine
/// figures are set against the raw samples taken either side of their
/// phase, as `bench engine`'s own ratios are.
pub fn headlines(engine: &BenchReport, http: &HttpBenchReport) -> Vec<Headline> {
    let m = &engine.measured;
    let [_, before_c, before_e, after_e] = m.raw_samples_per_s;
    let steps = m.steps_per_saga as f64;
    let mut rows = vec![
        headline(
            "engine",
            format!(
                "durable steps/s, {} sagas at once",
                m.concurrent.concurrency
            ),
            m.concurrent.steps_per_s,
            "raw FULL-sync commits/s around it".into(),
            (before_c + before_e) / 2.0,
        ),
        headline(
            "engine",
            format!("sagas/s, {} at once", m.concurrent.concurrency),
            m.concurrent.sagas_per_s,
            "sagas/s one at a time".into(),
            m.sequential.sagas_per_s,
        ),
        headline(
            "recovery",
            format!("recovered steps/s ({} sagas)", m.recovery.sagas),
            m.recovery.terminal_sagas_per_s * steps,
            "raw FULL-sync commits/s around it".into(),
            (before_e + after_e) / 2.0,
        ),
    ];
    if let Some(level) = http.levels.last() {
        let c = level.clients;
        rows.push(headline(
            "http",
            format!("colour-and-cut bookings/s, {c} clients"),
            level.composite.per_s,
            format!("GET /api/health/s, {c} clients"),
            level.health.per_s,
        ));
        rows.push(headline(
            "webhooks",
            format!("webhook deliveries/s, {c} clients"),
            level.webhooks.per_s,
            "raw FULL-sync commits/s around it".into(),
            http.raw_commits_per_s,
        ));
    }
    let a = &http.availability;
    rows.push(headline(
        "availability",
        "cold search p50 ms (fresh=true)".into(),
        a.cold.p50_ms,
        "cached search p50 ms".into(),
        a.cached.p50_ms,
    ));
    let b = &http.calcom_budget;
    let floor = |figure: &str, value: f64, baseline: &str, floor: f64| {
        headline("Cal.com", figure.into(), value, baseline.into(), floor)
    };
    rows.extend([
        floor(
            "requests per booked segment",
            b.per_booked_segment,
            "floor: its create",
            1.0,
        ),
        floor(
            "  the same, booked after a search",
            b.per_booked_segment_after_search,
            "floor: its create",
            1.0,
        ),
        floor(
            "requests per cancelled segment",
            b.per_cancelled_segment,
            "floor: its cancel",
            1.0,
        ),
        floor(
            "requests per warm search (floor 0)",
            b.per_warm_search,
            "requests per cold search",
            b.per_cold_search,
        ),
        floor(
            "requests per recovered saga",
            m.recovery.calcom_requests_per_saga,
            "floor: its creates",
            steps - 1.0,
        ),
    ]);
    rows
}

impl AllReport {
    /// The headlines, then both full tables.
    pub fn table(&self) -> String {
        let m = &self.machine;
        let mut t = String::new();
        let _ = writeln!(t, "calsaga bench all");
        let _ = writeln!(
            t,
            "machine: {} cpus, {}, load average {}; disk {}",
            m.cpus, m.cpu_model, m.load_average, m.disk
        );
        let _ = writeln!(t, "command: {}\n", self.command);
        let _ = writeln!(
            t,
            "{:<13} {:<42} {:>10}   {:<34} {:>10} {:>8}",
            "area", "figure", "value", "baseline (same run)", "value", "ratio"
        );
        for h in &self.headlines {
            let _ = writeln!(
                t,
                "{:<13} {:<42} {:>10}   {:<34} {:>10} {:>8}",
                h.area,
                h.figure,
                fmt(h.value),
                h.baseline,
                fmt(h.baseline_value),
                fmt(h.ratio)
            );
        }
        let _ = writeln!(t, "\n{}\n{}", self.engine.table(), self.http.table());
        t
    }
}
