//! `calsaga workflows list|show|replay|resume|compensate|export` as an admin
//! meets them: on the database of a running `calsaga serve` (embedded mock,
//! faults injected through the mock's control routes) holding sagas in every
//! state, then offline, on a tampered copy, and on files that are not
//! calsaga databases. Golden logs in `fixtures/logs/` must replay to their
//! recorded state with today's code. Set `CALSAGA_GOLDEN_WRITE=1` to
//! regenerate them from the world built here (ids redacted).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::{Resp, create_token, http, mock_faults, repo_root, run, spawn_serve};

/// A `calsaga serve` on its own database that can be stopped and started
/// again while the database stays (unlike `Served`, whose dir goes with it).
struct World {
    dir: tempfile::TempDir,
    db: String,
    admin: String,
    serve: Option<(std::process::Child, std::net::SocketAddr, String)>,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir
            .path()
            .join("calsaga.db")
            .to_str()
            .expect("utf-8")
            .to_string();
        let admin = create_token(&db, "ops", "admin");
        let mut world = World {
            dir,
            db,
            admin,
            serve: None,
        };
        world.start();
        world
    }

    fn start(&mut self) {
        let (child, lines) = spawn_serve(&self.db, self.dir.path(), &[]);
        let line = lines.last().expect("listening line");
        let addr = between(line, "http://", " ").parse().expect("address");
        let mock = between(line, "mock at ", ")").to_string();
        self.serve = Some((child, addr, mock));
    }

    fn stop(&mut self) {
        if let Some((mut child, _, _)) = self.serve.take() {
            child.kill().expect("stop serve");
            child.wait().expect("reaped");
        }
    }

    fn addr(&self) -> std::net::SocketAddr {
        self.serve.as_ref().expect("serve runs").1
    }

    fn mock(&self) -> std::net::SocketAddr {
        let url = &self.serve.as_ref().expect("serve runs").2;
        url.trim_start_matches("http://")
            .parse()
            .expect("mock address")
    }

    fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &Value) -> Resp {
        let auth = format!("Bearer {}", self.admin);
        let mut all = vec![
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ];
        all.extend_from_slice(headers);
        let body = match body {
            Value::Null => String::new(),
            some => some.to_string(),
        };
        http(self.addr(), method, path, &all, body.as_bytes())
    }

    /// Books `service` at `start` (waiting for the saga to settle) and
    /// returns the workflow id, whatever the outcome.
    fn book(&self, service: &str, start: &str) -> String {
        self.book_pinned(service, start, json!({}))
    }

    /// Books with `hosts` pinning segments: a pinned host Cal.com refuses is
    /// not failed over, so the refusal stands.
    fn book_pinned(&self, service: &str, start: &str, hosts: Value) -> String {
        let body = json!({"service": service, "start": start, "timeZone": "Europe/Berlin",
                          "hosts": hosts,
                          "attendee": {"name": "Jo Client", "email": "jo@example.com"}});
        let r = self.send(
            "POST",
            "/api/v2/bookings",
            &[("Idempotency-Key", start)],
            &body,
        );
        workflow_id(&r)
    }

    fn hold(&self, start: &str) -> String {
        let body = json!({"service": "haircut", "start": start, "timeZone": "Europe/Berlin",
                          "holdMinutes": 60, "attendee": {"name": "Jo", "email": "jo@example.com"}});
        let r = self.send("POST", "/api/v2/holds", &[], &body);
        assert_eq!(r.status, 201, "{}", r.body);
        workflow_id(&r)
    }

    /// Adds fault rules at the embedded mock (no rules: clears them all).
    fn faults(&self, rules: Value) {
        mock_faults(self.mock(), &rules);
    }

    /// Cal.com's status of booking `uid` at the mock.
    fn calcom_status(&self, uid: &str) -> String {
        let headers = [
            ("Authorization", "Bearer cal_test_calsaga_mock"),
            ("cal-api-version", "2024-08-13"),
        ];
        let r = http(
            self.mock(),
            "GET",
            &format!("/v2/bookings/{uid}"),
            &headers,
            b"",
        );
        r.json()["data"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Long-polls the booking until its status is `want` (bounded).
    fn await_status(&self, id: &str, want: &str) {
        let path = format!("/api/v2/bookings/{id}");
        let mut r = self.send("GET", &path, &[], &Value::Null);
        for _ in 0..20 {
            if r.json()["status"] == want {
                return;
            }
            let tag = r
                .header("etag")
                .unwrap_or_else(|| panic!("{}", r.body))
                .to_string();
            let headers = [("If-None-Match", tag.as_str()), ("Prefer", "wait=15")];
            r = self.send("GET", &path, &headers, &Value::Null);
        }
        panic!("booking {id} never became {want}: {}", r.body);
    }

    /// `calsaga workflows ARGS --db <this db>`.
    fn admin(&self, args: &[&str]) -> (i32, String, String) {
        workflows(args, &self.db)
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.stop();
    }
}

fn workflows(args: &[&str], db: &str) -> (i32, String, String) {
    let mut all = vec!["workflows"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--db", db]);
    run(&all, None)
}

fn between<'a>(s: &'a str, from: &str, to: &str) -> &'a str {
    let rest = &s[s.find(from).expect("marker") + from.len()..];
    &rest[..rest.find(to).unwrap_or(rest.len())]
}

/// The workflow id of a booking answer, a success or a refusal.
fn workflow_id(r: &Resp) -> String {
    let body = r.json();
    body["id"]
        .as_str()
        .or_else(|| body["error"]["details"]["booking"]["id"].as_str())
        .unwrap_or_else(|| panic!("no workflow id in {} {}", r.status, r.body))
        .to_string()
}

/// The Cal.com uids a workflow's log recorded as booked (from `show --json`).
fn booked_uids(w: &World, id: &str) -> Vec<String> {
    let (code, out, err) = w.admin(&["show", id, "--json"]);
    assert_eq!(code, 0, "{err}");
    let shown: Value = serde_json::from_str(&out).expect("show --json is JSON");
    shown["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == "segment_booked" || e["kind"] == "segment_reconciled")
        .filter_map(|e| e["calcomUid"].as_str().map(str::to_string))
        .collect()
}

fn state_of(w: &World, id: &str) -> String {
    let (code, out, err) = w.admin(&["show", id, "--json"]);
    assert_eq!(code, 0, "{err}");
    let shown: Value = serde_json::from_str(&out).expect("JSON");
    shown["workflow"]["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Sagas in every state, by name (the golden log's file name).
fn build(w: &World) -> BTreeMap<&'static str, String> {
    let mut ids = BTreeMap::new();
    ids.insert("booked", w.book("haircut", "2030-03-05T10:00:00Z"));
    // Cal.com refuses every booking for a moment: the saga undoes.
    w.faults(json!([{"route": "POST /v2/bookings", "status": 409}]));
    ids.insert("compensated", w.book("haircut", "2030-03-05T12:00:00Z"));
    w.faults(json!([]));
    let original = w.book("colour-and-cut", "2030-03-06T10:00:00Z");
    let r = w.send(
        "POST",
        &format!("/api/v2/bookings/{original}/cancel"),
        &[],
        &json!({"reason": "flu"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    ids.insert(
        "cancelled",
        r.json()["cancelledBy"]
            .as_str()
            .expect("cancel saga")
            .into(),
    );
    ids.insert("held", w.hold("2030-03-07T10:00:00Z"));
    // Ben's cut is refused, and so is undoing the colour: stuck, compensating.
    w.faults(json!([
        {"route": "POST /v2/bookings", "nth": 2, "status": 409},
        {"route": "POST /v2/bookings/{uid}/cancel", "status": 409},
    ]));
    ids.insert(
        "failed-compensating",
        w.book_pinned("colour-and-cut", "2030-03-08T10:00:00Z", json!({"1": 2})),
    );
    w.faults(json!([]));
    // The cut's reply is lost and Cal.com refuses the list that would settle
    // it: stuck while booking, with the colour (and maybe the cut) live.
    w.faults(json!([
        {"route": "POST /v2/bookings", "nth": 2, "replyLost": true},
        {"route": "GET /v2/bookings", "status": 400},
    ]));
    ids.insert(
        "failed-booking",
        w.book("colour-and-cut", "2030-03-12T10:00:00Z"),
    );
    w.faults(json!([]));
    ids
}

#[test]
fn every_admin_command_on_sagas_in_every_state_while_serve_runs_and_offline() {
    let mut w = World::new();
    let ids = build(&w);
    let expect = [
        ("booked", "booked"),
        ("compensated", "compensated"),
        ("cancelled", "cancelled"),
        ("held", "held"),
        ("failed-compensating", "failed"),
        ("failed-booking", "failed"),
    ];
    for (name, state) in expect {
        assert_eq!(state_of(&w, &ids[name]), state, "{name}");
    }

    // list: every workflow (the cancelled original too), filters, JSON.
    let (code, out, err) = w.admin(&["list"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("ID "), "{out}");
    assert!(out.contains("7 workflow(s)"), "{out}");
    assert!(ids.values().all(|id| out.contains(id.as_str())), "{out}");
    let (_, failed, _) = w.admin(&["list", "--state", "failed", "--json"]);
    let failed: Vec<Value> = failed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(failed.iter().all(|f| f["state"] == "failed"));
    let (_, haircuts, _) = w.admin(&["list", "--service", "haircut"]);
    assert!(haircuts.contains("3 workflow(s)"), "{haircuts}");
    let (_, later, _) = w.admin(&["list", "--since", "2999-01-01"]);
    assert!(later.contains("0 workflow(s)"), "{later}");
    let (code, _, err) = w.admin(&["list", "--since", "tomorrow"]);
    assert_eq!(code, 2);
    assert!(err.contains("write 2030-03-05"), "{err}");

    // show: the timeline of the saga stuck while booking.
    let stuck = &ids["failed-booking"];
    let (code, out, err) = w.admin(&["show", stuck]);
    assert_eq!(code, 0, "{err}");
    let colour_uid = &booked_uids(&w, stuck)[0];
    for needle in [
        "SEQ",
        "CAL.COM UID",
        "segment_booked",
        colour_uid.as_str(),
        "outcome unknown",
        "reconcile failed, permanent",
        "failed, needs an admin",
        "reason: booking segment 1 (cut) with host 2",
        "segment 0 colour: host 1 (Anna Colourist) event type 101, 2030-03-12T10:00:00.000Z to 2030-03-12T10:30:00.000Z",
    ] {
        assert!(out.contains(needle), "{needle:?} missing:\n{out}");
    }
    // On a copy of the database without the catalogue, hosts are ids.
    let (code, bare, err) = w.admin(&["show", stuck, "--workflows", "no-such-folder"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        bare.contains("segment 0 colour: host 1 event type 101"),
        "{bare}"
    );
    let (_, json_out, _) = w.admin(&["show", stuck, "--json"]);
    let shown: Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(shown["segments"].as_array().map(Vec::len), Some(2));
    assert_eq!(shown["segments"][1]["status"], "uncertain");
    let events = shown["events"].as_array().unwrap();
    assert_eq!(events[0]["state"], "booking");
    assert_eq!(events.last().unwrap()["state"], "failed");
    let booked = events
        .iter()
        .find(|e| e["kind"] == "segment_booked")
        .unwrap();
    assert_eq!(
        (booked["segment"].clone(), booked["retries"].clone()),
        (json!(0), Value::Null)
    );
    assert!(
        booked["tookMs"].as_i64().is_some_and(|ms| ms >= 0),
        "{booked}"
    );

    // replay and export agree with the stored state, while serve runs.
    let (code, out, err) = w.admin(&["replay", "--all"]);
    assert_eq!((code, out.matches("ok ").count()), (0, 7), "{out}{err}");
    assert!(out.ends_with("replayed 7 workflow(s), 0 differ\n"), "{out}");
    let (code, out, err) = w.admin(&["export", "--all", "--format", "jsonl"]);
    assert_eq!(code, 0, "{err}");
    let records: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        records.iter().filter(|r| r["type"] == "workflow").count(),
        7
    );
    assert!(
        records
            .iter()
            .any(|r| r["type"] == "event" && r["kind"] == "failed")
    );
    let (code, one, err) = w.admin(&["export", stuck]);
    assert_eq!(code, 0, "{err}");
    let one: Vec<Value> = one
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        (one[0]["type"].clone(), one[0]["id"].clone()),
        (json!("workflow"), json!(stuck))
    );
    assert_eq!(
        Some(one.len() as u64 - 1),
        one[0]["nextSeq"].as_u64(),
        "every event follows"
    );
    if std::env::var_os("CALSAGA_GOLDEN_WRITE").is_some() {
        write_golden(&w, &ids);
    }

    // Illegal requests are refused at once and nothing is queued.
    for (args, says) in [
        (
            vec!["compensate", ids["cancelled"].as_str(), "--reason", "x"],
            "is cancelled",
        ),
        (
            vec!["resume", ids["booked"].as_str()],
            "only a failed saga is resumed",
        ),
        (
            vec!["show", "00000000-0000-4000-8000-000000000000"],
            "does not exist",
        ),
        (
            vec![
                "compensate",
                "00000000-0000-4000-8000-000000000000",
                "--reason",
                "x",
            ],
            "does not exist",
        ),
    ] {
        let (code, _, err) = w.admin(&args);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {says:?} not in {err}");
    }
    let (_, cancelled, _) = w.admin(&["show", &ids["cancelled"], "--json"]);
    assert_eq!(
        serde_json::from_str::<Value>(&cancelled).unwrap()["adminRequests"],
        json!([])
    );

    // Compensate the stuck booking while serve runs. Undoing it must first
    // settle the lost create, which Cal.com refused for good, so the saga
    // stops again until `resume` retries that step; then the engine cancels
    // every booking it made at Cal.com.
    let (code, out, err) = w.admin(&["compensate", stuck, "--reason", "client called"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("applied (request 1): compensating: client called"),
        "{out}"
    );
    w.await_status(stuck, "failed");
    let (code, out, err) = w.admin(&["resume", stuck]);
    assert_eq!(
        (code, out.starts_with("applied (request 2)")),
        (0, true),
        "{out}{err}"
    );
    w.await_status(stuck, "compensated");
    let live_then = booked_uids(&w, stuck);
    assert!(!live_then.is_empty());
    for uid in &live_then {
        assert_eq!(w.calcom_status(uid), "cancelled", "{uid} of {stuck}");
    }
    // Resume the saga stuck while compensating: the cancel is retried.
    let undo = &ids["failed-compensating"];
    let (code, out, err) = w.admin(&["resume", undo]);
    assert_eq!((code, out.starts_with("applied")), (0, true), "{out}{err}");
    w.await_status(undo, "compensated");
    assert_eq!(w.calcom_status(&booked_uids(&w, undo)[0]), "cancelled");

    // A booked saga is undone by cancelling every segment at Cal.com (by a
    // cancel saga, so the log then holds one more workflow).
    let booked = &ids["booked"];
    let live = booked_uids(&w, booked);
    assert!(!live.is_empty());
    let (code, out, err) = w.admin(&["compensate", booked, "--reason", "duplicate order"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("cancelling every segment in workflow"),
        "{out}"
    );
    w.await_status(booked, "cancelled");
    for uid in &live {
        assert_eq!(w.calcom_status(uid), "cancelled", "{uid} of {booked}");
    }

    // Offline: a request is queued and the next start applies it.
    let held = &ids["held"];
    w.stop();
    let (code, out, err) = w.admin(&["compensate", held, "--reason", "no-show", "--wait-s", "0"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("the next `calsaga serve` applies it"), "{out}");
    let (code, _, err) = w.admin(&["compensate", held, "--reason", "again", "--wait-s", "0"]);
    assert_eq!(code, 1);
    assert!(err.contains("still pending"), "{err}");
    w.start();
    w.await_status(held, "compensated");
    let (_, shown, _) = w.admin(&["show", held]);
    assert!(
        shown.contains("admin request 5: compensate (no-show)"),
        "{shown}"
    );
    assert!(
        shown.contains(": applied: compensating: no-show"),
        "{shown}"
    );
    w.stop();

    let (code, out, err) = w.admin(&["replay", "--all"]);
    assert_eq!((code, out.matches("ok ").count()), (0, 8), "{out}{err}");
    assert!(out.ends_with("replayed 8 workflow(s), 0 differ\n"), "{out}");
    if std::env::var_os("CALSAGA_GOLDEN_WRITE").is_some() {
        let after_admin = BTreeMap::from([
            ("compensated-by-admin-then-resumed", stuck.clone()),
            ("compensated-after-resume", undo.clone()),
            ("compensated-hold-by-admin", held.clone()),
        ]);
        write_golden(&w, &after_admin);
    }
    tampered_copy_is_detected(&w, &ids["booked"]);
}

/// Replay on a copy of the file alone (no -wal, no lock): a tampered
/// projection and state are reported and exit 1, and the copy is unchanged.
fn tampered_copy_is_detected(w: &World, booked: &str) {
    let copy_dir = tempfile::tempdir().unwrap();
    let copy = copy_dir.path().join("copy.db");
    std::fs::copy(&w.db, &copy).unwrap();
    // serve was killed: the newest commits are still in its WAL.
    let wal = format!("{}-wal", w.db);
    if Path::new(&wal).exists() {
        std::fs::copy(&wal, copy_dir.path().join("copy.db-wal")).unwrap();
    }
    let conn = rusqlite::Connection::open(&copy).unwrap();
    let changed = conn
        .execute(
            "UPDATE workflows SET state = 'cancelled',
             projection = json_set(projection, '$.phase.phase', 'cancelled', '$.version', 99)
         WHERE id = ?1",
            [booked],
        )
        .unwrap();
    assert_eq!(changed, 1);
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    drop(conn);
    let before = std::fs::read(&copy).unwrap();
    let copy = copy.to_str().unwrap();
    let (code, out, err) = workflows(&["replay", "--all"], copy);
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("differences in 1 workflow(s)"), "{err}");
    let line = format!("DIFFERS  {booked}");
    assert!(out.contains(&line), "{out}");
    for needle in [
        "state: stored \"cancelled\", replay \"booked\"",
        "$.version: stored 99",
        "$.phase.phase: stored \"cancelled\", replay \"booked\"",
    ] {
        assert!(out.contains(needle), "{needle:?} missing:\n{out}");
    }
    assert_eq!(workflows(&["replay", booked], copy).0, 1);
    assert_eq!(
        std::fs::read(copy).unwrap(),
        before,
        "replay changed nothing"
    );
}

/// Writes `fixtures/logs/<name>.jsonl`, workflow ids replaced by fixed ones.
fn write_golden(w: &World, ids: &BTreeMap<&'static str, String>) {
    let logs = repo_root().join("fixtures/logs");
    std::fs::create_dir_all(&logs).unwrap();
    for (n, (name, id)) in ids.iter().enumerate() {
        let (code, mut out, err) = w.admin(&["export", id]);
        assert_eq!(code, 0, "{err}");
        let mut ids_in_log = vec![id.clone()];
        ids_in_log.extend(original_of(&out));
        for (k, real) in ids_in_log.iter().enumerate() {
            out = out.replace(
                real.as_str(),
                &format!("00000000-0000-4000-8000-{:06}{:06}", n + 1, k),
            );
        }
        std::fs::write(logs.join(format!("{name}.jsonl")), out).unwrap();
    }
}

/// The original a reschedule or cancel saga's log refers to, if any.
fn original_of(export: &str) -> Option<String> {
    export
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|r| {
            r["data"]["original"]["workflow"]
                .as_str()
                .map(str::to_string)
        })
}

#[test]
fn golden_logs_replay_to_their_recorded_state_and_a_tampered_one_fails() {
    let dir = repo_root().join("fixtures/logs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures/logs exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "{files:?}");
    for file in &files {
        let (code, out, err) = replay_file(file);
        assert_eq!(code, 0, "{}: {out}{err}", file.display());
        let expected = recorded_state(file);
        let verdict = out.lines().next().unwrap_or_default();
        assert!(verdict.starts_with("ok "), "{out}");
        assert!(
            verdict.ends_with(&format!("  {expected}")),
            "{}: {out}",
            file.display()
        );
        assert!(out.ends_with("replayed 1 workflow(s), 0 differ\n"), "{out}");
    }
    let booked = std::fs::read_to_string(dir.join("booked.jsonl")).unwrap();
    let tampered = booked.replacen("\"state\":\"booked\"", "\"state\":\"held\"", 1);
    assert_ne!(tampered, booked);
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("tampered.jsonl");
    std::fs::write(&file, tampered).unwrap();
    let (code, out, _) = replay_file(&file);
    assert_eq!(code, 1);
    assert!(
        out.contains("state: stored \"held\", replay \"booked\""),
        "{out}"
    );
}

fn replay_file(file: &Path) -> (i32, String, String) {
    run(
        &["workflows", "replay", "--file", file.to_str().unwrap()],
        None,
    )
}

/// The state the golden file's name promises (`failed-booking` -> `failed`).
fn recorded_state(file: &Path) -> String {
    let stem = file.file_stem().unwrap().to_str().unwrap();
    stem.split('-').next().unwrap().to_string()
}

#[test]
fn files_that_are_not_current_calsaga_databases_are_refused_and_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let id = "00000000-0000-4000-8000-000000000000";
    let missing = dir.path().join("missing.db");
    let missing = missing.to_str().unwrap();
    let (code, _, err) = workflows(&["list"], missing);
    assert_eq!(code, 1);
    assert!(err.contains("there is no database at"), "{err}");
    assert!(!Path::new(missing).exists(), "nothing was created");

    let text = dir.path().join("notes.db");
    std::fs::write(
        &text,
        "this is not SQLite, it is a shopping list\n".repeat(200),
    )
    .unwrap();
    let real = dir.path().join("calsaga.db");
    let real = real.to_str().unwrap();
    create_token(real, "ops", "admin");
    let newer = dir.path().join("newer.db");
    std::fs::copy(real, &newer).unwrap();
    rusqlite::Connection::open(&newer)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let damaged = damaged_copy(real, dir.path());

    let cases = [
        (text.as_path(), "is not a readable calsaga database"),
        (newer.as_path(), "written by a newer calsaga (schema 99"),
        (damaged.as_path(), "integrity check"),
    ];
    for (file, says) in cases {
        let before = std::fs::read(file).unwrap();
        let path = file.to_str().unwrap();
        let mut commands = vec![
            vec!["replay", "--all"],
            vec!["export", "--all"],
            vec!["compensate", id, "--reason", "x", "--wait-s", "0"],
            vec!["resume", id, "--wait-s", "0"],
        ];
        if file != damaged.as_path() {
            commands.extend([vec!["list"], vec!["show", id]]);
        }
        for args in commands {
            let (code, _, err) = workflows(&args, path);
            assert_eq!(code, 1, "{args:?} on {path}: {err}");
            assert!(
                err.contains(says),
                "{args:?} on {path}: {says:?} not in {err}"
            );
        }
        assert_eq!(std::fs::read(file).unwrap(), before, "{path} unchanged");
    }
}

/// A copy of `db` with a filler table whose index pages are overwritten.
fn damaged_copy(db: &str, dir: &Path) -> PathBuf {
    let path = dir.join("damaged.db");
    std::fs::copy(db, &path).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE filler (n INTEGER PRIMARY KEY, t TEXT);
         WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 2000)
         INSERT INTO filler SELECT n, printf('row %08d', n) FROM c;
         CREATE INDEX filler_t ON filler (t);
         PRAGMA wal_checkpoint(TRUNCATE);",
    )
    .unwrap();
    let root: i64 = conn
        .query_row(
            "SELECT rootpage FROM sqlite_master WHERE name = 'filler_t'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let page_size: i64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap();
    drop(conn);
    let mut bytes = std::fs::read(&path).unwrap();
    // Scramble the index's root page after its 12-byte header: cell
    // pointers and cells.
    let start = usize::try_from((root - 1) * page_size).unwrap();
    let end = start + usize::try_from(page_size).unwrap();
    for b in &mut bytes[start + 12..end] {
        *b ^= 0x5a;
    }
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The first start the availability search offers for `service` on `day`.
fn first_offered(w: &World, service: &str, day: &str) -> String {
    let path = format!(
        "/api/v2/availability?service={service}&start={day}&end={day}&timeZone=Europe/Berlin"
    );
    let r = w.send("GET", &path, &[], &Value::Null);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["slots"][0]["start"]
        .as_str()
        .unwrap_or_else(|| panic!("nothing offered on {day}: {}", r.body))
        .to_string()
}

/// `workflows list --json`: status and state by workflow id.
fn listed(w: &World) -> BTreeMap<String, (String, String)> {
    let (code, out, err) = w.admin(&["list", "--json"]);
    assert_eq!(code, 0, "{err}");
    out.lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("a JSON line"))
        .map(|v| {
            let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
            (text("id"), (text("status"), text("state")))
        })
        .collect()
}

#[test]
fn list_and_show_say_what_became_of_a_rescheduled_and_a_cancelled_booking_on_any_day() {
    let w = World::new();
    // A Monday, a Thursday and a Saturday: each booking moves to the next day.
    for (day, next) in [
        ("2030-03-04", "2030-03-05"),
        ("2030-03-07", "2030-03-08"),
        ("2030-03-09", "2030-03-11"),
    ] {
        let original = w.book("haircut", &first_offered(&w, "haircut", day));
        w.await_status(&original, "booked");
        let to = first_offered(&w, "haircut", next);
        let r = w.send(
            "POST",
            &format!("/api/v2/bookings/{original}/reschedule"),
            &[("Idempotency-Key", &format!("move-{day}"))],
            &json!({"start": to}),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        let moved = workflow_id(&r);
        let listing = listed(&w);
        assert_eq!(listing[&original], ("rescheduled".into(), "booked".into()));
        assert_eq!(listing[&moved], ("booked".into(), "rescheduled".into()));

        let r = w.send(
            "POST",
            &format!("/api/v2/bookings/{moved}/cancel"),
            &[],
            &json!({"reason": "flu"}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        let cancel = r.json()["cancelledBy"]
            .as_str()
            .expect("cancel")
            .to_string();
        let listing = listed(&w);
        assert_eq!(listing[&moved], ("cancelled".into(), "rescheduled".into()));
        assert_eq!(listing[&original].0, "rescheduled", "{day}");
        assert_eq!(listing[&cancel].0, "cancelled");

        // The table and the timeline say the same, with the lineage.
        let (_, table, _) = w.admin(&["list"]);
        let line = table.lines().find(|l| l.starts_with(&moved)).expect("row");
        assert!(
            line.contains(" cancelled ") && line.contains(" rescheduled "),
            "{line}"
        );
        let (code, shown, err) = w.admin(&["show", &moved]);
        assert_eq!(code, 0, "{err}");
        assert!(shown.contains(": cancelled (saga rescheduled)"), "{shown}");
        assert!(shown.contains(&format!("replaces: {original}")), "{shown}");
        assert!(
            shown.contains(&format!("cancelled by: {cancel}")),
            "{shown}"
        );
        let (_, shown, _) = w.admin(&["show", &original]);
        assert!(shown.contains(&format!("replaced by: {moved}")), "{shown}");
        let http = w.send(
            "GET",
            &format!("/api/v2/bookings/{moved}"),
            &[],
            &Value::Null,
        );
        assert_eq!(http.json()["status"], "cancelled", "{}", http.body);
    }
    // /metrics counts the upcoming bookings by the same word.
    let scraped = w.send("GET", "/metrics", &[], &Value::Null);
    assert_eq!(scraped.status, 200, "{}", scraped.body);
    for (status, count) in [
        ("booked", 0),
        ("rescheduled", 3),
        ("cancelled", 3),
        ("broken", 0),
    ] {
        let series = format!("calsaga_bookings_upcoming{{status=\"{status}\"}} {count}\n");
        assert!(
            scraped.body.contains(&series),
            "{series} in {}",
            scraped.body
        );
    }
}

#[test]
fn a_mistyped_state_kind_or_status_is_refused_with_the_valid_ones() {
    let w = World::new();
    let (code, out, err) = w.admin(&["list", "--state", "faild"]);
    assert_eq!(code, 2, "{out}");
    assert!(err.contains("faild") && err.contains("failed"), "{err}");
    for (path, field, valid) in [
        ("/api/v2/workflows?state=faild", "state", "compensated"),
        ("/api/v2/workflows?kind=bok", "kind", "reschedule"),
        ("/api/v2/bookings?status=bookd", "status", "broken"),
    ] {
        let r = w.send("GET", path, &[], &Value::Null);
        assert_eq!(r.status, 422, "{path}: {}", r.body);
        let error = &r.json()["error"];
        assert_eq!(error["details"]["field"], field, "{}", r.body);
        let message = error["message"].as_str().unwrap_or_default();
        assert!(message.contains(valid), "{path}: {message}");
    }
}
