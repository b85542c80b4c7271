//! `calsaga simulate` as a user runs it: seeded runs of the real engine
//! against the in-process mock, a summary, and the exit code that says
//! whether every invariant held.

use crate::support::run;

#[test]
fn simulate_prints_a_summary_and_exits_zero_when_every_invariant_holds() {
    let args = [
        "simulate", "--seed", "7", "--runs", "3", "--faults", "heavy", "--json",
    ];
    let (code, stdout, stderr) = run(&args, None);
    assert_eq!(code, 0, "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(summary["runs"], 3, "{summary}");
    assert_eq!(summary["violations"], 0, "{summary}");
    assert!(summary["sagas"].as_u64().unwrap() > 0, "{summary}");
    assert!(summary["calls"].as_u64().unwrap() > 0, "{summary}");

    // The same seed, as a table: the same totals.
    let (code, table, _) = run(&args[..args.len() - 1], None);
    assert_eq!(code, 0);
    let line = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().last())
            .map(str::to_string)
    };
    assert_eq!(line("sagas"), Some(summary["sagas"].to_string()), "{table}");
    assert_eq!(line("invariant violations"), Some("0".into()), "{table}");
}

#[test]
fn simulate_refuses_an_unknown_fault_level() {
    let (code, _, stderr) = run(&["simulate", "--faults", "brutal"], None);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("none, light or heavy"), "{stderr}");
}
