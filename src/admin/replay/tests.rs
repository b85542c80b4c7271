//! Fold-and-compare on the golden logs: an untouched log replays clean; a
//! changed projection, state, count or event is reported.

use super::replay_log;
use crate::admin::export::{Record, records_to_logs};
use crate::store::{EventRow, WorkflowRow};

/// The one workflow of `fixtures/logs/<name>.jsonl`.
fn golden(name: &str) -> (WorkflowRow, Vec<EventRow>) {
    let path = format!("{}/fixtures/logs/{name}.jsonl", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("golden log");
    let records: Vec<Record> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a record"))
        .collect();
    records_to_logs(records).expect("well-formed").remove(0)
}

#[test]
fn a_golden_log_folds_to_its_recorded_projection() {
    for name in [
        "booked",
        "failed-booking",
        "compensated-by-admin-then-resumed",
    ] {
        let (row, events) = golden(name);
        let report = replay_log(&row, &events);
        assert_eq!(report.differences, Vec::<String>::new(), "{name}");
        assert_eq!(report.state, row.state, "{name}");
    }
}

#[test]
fn each_kind_of_tampering_is_named() {
    let (row, events) = golden("booked");
    let mut projection: serde_json::Value = serde_json::from_str(&row.projection).unwrap();
    projection["segments"][0]["booking"]["calcom_uid"] = "forged".into();
    let forged = WorkflowRow {
        projection: projection.to_string(),
        ..row.clone()
    };
    let report = replay_log(&forged, &events);
    assert_eq!(report.differences.len(), 1, "{:?}", report.differences);
    assert!(
        report.differences[0].starts_with("$.segments[0].booking.calcom_uid: stored \"forged\""),
        "{:?}",
        report.differences
    );

    let short = replay_log(&row, &events[..events.len() - 1]);
    assert!(
        short
            .differences
            .iter()
            .any(|d| d.starts_with("next_seq: stored"))
    );
    assert!(
        short
            .differences
            .iter()
            .any(|d| d.starts_with("state: stored \"booked\""))
    );

    let mut garbled = events.clone();
    garbled[1].payload = r#"{"kind":"segment_booked"}"#.into();
    let broken = replay_log(&row, &garbled);
    assert_eq!(broken.state, "?");
    assert!(
        broken
            .differences
            .iter()
            .any(|d| d.contains("event 1 (segment_booking_intended) does not parse")),
        "{:?}",
        broken.differences
    );
}
