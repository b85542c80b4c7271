//! Deterministic simulation of calsaga: the real engine (saga core, runner,
//! store on a scratch file, client) against the in-process Cal.com mock,
//! with a simulated clock and one seeded RNG choosing the requests, the
//! interleaving of concurrent sagas, a fault for every Cal.com call and
//! crashes of the process. The same seed gives the same event log (checked
//! by digest). After every run the invariants are checked against the
//! mock's calendar. `calsaga simulate` and the tests drive it; see
//! docs/SIMULATION.md. It never talks to a real Cal.com or a real clock.

mod crash;
mod faults;
mod gate;
mod invariants;
mod report;
mod salon;
mod world;

#[cfg(test)]
pub(crate) mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::catalog::{Catalog, Service};

pub use crash::{CrashCoverage, CrashScenario, crash_points};
pub use faults::{Boundary, FaultLevel};
pub use invariants::Violation;
pub use report::{RunFailure, SimulateConfig, Summary, replay_command, simulate};
pub use salon::{KEY, SIM_START, Salon, at, catalog};
pub use world::HOLD_MIN;

/// Why a run could not be carried out at all (as opposed to a run that
/// found a broken invariant).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    #[error("simulation setup failed: {0}; check the scratch directory is writable")]
    Setup(String),
    #[error(
        "the engine did not settle: {0}; this is a hang in the engine, replay the seed to debug it"
    )]
    Stuck(String),
    #[error("the engine failed unexpectedly: {0}; replay the seed to debug it")]
    Engine(String),
}

/// A request the simulated front end makes. `pick` chooses among the
/// workflows that can take the request at that moment (modulo their count).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Book {
        service: String,
        start: DateTime<Utc>,
        /// Idempotency-Key number; equal numbers reuse the key.
        key: Option<u8>,
    },
    Hold {
        service: String,
        start: DateTime<Utc>,
    },
    Confirm {
        pick: u8,
    },
    Reschedule {
        pick: u8,
        start: DateTime<Utc>,
    },
    Cancel {
        pick: u8,
    },
    /// "Can we push it back a bit?": reschedule a booking by 15 minutes,
    /// into time that overlaps its own segments (the move path).
    Push {
        pick: u8,
    },
}

impl Op {
    pub fn name(&self) -> &'static str {
        match self {
            Op::Book { .. } => "book",
            Op::Hold { .. } => "hold",
            Op::Confirm { .. } => "confirm",
            Op::Reschedule { .. } => "reschedule",
            Op::Cancel { .. } => "cancel",
            Op::Push { .. } => "push",
        }
    }
}

/// Everything one run does, given its seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Drives interleavings, faults, crashes, ids and jitter.
    pub seed: u64,
    pub faults: FaultLevel,
    /// Services besides the shipped catalogue.
    pub services: Vec<Service>,
    pub ops: Vec<Op>,
    /// Reserve slots before booking (the engine's `reserve_min`).
    pub reserve_min: Option<u32>,
}

impl Plan {
    /// The plan `calsaga simulate` runs for `seed`: `requests` requests
    /// against the shipped services.
    pub fn from_seed(seed: u64, faults: FaultLevel, requests: usize) -> Result<Plan, SimError> {
        let mut rng = SmallRng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15);
        let services: Vec<String> = shipped_services()?.into_iter().map(|s| s.id).collect();
        let service = |rng: &mut SmallRng| services[rng.gen_range(0..services.len())].clone();
        let ops = (0..requests)
            .map(|_| {
                let start = sim_start(rng.gen_range(0..3), rng.gen_range(0..28));
                match rng.gen_range(0..11) {
                    0..=3 => Op::Book {
                        service: service(&mut rng),
                        start,
                        key: None,
                    },
                    4 => Op::Book {
                        service: service(&mut rng),
                        start,
                        key: Some(rng.gen_range(0..3)),
                    },
                    5 => Op::Hold {
                        service: service(&mut rng),
                        start,
                    },
                    6 => Op::Confirm { pick: rng.r#gen() },
                    7 => Op::Reschedule {
                        pick: rng.r#gen(),
                        start,
                    },
                    8 | 9 => Op::Cancel { pick: rng.r#gen() },
                    _ => Op::Push { pick: rng.r#gen() },
                }
            })
            .collect();
        Ok(Plan {
            seed,
            faults,
            services: Vec::new(),
            ops,
            reserve_min: rng.gen_bool(0.25).then_some(5),
        })
    }
}

/// A start time in the simulated week: `day` 0.. from Tuesday 2030-03-05,
/// `quarter` 0.. quarter-hours from 09:00 UTC (all inside someone's hours).
pub fn sim_start(day: u32, quarter: u32) -> DateTime<Utc> {
    let base = Utc
        .with_ymd_and_hms(2030, 3, 5, 9, 0, 0)
        .single()
        .unwrap_or_default();
    base + Duration::days(i64::from(day)) + Duration::minutes(15 * i64::from(quarter))
}

/// The services shipped in `workflows/`, built in so the binary can
/// simulate them without the source tree.
pub fn shipped_services() -> Result<Vec<Service>, SimError> {
    const FILES: [(&str, &str); 4] = [
        (
            "colour-and-cut",
            include_str!("../../../workflows/colour-and-cut.json"),
        ),
        (
            "consultation",
            include_str!("../../../workflows/consultation.json"),
        ),
        ("haircut", include_str!("../../../workflows/haircut.json")),
        (
            "highlights-toner-blowdry",
            include_str!("../../../workflows/highlights-toner-blowdry.json"),
        ),
    ];
    FILES
        .iter()
        .map(|(name, json)| {
            let file = PathBuf::from(format!("workflows/{name}.json"));
            crate::catalog::parse_service(&file, json).map_err(|e| SimError::Setup(e.to_string()))
        })
        .collect()
}

fn catalog_for(plan: &Plan) -> Result<Arc<Catalog>, SimError> {
    let mut services = shipped_services()?;
    services.extend(plan.services.iter().cloned());
    Catalog::from_services(services)
        .map(Arc::new)
        .map_err(|e| SimError::Setup(format!("catalogue: {e}")))
}

/// What happened in one run.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunStats {
    /// Workflows started (book, hold, reschedule, cancel).
    pub sagas: u64,
    /// Requests refused up front (slot taken, wrong state, key reused).
    pub refused: u64,
    /// Cal.com calls answered (or crashed at).
    pub calls: u64,
    pub faults: BTreeMap<&'static str, u64>,
    pub crashes: u32,
    /// Durable timers fired.
    pub timers: u64,
    pub reconciliations: u64,
    /// Segments moved to another staff option after a refusal as taken.
    pub host_switches: u64,
    /// Segments a reschedule moved with Cal.com's own reschedule (their
    /// new time overlapped the original), and moves undone by compensation.
    pub moves: u64,
    pub moves_back: u64,
    pub compensations: u64,
    /// Workflows per final state.
    pub states: BTreeMap<String, u64>,
}

/// One finished run, judged.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunReport {
    pub seed: u64,
    pub stats: RunStats,
    pub violations: Vec<Violation>,
    /// SHA-256 of the whole event log: equal for equal seeds.
    pub log_digest: String,
}

/// Runs `plan` once and checks every invariant.
pub fn run_plan(plan: &Plan) -> Result<RunReport, SimError> {
    let mut world = world::World::new(plan, catalog_for(plan)?, faults::Mode::Random(plan.faults))?;
    world.run()?;
    judge(&world, plan.seed)
}

fn judge(world: &world::World, seed: u64) -> Result<RunReport, SimError> {
    let evidence = invariants::Evidence::load(&world.db_path(), &world.keys)?;
    let calendar = world.mock.view();
    let violations =
        invariants::check(&evidence, &calendar, &world.keys, world.not_live.as_deref());
    let mut stats = world.stats.clone();
    stats.reconciliations = evidence.count_events("segment_reconciled");
    stats.host_switches = evidence.count_events("segment_host_switched");
    stats.moves = evidence.count_events("segment_moved");
    stats.moves_back = evidence.count_events("segment_moved_back");
    stats.states = evidence.states();
    stats.compensations = stats.states.get("compensated").copied().unwrap_or(0);
    Ok(RunReport {
        seed,
        stats,
        violations,
        log_digest: evidence.digest(),
    })
}

/// A directory for one run's database, removed when the run is done. On
/// Linux it lives in /dev/shm: the simulation tests logic, not the disk,
/// and fsyncs on a shared disk would dominate its run time.
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(seed: u64) -> Result<ScratchDir, SimError> {
        static RUNS: AtomicU64 = AtomicU64::new(0);
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let n = RUNS.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("calsaga-sim-{}-{seed:x}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| SimError::Setup(format!("cannot create {}: {e}", dir.display())))?;
        Ok(ScratchDir(dir))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        // Best effort: a leftover scratch dir wastes space, nothing else.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
