//! Store tests. Every test goes through the helpers here (a fresh database
//! in a temp dir, fixed 2030 instants, one-op builders), so a change to the
//! store's internals touches this file, not every test.

mod admin_requests;
mod open;
mod queries;
mod rules;
mod writer;

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use uuid::Uuid;

use super::{NewEvent, Store, StoreConfig, WriteOp};

/// A store in its own temp dir; the dir lives as long as the fixture.
struct Fixture {
    dir: tempfile::TempDir,
    store: Store,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with(StoreConfig::default())
    }

    fn with(config: StoreConfig) -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path().join("calsaga.db"), config).expect("open store");
        Fixture { dir, store }
    }

    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("calsaga.db")
    }

    /// Drop the store and open the same file again.
    fn reopen(self) -> Fixture {
        let Fixture { dir, store } = self;
        drop(store);
        let store = Store::open(dir.path().join("calsaga.db"), StoreConfig::default())
            .expect("reopen store");
        Fixture { dir, store }
    }

    /// A committed workflow in state "running"; returns its id.
    fn workflow(&self) -> Uuid {
        Fixture::workflow_in(&self.store)
    }

    /// `workflow` for a store opened outside a fixture.
    fn workflow_in(store: &Store) -> Uuid {
        let id = Uuid::new_v4();
        store
            .commit_blocking(vec![create(id, "running")])
            .expect("create workflow");
        id
    }

    /// A second connection that holds the write lock until dropped or
    /// rolled back: stalls the writer exactly like a slow disk would.
    fn hold_write_lock(&self) -> rusqlite::Connection {
        let conn = rusqlite::Connection::open(self.path()).expect("second connection");
        conn.execute_batch("BEGIN IMMEDIATE")
            .expect("take the write lock");
        conn
    }
}

/// 2030-03-04 (a Monday) at hh:mm UTC.
fn at(hh: u32, mm: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 3, 4, hh, mm, 0)
        .single()
        .expect("valid test time")
}

fn create(id: Uuid, state: &str) -> WriteOp {
    WriteOp::CreateWorkflow {
        id,
        kind: "booking".into(),
        service: "colour-and-cut".into(),
        state: state.into(),
        at: at(9, 0),
        projection: r#"{"segments":[]}"#.into(),
    }
}

/// Append `n` events starting at `expected_seq`.
fn append(workflow: Uuid, expected_seq: u64, n: u64) -> WriteOp {
    WriteOp::AppendEvents {
        workflow,
        expected_seq,
        events: (0..n)
            .map(|i| NewEvent {
                at: at(9, 1),
                kind: "Requested".into(),
                payload: format!(r#"{{"n":{}}}"#, expected_seq + i),
            })
            .collect(),
        projection: None,
    }
}

/// Append one event at `expected_seq` that leaves the workflow in `state`
/// with projection `json`.
fn step(workflow: Uuid, expected_seq: u64, state: &str, json: &str) -> WriteOp {
    let WriteOp::AppendEvents { events, .. } = append(workflow, expected_seq, 1) else {
        unreachable!("append builds AppendEvents")
    };
    WriteOp::AppendEvents {
        workflow,
        expected_seq,
        events,
        projection: Some(super::Projection {
            state: state.into(),
            json: json.into(),
            at: at(9, 5),
        }),
    }
}

/// Take idempotency key `key` for a day from `now`.
fn put_key(key: &str, fingerprint: &str, workflow: Uuid, now: DateTime<Utc>) -> WriteOp {
    WriteOp::PutIdempotencyKey {
        key: key.into(),
        fingerprint: fingerprint.into(),
        workflow,
        at: now,
        ttl: Duration::from_secs(24 * 3600),
    }
}
