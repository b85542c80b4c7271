//! What a smoke run found: one row per scenario (PASS/FAIL, time, what it
//! saw or why it failed), rendered as a table for people or serialised as
//! one JSON object. Formatting only: it runs nothing.

use std::fmt::Write as _;

use chrono::NaiveDate;
use serde::Serialize;

use super::Suite;

/// One scenario's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub name: &'static str,
    pub passed: bool,
    /// What it saw (PASS) or why it failed (FAIL).
    pub detail: String,
    pub ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SmokeReport {
    pub suite: Suite,
    pub api_base: String,
    pub service: String,
    pub composite: Option<String>,
    pub date: NaiveDate,
    pub time_zone: String,
    pub seconds: f64,
    pub outcomes: Vec<Outcome>,
}

impl SmokeReport {
    /// Every scenario passed.
    pub fn passed(&self) -> bool {
        self.outcomes.iter().all(|o| o.passed)
    }

    pub fn failed(&self) -> usize {
        self.outcomes.iter().filter(|o| !o.passed).count()
    }

    pub fn table(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "calsaga smoke {} against {}: service {}, composite {}, {} in {}\n",
            self.suite.name(),
            self.api_base,
            self.service,
            self.composite.as_deref().unwrap_or("(none)"),
            self.date,
            self.time_zone
        );
        let _ = writeln!(
            t,
            "{:>2}  {:<44} {:<6} {:>9}  detail",
            "#", "scenario", "result", "ms"
        );
        for (i, o) in self.outcomes.iter().enumerate() {
            let result = if o.passed { "PASS" } else { "FAIL" };
            let _ = writeln!(
                t,
                "{:>2}  {:<44} {:<6} {:>9.1}  {}",
                i + 1,
                o.name,
                result,
                o.ms,
                o.detail
            );
        }
        let passed = self.outcomes.len() - self.failed();
        let verdict = if self.passed() { "PASS" } else { "FAIL" };
        let _ = writeln!(
            t,
            "\n{verdict}: {passed} of {} passed in {:.1} s",
            self.outcomes.len(),
            self.seconds
        );
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_each_row_and_a_verdict_that_any_failure_turns() {
        let row = |name, passed| Outcome {
            name,
            passed,
            detail: format!("{name} detail"),
            ms: 12.5,
        };
        let mut report = SmokeReport {
            suite: Suite::Booking,
            api_base: "http://127.0.0.1:1/api/v2".into(),
            service: "haircut".into(),
            composite: None,
            date: NaiveDate::from_ymd_opt(2030, 3, 5).unwrap(),
            time_zone: "Europe/Berlin".into(),
            seconds: 1.25,
            outcomes: vec![row("simple booking", true), row("cancel", true)],
        };
        assert!(report.passed());
        let t = report.table();
        assert!(t.contains(" 2  cancel"), "{t}");
        assert!(t.contains("PASS: 2 of 2 passed in 1.2 s"), "{t}");
        assert!(t.contains("composite (none)"), "{t}");
        report.outcomes.push(row("hold then confirm", false));
        let t = report.table();
        assert!(!report.passed() && report.failed() == 1);
        assert!(
            t.contains("FAIL   ") && t.contains("hold then confirm detail"),
            "{t}"
        );
        assert!(t.contains("FAIL: 2 of 3 passed"), "{t}");
    }
}
