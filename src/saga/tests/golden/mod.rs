//! Golden logs: stored event logs (JSON lines, as the store keeps them) and
//! the state they fold to. Replaying them must give the same state forever,
//! and every event must serialise back to the same text: a change that breaks
//! this breaks every stored log (I7). Add variants; never reshape old ones.

use super::*;

fn check_golden(log_jsonl: &str, state_json: &str) {
    let mut log = Vec::new();
    for (n, line) in log_jsonl.lines().enumerate() {
        let event: Event =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("line {}: {e}: {line}", n + 1));
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            line,
            "line {}",
            n + 1
        );
        log.push(event);
    }
    let saga = fold(&log).expect("the golden log folds");
    let expected: serde_json::Value = serde_json::from_str(state_json).unwrap();
    assert_eq!(serde_json::to_value(&saga).unwrap(), expected);
}

#[test]
fn a_reschedule_with_a_lost_reply_and_a_duplicate_replays_the_same() {
    check_golden(
        include_str!("reschedule.jsonl"),
        include_str!("reschedule.state.json"),
    );
}

#[test]
fn a_compensation_that_needed_an_admin_replays_the_same() {
    check_golden(
        include_str!("compensate.jsonl"),
        include_str!("compensate.state.json"),
    );
}
