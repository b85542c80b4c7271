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
    let base = format!("http://{}/api/v2", served.addr);
    let (code, out, err) = run(
        &[
            "smoke",
            suite,
            "--json",
            "--api-base",
            &base,
            "--token",
            &served.booking,
        ],
        None,
    );
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

#[test]
fn smoke_booking_passes_all_ten_scenarios_and_cancels_what_it_booked() {
    let served = serve();
    let report = smoke(&served, "booking");
    let names = names(&report);
    assert_eq!(names.len(), 11, "ten scenarios and the cleanup: {names:?}");
    assert!(names[10].starts_with("cleanup"));
    let refused = report["outcomes"][8]["detail"].as_str().unwrap_or_default();
    assert!(
        refused.contains("1 booked segment(s) undone, none live"),
        "{refused}"
    );
    // Nothing the run booked is left booked.
    let left = served.get("/api/v2/bookings?status=booked&limit=100", &served.booking);
    assert_eq!(left.status, 200, "{}", left.body);
    assert_eq!(
        left.json()["bookings"],
        serde_json::json!([]),
        "{}",
        left.body
    );
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

#[test]
fn a_short_load_run_reports_every_figure_and_no_overlapping_bookings() {
    let served = serve();
    let base = format!("http://{}/api/v2", served.addr);
    let (code, out, err) = run(
        &[
            "load",
            "--json",
            "--duration",
            "2s",
            "--concurrency",
            "3",
            "--service",
            "haircut",
            "--mix",
            "book=6,availability=2,cancel=2",
            "--api-base",
            &base,
            "--token",
            &served.booking,
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}):\n{out}"));
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
