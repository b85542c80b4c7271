//! Write rules per table: slot-claim overlap, idempotency keys, and the
//! booking mirror's ownership of a Cal.com uid.

use super::{Fixture, at, create, put_key};
use crate::store::{Claim, MirrorEntry, StoreError, WriteOp};
use uuid::Uuid;

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
        replacing: None,
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

/// The batch that creates a workflow skips releasing claims it cannot have
/// yet; a segment claimed twice in it still ends with one live claim, the
/// later one, and later batches replace as before.
#[test]
fn a_new_workflows_claims_replace_within_and_after_its_first_batch() {
    let f = Fixture::new();
    let id = Uuid::new_v4();
    let segment = |segment, host, from: (u32, u32), to: (u32, u32)| Claim {
        segment,
        host,
        start: at(from.0, from.1),
        end: at(to.0, to.1),
    };
    let live = |id| -> Vec<(u16, u64)> {
        f.store
            .claims(id)
            .unwrap()
            .iter()
            .filter(|c| c.live)
            .map(|c| (c.segment, c.host))
            .collect()
    };
    f.store
        .commit_blocking(vec![
            create(id, "booking"),
            WriteOp::ClaimSlots {
                workflow: id,
                claims: vec![
                    segment(0, ANNA, (10, 0), (10, 30)),
                    segment(1, ANNA, (11, 0), (11, 30)),
                    segment(0, BEN, (10, 0), (10, 30)),
                ],
                replacing: None,
            },
        ])
        .unwrap();
    assert_eq!(live(id), [(1, ANNA), (0, BEN)]);
    claim(&f, id, 1, BEN, (12, 0), (12, 30)).unwrap();
    assert_eq!(live(id), [(0, BEN), (1, BEN)]);
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
fn a_long_claim_still_conflicts_and_none_may_exceed_a_day() {
    let f = Fixture::new();
    let (first, second) = (f.workflow(), f.workflow());
    // From 01:00 to 23:00: the bounded overlap search must still see it.
    claim(&f, first, 0, ANNA, (1, 0), (23, 0)).unwrap();
    assert!(matches!(
        claim(&f, second, 0, ANNA, (22, 0), (22, 30)),
        Err(StoreError::SlotClaimed { holder, .. }) if holder == first
    ));
    let too_long = f.store.commit_blocking(vec![WriteOp::ClaimSlots {
        replacing: None,
        workflow: second,
        claims: vec![Claim {
            segment: 1,
            host: BEN,
            start: at(1, 0),
            end: at(1, 0) + chrono::Duration::hours(25),
        }],
    }]);
    assert!(
        too_long
            .unwrap_err()
            .to_string()
            .contains("longer than 24 h"),
        "a claim longer than a day is refused"
    );
}
