//! The writer: atomic batches, the sequence check, group commit, isolation
//! of a bad batch inside a group, and poisoning after a database failure.

use std::time::{Duration, Instant};

use uuid::Uuid;

use super::{Fixture, append, create, step};
use crate::store::writer::Answer;
use crate::store::{StoreConfig, StoreError, WriteBatch, WriteOp};

const WAIT: Duration = Duration::from_secs(30);

/// Queue `batches` while the write lock is held elsewhere, then let go and
/// collect the answers: the writer sees (almost) all of them at once.
fn stalled_group(f: &Fixture, batches: Vec<WriteBatch>) -> Vec<Answer> {
    let blocker = f.hold_write_lock();
    let receivers: Vec<_> = batches
        .into_iter()
        .map(|batch| {
            f.store
                .writer()
                .unwrap()
                .enqueue_blocking(batch, Instant::now() + WAIT)
                .expect("queued")
        })
        .collect();
    blocker.execute_batch("ROLLBACK").unwrap();
    receivers
        .into_iter()
        .map(|rx| rx.recv_timeout(WAIT).expect("answered"))
        .collect()
}

#[test]
fn wrong_expected_seq_is_refused_and_nothing_of_the_batch_is_written() {
    let f = Fixture::new();
    let id = f.workflow();
    let batch = vec![step(id, 0, "booked", "{}"), append(id, 5, 1)];
    assert_eq!(
        f.store.commit_blocking(batch),
        Err(StoreError::SequenceConflict {
            workflow: id,
            expected: 5,
            actual: 1
        })
    );
    assert_eq!(f.store.workflow(id).unwrap().unwrap().state, "running");
    assert!(f.store.events(id).unwrap().is_empty());
    f.store.commit_blocking(vec![append(id, 0, 2)]).unwrap();
    assert_eq!(
        f.store.commit_blocking(vec![append(id, 1, 1)]),
        Err(StoreError::SequenceConflict {
            workflow: id,
            expected: 1,
            actual: 2
        })
    );
}

#[test]
fn appending_to_an_unknown_workflow_is_refused() {
    let f = Fixture::new();
    let ghost = Uuid::new_v4();
    assert_eq!(
        f.store.commit_blocking(vec![append(ghost, 0, 1)]),
        Err(StoreError::UnknownWorkflow { workflow: ghost })
    );
}

/// Every op that names a workflow refuses one that does not exist, also
/// after an earlier op of its batch has shown another workflow exists; and
/// nothing of the batch is written.
#[test]
fn every_op_naming_an_unknown_workflow_is_refused_with_its_whole_batch() {
    let f = Fixture::new();
    let ghost = Uuid::new_v4();
    let at = super::at(10, 0);
    let ops = [
        step(ghost, 0, "booking", "{}"),
        WriteOp::ClaimSlots {
            workflow: ghost,
            claims: vec![crate::store::Claim {
                segment: 0,
                host: 1,
                start: at,
                end: super::at(10, 30),
            }],
            replacing: None,
        },
        WriteOp::ReleaseClaims {
            workflow: ghost,
            segment: None,
        },
        WriteOp::SetTimer {
            workflow: ghost,
            kind: "wake".into(),
            due_at: at,
        },
        WriteOp::ClearTimers {
            workflow: ghost,
            kind: None,
        },
        super::put_key("key-1", "fingerprint", ghost, at),
        WriteOp::UpsertMirror(crate::store::MirrorEntry {
            workflow: ghost,
            segment: 0,
            calcom_uid: "uid-1".into(),
            event_type_id: 101,
            host: 1,
            start: at,
            end: super::at(10, 30),
            status: "accepted".into(),
        }),
    ];
    for op in ops {
        let real = Uuid::new_v4();
        let batch = vec![create(real, "booking"), append(real, 0, 1), op.clone()];
        assert_eq!(
            f.store.commit_blocking(batch),
            Err(StoreError::UnknownWorkflow { workflow: ghost }),
            "{op:?}"
        );
        assert_eq!(f.store.workflow(real).unwrap(), None, "{op:?}");
    }
}

#[test]
fn invalid_json_is_refused_without_poisoning() {
    let f = Fixture::new();
    let id = f.workflow();
    let batch = vec![step(id, 0, "x", "{not json")];
    let answer = f.store.commit_blocking(batch);
    assert!(
        matches!(answer, Err(StoreError::Invalid { .. })),
        "{answer:?}"
    );
    assert!(!f.store.is_poisoned());
}

#[test]
fn events_reject_update_and_delete() {
    let f = Fixture::new();
    let id = f.workflow();
    f.store.commit_blocking(vec![append(id, 0, 1)]).unwrap();
    let conn = rusqlite::Connection::open(f.path()).unwrap();
    for sql in ["UPDATE events SET kind = 'Forged'", "DELETE FROM events"] {
        let err = conn.execute(sql, []).expect_err(sql);
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(f.store.events(id).unwrap()[0].kind, "Requested");
}

#[test]
fn sixty_four_threads_share_few_commits_and_every_batch_is_durable() {
    const THREADS: usize = 64;
    let f = Fixture::new();
    let ids: Vec<Uuid> = (0..THREADS).map(|_| Uuid::new_v4()).collect();
    let before = f.store.commit_stats();
    let blocker = f.hold_write_lock();
    let (queued_tx, queued_rx) = std::sync::mpsc::channel();
    let threads: Vec<_> = ids
        .iter()
        .map(|&id| {
            let store = f.store.clone();
            let queued = queued_tx.clone();
            std::thread::spawn(move || {
                let batch = vec![create(id, "running"), append(id, 0, 1)];
                let answer = store
                    .writer()?
                    .enqueue_blocking(batch, Instant::now() + WAIT)?;
                queued.send(()).expect("test is listening");
                answer.recv_timeout(WAIT).expect("answered")
            })
        })
        .collect();
    for _ in 0..THREADS {
        queued_rx
            .recv_timeout(WAIT)
            .expect("every thread queued its batch");
    }
    blocker.execute_batch("ROLLBACK").unwrap();
    for thread in threads {
        thread
            .join()
            .expect("thread finished")
            .expect("batch committed");
    }
    let after = f.store.commit_stats();
    assert_eq!(after.batches - before.batches, THREADS as u64);
    // The writer took at most a few batches before it met the held lock; all
    // the others went into the next transaction.
    assert!(
        after.commits - before.commits <= 2,
        "{before:?} -> {after:?}"
    );
    assert!(after.largest_group >= (THREADS / 2) as u64, "{after:?}");
    let f = f.reopen();
    for id in ids {
        assert_eq!(
            f.store.events(id).unwrap().len(),
            1,
            "workflow {id} durable"
        );
    }
}

#[test]
fn concurrent_committers_without_a_stall_are_all_answered() {
    let f = Fixture::new();
    let before = f.store.commit_stats();
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                let id = f.workflow();
                for seq in 0..10 {
                    f.store
                        .commit_blocking(vec![append(id, seq, 1)])
                        .expect("append");
                }
                assert_eq!(f.store.workflow(id).unwrap().unwrap().next_seq, 10);
            });
        }
    });
    let after = f.store.commit_stats();
    assert_eq!(after.batches - before.batches, 88);
}

#[test]
fn one_bad_batch_in_a_group_does_not_affect_the_others() {
    let f = Fixture::new();
    let (a, b, c) = (f.workflow(), f.workflow(), f.workflow());
    let before = f.store.commit_stats();
    let answers = stalled_group(
        &f,
        vec![
            vec![append(a, 0, 1)],
            vec![append(b, 0, 1)],
            // Refused at its second op: its first must be undone too, or
            // the next batch's append at 0 would conflict.
            vec![append(c, 0, 1), append(b, 7, 1)],
            vec![append(c, 0, 2)],
        ],
    );
    assert_eq!(answers[0], Ok(()));
    assert_eq!(answers[1], Ok(()));
    assert!(matches!(
        answers[2],
        Err(StoreError::SequenceConflict { expected: 7, .. })
    ));
    assert_eq!(answers[3], Ok(()));
    assert!(f.store.commit_stats().commits - before.commits <= 2);
    let counts: Vec<usize> = [a, b, c]
        .iter()
        .map(|&w| f.store.events(w).unwrap().len())
        .collect();
    assert_eq!(counts, [1, 1, 2]);
    assert!(!f.store.is_poisoned());
}

#[test]
fn a_failed_transaction_poisons_the_store() {
    let f = Fixture::with(StoreConfig {
        busy_timeout_ms: 1,
        ..StoreConfig::default()
    });
    let blocker = f.hold_write_lock();
    let id = Uuid::new_v4();
    let err = f
        .store
        .commit_blocking(vec![create(id, "running")])
        .expect_err("write lock held elsewhere");
    assert!(err.is_fatal(), "{err:?}");
    assert!(f.store.is_poisoned());
    assert!(
        err.to_string().contains("calsaga stopped taking work"),
        "{err}"
    );
    blocker.execute_batch("ROLLBACK").unwrap();
    let later = f
        .store
        .commit_blocking(vec![create(Uuid::new_v4(), "running")]);
    assert_eq!(later, Err(err));
    let f = f.reopen();
    assert!(f.store.workflow(id).unwrap().is_none());
    f.workflow();
}

#[test]
fn a_full_disk_fails_the_whole_group_and_poisons() {
    // 64 pages of 4 KiB hold the schema but not a 1 MiB projection.
    let f = Fixture::with(StoreConfig {
        writer_test_sql: "PRAGMA max_page_count = 64",
        ..StoreConfig::default()
    });
    let small = f.workflow();
    let answers = stalled_group(
        &f,
        vec![
            vec![append(small, 0, 1)],
            vec![step(
                small,
                1,
                "huge",
                &format!("\"{}\"", "x".repeat(1 << 20)),
            )],
            vec![append(small, 1, 1)],
        ],
    );
    let full = answers[1].clone().expect_err("disk full");
    assert!(full.to_string().contains("full"), "{full}");
    assert_eq!(
        answers[2],
        Err(full.clone()),
        "a batch after the failure in its group gets the error"
    );
    assert!(f.store.is_poisoned());
    assert_eq!(
        f.store.commit_blocking(vec![append(small, 0, 1)]),
        Err(full)
    );
}

#[tokio::test]
async fn async_commit_answers_after_commit() {
    let f = Fixture::new();
    let id = Uuid::new_v4();
    f.store
        .commit(vec![create(id, "running"), append(id, 0, 2)])
        .await
        .unwrap();
    assert_eq!(f.store.workflow(id).unwrap().unwrap().next_seq, 2);
    assert_eq!(
        f.store.commit(vec![append(id, 0, 1)]).await,
        Err(StoreError::SequenceConflict {
            workflow: id,
            expected: 0,
            actual: 2
        })
    );
}

/// A group's async answers are sent from a task of the senders' runtime;
/// should that runtime be gone before the task runs, every answer still
/// arrives, each its own.
#[test]
fn async_answers_arrive_even_when_their_runtime_is_gone() {
    use crate::store::writer::{Job, Reply, answer_group};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let handle = runtime.handle().clone();
    drop(runtime);
    let (senders, receivers): (Vec<_>, Vec<_>) =
        (0..3).map(|_| tokio::sync::oneshot::channel()).unzip();
    let group = senders
        .into_iter()
        .map(|tx| Job {
            batch: Vec::new(),
            reply: Reply::Async(tx, Some(handle.clone())),
        })
        .collect();
    let answers = vec![Ok(()), Err(StoreError::ReadOnly), Ok(())];
    answer_group(group, answers.clone());
    let got: Vec<Answer> = receivers
        .into_iter()
        .map(|mut rx| rx.try_recv().expect("answered"))
        .collect();
    assert_eq!(got, answers);
}

/// Senders of another runtime in the same group are answered at once: they
/// never wait for the task of a runtime that is not running tasks.
#[test]
fn async_answers_of_another_runtime_do_not_wait_for_the_first_ones() {
    use crate::store::writer::{Job, Reply, answer_group};
    let runtime = |_| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    };
    // Neither runtime is ever driven: a task spawned on one never runs
    // while the test looks.
    let (idle, other) = (runtime(0), runtime(1));
    let (senders, mut receivers): (Vec<_>, Vec<_>) =
        (0..3).map(|_| tokio::sync::oneshot::channel()).unzip();
    let handles = [idle.handle(), idle.handle(), other.handle()];
    let group = senders
        .into_iter()
        .zip(handles)
        .map(|(tx, handle)| Job {
            batch: Vec::new(),
            reply: Reply::Async(tx, Some(handle.clone())),
        })
        .collect();
    answer_group(group, vec![Ok(()), Ok(()), Err(StoreError::ReadOnly)]);
    assert_eq!(
        receivers[2].try_recv().expect("answered at once"),
        Err(StoreError::ReadOnly)
    );
    drop(idle);
    for rx in &mut receivers[..2] {
        assert_eq!(
            rx.try_recv().expect("answered when its task is dropped"),
            Ok(())
        );
    }
}
