//! What the runner and admin read back: the inbox, timers, recovery and
//! listing queries, orphan records, pruning, and the disk baseline.

use super::{Fixture, at, create, put_key};
use crate::store::{
    CallStat, InboxState, OrphanBooking, OrphanRow, OrphanState, StoreError, WorkflowFilter,
    WriteOp, body_sha256, raw_commit_rate,
};
use uuid::Uuid;

#[test]
fn the_inbox_stores_a_body_once_and_hands_out_due_entries() {
    let f = Fixture::new();
    let body = r#"{"triggerEvent":"BOOKING_CANCELLED"}"#;
    let insert = || {
        f.store.commit_blocking(vec![WriteOp::InboxInsert {
            body: body.into(),
            received_at: at(9, 0),
        }])
    };
    insert().unwrap();
    assert_eq!(
        insert(),
        Err(StoreError::InboxDuplicate {
            body_sha256: body_sha256(body)
        })
    );
    let due = f.store.inbox_due(at(9, 0), 10).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(
        (due[0].body.as_str(), due[0].state, due[0].attempts),
        (body, InboxState::Pending, 0)
    );

    let attempt = |state, attempts, next_attempt_at, last_error: Option<&str>| {
        f.store.commit_blocking(vec![WriteOp::InboxUpdate {
            id: due[0].id,
            state,
            attempts,
            next_attempt_at,
            last_error: last_error.map(str::to_string),
        }])
    };
    attempt(InboxState::Pending, 1, at(9, 5), Some("workflow busy")).unwrap();
    assert!(
        f.store.inbox_due(at(9, 4), 10).unwrap().is_empty(),
        "not due before its retry time"
    );
    let retry = f.store.inbox_due(at(9, 5), 10).unwrap();
    assert_eq!(
        (retry[0].attempts, retry[0].last_error.as_deref()),
        (1, Some("workflow busy"))
    );

    attempt(InboxState::Processed, 2, at(9, 6), None).unwrap();
    let missing = WriteOp::InboxUpdate {
        id: due[0].id + 1,
        state: InboxState::Failed,
        attempts: 1,
        next_attempt_at: at(9, 6),
        last_error: None,
    };
    assert_eq!(
        f.store.commit_blocking(vec![missing]),
        Err(StoreError::InboxMissing { id: due[0].id + 1 })
    );
    assert!(f.store.inbox_due(at(23, 0), 10).unwrap().is_empty());
    assert!(insert().is_err(), "a processed body is still recognised");
}

#[test]
fn timers_come_due_once_and_setting_again_moves_them() {
    let f = Fixture::new();
    let (a, b) = (f.workflow(), f.workflow());
    let set = |workflow, kind: &str, due_at| WriteOp::SetTimer {
        workflow,
        kind: kind.into(),
        due_at,
    };
    f.store
        .commit_blocking(vec![
            set(a, "hold", at(10, 0)),
            set(a, "retry", at(11, 0)),
            set(b, "hold", at(9, 30)),
        ])
        .unwrap();
    f.store
        .commit_blocking(vec![set(a, "hold", at(10, 15))])
        .unwrap();

    let due: Vec<(Uuid, String)> = f
        .store
        .due_timers(at(10, 15), 10)
        .unwrap()
        .into_iter()
        .map(|t| (t.workflow, t.kind))
        .collect();
    assert_eq!(due, [(b, "hold".to_string()), (a, "hold".to_string())]);
    assert_eq!(f.store.due_timers(at(10, 14), 10).unwrap().len(), 1);
    assert_eq!(
        f.store.due_timers(at(23, 0), 1).unwrap().len(),
        1,
        "limit holds"
    );

    let first = f.store.due_timers(at(10, 15), 1).unwrap().remove(0);
    f.store
        .commit_blocking(vec![WriteOp::FireTimer { id: first.id }])
        .unwrap();
    assert_eq!(
        f.store
            .commit_blocking(vec![WriteOp::FireTimer { id: first.id }]),
        Err(StoreError::TimerNotPending { id: first.id })
    );
    f.store
        .commit_blocking(vec![WriteOp::ClearTimers {
            workflow: a,
            kind: None,
        }])
        .unwrap();
    assert!(f.store.due_timers(at(23, 0), 10).unwrap().is_empty());
}

#[test]
fn unfinished_workflows_skip_terminal_states() {
    let f = Fixture::new();
    let states = ["running", "booked", "compensating", "compensated", "failed"];
    let ids: Vec<Uuid> = states
        .iter()
        .map(|state| {
            let id = Uuid::new_v4();
            f.store.commit_blocking(vec![create(id, state)]).unwrap();
            id
        })
        .collect();
    let mut unfinished: Vec<Uuid> = f
        .store
        .unfinished_workflows(&["booked", "compensated", "cancelled", "failed"])
        .unwrap()
        .into_iter()
        .map(|w| w.id)
        .collect();
    unfinished.sort();
    let mut expected = vec![ids[0], ids[2]];
    expected.sort();
    assert_eq!(unfinished, expected);
    assert_eq!(
        f.store.unfinished_workflows(&[]).unwrap().len(),
        states.len()
    );
}

#[test]
fn unfinished_workflows_among_ten_thousand() {
    let f = Fixture::new();
    let batch: Vec<WriteOp> = (0..10_000)
        .map(|i| {
            create(
                Uuid::new_v4(),
                if i % 100 == 0 { "running" } else { "booked" },
            )
        })
        .collect();
    f.store.commit_blocking(batch).unwrap();
    let unfinished = f.store.unfinished_workflows(&["booked"]).unwrap();
    assert_eq!(unfinished.len(), 100);
    assert!(unfinished.iter().all(|w| w.state == "running"));
}

#[test]
fn listing_filters_and_pages_newest_first() {
    let f = Fixture::new();
    let mut made = Vec::new();
    for minute in 0..5 {
        let id = Uuid::new_v4();
        let state = if minute % 2 == 0 { "booked" } else { "running" };
        f.store
            .commit_blocking(vec![WriteOp::CreateWorkflow {
                id,
                kind: "booking".into(),
                service: "haircut".into(),
                state: state.into(),
                at: at(9, minute),
                projection: "{}".into(),
            }])
            .unwrap();
        made.push(id);
    }
    let page = |filter: &WorkflowFilter| -> Vec<Uuid> {
        f.store
            .list_workflows(filter)
            .unwrap()
            .into_iter()
            .map(|w| w.id)
            .collect()
    };
    let first = WorkflowFilter {
        limit: 2,
        ..WorkflowFilter::default()
    };
    assert_eq!(page(&first), [made[4], made[3]]);
    let last_row = f.store.list_workflows(&first).unwrap().pop().unwrap();
    let second = WorkflowFilter {
        after: Some(last_row.cursor()),
        ..first.clone()
    };
    assert_eq!(page(&second), [made[2], made[1]]);
    let booked_since = WorkflowFilter {
        state: Some("booked".into()),
        since: Some(at(9, 1)),
        ..WorkflowFilter::default()
    };
    assert_eq!(page(&booked_since), [made[4], made[2]]);
    let other_service = WorkflowFilter {
        service: Some("consultation".into()),
        ..WorkflowFilter::default()
    };
    assert!(page(&other_service).is_empty());
}

#[test]
fn prune_drops_expired_keys_and_old_stats_only() {
    let f = Fixture::new();
    let id = f.workflow();
    let call = |day: u32| CallStat {
        at: at(9, 0) + chrono::Duration::days(i64::from(day)),
        route: "POST /v2/bookings".into(),
        status: Some(201),
        class: "ok".into(),
        latency_ms: 120,
    };
    f.store
        .commit_blocking(vec![
            put_key("old", "fp", id, at(9, 0)),
            WriteOp::RecordCalls(vec![call(0), call(9)]),
        ])
        .unwrap();
    let now = at(9, 0) + chrono::Duration::days(10);
    f.store
        .commit_blocking(vec![put_key("fresh", "fp", id, now)])
        .unwrap();
    f.store
        .commit_blocking(vec![WriteOp::PruneExpired { now }])
        .unwrap();
    assert!(f.store.idempotency_key("old").unwrap().is_none());
    assert!(f.store.idempotency_key("fresh").unwrap().is_some());
    assert_eq!(f.store.call_stats(at(0, 0), 100).unwrap(), [call(9)]);
}

#[test]
fn raw_commit_rate_measures_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let rate = raw_commit_rate(dir.path(), 3, 2.0).unwrap();
    assert!(rate.is_finite() && rate > 0.0, "{rate}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "scratch files removed"
    );
}

/// The baseline's commits write over a log file already grown to the size
/// the writer checkpoints at, as a running store's do: after the layout
/// the file holds that many pages, and the next commit starts the log
/// again from its first frame instead of growing it.
#[test]
fn the_baseline_commits_over_a_laid_out_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scratch.db");
    let conn = crate::store::connection::open_writer(&path, &Default::default()).unwrap();
    let checkpoint_at: u64 = conn
        .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
        .unwrap();
    assert_eq!(checkpoint_at, crate::store::checkpoint_pages());
    conn.execute_batch("CREATE TABLE bench (n INTEGER NOT NULL) STRICT")
        .unwrap();
    crate::store::bench::lay_out_log(&conn).unwrap();
    let page_size: u64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap();
    let log = dir.path().join("scratch.db-wal");
    let laid_out = std::fs::metadata(&log).unwrap().len();
    assert!(laid_out >= checkpoint_at * page_size, "{laid_out} bytes");
    conn.execute("INSERT INTO bench (n) VALUES (1)", [])
        .unwrap();
    let (_, frames, _): (i64, i64, i64) = conn
        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert!(
        frames <= 2,
        "the commit began the log again: {frames} frames"
    );
    assert_eq!(std::fs::metadata(&log).unwrap().len(), laid_out);
}

/// Baseline commits write the pages they are asked for, on average when
/// that is a fraction, so the floor for a step of a size is what it says.
#[test]
fn a_baseline_commit_writes_the_pages_it_is_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scratch.db");
    let mut conn = crate::store::connection::open_writer(&path, &Default::default()).unwrap();
    let rate = crate::store::bench::measure(&mut conn, 4, 2.75).unwrap();
    assert!(rate.is_finite() && rate > 0.0, "{rate}");
    let frames: i64 = conn
        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
        .unwrap();
    assert_eq!(frames, 11, "4 commits of 2.75 pages: 2, 3, 3, 3");
}

/// An orphan is recorded before its cancel and updated after it: one row,
/// first-found time kept, and no workflow row needed (the log may not know it).
#[test]
fn an_orphan_record_is_updated_in_place() {
    let f = Fixture::new();
    let found = OrphanRow {
        booking: OrphanBooking {
            calcom_uid: "uid-1".into(),
            workflow_ref: Uuid::new_v4().to_string(),
            segment_ref: "0".into(),
            event_type_id: 101,
            start: at(10, 0),
            end: at(10, 40),
            why: "workflow unknown".into(),
        },
        state: OrphanState::Cancelling,
        detail: None,
        found_at: at(9, 1),
        updated_at: at(9, 1),
    };
    let done = OrphanRow {
        state: OrphanState::Failed,
        detail: Some("HTTP 500".into()),
        found_at: at(9, 2),
        updated_at: at(9, 2),
        ..found.clone()
    };
    for row in [&found, &done] {
        f.store
            .commit_blocking(vec![WriteOp::RecordOrphan(row.clone())])
            .unwrap();
    }
    let rows = f.store.orphans(10).unwrap();
    assert_eq!(
        rows,
        vec![OrphanRow {
            found_at: at(9, 1),
            ..done
        }]
    );
}

#[test]
fn the_changes_of_a_booking_are_found_by_index_not_by_scanning_every_workflow() {
    let f = Fixture::new();
    let conn = rusqlite::Connection::open(f.path()).unwrap();
    let sql = format!(
        "EXPLAIN QUERY PLAN {}",
        super::super::bookings::changes_of_sql()
    );
    let plan: Vec<String> = conn
        .prepare(&sql)
        .unwrap()
        .query_map([Uuid::nil().to_string()], |r| r.get(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        plan.iter()
            .any(|p| p.contains("USING INDEX workflows_by_original")),
        "{plan:?}"
    );
}
