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

fn number(report: &Value, pointer: &str) -> f64 {
    report
        .pointer(pointer)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{pointer} is not a number in {report:#}"))
}

#[test]
fn bench_engine_json_has_every_figure_ratio_and_aim_and_leaves_no_files() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = bench(dir.path(), &["--json"]);
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}):\n{out}"));

    for pointer in [
        "/raw_commits_per_s",
        "/raw_samples_per_s/0",
        "/raw_samples_per_s/3",
        "/sequential/sagas_per_s",
        "/sequential/steps_per_s",
        "/concurrent/sagas_per_s",
        "/concurrent/steps_per_s",
        "/recovery/schedule_sagas_per_s",
        "/recovery/terminal_sagas_per_s",
        "/ratios/sequential_steps_vs_raw",
        "/ratios/concurrent_steps_vs_raw",
        "/ratios/concurrent_vs_sequential",
        "/ratios/recovery_steps_vs_raw",
    ] {
        let v = number(&report, pointer);
        assert!(v.is_finite() && v > 0.0, "{pointer} = {v}");
    }
    assert_eq!(number(&report, "/sequential/sagas"), 3.0);
    assert_eq!(number(&report, "/sequential/concurrency"), 1.0);
    assert_eq!(number(&report, "/concurrent/concurrency"), 2.0);
    assert_eq!(number(&report, "/recovery/sagas"), 5.0);

    // The n+1 design: one commit per durable step plus the request's.
    let steps = number(&report, "/steps_per_saga");
    assert_eq!(steps, 4.0, "3 segments + 1");
    let commits = number(&report, "/sequential/commits_per_saga");
    assert!(
        (1.0..=steps + 1.0).contains(&commits),
        "{commits} commits per saga"
    );

    let aims = report["aims"].as_array().expect("aims is a list");
    assert_eq!(aims.len(), 4, "{aims:?}");
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
    assert!(
        report["command"]
            .as_str()
            .is_some_and(|c| c.contains("bench engine"))
    );

    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "scratch files left behind: {left:?}");
}

#[test]
fn bench_engine_table_names_each_measurement_and_aim() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = bench(dir.path(), &["--earliest-first"]);
    assert_eq!(code, 0, "{err}");
    for word in [
        "start times earliest first",
        "(a) raw FULL-sync commits/s",
        "(b) sagas/s, one at a time (3)",
        "(c) sagas/s, 2 at a time (3)",
        "(d) commits per saga",
        "resumed to booked sagas/s",
        "(e) recovered sagas/s, start to all booked",
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
