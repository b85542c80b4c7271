//! The simulator's own tests: a seed repeats exactly, random runs keep
//! every invariant (proptest over generated services, request streams and
//! fault plans), and every crash point of every catalogue service does.

use proptest::prelude::*;

use super::*;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::catalog::{Segment, StaffOption};

/// Generated cases per proptest run unless PROPTEST_CASES says otherwise;
/// two tests run half each, in parallel.
const CASES_DEFAULT: u32 = 2_000;

fn cases_half() -> u32 {
    let total = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CASES_DEFAULT);
    total.div_ceil(2).max(1)
}

/// Fails with everything needed to repeat the run.
fn assert_clean(plan: &Plan) -> Result<RunReport, TestCaseError> {
    let report = run_plan(plan)
        .map_err(|e| TestCaseError::fail(format!("seed {}: {e}\nplan: {plan:?}", plan.seed)))?;
    prop_assert!(
        report.violations.is_empty(),
        "seed {} broke invariants: {:#?}\nplan: {plan:?}\nreplay: cargo test --lib tools::sim::tests \
         (proptest-regressions/ keeps this case)",
        plan.seed,
        report.violations
    );
    Ok(report)
}

#[test]
fn a_seed_repeats_its_event_log_exactly() {
    let mut crashed = 0;
    let mut digests = std::collections::BTreeSet::new();
    for seed in 0..6 {
        let plan = Plan::from_seed(seed, FaultLevel::Heavy, 8).unwrap();
        let first = run_plan(&plan).unwrap();
        let again = run_plan(&plan).unwrap();
        assert_eq!(first.log_digest, again.log_digest, "seed {seed} diverged");
        assert_eq!(first.stats, again.stats, "seed {seed}");
        crashed += u32::from(first.stats.crashes > 0);
        digests.insert(first.log_digest);
    }
    assert!(
        crashed >= 2,
        "some of these seeds crash and restart the engine"
    );
    assert_eq!(digests.len(), 6, "the digest covers the log");
}

#[test]
fn simulate_sums_runs_and_names_the_replay_of_a_failure() {
    let config = SimulateConfig {
        seed: 40,
        runs: 3,
        faults: FaultLevel::Light,
        requests: 4,
    };
    let mut seen = Vec::new();
    let summary = simulate(&config, |done, _| seen.push(done));
    assert_eq!(seen, vec![1, 2, 3]);
    assert!(summary.ok(), "{}", summary.table());
    assert_eq!(summary.runs, 3);
    assert!(summary.sagas > 0 && summary.calls > 0, "{summary:?}");
    let table = summary.table();
    assert!(table.contains("invariant violations"), "{table}");
    assert_eq!(
        replay_command(7, FaultLevel::Heavy, 4),
        "calsaga simulate --seed 7 --runs 1 --faults heavy --requests 4"
    );
}

#[test]
fn every_crash_point_of_every_service_keeps_the_invariants() {
    let coverage = crash_points(1).unwrap();
    println!(
        "crash points covered: {} (longest saga {} steps)",
        coverage.points, coverage.steps_max
    );
    assert!(coverage.failures.is_empty(), "{:#?}", coverage.failures);
    // 4 services x 6 kinds x 4 boundaries, each at 1 step at least.
    assert!(coverage.points >= 96, "{}", coverage.points);
}

/// Event types of the salon fixture by length: (length, [(host, id)]).
const EVENT_TYPES: [(u32, &[(u64, u64)]); 5] = [
    (15, &[(1, 104)]),
    (20, &[(1, 103), (4, 401)]),
    (30, &[(1, 101), (2, 202), (3, 302)]),
    (45, &[(2, 201), (3, 301), (4, 402)]),
    (60, &[(1, 102)]),
];

fn segment() -> impl Strategy<Value = Segment> {
    (
        0..EVENT_TYPES.len(),
        1u8..8,
        prop::sample::select(vec![0u32, 10, 15, 30, 40]),
    )
        .prop_map(|(class, mask, pause)| {
            let (length, options) = EVENT_TYPES[class];
            let mut staff: Vec<StaffOption> = options
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, &(host, event_type_id))| StaffOption {
                    host,
                    event_type_id,
                })
                .collect();
            if staff.is_empty() {
                staff.push(StaffOption {
                    host: options[0].0,
                    event_type_id: options[0].1,
                });
            }
            Segment {
                name: format!("s{length}"),
                duration_min: length,
                staff,
                pause_after_min: pause,
            }
        })
}

fn services() -> impl Strategy<Value = Vec<Service>> {
    prop::collection::vec(prop::collection::vec(segment(), 1..=5), 0..=2).prop_map(|all| {
        all.into_iter()
            .enumerate()
            .map(|(i, mut segments)| {
                if let Some(last) = segments.last_mut() {
                    last.pause_after_min = 0;
                }
                Service {
                    id: format!("generated-{i}"),
                    name: format!("Generated {i}"),
                    segments,
                }
            })
            .collect()
    })
}

fn op(ids: Vec<String>) -> impl Strategy<Value = Op> {
    let start = (0u32..3, 0u32..28).prop_map(|(d, q)| sim_start(d, q));
    let service = prop::sample::select(ids);
    prop_oneof![
        4 => (service.clone(), start.clone(), prop::option::weighted(0.2, 0u8..3))
            .prop_map(|(service, start, key)| Op::Book { service, start, key }),
        1 => (service, start.clone()).prop_map(|(service, start)| Op::Hold { service, start }),
        1 => any::<u8>().prop_map(|pick| Op::Confirm { pick }),
        1 => (any::<u8>(), start).prop_map(|(pick, start)| Op::Reschedule { pick, start }),
        1 => any::<u8>().prop_map(|pick| Op::Cancel { pick }),
        1 => any::<u8>().prop_map(|pick| Op::Push { pick }),
    ]
}

fn plan() -> impl Strategy<Value = Plan> {
    services().prop_flat_map(|services| {
        let mut ids: Vec<String> = shipped_services()
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect();
        ids.extend(services.iter().map(|s| s.id.clone()));
        (
            any::<u64>(),
            prop::sample::select(vec![FaultLevel::Light, FaultLevel::Heavy]),
            prop::collection::vec(op(ids), 1..=4),
            prop::option::weighted(0.25, Just(5u32)),
            Just(services),
        )
            .prop_map(|(seed, faults, ops, reserve_min, services)| Plan {
                seed,
                faults,
                services,
                ops,
                reserve_min,
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases_half()))]

    #[test]
    fn random_runs_keep_every_invariant(plan in plan()) {
        assert_clean(&plan)?;
    }

    #[test]
    fn random_runs_keep_every_invariant_too(plan in plan()) {
        assert_clean(&plan)?;
    }
}

/// Books `event_type_id` at `start` straight at the mock, as another
/// client (or a buggy engine) would, with `metadata`. Tests of other
/// modules use it too.
pub(crate) async fn book_at_mock(
    mock: &Arc<crate::mock::Mock>,
    clock: Arc<dyn crate::clock::Clock>,
    event_type_id: u64,
    start: DateTime<Utc>,
    metadata: std::collections::BTreeMap<String, String>,
) -> crate::calcom::wire::Booking {
    use crate::calcom::wire::{CreateBooking, NewAttendee};
    use crate::calcom::{CalcomApi, RetryPolicy};
    use crate::mock::MockTransport;
    let client = super::Salon::client_over(
        Arc::new(MockTransport::new(mock.clone())),
        super::KEY,
        RetryPolicy::default(),
        clock,
        1,
    );
    let input = CreateBooking {
        start,
        event_type_id,
        attendee: NewAttendee {
            name: "Walk-in".into(),
            time_zone: "Europe/Berlin".into(),
            email: Some("walkin@example.com".into()),
            ..NewAttendee::default()
        },
        metadata,
        length_in_minutes: None,
        guests: vec![],
        booking_fields_responses: None,
    };
    client.create_booking(&input).await.unwrap()
}

/// A booking of `workflow`'s segment 0 that the engine did not make.
fn stray_booking(world: &world::World, event_type_id: u64, start: DateTime<Utc>, workflow: &str) {
    use crate::calcom::wire;
    let metadata = [
        (wire::META_WORKFLOW.to_string(), workflow.to_string()),
        (wire::META_SEGMENT.to_string(), "0".to_string()),
    ]
    .into();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(book_at_mock(
        &world.mock,
        world.clock.clone(),
        event_type_id,
        start,
        metadata,
    ));
}

#[test]
fn the_judge_reports_orphans_and_double_bookings() {
    let plan = Plan {
        seed: 9,
        faults: FaultLevel::None,
        services: vec![],
        ops: vec![Op::Book {
            service: "haircut".into(),
            start: sim_start(0, 4),
            key: None,
        }],
        reserve_min: None,
    };
    let mut world = world::World::new(
        &plan,
        catalog_for(&plan).unwrap(),
        faults::Mode::Random(plan.faults),
    )
    .unwrap();
    world.run().unwrap();
    assert!(judge(&world, 9).unwrap().violations.is_empty());
    let booked = world.started[0].id.to_string();
    // A second booking of the same segment (another day), and one of a
    // workflow calsaga never started.
    stray_booking(&world, 201, sim_start(2, 4), &booked);
    stray_booking(
        &world,
        104,
        sim_start(1, 0),
        "00000000-0000-4000-8000-000000000000",
    );
    let found: Vec<&str> = judge(&world, 9)
        .unwrap()
        .violations
        .iter()
        .map(|v| v.invariant)
        .collect();
    assert!(found.contains(&"I1"), "{found:?}");
    assert_eq!(found.iter().filter(|i| **i == "I2").count(), 2, "{found:?}");
}
