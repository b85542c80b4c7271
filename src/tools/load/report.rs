//! What one `calsaga load` run found: throughput, latency percentiles per
//! operation, answers that were not a success grouped by kind, and the
//! invariant check (no two live bookings of one host overlap). Rendered as
//! a table for people or serialised as one JSON object. Pure arithmetic and
//! formatting: it sends nothing.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::mix::{Mix, Op};
use crate::tools::bench::nearest_rank;

/// One request as the generator saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub op: Op,
    /// "ok", or what went wrong: "409 slot_unavailable", "transport error".
    pub kind: String,
    pub ms: f64,
}

pub const OK: &str = "ok";
/// A 429, or a 503 with Retry-After: the server asked the client to wait,
/// and it did. Not an error.
pub const BACK_PRESSURE: &str = "back-pressure";

/// Figures of one operation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpStats {
    pub op: Op,
    pub requests: usize,
    pub ok: usize,
    pub per_s: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl OpStats {
    fn of(op: Op, samples: &[Sample], seconds: f64) -> OpStats {
        let mine: Vec<&Sample> = samples.iter().filter(|s| s.op == op).collect();
        let ms: Vec<f64> = mine.iter().map(|s| s.ms).collect();
        OpStats {
            op,
            requests: mine.len(),
            ok: mine.iter().filter(|s| s.kind == OK).count(),
            per_s: mine.len() as f64 / seconds.max(1e-9),
            p50_ms: nearest_rank(&ms, 0.5),
            p95_ms: nearest_rank(&ms, 0.95),
            p99_ms: nearest_rank(&ms, 0.99),
            max_ms: nearest_rank(&ms, 1.0),
        }
    }
}

/// Two live segments of one host at once.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Overlap {
    pub host: u64,
    pub first: Uuid,
    pub second: Uuid,
    pub first_end: DateTime<Utc>,
    pub second_start: DateTime<Utc>,
}

/// The end-of-run check against the bookings calsaga lists.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Invariant {
    pub bookings_checked: usize,
    pub live_segments: usize,
    pub violations: usize,
    /// The first few, for a person to look up.
    pub overlaps: Vec<Overlap>,
}

/// How the run was set up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Setup {
    pub api_base: String,
    pub service: String,
    pub concurrency: usize,
    pub duration_s: f64,
    pub mix: Mix,
    /// Free starts found at the beginning, which bookings pick from.
    pub candidate_starts: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadReport {
    pub setup: Setup,
    pub seconds: f64,
    pub requests: usize,
    pub per_s: f64,
    pub operations: Vec<OpStats>,
    /// "book: 409 slot_unavailable" -> count; every answer that was neither
    /// a success nor back-pressure.
    pub errors: BTreeMap<String, usize>,
    /// Answers that asked the client to wait (429, 503 with Retry-After).
    pub back_pressure: usize,
    /// Cancels skipped because the run had nothing booked to cancel yet.
    pub cancels_skipped: usize,
    pub invariant: Invariant,
}

impl LoadReport {
    pub fn new(
        setup: Setup,
        seconds: f64,
        samples: &[Sample],
        cancels_skipped: usize,
        invariant: Invariant,
    ) -> LoadReport {
        let mut errors = BTreeMap::new();
        let back_pressure = samples.iter().filter(|s| s.kind == BACK_PRESSURE).count();
        for s in samples
            .iter()
            .filter(|s| s.kind != OK && s.kind != BACK_PRESSURE)
        {
            *errors
                .entry(format!("{}: {}", s.op.name(), s.kind))
                .or_insert(0) += 1;
        }
        let operations = Op::ALL
            .iter()
            .map(|op| OpStats::of(*op, samples, seconds))
            .filter(|s| s.requests > 0)
            .collect();
        LoadReport {
            setup,
            seconds,
            requests: samples.len(),
            per_s: samples.len() as f64 / seconds.max(1e-9),
            operations,
            errors,
            back_pressure,
            cancels_skipped,
            invariant,
        }
    }

    pub fn table(&self) -> String {
        let s = &self.setup;
        let mut t = String::new();
        let _ = writeln!(
            t,
            "calsaga load against {}: service {}, {} clients for {:.0} s, mix {}, {} candidate starts\n",
            s.api_base, s.service, s.concurrency, s.duration_s, s.mix, s.candidate_starts
        );
        let _ = writeln!(
            t,
            "{:<14} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "operation", "requests", "ok", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms"
        );
        for o in &self.operations {
            let _ = writeln!(
                t,
                "{:<14} {:>9} {:>9} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
                o.op.name(),
                o.requests,
                o.ok,
                o.per_s,
                o.p50_ms,
                o.p95_ms,
                o.p99_ms,
                o.max_ms
            );
        }
        let _ = writeln!(
            t,
            "{:<14} {:>9} {:>9} {:>9.1}\n",
            "all", self.requests, "", self.per_s
        );
        if self.errors.is_empty() {
            let _ = writeln!(t, "no request failed");
        }
        for (kind, n) in &self.errors {
            let _ = writeln!(t, "{n:>9}  {kind}");
        }
        if self.back_pressure > 0 {
            let _ = writeln!(
                t,
                "{:>9}  back-pressure: the server asked to wait (429, or 503 with Retry-After) and the clients waited as told",
                self.back_pressure
            );
        }
        if self.cancels_skipped > 0 {
            let _ = writeln!(
                t,
                "{:>9}  cancels skipped: nothing booked yet",
                self.cancels_skipped
            );
        }
        let i = &self.invariant;
        let verdict = if i.violations == 0 { "OK" } else { "VIOLATED" };
        let _ = writeln!(
            t,
            "\ninvariant (no two live bookings of one host overlap): {verdict}: {} bookings, {} live segments, {} overlaps",
            i.bookings_checked, i.live_segments, i.violations
        );
        for o in &i.overlaps {
            let _ = writeln!(
                t,
                "  host {}: {} ends {} after {} starts {}",
                o.host, o.first, o.first_end, o.second, o.second_start
            );
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(op: Op, kind: &str, ms: f64) -> Sample {
        Sample {
            op,
            kind: kind.into(),
            ms,
        }
    }

    #[test]
    fn figures_per_operation_and_errors_by_kind() {
        let mut samples: Vec<Sample> = (1..=100)
            .map(|i| sample(Op::Availability, OK, f64::from(i)))
            .collect();
        samples.push(sample(Op::Book, OK, 40.0));
        samples.push(sample(Op::Book, "409 slot_unavailable", 20.0));
        samples.push(sample(Op::Book, "409 slot_unavailable", 10.0));
        let setup = Setup {
            api_base: "http://127.0.0.1:1/api/v2".into(),
            service: "haircut".into(),
            concurrency: 4,
            duration_s: 2.0,
            mix: Mix::default(),
            candidate_starts: 30,
        };
        let report = LoadReport::new(setup, 2.0, &samples, 3, Invariant::default());
        assert_eq!(report.requests, 103);
        assert!((report.per_s - 51.5).abs() < 1e-9);
        let ops: Vec<Op> = report.operations.iter().map(|o| o.op).collect();
        assert_eq!(ops, [Op::Book, Op::Availability], "cancel sent nothing");
        let avail = &report.operations[1];
        assert_eq!((avail.requests, avail.ok), (100, 100));
        assert_eq!(
            (avail.p50_ms, avail.p95_ms, avail.p99_ms, avail.max_ms),
            (50.0, 95.0, 99.0, 100.0)
        );
        let book = &report.operations[0];
        assert_eq!((book.requests, book.ok, book.p50_ms), (3, 1, 20.0));
        assert_eq!(report.errors.len(), 1);
        assert_eq!(report.errors["book: 409 slot_unavailable"], 2);
        let t = report.table();
        assert!(
            t.contains("invariant (no two live bookings of one host overlap): OK"),
            "{t}"
        );
        assert!(t.contains("        2  book: 409 slot_unavailable"), "{t}");
        assert!(t.contains("cancels skipped"), "{t}");
    }
}
