//! The per-table rules: slot claims, idempotency keys, inbox, timers,
//! recovery and listing queries, mirror, call stats and pruning, and the
//! disk baseline.

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Fixture, at, create};
use crate::store::{
    CallStat, Claim, InboxState, MirrorEntry, StoreError, WorkflowFilter, WriteOp, body_sha256,
    raw_commit_rate,
};

const ANNA: u64 = 1;
const BEN: u64 = 2;

fn claim(
    f: &Fixture,
    workflow: Uuid,
    segment: u16,
    host: u64,
    from: (u32, u32),
    to: (u32, u32),
) -> Result<(), StoreError> {
    f.store.commit_blocking(vec![WriteOp::ClaimSlots {
        workflow,
        claims: vec![Claim {
            segment,
            host,
            start: at(from.0, from.1),
            end: at(to.0, to.1),
        }],
    }])
}

#[test]
fn claims_conflict_only_on_live_overlap_with_another_workflow_on_the_same_host() {
    let f = Fixture::new();
    let (first, second) = (f.workflow(), f.workflow());
    claim(&f, first, 0, ANNA, (10, 0), (10, 30)).unwrap();

    let overlap = claim(&f, second, 0, ANNA, (10, 15), (10, 45));
    assert_eq!(
        overlap,
        Err(StoreError::SlotClaimed {
            host: ANNA,
            start: at(10, 0),
            end: at(10, 30),
            holder: first
        })
    );
    let message = overlap.unwrap_err().to_string();
    assert!(
        message.contains(&first.to_string()) && message.contains("choose another"),
        "{message}"
    );

    assert_eq!(
        claim(&f, second, 0, ANNA, (10, 30), (11, 0)),
        Ok(()),
        "adjacent is free"
    );
    assert_eq!(
        claim(&f, second, 1, BEN, (10, 0), (10, 30)),
        Ok(()),
        "other host is free"
    );
    assert_eq!(
        claim(&f, first, 1, ANNA, (10, 5), (10, 25)),
        Ok(()),
        "own claims never conflict"
    );

    f.store
        .commit_blocking(vec![WriteOp::ReleaseClaims {
            workflow: first,
            segment: None,
        }])
        .unwrap();
    let third = f.workflow();
    assert_eq!(
        claim(&f, third, 0, ANNA, (10, 0), (10, 30)),
        Ok(()),
        "released claims are free"
    );

    let live = f
        .store
        .live_claims_overlapping(ANNA, at(9, 0), at(12, 0))
        .unwrap();
    let holders: Vec<Uuid> = live.iter().map(|c| c.workflow).collect();
    assert_eq!(holders, [third, second]);
    assert!(f.store.claims(first).unwrap().iter().all(|c| !c.live));
}

#[test]
fn claiming_a_segment_again_replaces_its_claim() {
    let f = Fixture::new();
    let id = f.workflow();
    claim(&f, id, 0, ANNA, (10, 0), (10, 30)).unwrap();
    claim(&f, id, 0, BEN, (11, 0), (11, 30)).unwrap();
    let live: Vec<u64> = f
        .store
        .claims(id)
        .unwrap()
        .iter()
        .filter(|c| c.live)
        .map(|c| c.host)
        .collect();
    assert_eq!(live, [BEN]);
    let other = f.workflow();
    assert_eq!(claim(&f, other, 0, ANNA, (10, 0), (10, 30)), Ok(()));
}

#[test]
fn an_empty_claim_interval_is_refused() {
    let f = Fixture::new();
    let id = f.workflow();
    let answer = claim(&f, id, 0, ANNA, (10, 0), (10, 0));
    assert!(
        matches!(answer, Err(StoreError::Invalid { .. })),
        "{answer:?}"
    );
}

fn put_key(key: &str, fingerprint: &str, workflow: Uuid, now: DateTime<Utc>) -> WriteOp {
    WriteOp::PutIdempotencyKey {
        key: key.into(),
        fingerprint: fingerprint.into(),
        workflow,
        at: now,
        ttl: Duration::from_secs(24 * 3600),
    }
}

#[test]
fn an_unexpired_idempotency_key_is_refused_with_its_holder() {
    let f = Fixture::new();
    let first = Uuid::new_v4();
    f.store
        .commit_blocking(vec![
            create(first, "running"),
            put_key("k1", "fp-a", first, at(9, 0)),
        ])
        .unwrap();
    let second = Uuid::new_v4();
    let retry = f.store.commit_blocking(vec![
        create(second, "running"),
        put_key("k1", "fp-b", second, at(10, 0)),
    ]);
    assert_eq!(
        retry,
        Err(StoreError::IdempotencyKeyExists {
            key: "k1".into(),
            workflow: first,
            fingerprint: "fp-a".into()
        })
    );
    assert!(
        f.store.workflow(second).unwrap().is_none(),
        "the retry's workflow was rolled back"
    );

    f.store
        .commit_blocking(vec![WriteOp::SetIdempotencyResponse {
            key: "k1".into(),
            response: r#"{"status":201}"#.into(),
        }])
        .unwrap();
    let row = f.store.idempotency_key("k1").unwrap().expect("stored");
    assert_eq!(
        (row.workflow, row.response.as_deref()),
        (first, Some(r#"{"status":201}"#))
    );
    assert!(!row.is_expired(at(10, 0)));

    let next_day = at(9, 0) + chrono::Duration::hours(24);
    f.store
        .commit_blocking(vec![
            create(second, "running"),
            put_key("k1", "fp-b", second, next_day),
        ])
        .expect("an expired key is taken over");
    let row = f.store.idempotency_key("k1").unwrap().unwrap();
    assert_eq!((row.workflow, row.response), (second, None));
    assert_eq!(
        f.store
            .commit_blocking(vec![WriteOp::SetIdempotencyResponse {
                key: "nope".into(),
                response: "{}".into()
            }]),
        Err(StoreError::IdempotencyKeyMissing { key: "nope".into() })
    );
}

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

    f.store
        .commit_blocking(vec![WriteOp::InboxUpdate {
            id: due[0].id,
            state: InboxState::Pending,
            attempts: 1,
            next_attempt_at: at(9, 5),
            last_error: Some("workflow busy".into()),
        }])
        .unwrap();
    assert!(
        f.store.inbox_due(at(9, 4), 10).unwrap().is_empty(),
        "not due before its retry time"
    );
    let retry = f.store.inbox_due(at(9, 5), 10).unwrap();
    assert_eq!(
        (retry[0].attempts, retry[0].last_error.as_deref()),
        (1, Some("workflow busy"))
    );

    f.store
        .commit_blocking(vec![WriteOp::InboxUpdate {
            id: due[0].id,
            state: InboxState::Processed,
            attempts: 2,
            next_attempt_at: at(9, 6),
            last_error: None,
        }])
        .unwrap();
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

fn booking(workflow: Uuid, uid: &str, status: &str) -> MirrorEntry {
    MirrorEntry {
        workflow,
        segment: 0,
        calcom_uid: uid.into(),
        event_type_id: 101,
        host: ANNA,
        start: at(10, 0),
        end: at(10, 30),
        status: status.into(),
    }
}

#[test]
fn the_mirror_upserts_by_uid_and_keeps_a_uid_with_its_workflow() {
    let f = Fixture::new();
    let (id, other) = (f.workflow(), f.workflow());
    f.store
        .commit_blocking(vec![WriteOp::UpsertMirror(booking(
            id, "uid-1", "accepted",
        ))])
        .unwrap();
    f.store
        .commit_blocking(vec![WriteOp::UpsertMirror(booking(
            id,
            "uid-1",
            "cancelled",
        ))])
        .unwrap();
    assert_eq!(
        f.store.mirror(id).unwrap(),
        [booking(id, "uid-1", "cancelled")]
    );
    assert_eq!(
        f.store.mirror_by_uid("uid-1").unwrap(),
        Some(booking(id, "uid-1", "cancelled"))
    );
    assert_eq!(
        f.store.commit_blocking(vec![WriteOp::UpsertMirror(booking(
            other, "uid-1", "accepted"
        ))]),
        Err(StoreError::MirrorOwnedByOther {
            calcom_uid: "uid-1".into(),
            workflow: other,
            holder: id
        })
    );
    assert!(f.store.mirror_by_uid("uid-2").unwrap().is_none());
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
    let rate = raw_commit_rate(dir.path(), 3).unwrap();
    assert!(rate.is_finite() && rate > 0.0, "{rate}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "scratch files removed"
    );
}
