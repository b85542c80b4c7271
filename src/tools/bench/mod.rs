//! `calsaga bench engine`: how fast the saga engine turns bookings into
//! durable commits, against the floor this disk sets. One run measures
//! (a) raw single-row FULL-sync commits/s, (b) sagas/s one at a time,
//! (c) sagas/s with many at once, (d) commits per saga and (e) recovery of
//! interrupted sagas after a restart, and relates each to (a) from the same
//! run, since shared machines are noisy and only ratios compare across runs.
//! (b) is also set against raw commits of as many pages as its steps write:
//! the floor the disk sets for a step of that size.
//! Sagas book the composite `highlights-toner-blowdry` against `Supplier`,
//! which answers at once, so the figures hold engine and store costs only.
//! Everything happens in a scratch folder of its own, removed afterwards; it
//! must never touch a real database or Cal.com. It reports whether the aims
//! are met and never fails a run for being slow. `bench http` lives in
//! `http.rs`; `bench all` (`all.rs`) runs both with one report.

mod all;
mod http;
mod http_report;
mod report;
mod supplier;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::runtime::Runtime;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::catalog::{Catalog, CatalogError, Service};
use crate::clock::{Clock, SystemClock};
use crate::cpu_time;
use crate::runtime::{BookRequest, Engine, EngineConfig, EngineError, WorkflowView};
use crate::saga::Attendee;
use crate::store::{self, Store, StoreConfig, StoreError};

pub use report::{
    Aim, BenchReport, Machine, Measured, Ratios, Recovery, StepFloor, Throughput, nearest_rank,
};
use report::{PhaseRun, RecoveryRun};
use supplier::Supplier;

pub use all::{AllConfig, AllReport, Headline, headlines, run_all};
pub use http::{
    Availability, COMPOSITE, HttpBenchConfig, HttpBenchError, HttpBenchReport, Level, LevelRatios,
    Load, SIMPLE, run_http,
};

/// The service every saga books: three segments, two hosts, a pause.
pub const SERVICE: &str = "highlights-toner-blowdry";
/// First start time handed out: Monday 2030-03-04, 00:00 UTC.
const FIRST_START_S: i64 = 1_898_812_800;
/// Longest one saga may take to be booked before the run is called stuck.
const SAGA_WAIT: Duration = Duration::from_secs(60);
/// Longest seeding or recovery may take before the run is called stuck.
const PHASE_WAIT: Duration = Duration::from_secs(600);
/// Untimed sagas are booked in rounds of this many before (b) until the
/// store's log has begun again from its start, and at most `WARM_UP_MAX`.
const WARM_UP_ROUND: usize = 10;
/// More than enough: every saga commits four times, at least a page each.
const WARM_UP_MAX: usize = 2_000;
/// How long dropping a runtime waits for its threads.
const RUNTIME_STOP: Duration = Duration::from_secs(10);

/// What to run. `dir` is where the scratch folder goes: put it on the disk
/// the database will live on.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub dir: PathBuf,
    pub workflows: PathBuf,
    /// Sagas in each of (b) and (c).
    pub sagas: usize,
    /// Sagas at once in (c) and in recovery.
    pub concurrency: usize,
    /// Interrupted sagas in (e).
    pub recover: usize,
    /// Commits timed in each sample of (a).
    pub raw_commits: u32,
    pub order: StartOrder,
    /// The command line, recorded with the figures.
    pub command: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(
        "cannot load the service catalogue: {0}; run from the repository root or pass --workflows"
    )]
    Catalog(#[from] CatalogError),
    #[error(
        "the catalogue has no service {SERVICE:?}, which the benchmark books; pass --workflows with the shipped workflows/ folder"
    )]
    MissingService,
    #[error(
        "cannot create the scratch folder {path}: {source}; pass --dir with a writable folder on the disk to measure"
    )]
    Scratch {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot start the async runtime: {0}; the machine may be out of threads or memory")]
    Runtime(std::io::Error),
    #[error("the store failed during {phase}: {source}")]
    Store {
        phase: &'static str,
        source: StoreError,
    },
    #[error("the engine failed during {phase}: {source}")]
    Engine {
        phase: &'static str,
        source: EngineError,
    },
    #[error(
        "saga {id} ended {state} during {phase} instead of booked{}; the instant supplier never refuses, so look at the engine's log above",
        reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default()
    )]
    NotBooked {
        phase: &'static str,
        id: Uuid,
        state: String,
        reason: Option<String>,
    },
    #[error(
        "{phase} did not finish within {} s; the disk or CPU is far slower than expected, try fewer sagas",
        limit.as_secs()
    )]
    Timeout {
        phase: &'static str,
        limit: Duration,
    },
    #[error("a benchmark task of {phase} failed: {detail}")]
    Task { phase: &'static str, detail: String },
}

/// Runs every measurement once and returns the figures.
pub fn run_engine(config: &BenchConfig) -> Result<BenchReport, BenchError> {
    let catalog = Arc::new(Catalog::load_dir(&config.workflows)?);
    let service = catalog.get(SERVICE).ok_or(BenchError::MissingService)?;
    let steps_per_saga = service.segments.len() + 1;
    let (sagas, recover) = (config.sagas.max(1), config.recover.max(1));
    let schedule = Arc::new(Schedule::new(
        service,
        WARM_UP_MAX + 2 * sagas + recover,
        config.order,
    ));
    let scratch = Scratch::create(&config.dir)?;
    let bench = Bench {
        catalog: Arc::clone(&catalog),
        schedule,
        dir: scratch.path().to_path_buf(),
        concurrency: config.concurrency.max(1),
        raw_commits: config.raw_commits,
    };
    // The disk's rate drifts on a shared machine, so (a) is sampled before,
    // between and after the phases, and each phase is set against the
    // samples on either side of it.
    let before = bench.raw(1.0)?;
    let phases = bench.throughput(sagas)?;
    let after_c = bench.raw(1.0)?;
    let recovery = bench.recovery(recover)?;
    let after_e = bench.raw(1.0)?;
    Ok(BenchReport::new(Measured {
        command: config.command.clone(),
        machine: Machine::probe(&config.dir),
        service: SERVICE.into(),
        start_order: config.order,
        steps_per_saga,
        raw_commits_per_sample: config.raw_commits,
        raw_samples_per_s: [before, phases.between, after_c, after_e],
        step_floor: phases.step_floor,
        warm_up_sagas: phases.warm_up_sagas,
        sequential: Throughput::new(&phases.sequential, steps_per_saga),
        concurrent: Throughput::new(&phases.concurrent, steps_per_saga),
        recovery,
    }))
}

/// What one database and engine measured for (b) and (c).
struct Phases {
    warm_up_sagas: usize,
    step_floor: StepFloor,
    sequential: PhaseRun,
    /// (a) between (b) and (c).
    between: f64,
    concurrent: PhaseRun,
}

struct Bench {
    catalog: Arc<Catalog>,
    schedule: Arc<Schedule>,
    dir: PathBuf,
    concurrency: usize,
    raw_commits: u32,
}

impl Bench {
    /// (a): FULL-sync commits/s of `pages` pages each (on average) in the
    /// scratch folder (1: single-row commits).
    fn raw(&self, pages: f64) -> Result<f64, BenchError> {
        tracing::info!(commits = self.raw_commits, pages, "(a) timing raw commits");
        store::raw_commit_rate(&self.dir, self.raw_commits, pages).map_err(|source| {
            BenchError::Store {
                phase: "(a) raw commits",
                source,
            }
        })
    }

    /// On one database and one engine: the untimed warm-up, (b), a raw
    /// sample and one of commits as large as (b)'s steps, then (c).
    fn throughput(&self, sagas: usize) -> Result<Phases, BenchError> {
        const PHASE: &str = "(b)/(c) throughput";
        let runtime = runtime()?;
        let result = runtime.block_on(async {
            let clock: Arc<dyn Clock> = Arc::new(SystemClock);
            let supplier = Arc::new(Supplier::instant(&self.catalog, clock));
            let engine = self.engine("throughput.db", supplier, self.concurrency, PHASE)?;
            start(&engine, PHASE)?;
            let warm_up_sagas = self.warm_up(&engine).await?;
            tracing::info!(sagas, "(b) booking one saga at a time");
            let sequential = self.book_all(&engine, sagas, 1).await?;
            let between = self.raw(1.0)?;
            let pages = sequential.pages_per_batch();
            let step_floor = StepFloor {
                pages,
                commits_per_s: self.raw(pages)?,
            };
            tracing::info!(
                sagas,
                at_once = self.concurrency,
                "(c) booking many at once"
            );
            let concurrent = self.book_all(&engine, sagas, self.concurrency).await?;
            engine.shutdown();
            Ok(Phases {
                warm_up_sagas,
                step_floor,
                sequential,
                between,
                concurrent,
            })
        });
        runtime.shutdown_timeout(RUNTIME_STOP);
        result
    }

    /// Books untimed sagas one at a time until the store's log has been
    /// checkpointed and begun again from its start. From then on its commits
    /// overwrite log blocks the file already has, as those of a store that
    /// has run for a few seconds do, and as the raw baseline's do
    /// (`store::raw_commit_rate`); a new file's first commits grow it, at
    /// about twice the cost. Returns how many sagas that took.
    async fn warm_up(&self, engine: &Engine) -> Result<usize, BenchError> {
        let start = engine.store().commit_stats();
        let mut sagas = 0;
        while engine.store().commit_stats().pages - start.pages <= store::checkpoint_pages()
            && sagas < WARM_UP_MAX
        {
            self.book_all(engine, WARM_UP_ROUND, 1).await?;
            sagas += WARM_UP_ROUND;
        }
        tracing::info!(sagas, "(b) warmed up");
        Ok(sagas)
    }

    /// Books `sagas` sagas with `at_once` clients, each booking and waiting
    /// for `booked` before it books the next.
    async fn book_all(
        &self,
        engine: &Engine,
        sagas: usize,
        at_once: usize,
    ) -> Result<PhaseRun, BenchError> {
        const PHASE: &str = "(b)/(c) throughput";
        let left = Arc::new(AtomicUsize::new(sagas));
        let before = engine.store().commit_stats();
        let (started, cpu_before) = (Instant::now(), cpu_time::process());
        let at_once = at_once.min(sagas);
        let mut clients = JoinSet::new();
        for _ in 0..at_once {
            let (engine, schedule, left) = (engine.clone(), self.schedule.clone(), left.clone());
            clients.spawn(async move {
                while take_one(&left) {
                    let id =
                        engine
                            .book(request(schedule.take()), None)
                            .await
                            .map_err(|source| BenchError::Engine {
                                phase: PHASE,
                                source,
                            })?;
                    let view = engine
                        .wait_terminal(id, SAGA_WAIT)
                        .await
                        .map_err(|source| BenchError::Engine {
                            phase: PHASE,
                            source,
                        })?;
                    expect_booked(PHASE, view)?;
                }
                Ok::<(), BenchError>(())
            });
        }
        join_all(&mut clients, PHASE).await?;
        Ok(PhaseRun {
            sagas,
            concurrency: at_once,
            elapsed: started.elapsed(),
            cpu: cpu_time::process() - cpu_before,
            before,
            after: engine.store().commit_stats(),
        })
    }

    /// (e): leave `sagas` sagas interrupted mid-step, then time a fresh
    /// engine resuming them all to `booked`.
    fn recovery(&self, sagas: usize) -> Result<Recovery, BenchError> {
        const PHASE: &str = "(e) recovery";
        let started = Instant::now();
        let ids = self.seed_interrupted(sagas)?;
        let seeding = started.elapsed();
        let runtime = runtime()?;
        let result = runtime.block_on(async {
            let clock: Arc<dyn Clock> = Arc::new(SystemClock);
            let supplier = Arc::new(Supplier::instant(&self.catalog, clock));
            let engine = self.engine("recovery.db", supplier.clone(), self.concurrency, PHASE)?;
            tracing::info!(sagas, "(e) resuming interrupted sagas");
            let (started, cpu_before) = (Instant::now(), cpu_time::process());
            let report = start(&engine, PHASE)?;
            let schedule = started.elapsed();
            if report.resumed != sagas {
                return Err(BenchError::Task {
                    phase: PHASE,
                    detail: format!("{} sagas resumed, {sagas} were interrupted", report.resumed),
                });
            }
            wait_all_booked(&engine, &ids, PHASE).await?;
            let (terminal, cpu) = (started.elapsed(), cpu_time::process() - cpu_before);
            engine.shutdown();
            Ok(Recovery::new(&RecoveryRun {
                sagas,
                concurrency: self.concurrency,
                seeding,
                schedule,
                terminal,
                cpu,
                stats: engine.store().commit_stats(),
                calcom_requests: supplier.calls(),
            }))
        });
        runtime.shutdown_timeout(RUNTIME_STOP);
        result
    }

    /// Starts `sagas` sagas against a supplier that never answers, lets
    /// every one commit its first intent, then drops the engine with its
    /// runtime as a killed process would. Returns their ids.
    fn seed_interrupted(&self, sagas: usize) -> Result<Vec<Uuid>, BenchError> {
        const PHASE: &str = "(e) seeding";
        let runtime = runtime()?;
        let result = runtime.block_on(async {
            let clock: Arc<dyn Clock> = Arc::new(SystemClock);
            let (supplier, mut stalled_calls) = Supplier::stalled(&self.catalog, clock);
            // Every saga gets a driver, so every one reaches its first call.
            let engine = self.engine("recovery.db", Arc::new(supplier), sagas, PHASE)?;
            start(&engine, PHASE)?;
            tracing::info!(sagas, "(e) seeding interrupted sagas");
            let mut books = JoinSet::new();
            for _ in 0..sagas {
                let (engine, start) = (engine.clone(), self.schedule.take());
                books.spawn(async move { engine.book(request(start), None).await });
            }
            let mut ids = Vec::with_capacity(sagas);
            while let Some(joined) = books.join_next().await {
                let booked = joined.map_err(|e| task_failed(PHASE, &e))?;
                ids.push(booked.map_err(|source| BenchError::Engine {
                    phase: PHASE,
                    source,
                })?);
            }
            let all_stalled = stalled_calls.wait_for(|n| *n >= sagas);
            match tokio::time::timeout(PHASE_WAIT, all_stalled).await {
                Ok(Ok(_)) => Ok(ids),
                _ => Err(BenchError::Timeout {
                    phase: PHASE,
                    limit: PHASE_WAIT,
                }),
            }
        });
        // Drops every driver mid-call, and with them the engine and store.
        runtime.shutdown_timeout(RUNTIME_STOP);
        result
    }

    fn engine(
        &self,
        file: &str,
        supplier: Arc<Supplier>,
        sagas_at_once: usize,
        phase: &'static str,
    ) -> Result<Engine, BenchError> {
        let store = Store::open(self.dir.join(file), StoreConfig::default())
            .map_err(|source| BenchError::Store { phase, source })?;
        Ok(Engine::new(
            store,
            supplier,
            Arc::new(SystemClock),
            Arc::clone(&self.catalog),
            EngineConfig {
                sagas_concurrent_max: sagas_at_once,
                // The in-process supplier answers or drops a request at once;
                // nothing it was sent can land later, so no settle window.
                reconcile_settle: std::time::Duration::ZERO,
                // The supplier keeps no calendar, so plans come from
                // calsaga's own claims alone.
                plan_slots_wait: None,
                ..EngineConfig::default()
            },
        ))
    }
}

fn start(
    engine: &Engine,
    phase: &'static str,
) -> Result<crate::runtime::RecoveryReport, BenchError> {
    engine
        .start()
        .map_err(|source| BenchError::Engine { phase, source })
}

/// Waits for each saga in turn: one waiter at a time, so waiting costs the
/// engine almost nothing.
async fn wait_all_booked(
    engine: &Engine,
    ids: &[Uuid],
    phase: &'static str,
) -> Result<(), BenchError> {
    let deadline = Instant::now() + PHASE_WAIT;
    for id in ids {
        let left = deadline.saturating_duration_since(Instant::now());
        let view = engine
            .wait_terminal(*id, left)
            .await
            .map_err(|source| BenchError::Engine { phase, source })?;
        if !view.terminal {
            return Err(BenchError::Timeout {
                phase,
                limit: PHASE_WAIT,
            });
        }
        expect_booked(phase, view)?;
    }
    Ok(())
}

fn expect_booked(phase: &'static str, view: WorkflowView) -> Result<(), BenchError> {
    if view.state == "booked" {
        return Ok(());
    }
    Err(BenchError::NotBooked {
        phase,
        id: view.id,
        state: view.state,
        reason: view.reason,
    })
}

async fn join_all(
    tasks: &mut JoinSet<Result<(), BenchError>>,
    phase: &'static str,
) -> Result<(), BenchError> {
    while let Some(joined) = tasks.join_next().await {
        joined.map_err(|e| task_failed(phase, &e))??;
    }
    Ok(())
}

fn task_failed(phase: &'static str, e: &tokio::task::JoinError) -> BenchError {
    BenchError::Task {
        phase,
        detail: e.to_string(),
    }
}

/// Claims one of the sagas left to book; false when none is left.
fn take_one(left: &AtomicUsize) -> bool {
    left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
}

fn runtime() -> Result<Runtime, BenchError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("calsaga-bench")
        .build()
        .map_err(BenchError::Runtime)
}

fn request(start: DateTime<Utc>) -> BookRequest {
    BookRequest {
        service: SERVICE.into(),
        start,
        attendee: Attendee {
            name: "Bench Client".into(),
            email: Some("bench@example.com".into()),
            phone: None,
            time_zone: "Europe/Berlin".into(),
        },
        host: None,
        segment_hosts: BTreeMap::new(),
        notes: None,
    }
}

/// The order start times are handed out in. Both give every saga its own
/// time; they differ in what the store's claim check must read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StartOrder {
    /// Each saga earlier than all before it: the claim overlap check reads
    /// only the claims it could overlap, so the figures show the engine.
    LatestFirst,
    /// Each saga later than all before it, as bookings pile up into the
    /// future: today the overlap check then reads every earlier live claim
    /// of the host, so its cost grows with the claims (docs/PERFORMANCE.md).
    EarliestFirst,
}

impl StartOrder {
    pub fn label(self) -> &'static str {
        match self {
            StartOrder::LatestFirst => "latest first",
            StartOrder::EarliestFirst => "earliest first",
        }
    }
}

/// Hands out start times far enough apart that no two sagas' slot claims
/// overlap: the supplier checks no availability, but the engine's claims
/// refuse one host twice at once. Day and night alike: nothing checks
/// working hours here.
struct Schedule {
    spacing_s: i64,
    /// Start times the run needs in all.
    slots: u64,
    order: StartOrder,
    taken: AtomicU64,
}

impl Schedule {
    fn new(service: &Service, slots: usize, order: StartOrder) -> Schedule {
        // The whole service, rounded up to the 15-minute slot interval.
        let spacing_min = i64::from(service.total_min().div_ceil(15) * 15);
        Schedule {
            spacing_s: spacing_min * 60,
            slots: u64::try_from(slots).unwrap_or(u64::MAX),
            order,
            taken: AtomicU64::new(0),
        }
    }

    fn take(&self) -> DateTime<Utc> {
        let k = self.taken.fetch_add(1, Ordering::Relaxed);
        let slot = match self.order {
            StartOrder::EarliestFirst => k,
            StartOrder::LatestFirst => self.slots.saturating_sub(k.saturating_add(1)),
        };
        let offset_s = i64::try_from(slot)
            .unwrap_or(i64::MAX)
            .saturating_mul(self.spacing_s);
        DateTime::from_timestamp(FIRST_START_S.saturating_add(offset_s), 0)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

/// A uniquely named folder removed with everything in it when dropped.
struct Scratch {
    path: PathBuf,
}

impl Scratch {
    fn create(parent: &Path) -> Result<Scratch, BenchError> {
        let path = parent.join(format!(".calsaga-bench-{}", Uuid::new_v4()));
        std::fs::create_dir(&path).map_err(|source| BenchError::Scratch {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Scratch { path })
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Best effort: a leftover folder is named .calsaga-bench-* and harmless.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests;
