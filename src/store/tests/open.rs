//! Opening: migrations, reopen, schema versions, the one-process lock,
//! read-only opens, PRAGMAs, integrity check and backup.

use super::{Fixture, append, create};
use crate::store::{Holder, SCHEMA_VERSION, Store, StoreConfig, StoreError};

fn raw(path: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).expect("raw connection")
}

/// A raw connection to a new file at schema `version`, as an older build
/// left it.
fn at_schema(path: &std::path::Path, version: usize) -> rusqlite::Connection {
    let conn = raw(path);
    for sql in &crate::store::schema::MIGRATIONS[..version] {
        conn.execute_batch(sql).expect("older migration");
    }
    conn.pragma_update(None, "user_version", version).unwrap();
    conn
}

#[test]
fn migrates_an_empty_file_to_the_current_schema() {
    let f = Fixture::new();
    let conn = raw(&f.path());
    let version: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let expected = [
        "admin_requests",
        "api_token_changes",
        "api_tokens",
        "booking_flags",
        "booking_mirror",
        "call_stats",
        "events",
        "idempotency_keys",
        "orphan_bookings",
        "slot_claims",
        "timers",
        "webhook_inbox",
        "workflows",
    ];
    assert_eq!(tables, expected);
}

/// A database of schema 5 upgrades in place: the claims it holds still
/// refuse an overlapping claim of another workflow once the live-claims
/// index is rebuilt with `end_ms`.
#[test]
fn live_claims_of_an_older_schema_still_conflict_after_the_upgrade() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("calsaga.db");
    let holder = uuid::Uuid::new_v4();
    let (ten, half_past) = (super::at(10, 0), super::at(10, 30));
    {
        let conn = at_schema(&path, 5);
        conn.execute(
            "INSERT INTO workflows (id, kind, service, state, created_at_ms, updated_at_ms, projection)
             VALUES (?1, 'book', 'cut', 'booked', 0, 0, '{}')",
            [holder.to_string()],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO slot_claims (workflow_id, segment, host, start_ms, end_ms, live)
             VALUES (?1, 0, 1, ?2, ?3, 1)",
            rusqlite::params![
                holder.to_string(),
                ten.timestamp_millis(),
                half_past.timestamp_millis()
            ],
        )
        .unwrap();
    }
    let store = Store::open(&path, StoreConfig::default()).expect("upgrade to the current schema");
    let other = Fixture::workflow_in(&store);
    let claim = |start, end| crate::store::WriteOp::ClaimSlots {
        workflow: other,
        claims: vec![crate::store::Claim {
            segment: 0,
            host: 1,
            start,
            end,
        }],
        replacing: None,
    };
    assert!(matches!(
        store.commit_blocking(vec![claim(super::at(10, 15), super::at(10, 45))]),
        Err(StoreError::SlotClaimed { holder: h, .. }) if h == holder
    ));
    store
        .commit_blocking(vec![claim(half_past, super::at(11, 0))])
        .expect("a claim that starts as the other ends");
}

/// A database of schema 6 upgrades in place: every workflow's events read
/// back in order under their new keys, appends go on from where each log
/// ended, a new workflow's log comes after all of them, and events stay
/// append-only.
#[test]
fn the_event_log_of_an_older_schema_reads_and_grows_after_the_upgrade() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("calsaga.db");
    let (first, second) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    {
        let conn = at_schema(&path, 6);
        for (id, events) in [(first, 3), (second, 2)] {
            conn.execute(
                "INSERT INTO workflows (id, kind, service, state, created_at_ms, updated_at_ms, projection, next_seq)
                 VALUES (?1, 'book', 'cut', 'booking', 0, 0, '{}', ?2)",
                rusqlite::params![id.to_string(), events],
            )
            .unwrap();
        }
        // Interleaved, as sagas running at once append.
        for (id, seq) in [(first, 0), (second, 0), (first, 1), (second, 1), (first, 2)] {
            conn.execute(
                "INSERT INTO events (workflow_id, seq, at_ms, kind, payload)
                 VALUES (?1, ?2, ?2, 'step', json_object('n', ?2))",
                rusqlite::params![id.to_string(), seq],
            )
            .unwrap();
        }
    }
    let store = Store::open(&path, StoreConfig::default()).expect("upgrade to the current schema");
    let seqs = |id| -> Vec<u64> { store.events(id).unwrap().iter().map(|e| e.seq).collect() };
    assert_eq!(seqs(first), [0, 1, 2]);
    assert_eq!(seqs(second), [0, 1]);
    assert_eq!(store.events(first).unwrap()[2].payload, r#"{"n":2}"#);

    store.commit_blocking(vec![append(second, 2, 1)]).unwrap();
    assert_eq!(seqs(second), [0, 1, 2]);
    let third = Fixture::workflow_in(&store);
    store.commit_blocking(vec![append(third, 0, 1)]).unwrap();
    assert_eq!(seqs(third), [0]);
    assert_eq!(seqs(first), [0, 1, 2], "the others' logs are untouched");

    let conn = raw(&path);
    let keys: Vec<i64> = conn
        .prepare("SELECT log_key FROM workflows ORDER BY log_key")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(keys, [1, 2, 3], "log keys in creation order");
    for sql in ["UPDATE events SET kind = 'Forged'", "DELETE FROM events"] {
        assert!(conn.execute(sql, []).is_err(), "{sql} must be refused");
    }
}

/// A database of schema 7 upgrades in place: each workflow's mirror rows
/// read back by segment under their new keys, and a new row joins its
/// workflow's range.
#[test]
fn the_mirror_of_an_older_schema_reads_and_grows_after_the_upgrade() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("calsaga.db");
    let (first, second) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    {
        let conn = at_schema(&path, 7);
        for (key, id) in [(1, first), (2, second)] {
            conn.execute(
                "INSERT INTO workflows (id, kind, service, state, created_at_ms, updated_at_ms, projection, log_key)
                 VALUES (?1, 'book', 'cut', 'booked', 0, 0, '{}', ?2)",
                rusqlite::params![id.to_string(), key],
            )
            .unwrap();
        }
        // Interleaved, and a workflow's segments out of order.
        for (id, segment, uid) in [(first, 1, "a1"), (second, 0, "b0"), (first, 0, "a0")] {
            conn.execute(
                "INSERT INTO booking_mirror
                   (calcom_uid, workflow_id, segment, event_type_id, host, start_ms, end_ms, status)
                 VALUES (?1, ?2, ?3, 101, 1, ?3, ?3 + 1, 'accepted')",
                rusqlite::params![uid, id.to_string(), segment],
            )
            .unwrap();
        }
    }
    let store = Store::open(&path, StoreConfig::default()).expect("upgrade to the current schema");
    let uids = |id| -> Vec<String> {
        store
            .mirror(id)
            .unwrap()
            .into_iter()
            .map(|m| m.calcom_uid)
            .collect()
    };
    assert_eq!(uids(first), ["a0", "a1"]);
    assert_eq!(uids(second), ["b0"]);
    let mut later = store.mirror(first).unwrap().remove(1);
    later.segment = 2;
    later.calcom_uid = "a2".into();
    store
        .commit_blocking(vec![crate::store::WriteOp::UpsertMirror(later)])
        .unwrap();
    assert_eq!(uids(first), ["a0", "a1", "a2"]);
    assert_eq!(uids(second), ["b0"]);
    assert_eq!(store.mirror_by_uid("b0").unwrap().unwrap().workflow, second);
}

/// A workflow's events and mirror rows are read with one seek into their
/// integer keys, not a scan of the whole log or mirror.
#[test]
fn a_workflows_events_and_mirror_rows_are_read_by_key_range() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("calsaga.db");
    drop(Store::open(&path, StoreConfig::default()).unwrap());
    let conn = raw(&path);
    let plan = |sql: &str| -> Vec<String> {
        conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map([1], |r| r.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    for (table, sql) in [
        ("events", crate::store::log::EVENTS_OF_LOG_KEY.to_string()),
        ("m", crate::store::mirror::of_workflow_sql()),
    ] {
        let plan = plan(&sql);
        let seek = format!("SEARCH {table} USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)");
        assert!(plan.iter().any(|step| step.contains(&seek)), "{plan:?}");
        assert!(
            !plan.iter().any(|step| step.starts_with("SCAN")),
            "{plan:?}"
        );
    }
}

#[test]
fn pragmas_are_in_force_on_pooled_connections() {
    let f = Fixture::new();
    let (mode, sync, fks): (String, i64, i64) = f
        .store
        .read(|c| {
            Ok((
                c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?,
                c.query_row("PRAGMA synchronous", [], |r| r.get(0))?,
                c.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?,
            ))
        })
        .unwrap();
    assert_eq!((mode.as_str(), sync, fks), ("wal", 2, 1));
}

#[test]
fn readers_cannot_write() {
    let f = Fixture::new();
    let id = f.workflow();
    let tried = f
        .store
        .read(|c| c.execute("UPDATE workflows SET state = 'x'", []));
    assert!(
        matches!(tried, Err(StoreError::ReadFailed { .. })),
        "{tried:?}"
    );
    assert_eq!(f.store.workflow(id).unwrap().unwrap().state, "running");
}

#[test]
fn reopen_keeps_data() {
    let f = Fixture::new();
    let id = f.workflow();
    f.store.commit_blocking(vec![append(id, 0, 3)]).unwrap();
    let f = f.reopen();
    let row = f
        .store
        .workflow(id)
        .unwrap()
        .expect("workflow survives reopen");
    assert_eq!(row.next_seq, 3);
    let seqs: Vec<u64> = f.store.events(id).unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [0, 1, 2]);
}

#[test]
fn a_database_from_a_newer_build_is_refused() {
    let f = Fixture::new();
    let path = f.path();
    drop(f.store);
    raw(&path)
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    let expected = StoreError::SchemaTooNew {
        found: SCHEMA_VERSION + 1,
        known: SCHEMA_VERSION,
    };
    let err = Store::open(&path, StoreConfig::default())
        .err()
        .expect("refused");
    assert_eq!(err, expected);
    assert!(
        err.to_string()
            .contains("upgrade calsaga or restore a backup"),
        "{err}"
    );
    assert_eq!(Store::open_read_only(&path).err(), Some(expected));
}

#[test]
fn a_second_open_is_refused_while_the_first_lives() {
    let f = Fixture::new();
    let clone = f.store.clone();
    drop(f.store);
    let err = Store::open(f.dir.path().join("calsaga.db"), StoreConfig::default())
        .err()
        .expect("second open refused while a clone lives");
    let StoreError::Locked { holder, .. } = &err else {
        panic!("expected Locked, got {err:?}");
    };
    assert_eq!(
        holder.as_deref(),
        Some(format!("pid {}", std::process::id()).as_str())
    );
    assert!(err.to_string().contains("stop that process first"), "{err}");
    drop(clone);
    Store::open(f.dir.path().join("calsaga.db"), StoreConfig::default())
        .expect("open after the first is dropped");
}

#[test]
fn a_serve_announces_itself_in_the_lock_file_until_it_stops() {
    let f = Fixture::new();
    let holder = Holder {
        http: "http://127.0.0.1:8080".into(),
        calcom_url: "http://127.0.0.1:41234".into(),
        mock_api_key: Some("cal_test_calsaga_mock".into()),
    };
    assert_eq!(Store::announced(f.path()), None, "nothing said yet");
    f.store.announce(&holder).unwrap();
    f.store.announce(&holder).unwrap();
    assert_eq!(Store::announced(f.path()), Some(holder));
    // The error for a second process still names only the pid.
    let err = Store::open(f.path(), StoreConfig::default()).err();
    assert!(
        matches!(&err, Some(StoreError::Locked { holder: Some(h), .. }) if *h == format!("pid {}", std::process::id())),
        "{err:?}"
    );
    let path = f.path();
    drop(f.store);
    assert_eq!(Store::announced(&path), None, "a clean stop takes it back");
}

/// Set for the child process of `the_lock_dies_with_a_killed_process`.
const LOCK_CHILD_DB: &str = "CALSAGA_TEST_LOCK_CHILD_DB";

/// Child side: hold the store open, say so, then block on stdin until
/// killed (or until the parent goes away and stdin closes).
#[test]
#[ignore = "helper process of the_lock_dies_with_a_killed_process"]
fn lock_holder_process() {
    let Some(db) = std::env::var_os(LOCK_CHILD_DB) else {
        return;
    };
    let _store = Store::open(db, StoreConfig::default()).expect("child opens the store");
    println!("calsaga-lock-held");
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut std::io::stdin(), &mut rest);
}

#[test]
fn the_lock_dies_with_a_killed_process() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("calsaga.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "store::tests::open::lock_holder_process",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(LOCK_CHILD_DB, &db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the lock holder");
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let held = stdout
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains("calsaga-lock-held"));
    assert!(held, "the child never reported holding the store");
    let err = Store::open(&db, StoreConfig::default()).err();
    assert!(
        matches!(&err, Some(StoreError::Locked { holder: Some(h), .. }) if *h == format!("pid {}", child.id())),
        "{err:?}"
    );
    child.kill().expect("SIGKILL the holder");
    child.wait().unwrap();
    Store::open(&db, StoreConfig::default()).expect("the lock died with its process");
}

#[test]
fn read_only_open_reads_while_the_writer_runs_and_refuses_writes() {
    let f = Fixture::new();
    let id = f.workflow();
    let admin = Store::open_read_only(f.path()).expect("read-only open beside the writer");
    assert_eq!(admin.workflow(id).unwrap().map(|w| w.id), Some(id));
    assert_eq!(
        admin.commit_blocking(vec![append(id, 0, 1)]),
        Err(StoreError::ReadOnly)
    );
    assert!(!admin.is_poisoned());
}

#[test]
fn read_only_open_of_a_missing_file_fails_fast() {
    let dir = tempfile::tempdir().unwrap();
    let err = Store::open_read_only(dir.path().join("absent.db")).err();
    assert!(matches!(err, Some(StoreError::Open { .. })), "{err:?}");
}

#[test]
fn integrity_check_and_backup() {
    let f = Fixture::new();
    let id = f.workflow();
    assert_eq!(f.store.integrity_check().unwrap(), "ok");
    let copy = f.dir.path().join("backup.db");
    f.store.backup_to(&copy).unwrap();
    let copied = Store::open_read_only(&copy).expect("backup opens");
    assert_eq!(copied.workflow(id).unwrap().map(|w| w.id), Some(id));
    let again = f.store.backup_to(&copy);
    assert!(matches!(again, Err(StoreError::Backup { .. })), "{again:?}");
}

#[test]
fn create_twice_is_refused() {
    let f = Fixture::new();
    let id = f.workflow();
    assert_eq!(
        f.store.commit_blocking(vec![create(id, "running")]),
        Err(StoreError::WorkflowExists { workflow: id })
    );
}
