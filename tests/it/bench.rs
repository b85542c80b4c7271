//! `calsaga bench engine` as a user runs it, in a tiny configuration: the
//! sagas are really booked (against the instant supplier) and every figure,
//! ratio and aim is reported. Speed is never asserted: machines are shared.

use serde_json::Value;

use crate::support::run;

fn bench(dir: &std::path::Path, extra: &[&str]) -> (i32, String, String) {
    let dir = dir.to_str().expect("temp dir path is UTF-8");
    let mut args = vec![
        "bench",
        "engine",
        "--sagas",
        "3",
        "--concurrency",
        "2",
        "--recover",
        "5",
        "--raw-commits",
        "5",
        "--dir",
        dir,
    ];
    args.extend_from_slice(extra);
    run(&args, None)
}

/// Runs `calsaga args..`, which must succeed, and parses its one JSON object.
fn run_json(args: &[&str]) -> Value {
    let (code, out, err) = run(args, None);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}):\n{out}"))
}

fn number(report: &Value, pointer: &str) -> f64 {
    report
        .pointer(pointer)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{pointer} is not a number in {report:#}"))
}

/// A figure that must have been measured: finite and above zero.
fn assert_positive(report: &Value, pointer: &str) {
    let v = number(report, pointer);
    assert!(v.is_finite() && v > 0.0, "{pointer} = {v}");
}

fn assert_all_positive(report: &Value, pointers: &[&str]) {
    for pointer in pointers {
        assert_positive(report, pointer);
    }
}

/// The report names its command, and the scratch folder is gone.
fn assert_recorded_and_cleaned(report: &Value, command: &str, dir: &std::path::Path) {
    assert!(
        report["command"]
            .as_str()
            .is_some_and(|c| c.contains(command)),
        "{report:#}"
    );
    let left: Vec<_> = std::fs::read_dir(dir).unwrap().collect();
    assert!(left.is_empty(), "scratch files left behind: {left:?}");
}

#[test]
fn bench_engine_json_has_every_figure_ratio_and_aim_and_leaves_no_files() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = bench(dir.path(), &["--json"]);
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}):\n{out}"));

    assert_all_positive(
        &report,
        &[
            "/raw_commits_per_s",
            "/raw_samples_per_s/0",
            "/raw_samples_per_s/3",
            "/warm_up_sagas",
            "/sequential/sagas_per_s",
            "/sequential/steps_per_s",
            "/concurrent/sagas_per_s",
            "/concurrent/steps_per_s",
            "/sequential/pages_per_step",
            "/recovery/pages_per_saga",
            "/recovery/schedule_sagas_per_s",
            "/recovery/terminal_sagas_per_s",
            "/ratios/sequential_steps_vs_raw",
            "/ratios/sequential_steps_vs_step_floor",
            "/step_floor/commits_per_s",
            "/ratios/concurrent_steps_vs_raw",
            "/ratios/concurrent_vs_sequential",
            "/ratios/recovery_steps_vs_raw",
            "/sequential/cpu_us_per_saga",
            "/concurrent/cpu_us_per_saga",
            "/concurrent/writer_cpu_us_per_step",
            "/recovery/cpu_us_per_saga",
            "/recovery/writer_cpu_us_per_saga",
        ],
    );
    // The writer is one of the process's threads.
    let (all, writer) = (
        number(&report, "/recovery/cpu_us_per_saga"),
        number(&report, "/recovery/writer_cpu_us_per_saga"),
    );
    assert!(writer <= all, "writer {writer} µs of {all} µs per saga");
    assert_eq!(number(&report, "/sequential/sagas"), 3.0);
    assert_eq!(number(&report, "/sequential/concurrency"), 1.0);
    assert_eq!(number(&report, "/concurrent/concurrency"), 2.0);
    assert_eq!(number(&report, "/recovery/sagas"), 5.0);
    // The floor for a step is set with commits of the pages (b)'s steps
    // wrote: an event, the workflow row and more, several pages each.
    let pages = number(&report, "/step_floor/pages");
    assert!(pages >= 3.0, "{}", report["step_floor"]);
    let step_pages = number(&report, "/sequential/pages_per_step");
    assert!((pages - step_pages).abs() < 1e-9, "{pages} vs {step_pages}");

    // The n+1 design: one commit per durable step plus the request's.
    let steps = number(&report, "/steps_per_saga");
    assert_eq!(steps, 4.0, "3 segments + 1");
    let commits = number(&report, "/sequential/commits_per_saga");
    assert!(
        (1.0..=steps + 1.0).contains(&commits),
        "{commits} commits per saga"
    );

    let aims = report["aims"].as_array().expect("aims is a list");
    // Four from this run, three against peers' recorded figures.
    assert_eq!(aims.len(), 7, "{aims:?}");
    for aim in aims {
        assert!(aim["name"].is_string() && aim["met"].is_boolean(), "{aim}");
        assert!(
            aim["value"].is_number() && aim["target"].is_number(),
            "{aim}"
        );
    }
    assert!(number(&report, "/machine/cpus") >= 1.0);
    assert!(
        report["machine"]["disk"]
            .as_str()
            .is_some_and(|d| !d.is_empty())
    );
    assert_recorded_and_cleaned(&report, "bench engine", dir.path());
}

#[test]
fn bench_engine_table_names_each_measurement_and_aim() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = bench(dir.path(), &["--earliest-first"]);
    assert_eq!(code, 0, "{err}");
    for word in [
        "start times earliest first",
        "(a) raw FULL-sync commits/s",
        "(b) sagas/s, one at a time (3; ",
        "(c) sagas/s, 2 at a time (3)",
        "(d) commits per saga",
        "resumed to booked sagas/s",
        "(e) recovered sagas/s (10,000 in < 2.5 s)",
        "pages written per step, one at a time",
        "(b) sagas/s vs DBOS 3.4 (SQLite), 84 recorded",
    ] {
        assert!(out.contains(word), "{word:?} missing from:\n{out}");
    }
}

#[test]
fn bench_engine_without_its_service_says_which_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let workflows = tempfile::tempdir().unwrap();
    std::fs::copy(
        crate::support::repo_root().join("workflows/haircut.json"),
        workflows.path().join("haircut.json"),
    )
    .unwrap();
    let (code, _, err) = bench(
        dir.path(),
        &["--workflows", workflows.path().to_str().unwrap()],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("no service \"highlights-toner-blowdry\"") && err.contains("--workflows"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// `calsaga bench http` in a tiny configuration: every booking, search and
/// webhook really goes through the server (a refused one fails the run), and
/// every phase, ratio and baseline is reported. Speed is never asserted.
#[test]
fn bench_http_json_reports_each_phase_per_client_count_with_its_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let dir_arg = dir.path().to_str().expect("temp dir path is UTF-8");
    let report = run_json(&[
        "bench",
        "http",
        "--json",
        "--requests",
        "4",
        "--clients",
        "1,2",
        "--availability-requests",
        "2",
        "--raw-commits",
        "5",
        "--dir",
        dir_arg,
    ]);

    let levels = report["levels"].as_array().expect("levels is a list");
    assert_eq!(levels.len(), 2, "one level per client count: {levels:?}");
    for (i, clients) in [1.0, 2.0].into_iter().enumerate() {
        assert_eq!(number(&report, &format!("/levels/{i}/clients")), clients);
        for phase in ["health", "simple", "composite", "webhooks"] {
            let at = |field: &str| number(&report, &format!("/levels/{i}/{phase}/{field}"));
            assert_eq!(at("requests"), 4.0, "{phase} at {clients} clients");
            assert_eq!(at("clients"), clients, "{phase}");
            for field in ["per_s", "p50_ms", "p99_ms", "max_ms"] {
                assert_positive(&report, &format!("/levels/{i}/{phase}/{field}"));
            }
            assert!(at("p50_ms") <= at("p99_ms") && at("p99_ms") <= at("max_ms"));
        }
        for ratio in [
            "simple_per_s_vs_health",
            "simple_p50_vs_health",
            "composite_per_s_vs_health",
            "composite_p99_vs_health",
            "webhooks_per_s_vs_raw",
        ] {
            assert_positive(&report, &format!("/levels/{i}/ratios/{ratio}"));
        }
    }
    assert_all_positive(
        &report,
        &[
            "/availability/cold/p99_ms",
            "/availability/cached/p99_ms",
            "/availability/cold_vs_cached_p50",
            "/raw_commits_per_s",
        ],
    );
    assert_eq!(number(&report, "/availability/cold/requests"), 2.0);
    assert_recorded_and_cleaned(&report, "bench http", dir.path());
}

/// `calsaga bench all` in a tiny configuration: both benchmarks run in one
/// process and one report, with a headline per area against its baseline.
#[test]
fn bench_all_json_has_both_reports_and_a_headline_per_area() {
    let dir = tempfile::tempdir().unwrap();
    let dir_arg = dir.path().to_str().expect("temp dir path is UTF-8");
    let report = run_json(&[
        "bench",
        "all",
        "--json",
        "--sagas",
        "3",
        "--concurrency",
        "2",
        "--recover",
        "4",
        "--requests",
        "3",
        "--clients",
        "1,2",
        "--availability-requests",
        "2",
        "--raw-commits",
        "5",
        "--dir",
        dir_arg,
    ]);
    let areas: Vec<&str> = report["headlines"]
        .as_array()
        .expect("headlines is a list")
        .iter()
        .map(|h| h["area"].as_str().expect("an area"))
        .collect();
    assert_eq!(
        areas,
        [
            "engine",
            "engine",
            "recovery",
            "http",
            "webhooks",
            "availability",
            "Cal.com",
            "Cal.com",
            "Cal.com",
            "Cal.com",
            "Cal.com"
        ]
    );
    for i in 0..6 {
        for field in ["value", "baseline_value", "ratio"] {
            assert_positive(&report, &format!("/headlines/{i}/{field}"));
        }
    }
    // Engine headlines are the engine's own ratios (same raw samples).
    for (i, ratio) in [(0, "concurrent_steps_vs_raw"), (2, "recovery_steps_vs_raw")] {
        let headline = number(&report, &format!("/headlines/{i}/ratio"));
        let own = number(&report, &format!("/engine/ratios/{ratio}"));
        assert!(
            (headline - own).abs() <= 1e-9 * own.abs().max(1.0),
            "{headline} vs {own}"
        );
    }
    // What each operation costs Cal.com, counted by the mock: a front end
    // that searches and books the start offered pays one create per
    // segment; a cancel one cancel; a repeated search nothing.
    let headline = |i: usize| number(&report, &format!("/headlines/{i}/value"));
    assert!((1.0..=2.0).contains(&headline(6)), "{}", headline(6));
    assert_eq!(headline(7), 1.0, "booked after a search");
    assert_eq!(headline(8), 1.0, "cancelled");
    assert_eq!(headline(9), 0.0, "a warm search");
    let recovered = headline(10);
    // 3 creates, at most one reconcile each, and the start's one look
    // shared by the 4 sagas.
    assert!(
        (3.0..=4.25).contains(&recovered),
        "3 creates and at most one reconcile: {recovered}"
    );
    assert_eq!(number(&report, "/engine/recovery/sagas"), 4.0);
    assert_eq!(number(&report, "/http/levels/1/clients"), 2.0);
    assert_positive(&report, "/engine/ratios/concurrent_vs_sequential");
    assert_positive(&report, "/http/availability/cold_vs_cached_p50");
    assert_recorded_and_cleaned(&report, "bench all", dir.path());
}
