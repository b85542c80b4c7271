//! What one `calsaga bench http` run found: rate and latency percentiles of
//! each phase, and each set against its baseline from the same run. Rendered
//! as a table for people or serialised as one JSON object. Pure arithmetic
//! and formatting: it never measures anything.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::HttpBenchConfig;
use super::report::{Machine, fmt, nearest_rank};

/// One phase: requests answered, how fast, and how long each took.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Load {
    pub clients: usize,
    pub requests: usize,
    pub seconds: f64,
    pub per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Load {
    pub fn new(clients: usize, elapsed: Duration, latencies: Vec<Duration>) -> Load {
        let ms: Vec<f64> = latencies.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        Load {
            clients,
            requests: ms.len(),
            seconds: elapsed.as_secs_f64(),
            per_s: ms.len() as f64 / elapsed.as_secs_f64().max(1e-9),
            p50_ms: nearest_rank(&ms, 0.5),
            p99_ms: nearest_rank(&ms, 0.99),
            max_ms: nearest_rank(&ms, 1.0),
        }
    }
}

/// Every phase at one client count.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Level {
    pub clients: usize,
    /// `GET /api/health`: the HTTP path alone, the baseline of bookings.
    pub health: Load,
    /// `haircut`, one segment, booked and waited for (201).
    pub simple: Load,
    /// `colour-and-cut`, two segments, booked and waited for (201).
    pub composite: Load,
    /// Signed webhook deliveries, verified and committed (200).
    pub webhooks: Load,
    pub ratios: LevelRatios,
}

/// Bookings against health at the same client count; webhooks against the
/// raw commit rate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LevelRatios {
    pub simple_per_s_vs_health: f64,
    pub simple_p50_vs_health: f64,
    pub simple_p99_vs_health: f64,
    pub composite_per_s_vs_health: f64,
    pub composite_p50_vs_health: f64,
    pub composite_p99_vs_health: f64,
    pub webhooks_per_s_vs_raw: f64,
}

impl Level {
    pub fn new(health: Load, simple: Load, composite: Load, webhooks: Load) -> Level {
        Level {
            clients: health.clients,
            ratios: LevelRatios {
                simple_per_s_vs_health: ratio(simple.per_s, health.per_s),
                simple_p50_vs_health: ratio(simple.p50_ms, health.p50_ms),
                simple_p99_vs_health: ratio(simple.p99_ms, health.p99_ms),
                composite_per_s_vs_health: ratio(composite.per_s, health.per_s),
                composite_p50_vs_health: ratio(composite.p50_ms, health.p50_ms),
                composite_p99_vs_health: ratio(composite.p99_ms, health.p99_ms),
                // Filled in once the raw rate is known.
                webhooks_per_s_vs_raw: 0.0,
            },
            health,
            simple,
            composite,
            webhooks,
        }
    }
}

/// Availability searches one at a time: `fresh=true` asks Cal.com every
/// time; without it the 30 s slot cache answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Availability {
    pub cold: Load,
    pub cached: Load,
    pub cold_vs_cached_p50: f64,
    pub cold_vs_cached_p99: f64,
}

impl Availability {
    pub fn new(cold: Load, cached: Load) -> Availability {
        Availability {
            cold_vs_cached_p50: ratio(cold.p50_ms, cached.p50_ms),
            cold_vs_cached_p99: ratio(cold.p99_ms, cached.p99_ms),
            cold,
            cached,
        }
    }
}

/// Cal.com requests one operation costs, counted by the mock: what bounds
/// a real account, which Cal.com allows 120 requests a minute per key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CalcomBudget {
    /// Over every booking phase, the slots a plan reads included (floor 1:
    /// the create).
    pub per_booked_segment: f64,
    /// A booking of the first start a search of its day offered, as a
    /// front end books (floor 1: the search left the slots in the cache).
    pub per_booked_segment_after_search: f64,
    /// Cancelling composite bookings (floor 1: the cancel).
    pub per_cancelled_segment: f64,
    /// `fresh=true`: one slots request per event type the service books.
    pub per_cold_search: f64,
    /// Served by the slot cache (floor 0).
    pub per_warm_search: f64,
    /// Every request of the run, by route.
    pub by_route: BTreeMap<String, u64>,
}

/// One run's findings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HttpBenchReport {
    pub command: String,
    pub machine: Machine,
    pub requests_per_phase: usize,
    /// Server worker threads (each serves one connection at a time).
    pub http_workers: usize,
    /// Single-row FULL-sync commits/s before and after the webhook phases.
    pub raw_samples_per_s: [f64; 2],
    pub raw_commits_per_s: f64,
    pub levels: Vec<Level>,
    pub availability: Availability,
    pub calcom_budget: CalcomBudget,
}

impl HttpBenchReport {
    pub fn new(
        config: &HttpBenchConfig,
        machine: Machine,
        http_workers: usize,
        raw_samples_per_s: [f64; 2],
        mut levels: Vec<Level>,
        availability: Availability,
        calcom_budget: CalcomBudget,
    ) -> HttpBenchReport {
        let raw_commits_per_s = (raw_samples_per_s[0] + raw_samples_per_s[1]) / 2.0;
        for level in &mut levels {
            level.ratios.webhooks_per_s_vs_raw = ratio(level.webhooks.per_s, raw_commits_per_s);
        }
        HttpBenchReport {
            command: config.command.clone(),
            machine,
            requests_per_phase: config.requests.max(1),
            http_workers,
            raw_samples_per_s,
            raw_commits_per_s,
            levels,
            availability,
            calcom_budget,
        }
    }

    /// The report for people: one row per phase, then the baselines.
    pub fn table(&self) -> String {
        let m = &self.machine;
        let mut t = String::new();
        let _ = writeln!(
            t,
            "calsaga bench http: {} requests per phase, {} server workers, embedded mock on loopback",
            self.requests_per_phase, self.http_workers
        );
        let _ = writeln!(
            t,
            "machine: {} cpus, {}, load average {}; disk {}",
            m.cpus, m.cpu_model, m.load_average, m.disk
        );
        let _ = writeln!(t, "command: {}\n", self.command);
        row(&mut t, "phase", ["req/s", "p50 ms", "p99 ms", "vs base"]);
        for level in &self.levels {
            let (r, c) = (&level.ratios, level.clients);
            load(&mut t, &format!("health, {c} clients"), &level.health, None);
            load(
                &mut t,
                &format!("haircut, {c} clients (req/s vs health)"),
                &level.simple,
                Some(r.simple_per_s_vs_health),
            );
            load(
                &mut t,
                &format!("colour-and-cut, {c} clients (req/s vs health)"),
                &level.composite,
                Some(r.composite_per_s_vs_health),
            );
            load(
                &mut t,
                &format!("webhooks, {c} clients (req/s vs raw commits)"),
                &level.webhooks,
                Some(r.webhooks_per_s_vs_raw),
            );
        }
        let a = &self.availability;
        load(&mut t, "availability cold (fresh=true)", &a.cold, None);
        load(
            &mut t,
            "availability cached (p50 cold/cached)",
            &a.cached,
            Some(a.cold_vs_cached_p50),
        );
        let _ = writeln!(t);
        for level in &self.levels {
            let (r, c) = (&level.ratios, level.clients);
            let _ = writeln!(
                t,
                "{c} clients: latency vs health p50/p99: haircut {} / {}, colour-and-cut {} / {}",
                fmt(r.simple_p50_vs_health),
                fmt(r.simple_p99_vs_health),
                fmt(r.composite_p50_vs_health),
                fmt(r.composite_p99_vs_health),
            );
        }
        let _ = writeln!(
            t,
            "availability cold/cached p99: {}; raw FULL-sync commits/s: {} (samples {} and {})",
            fmt(a.cold_vs_cached_p99),
            fmt(self.raw_commits_per_s),
            fmt(self.raw_samples_per_s[0]),
            fmt(self.raw_samples_per_s[1]),
        );
        let b = &self.calcom_budget;
        let _ = writeln!(
            t,
            "Cal.com requests per booked segment {} (after a search of its day {}; floor 1), per cancelled segment {} (floor 1), per cold search {}, per warm search {} (floor 0)",
            fmt(b.per_booked_segment),
            fmt(b.per_booked_segment_after_search),
            fmt(b.per_cancelled_segment),
            fmt(b.per_cold_search),
            fmt(b.per_warm_search),
        );
        t
    }
}

fn load(t: &mut String, label: &str, l: &Load, vs: Option<f64>) {
    let vs = vs.map(fmt).unwrap_or_default();
    let cells = [fmt(l.per_s), fmt(l.p50_ms), fmt(l.p99_ms), vs];
    row(t, label, cells.each_ref().map(String::as_str));
}

fn row(t: &mut String, label: &str, [a, b, c, d]: [&str; 4]) {
    let _ = writeln!(t, "{label:<52} {a:>10} {b:>10} {c:>10} {d:>10}");
}

fn ratio(a: f64, b: f64) -> f64 {
    a / b.max(1e-9)
}
