//! Many runs in a row (`calsaga simulate`): seeds `seed..seed+runs`, their
//! stats added up, every failing seed kept with the command that replays
//! it, and the summary as a table or JSON. It runs and adds; judging is
//! `invariants`' job.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Instant;

use super::{FaultLevel, Plan, RunReport, run_plan};

/// What `calsaga simulate` was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulateConfig {
    /// Seed of the first run; run r uses `seed + r`.
    pub seed: u64,
    pub runs: u64,
    pub faults: FaultLevel,
    /// Requests per run.
    pub requests: usize,
}

/// A run that broke an invariant or could not finish.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunFailure {
    pub seed: u64,
    pub problems: Vec<String>,
    /// The command that repeats exactly this run.
    pub replay: String,
}

/// Totals over all runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub runs: u64,
    pub sagas: u64,
    pub refused: u64,
    pub calls: u64,
    pub faults: BTreeMap<&'static str, u64>,
    pub crashes: u64,
    pub timers: u64,
    pub reconciliations: u64,
    pub host_switches: u64,
    pub moves: u64,
    pub moves_back: u64,
    pub compensations: u64,
    pub states: BTreeMap<String, u64>,
    pub violations: u64,
    /// Runs the harness could not finish (a hang or an engine error).
    pub errors: u64,
    pub failures: Vec<RunFailure>,
    pub elapsed_ms: u64,
}

/// Failing runs kept in the summary; the count goes on.
const FAILURES_KEPT_MAX: usize = 20;

impl Summary {
    /// True when no run broke an invariant or failed to finish.
    pub fn ok(&self) -> bool {
        self.violations == 0 && self.errors == 0
    }

    fn add(&mut self, report: &RunReport) {
        let s = &report.stats;
        self.sagas += s.sagas;
        self.refused += s.refused;
        self.calls += s.calls;
        for (k, v) in &s.faults {
            *self.faults.entry(k).or_default() += v;
        }
        self.crashes += u64::from(s.crashes);
        self.timers += s.timers;
        self.reconciliations += s.reconciliations;
        self.host_switches += s.host_switches;
        self.moves += s.moves;
        self.moves_back += s.moves_back;
        self.compensations += s.compensations;
        for (k, v) in &s.states {
            *self.states.entry(k.clone()).or_default() += v;
        }
        self.violations += report.violations.len() as u64;
    }

    /// The human summary.
    pub fn table(&self) -> String {
        let mut rows: Vec<(String, u64)> = vec![
            ("runs".into(), self.runs),
            ("sagas".into(), self.sagas),
            ("requests refused".into(), self.refused),
            ("Cal.com calls".into(), self.calls),
        ];
        rows.extend(
            self.faults
                .iter()
                .map(|(k, v)| (format!("faults: {k}"), *v)),
        );
        rows.extend([
            ("crashes".into(), self.crashes),
            ("timers fired".into(), self.timers),
            ("reconciliations".into(), self.reconciliations),
            ("host switches".into(), self.host_switches),
            ("segments moved".into(), self.moves),
            ("moves undone".into(), self.moves_back),
            ("compensations".into(), self.compensations),
        ]);
        rows.extend(self.states.iter().map(|(k, v)| (format!("ended {k}"), *v)));
        rows.extend([
            ("invariant violations".into(), self.violations),
            ("runs not finished".into(), self.errors),
        ]);
        let mut out = String::new();
        for (name, value) in rows {
            let _ = writeln!(out, "{name:<24} {value:>10}");
        }
        let _ = writeln!(
            out,
            "{:<24} {:>9.1}s",
            "time",
            self.elapsed_ms as f64 / 1000.0
        );
        for f in &self.failures {
            let _ = writeln!(out, "\nseed {} FAILED:", f.seed);
            for p in &f.problems {
                let _ = writeln!(out, "  {p}");
            }
            let _ = writeln!(out, "  replay: {}", f.replay);
        }
        out
    }
}

/// The command that repeats the run of `seed`.
pub fn replay_command(seed: u64, faults: FaultLevel, requests: usize) -> String {
    let level = match faults {
        FaultLevel::None => "none",
        FaultLevel::Light => "light",
        FaultLevel::Heavy => "heavy",
    };
    format!("calsaga simulate --seed {seed} --runs 1 --faults {level} --requests {requests}")
}

/// Runs every seed of `config`; `progress` is told after each run.
pub fn simulate(config: &SimulateConfig, mut progress: impl FnMut(u64, &Summary)) -> Summary {
    let started = Instant::now();
    let mut summary = Summary::default();
    for r in 0..config.runs {
        let seed = config.seed.wrapping_add(r);
        let outcome =
            Plan::from_seed(seed, config.faults, config.requests).and_then(|p| run_plan(&p));
        let problems = match outcome {
            Ok(report) => {
                summary.add(&report);
                report
                    .violations
                    .iter()
                    .map(|v| format!("{}: {}", v.invariant, v.detail))
                    .collect()
            }
            Err(e) => {
                summary.errors += 1;
                vec![e.to_string()]
            }
        };
        summary.runs += 1;
        if !problems.is_empty() && summary.failures.len() < FAILURES_KEPT_MAX {
            summary.failures.push(RunFailure {
                seed,
                problems,
                replay: replay_command(seed, config.faults, config.requests),
            });
        }
        summary.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        progress(summary.runs, &summary);
    }
    summary
}
