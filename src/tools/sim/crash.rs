//! Exhaustive crash points: for every shipped service and every saga kind
//! (book, book with reservations, reschedule, cancel, hold then confirm,
//! hold then expiry), crash the process at step k (the k-th Cal.com call of
//! the saga) for k = 1, 2, ... until the saga finishes without reaching k,
//! once per
//! boundary (before the call; after it succeeded; after it was refused;
//! reply lost, then crash), restart, and check every invariant. Not a
//! sample: every step boundary of every catalogue service is covered.

use super::faults::{Boundary, CrashPoint, Mode};
use super::{
    FaultLevel, Op, Plan, SimError, Violation, catalog_for, judge, shipped_services, sim_start,
    world,
};

/// Steps tried per scenario before giving up: far above any saga's length,
/// so reaching it means a saga that never finishes.
const STEPS_MAX: u32 = 64;

/// The saga kinds enumerated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CrashScenario {
    Book,
    /// A booking that reserves every slot first (`reserve_min`).
    BookReserved,
    Reschedule,
    /// A reschedule by 15 minutes: every segment moves its original.
    Push,
    Cancel,
    HoldConfirm,
    HoldExpire,
}

impl CrashScenario {
    pub const ALL: [CrashScenario; 7] = [
        CrashScenario::Book,
        CrashScenario::BookReserved,
        CrashScenario::Reschedule,
        CrashScenario::Push,
        CrashScenario::Cancel,
        CrashScenario::HoldConfirm,
        CrashScenario::HoldExpire,
    ];

    /// The requests, and the index of the one whose steps are crashed.
    fn ops(self, service: &str) -> (Vec<Op>, usize) {
        let start = sim_start(0, 4);
        let book = Op::Book {
            service: service.into(),
            start,
            key: None,
        };
        let hold = Op::Hold {
            service: service.into(),
            start,
        };
        match self {
            CrashScenario::Book | CrashScenario::BookReserved => (vec![book], 0),
            CrashScenario::Reschedule => {
                let to = sim_start(1, 12);
                (vec![book, Op::Reschedule { pick: 0, start: to }], 1)
            }
            CrashScenario::Push => (vec![book, Op::Push { pick: 0 }], 1),
            CrashScenario::Cancel => (vec![book, Op::Cancel { pick: 0 }], 1),
            CrashScenario::HoldConfirm => (vec![hold, Op::Confirm { pick: 0 }], 0),
            CrashScenario::HoldExpire => (vec![hold], 0),
        }
    }
}

/// What the enumeration covered and found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CrashCoverage {
    /// Crash points run (service x kind x step x boundary).
    pub points: u64,
    /// Longest saga seen, in steps.
    pub steps_max: u32,
    /// Each failing point, described, with what broke.
    pub failures: Vec<(String, Violation)>,
}

/// Runs every crash point; `seed` only seeds ids and jitter.
pub fn crash_points(seed: u64) -> Result<CrashCoverage, SimError> {
    let mut coverage = CrashCoverage::default();
    for service in shipped_services()? {
        for scenario in CrashScenario::ALL {
            for boundary in Boundary::ALL {
                enumerate(seed, &service.id, scenario, boundary, &mut coverage)?;
            }
        }
    }
    Ok(coverage)
}

fn enumerate(
    seed: u64,
    service: &str,
    scenario: CrashScenario,
    boundary: Boundary,
    coverage: &mut CrashCoverage,
) -> Result<(), SimError> {
    let (ops, from_op) = scenario.ops(service);
    let plan = Plan {
        seed,
        faults: FaultLevel::None,
        services: Vec::new(),
        ops,
        reserve_min: (scenario == CrashScenario::BookReserved).then_some(5),
    };
    for k in 1..=STEPS_MAX {
        let point = CrashPoint {
            from_op,
            k,
            boundary,
        };
        let mut world = world::World::new(&plan, catalog_for(&plan)?, Mode::point(point))?;
        world.run()?;
        if !world.reached() {
            return Ok(());
        }
        coverage.points += 1;
        coverage.steps_max = coverage.steps_max.max(k);
        let report = judge(&world, seed)?;
        let what = format!("{service} {scenario:?} step {k} {boundary:?}");
        coverage
            .failures
            .extend(report.violations.into_iter().map(|v| (what.clone(), v)));
    }
    Err(SimError::Stuck(format!(
        "{service} {scenario:?} still reached step {STEPS_MAX} with {boundary:?}"
    )))
}
