//! Thresholds, one by one: figures on each side of every boundary.

use chrono::{DateTime, Utc};

use super::*;

fn t() -> Thresholds {
    Thresholds::default()
}

fn calls(ok: usize, failed: usize, latency_ms: u64) -> Vec<CallStat> {
    let at = DateTime::<Utc>::UNIX_EPOCH;
    let one = |class: &str| CallStat {
        at,
        route: "GET /v2/slots".into(),
        status: Some(200),
        class: class.into(),
        latency_ms,
    };
    let mut all: Vec<CallStat> = (0..ok).map(|_| one(CLASS_OK)).collect();
    all.extend((0..failed).map(|_| one("server_error")));
    all
}

fn rate_status(ok: usize, failed: usize) -> Status {
    error_rate(&CallFigures::of(&calls(ok, failed, 10), 900), &t()).status
}

#[test]
fn error_rate_warns_from_5_and_is_critical_from_15_percent() {
    assert_eq!(rate_status(96, 4), Status::Ok);
    assert_eq!(rate_status(95, 5), Status::Warning);
    assert_eq!(rate_status(86, 14), Status::Warning);
    assert_eq!(rate_status(85, 15), Status::Critical);
}

#[test]
fn a_handful_of_calls_is_too_few_to_judge() {
    assert_eq!(rate_status(0, 9), Status::Ok);
    assert_eq!(rate_status(0, 10), Status::Critical);
}

#[test]
fn refusals_are_answers_not_errors() {
    let mut window = calls(10, 0, 10);
    window
        .iter_mut()
        .for_each(|c| c.class = CLASS_REFUSED.into());
    let f = CallFigures::of(&window, 900);
    assert_eq!((f.errors, error_rate(&f, &t()).status), (0, Status::Ok));
}

#[test]
fn average_latency_warns_from_one_second() {
    let status = |ms| response_time(&CallFigures::of(&calls(20, 0, ms), 900), &t()).status;
    assert_eq!(status(999), Status::Ok);
    assert_eq!(status(1_000), Status::Warning);
    assert_eq!(status(5_000), Status::Critical);
}

#[test]
fn p95_is_the_nearest_rank() {
    let mut window = calls(19, 0, 10);
    window.extend(calls(1, 0, 900));
    let f = CallFigures::of(&window, 900);
    assert_eq!(
        (f.latency_p95_ms, f.latency_max_ms, f.latency_avg_ms),
        (10, 900, 54)
    );
    assert_eq!(CallFigures::of(&[], 900).latency_p95_ms, 0);
}

#[test]
fn the_probe_decides_connectivity_and_authentication() {
    let answered = Probe::Answered { latency_ms: 20 };
    assert_eq!(connectivity(&answered, &t()).status, Status::Ok);
    assert_eq!(authentication(&answered).status, Status::Ok);
    let slow = Probe::Answered { latency_ms: 2_000 };
    assert_eq!(connectivity(&slow, &t()).status, Status::Warning);
    let refused = Probe::Refused {
        status: 401,
        message: "Invalid API Key".into(),
        latency_ms: 5,
    };
    assert_eq!(connectivity(&refused, &t()).status, Status::Ok);
    let auth = authentication(&refused);
    assert_eq!(auth.status, Status::Critical);
    assert!(
        auth.message.contains("set CALCOM_API_KEY"),
        "{}",
        auth.message
    );
    let down = Probe::Failed {
        reason: "could not reach Cal.com at http://127.0.0.1:1".into(),
        latency_ms: 1,
    };
    let c = connectivity(&down, &t());
    assert_eq!(c.status, Status::Critical);
    assert!(c.message.contains("127.0.0.1:1"), "{}", c.message);
    assert_eq!(authentication(&down).status, Status::Warning);
    assert_eq!(
        connectivity(&Probe::NotConfigured, &t()).status,
        Status::Warning
    );
}

fn webhook_status(received: u64, failing: u64, oldest_pending_age_s: Option<i64>) -> Status {
    let f = WebhookFigures {
        received_24h: received,
        failing_24h: failing,
        failure_rate: ratio(failing, received),
        oldest_pending_age_s,
        ..WebhookFigures::default()
    };
    webhooks(&f, &t()).status
}

#[test]
fn webhook_failures_warn_above_10_percent() {
    assert_eq!(webhook_status(0, 0, None), Status::Ok);
    assert_eq!(webhook_status(10, 1, None), Status::Ok);
    assert_eq!(webhook_status(100, 11, None), Status::Warning);
    assert_eq!(webhook_status(10, 6, None), Status::Critical);
    assert_eq!(webhook_status(10, 0, Some(15 * 60)), Status::Warning);
}

#[test]
fn missing_or_mismatched_event_types_are_critical_and_named() {
    let problem = |actual_min| EventTypeProblem {
        event_type_id: 201,
        used_by: vec!["haircut/cut".into()],
        expected_min: 45,
        actual_min,
    };
    let ok = EventTypeFigures {
        checked: 10,
        ..EventTypeFigures::default()
    };
    assert_eq!(event_types(&ok).status, Status::Ok);
    let missing = EventTypeFigures {
        missing: vec![problem(None)],
        ..ok.clone()
    };
    let r = event_types(&missing);
    assert_eq!(r.status, Status::Critical);
    assert!(
        r.message
            .contains("event type 201 is missing (used by haircut/cut)")
    );
    let mismatched = EventTypeFigures {
        mismatched: vec![problem(Some(30))],
        ..ok
    };
    assert!(event_types(&mismatched).message.contains("lasts 30 min"));
}

#[test]
fn failed_sagas_are_a_warning_with_the_resume_command() {
    let quiet = ActivityFigures::default();
    assert_eq!(activity(&quiet).status, Status::Ok);
    let id = uuid::Uuid::nil();
    let stuck = ActivityFigures {
        failed_open: 1,
        failed_ids: vec![id],
        ..quiet
    };
    let r = activity(&stuck);
    assert_eq!(r.status, Status::Warning);
    assert!(
        r.message.contains("calsaga workflows resume"),
        "{}",
        r.message
    );
}

#[test]
fn orphans_and_broken_composites_are_critical_missing_rows_a_warning() {
    let clean = SyncFigures {
        complete: true,
        ..SyncFigures::default()
    };
    assert_eq!(database_sync(&clean).status, Status::Ok);
    let partial = SyncFigures {
        complete: false,
        ..clean.clone()
    };
    assert_eq!(database_sync(&partial).status, Status::Warning);
    let missing = SyncFigures {
        missing: 1,
        ..clean.clone()
    };
    assert_eq!(database_sync(&missing).status, Status::Warning);
    for (orphans, broken) in [(1, 0), (0, 1)] {
        let bad = SyncFigures {
            orphans,
            broken,
            ..clean.clone()
        };
        assert_eq!(database_sync(&bad).status, Status::Critical);
    }
}
