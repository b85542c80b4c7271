//! The admin request queue: the CLI's lock-free insert beside a running
//! store, and the engine's settle, which happens once.

use uuid::Uuid;

use super::{Fixture, at};
use crate::store::{AdminRequestState, NewAdminRequest, StoreError, WriteOp, queue_admin_request};

fn compensate(workflow: Uuid) -> NewAdminRequest {
    NewAdminRequest {
        workflow,
        action: "compensate".into(),
        reason: Some("client called".into()),
        at: at(10, 0),
    }
}

fn settle(id: i64, state: AdminRequestState) -> WriteOp {
    WriteOp::SettleAdminRequest {
        id,
        state,
        outcome: "done".into(),
        at: at(10, 1),
    }
}

#[test]
fn the_cli_queues_beside_a_store_that_holds_the_lock_and_the_engine_settles_once() {
    let f = Fixture::new();
    let workflow = f.workflow();
    let first = queue_admin_request(&f.path(), &compensate(workflow), 1_000).unwrap();
    let resume = NewAdminRequest {
        action: "resume".into(),
        reason: None,
        ..compensate(workflow)
    };
    let second = queue_admin_request(&f.path(), &resume, 1_000).unwrap();
    let pending = f.store.pending_admin_requests(10).unwrap();
    assert_eq!(
        pending
            .iter()
            .map(|r| (r.id, r.action.as_str()))
            .collect::<Vec<_>>(),
        [(first, "compensate"), (second, "resume")]
    );
    assert_eq!(pending[0].reason.as_deref(), Some("client called"));

    f.store
        .commit_blocking(vec![settle(first, AdminRequestState::Applied)])
        .unwrap();
    let again = f
        .store
        .commit_blocking(vec![settle(first, AdminRequestState::Refused)]);
    assert_eq!(again, Err(StoreError::AdminRequestNotPending { id: first }));
    let row = f.store.admin_request(first).unwrap().unwrap();
    assert_eq!(
        (row.state, row.outcome.as_deref(), row.settled_at),
        (AdminRequestState::Applied, Some("done"), Some(at(10, 1)))
    );
    assert_eq!(f.store.pending_admin_requests(10).unwrap().len(), 1);
    assert_eq!(f.store.admin_requests_of(workflow).unwrap().len(), 2);
}

#[test]
fn bad_requests_are_refused_and_nothing_is_queued() {
    let f = Fixture::new();
    let unknown = Uuid::new_v4();
    assert_eq!(
        queue_admin_request(&f.path(), &compensate(unknown), 1_000),
        Err(StoreError::UnknownWorkflow { workflow: unknown })
    );
    let workflow = f.workflow();
    let odd = NewAdminRequest {
        action: "delete".into(),
        ..compensate(workflow)
    };
    assert!(matches!(
        queue_admin_request(&f.path(), &odd, 1_000),
        Err(StoreError::Invalid { .. })
    ));
    let missing = f.dir.path().join("missing.db");
    assert!(matches!(
        queue_admin_request(&missing, &compensate(workflow), 1_000),
        Err(StoreError::Open { .. })
    ));
    assert!(!missing.exists(), "the queue never creates a database");
    assert!(f.store.pending_admin_requests(10).unwrap().is_empty());
}

#[test]
fn a_writer_holding_the_file_longer_than_the_busy_timeout_gets_a_clear_refusal() {
    let f = Fixture::new();
    let workflow = f.workflow();
    let _held = f.hold_write_lock();
    let refused = queue_admin_request(&f.path(), &compensate(workflow), 50);
    assert!(
        matches!(&refused, Err(StoreError::AdminQueue { detail, .. }) if detail.contains("locked")),
        "{refused:?}"
    );
}
