//! The benchmark's own arithmetic: start times that never collide, and
//! ratios and aims worked out against the right samples of (a).

use std::time::Duration;

use super::report::{PhaseRun, RecoveryRun};
use super::*;
use crate::store::CommitStats;

fn service() -> Service {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows");
    Catalog::load_dir(&dir)
        .unwrap()
        .get(SERVICE)
        .unwrap()
        .clone()
}

#[test]
fn schedule_hands_out_aligned_starts_a_whole_service_apart_in_the_chosen_order() {
    let service = service();
    for order in [StartOrder::LatestFirst, StartOrder::EarliestFirst] {
        let schedule = Schedule::new(&service, 5, order);
        let starts: Vec<_> = (0..5).map(|_| schedule.take()).collect();
        let mut sorted = starts.clone();
        sorted.sort();
        let expected = match order {
            StartOrder::EarliestFirst => sorted.clone(),
            StartOrder::LatestFirst => sorted.iter().rev().copied().collect(),
        };
        assert_eq!(starts, expected, "{order:?}");
        assert_eq!(sorted[0].timestamp(), FIRST_START_S, "{order:?}");
        for pair in sorted.windows(2) {
            let gap_min = (pair[1] - pair[0]).num_minutes();
            assert!(gap_min >= i64::from(service.total_min()), "{gap_min} min");
            assert_eq!(gap_min % 15, 0, "starts stay on the 15-minute slots");
        }
    }
}

fn throughput(sagas_per_s: f64, commits: u64) -> Throughput {
    let sagas = 10;
    let run = PhaseRun {
        sagas,
        concurrency: 1,
        elapsed: Duration::from_secs_f64(sagas as f64 / sagas_per_s),
        cpu: Duration::from_millis(30),
        before: CommitStats::default(),
        after: CommitStats {
            commits,
            batches: 50,
            largest_group: 1,
            pages: 200,
            apply_ns: 2_000_000,
            commit_ns: 8_000_000,
            cpu_ns: 4_000_000,
        },
    };
    Throughput::new(&run, 4)
}

#[test]
fn each_phase_is_set_against_the_raw_samples_either_side_of_it_and_aims_are_judged() {
    let report = BenchReport::new(Measured {
        command: "calsaga bench engine".into(),
        machine: Machine::probe(Path::new(".")),
        service: SERVICE.into(),
        start_order: StartOrder::LatestFirst,
        steps_per_saga: 4,
        raw_commits_per_sample: 100,
        raw_samples_per_s: [400.0, 800.0, 1200.0, 1600.0],
        step_floor: StepFloor {
            pages: 5.0,
            commits_per_s: 400.0,
        },
        warm_up_sagas: 110,
        sequential: throughput(100.0, 50),
        concurrent: throughput(600.0, 5),
        recovery: Recovery::new(&RecoveryRun {
            sagas: 3000,
            concurrency: 64,
            seeding: Duration::from_secs(9),
            schedule: Duration::from_millis(10),
            terminal: Duration::from_secs(1),
            cpu: Duration::from_millis(1500),
            stats: CommitStats {
                cpu_ns: 600_000_000,
                ..CommitStats::default()
            },
            calcom_requests: 12_000,
        }),
    });
    let r = &report.ratios;
    assert!(
        (r.sequential_steps_vs_raw - 400.0 / 600.0).abs() < 1e-6,
        "{r:?}"
    );
    assert!(
        (r.concurrent_steps_vs_raw - 2400.0 / 1000.0).abs() < 1e-6,
        "{r:?}"
    );
    assert!((r.concurrent_vs_sequential - 6.0).abs() < 1e-6, "{r:?}");
    // 400 steps/s against 5-page commits at 400/s.
    assert!(
        (r.sequential_steps_vs_step_floor - 1.0).abs() < 1e-6,
        "{r:?}"
    );
    assert!(
        (r.recovery_steps_vs_raw - 12_000.0 / 1400.0).abs() < 1e-6,
        "{r:?}"
    );
    assert!((report.raw_commits_per_s - 1000.0).abs() < 1e-9);
    let met: Vec<bool> = report.aims.iter().map(|a| a.met).collect();
    // 0.67 < 0.75; 6 >= 5; 5 commits <= 4 + 1; 3000/s < 4000/s; then the
    // recorded peers: 100/84 < 12, 100/115 < 9, 600/422 < 10.
    assert_eq!(
        met,
        [false, true, true, false, false, false, false],
        "{:?}",
        report.aims
    );
    assert!((report.measured.sequential.pages_per_step - 5.0).abs() < 1e-9);
    // 10 sagas of 4 steps at 100 sagas/s: 2,500 µs a step, of which the
    // writer spent 2 ms / 40 applying and 8 ms / 40 in COMMIT.
    let b = &report.measured.sequential;
    assert!((b.step_us - 2500.0).abs() < 1e-6, "{b:?}");
    assert!((b.apply_us_per_step - 50.0).abs() < 1e-9, "{b:?}");
    assert!((b.commit_us_per_step - 200.0).abs() < 1e-9, "{b:?}");
    // 30 ms of CPU over 10 sagas, 4 ms of the writer's over their 40 steps.
    assert!((b.cpu_us_per_saga - 3000.0).abs() < 1e-6, "{b:?}");
    assert!((b.writer_cpu_us_per_step - 100.0).abs() < 1e-9, "{b:?}");
    // 1.5 s of CPU over 3,000 recovered sagas, 0.6 s of it the writer's.
    let e = &report.measured.recovery;
    assert!((e.cpu_us_per_saga - 500.0).abs() < 1e-6, "{e:?}");
    assert!((e.writer_cpu_us_per_saga - 200.0).abs() < 1e-9, "{e:?}");
}
