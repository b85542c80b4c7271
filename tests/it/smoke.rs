//! `calsaga smoke` and `calsaga load` as an operator runs them, against a
//! real `calsaga serve` on its embedded mock: all twenty scenarios must
//! pass, and a short load run must report every figure and no overlapping
//! bookings. The smoke run sends about a hundred requests in a second, so
//! the server's burst is raised: the default (100) would only make the
//! client wait on Retry-After. The latency bounds are loosened: the test
//! machine is shared, and speed is never asserted here.

use serde_json::Value;

use crate::support::{Served, run};

fn serve() -> Served {
    Served::start(&["--rate-limit-burst", "1000"])
}

fn smoke(served: &Served, suite: &str) -> Value {
    smoke_on(served, suite, &[])
}

/// A smoke run with `more` arguments (such as `--date`).
fn smoke_on(served: &Served, suite: &str, more: &[&str]) -> Value {
    let base = format!("http://{}/api/v2", served.addr);
    let mut args = vec![
        "smoke",
        suite,
        "--json",
        "--api-base",
        &base,
        "--token",
        &served.booking,
    ];
    args.extend_from_slice(more);
    let (code, out, err) = run(&args, None);
    let report: Value = serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}):\n{out}\n{err}"));
    let failed: Vec<&Value> = report["outcomes"]
        .as_array()
        .expect("outcomes")
        .iter()
        .filter(|o| o["passed"] != true)
        .collect();
    assert!(failed.is_empty(), "failed scenarios: {failed:#?}\n{err}");
    assert_eq!(code, 0, "{err}");
    report
}

fn names(report: &Value) -> Vec<String> {
    report["outcomes"]
        .as_array()
        .expect("outcomes")
        .iter()
        .map(|o| o["name"].as_str().expect("a name").to_string())
        .collect()
}

#[test]
fn smoke_availability_passes_all_ten_scenarios_against_serve() {
    let served = serve();
    let report = smoke(&served, "availability");
    assert_eq!(names(&report).len(), 10, "{report:#}");
    assert_eq!(report["composite"], "colour-and-cut");
    let zones = &report["outcomes"][2]["detail"];
    assert!(
        zones.as_str().is_some_and(|d| d.contains("both offsets")),
        "{zones}"
    );
}

/// Runs the booking suite on each of `dates` in turn against one fresh
/// server and checks that each run passes and leaves nothing booked.
fn smoke_booking_on(dates: &[&str]) {
    let served = serve();
    for date in dates {
        let report = smoke_on(&served, "booking", &["--date", date]);
        let names = names(&report);
        assert_eq!(names.len(), 11, "ten scenarios and the cleanup: {names:?}");
        assert!(names[10].starts_with("cleanup"), "{names:?}");
        let unoffered = report["outcomes"][8]["detail"].as_str().unwrap_or_default();
        assert!(
            unoffered.contains("refused at once with nothing booked"),
            "{date}: {unoffered}"
        );
        let left = served.get("/api/v2/bookings?status=booked&limit=100", &served.booking);
        assert_eq!(left.status, 200, "{}", left.body);
        assert_eq!(
            left.json()["bookings"],
            serde_json::json!([]),
            "{date}: {}",
            left.body
        );
    }
}

/// Days with other staff at work (Ben is off on Mondays, Chloe and Dev on
/// Saturdays; 2030-03-30 is the day before Berlin's clocks go forward), and
/// a Tuesday twice on one server: the second run finds the first one's
/// Cal.com request budget spent and must wait for it, not fail.
#[test]
fn smoke_booking_passes_on_any_day_and_twice_in_a_row_leaving_nothing_booked() {
    let runs: Vec<&[&str]> = vec![
        &["2030-03-05", "2030-03-05"],
        &["2030-03-04"],
        &["2030-03-30"],
    ];
    std::thread::scope(|scope| {
        for dates in runs {
            scope.spawn(move || smoke_booking_on(dates));
        }
    });
}

#[test]
fn smoke_fails_with_exit_1_and_says_why_on_a_bad_token() {
    let served = serve();
    let base = format!("http://{}/api/v2", served.addr);
    let (code, _, err) = run(
        &[
            "smoke",
            "availability",
            "--api-base",
            &base,
            "--token",
            "nope",
        ],
        None,
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("401") && err.contains("API_TOKEN"), "{err}");
}

/// `calsaga load --json` on `haircut` against `served`; its report.
fn load_report(served: &Served, duration: &str, clients: &str, mix: &str) -> Value {
    let base = format!("http://{}/api/v2", served.addr);
    let (code, out, err) = run(
        &[
            "load",
            "--json",
            "--duration",
            duration,
            "--concurrency",
            clients,
            "--service",
            "haircut",
            "--mix",
            mix,
            "--api-base",
            &base,
            "--token",
            &served.booking,
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}):\n{out}"))
}

#[test]
fn a_short_load_run_reports_every_figure_and_no_overlapping_bookings() {
    let report = load_report(&serve(), "2s", "3", "book=6,availability=2,cancel=2");
    assert!(
        report["requests"].as_u64().is_some_and(|n| n > 0),
        "{report:#}"
    );
    assert!(report["per_s"].as_f64().is_some_and(|r| r > 0.0));
    let book = report["operations"]
        .as_array()
        .and_then(|ops| ops.iter().find(|o| o["op"] == "book"))
        .unwrap_or_else(|| panic!("no book figures: {report:#}"));
    assert!(book["ok"].as_u64().is_some_and(|n| n > 0), "{book}");
    for field in ["p50_ms", "p95_ms", "p99_ms", "max_ms"] {
        assert!(
            book[field].as_f64().is_some_and(|v| v > 0.0),
            "{field}: {book}"
        );
    }
    assert!(book["p50_ms"].as_f64() <= book["p99_ms"].as_f64());
    assert!(report["errors"].is_object());
    let invariant = &report["invariant"];
    assert_eq!(invariant["violations"], 0, "{invariant:#}");
    assert!(
        invariant["live_segments"].as_u64().is_some_and(|n| n > 0),
        "the check saw the run's bookings: {invariant:#}"
    );
}

#[test]
fn load_refuses_a_target_off_this_machine() {
    let (code, _, err) = run(
        &[
            "load",
            "--api-base",
            "http://192.0.2.7:8080/api/v2",
            "--token",
            "t",
        ],
        None,
    );
    assert_eq!(code, 1);
    assert!(err.contains("--allow-remote"), "{err}");
}

#[test]
fn a_load_run_against_a_small_rate_limit_waits_as_told_and_reports_back_pressure_not_errors() {
    // 60 a minute after a burst of 10: the run must outgrow it in a second.
    let served = Served::start(&["--rate-limit-per-min", "60", "--rate-limit-burst", "10"]);
    let report = load_report(&served, "3s", "2", "availability=1");
    assert!(
        report["back_pressure"].as_u64().is_some_and(|n| n > 0),
        "the limit was reached: {report:#}"
    );
    assert_eq!(report["errors"], serde_json::json!({}), "{report:#}");
    // Paced by Retry-After (1 s here): a few dozen requests, not thousands.
    let requests = report["requests"].as_u64().unwrap_or_default();
    assert!(
        (10..60).contains(&requests),
        "{requests} requests: {report:#}"
    );
}
