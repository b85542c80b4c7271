//! kill -9 at random moments, with real processes: the mock as its own
//! process with a state file (what Cal.com "really" holds), calsaga serving
//! HTTP against it, and each round a seeded mix of new composite bookings,
//! reschedules and cancels of earlier ones sent concurrently, with SIGKILL
//! after a seeded number of acknowledgements. After the last kill the log
//! is resumed to the end and the invariants are checked against the mock:
//! I1 no segment booked twice, I2 no live booking of ours outside a booked
//! saga, I3 every saga terminal, I4 compensated and cancelled sagas (and
//! replaced ones) hold nothing, I5 every acknowledged request is in the
//! log, and per original booking exactly one live lineage (or none once
//! cancelled); plus `PRAGMA integrity_check`. The harness is shared with
//! `restore.rs`. Seed: CALSAGA_CRASH_SEED (printed); kills: CALSAGA_CRASH_KILLS.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use calsaga::calcom::{Client, ClientConfig};
use calsaga::catalog::Catalog;
use calsaga::clock::SystemClock;
use calsaga::runtime::{Engine, EngineConfig, TERMINAL_STATES};
use calsaga::store::{LIST_ROWS_MAX, Store, StoreConfig, WorkflowFilter, WorkflowRow};

use crate::support::{Running, create_token, repo_root, spawn};

pub const API_KEY: &str = "cal_test_calsaga_mock";
const RATE_PER_MINUTE: u32 = 100_000;
/// Twice the 2 s Cal.com timeout the servers run with (see `serve`).
const SETTLE: Duration = Duration::from_secs(4);
/// Per round: new bookings, and at most this many reschedules and cancels
/// each of earlier bookings. Small, so twenty kills fit in a minute and a
/// half; the kills are what the test is for.
const BOOKINGS_PER_ROUND: usize = 6;
const CHANGES_PER_ROUND: usize = 3;
/// Deadline of one request; a killed server ends it sooner.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The URL printed on a start-up line ("... on http://127.0.0.1:PORT ...").
fn url_in(line: &str) -> String {
    let start = line
        .find("http://")
        .unwrap_or_else(|| panic!("no URL in {line:?}"));
    line[start..]
        .split(|c: char| c.is_whitespace() || c == ')')
        .next()
        .unwrap()
        .trim_end_matches([',', ';'])
        .to_string()
}

/// The mock as its own process with a state file, a database for calsaga
/// with a booking token, and the seeded randomness of the run.
pub struct Harness {
    pub dir: tempfile::TempDir,
    /// Kept for its lifetime: the mock dies with the harness.
    _mock: Running,
    pub mock_url: String,
    pub token: String,
    pub rng: SmallRng,
}

impl Harness {
    /// `scenario`: the mock's fault scenario (`healthy`, `reply-lost`, ..).
    pub fn new(seed: u64, scenario: &str) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("mock-state.json");
        let seed_arg = seed.to_string();
        // The salon, with a key allowed far more than Cal.com's default 120
        // requests a minute, so the run is not throttled into minutes.
        let fixture = dir.path().join("salon.json");
        let mut salon: Value = serde_json::from_str(
            &std::fs::read_to_string(repo_root().join("fixtures/mock/salon.json")).unwrap(),
        )
        .unwrap();
        salon["rateLimitPerMinute"] = json!(RATE_PER_MINUTE);
        std::fs::write(&fixture, salon.to_string()).unwrap();
        let mock = spawn(&[
            "mock",
            "--port",
            "0",
            "--fixture",
            fixture.to_str().unwrap(),
            "--scenario",
            scenario,
            "--fault-seed",
            &seed_arg,
            "--state-file",
            state.to_str().unwrap(),
        ]);
        let mock_url = url_in(&mock.first_line);
        let db = dir.path().join("calsaga.db");
        let token = create_token(db.to_str().unwrap(), "crash", "booking");
        Harness {
            dir,
            _mock: mock,
            mock_url,
            token,
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    pub fn db(&self) -> std::path::PathBuf {
        self.dir.path().join("calsaga.db")
    }

    /// `calsaga serve` on the database against the mock; killed on drop.
    pub fn serve(&self) -> (Running, String) {
        self.serve_with(&[])
    }

    /// `serve` with `extra` flags.
    pub fn serve_with(&self, extra: &[&str]) -> (Running, String) {
        let (db, rate) = (self.db(), RATE_PER_MINUTE.to_string());
        let mut args = vec![
            "serve",
            "--db",
            db.to_str().unwrap(),
            "--bind",
            "127.0.0.1:0",
            "--calcom-url",
            &self.mock_url,
            "--calcom-api-key",
            API_KEY,
            "--calcom-requests-per-minute",
            &rate,
            "--calcom-timeout-s",
            "2",
            "--webhook-secret",
            "crash-test-secret",
        ];
        args.extend_from_slice(extra);
        let server = spawn(&args);
        let url = url_in(&server.first_line);
        (server, url)
    }

    /// A seeded appointment time in the test week, on the quarter hour.
    fn start_time(&mut self) -> String {
        let day = self.rng.gen_range(5..=9);
        let quarter = self.rng.gen_range(0..24);
        format!(
            "2030-03-{day:02}T{:02}:{:02}:00Z",
            9 + quarter / 4,
            (quarter % 4) * 15
        )
    }

    fn request_body(&mut self) -> Value {
        let services = ["colour-and-cut", "highlights-toner-blowdry", "haircut"];
        let service = services[self.rng.gen_range(0..services.len())];
        let start = self.start_time();
        booking(service, &start)
    }

    pub fn mock_state(&self) -> Value {
        reqwest::blocking::get(format!("{}/_mock/state", self.mock_url))
            .unwrap()
            .json()
            .unwrap()
    }
}

/// The body of a booking request.
pub fn booking(service: &str, start: &str) -> Value {
    json!({
        "service": service,
        "start": start,
        "timeZone": "Europe/Berlin",
        "attendee": {"name": "Crash Test", "email": "crash@example.com"}
    })
}

/// One request of a round.
#[derive(Debug, Clone)]
pub enum Op {
    Book(Value),
    Reschedule { of: String, start: String },
    Cancel { of: String },
}

/// A request calsaga acknowledged (2xx): it must be in the log (I5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ack {
    Booked(String),
    Rescheduled { of: String, by: String },
    Cancelled { of: String },
}

/// How a request ended: acknowledged, refused with a status, or cut off.
pub enum Reply {
    Acked(Ack),
    Refused,
    CutOff,
}

/// Sends `op` with Idempotency-Key `key`; `prefer` is the `Prefer` header
/// (`wait=0`: answer as soon as the change is committed).
pub fn send(
    client: &reqwest::blocking::Client,
    (url, token): (&str, &str),
    key: &str,
    prefer: &str,
    op: &Op,
) -> Reply {
    let (path, body) = match op {
        Op::Book(body) => ("/api/v2/bookings".to_string(), body.clone()),
        Op::Reschedule { of, start } => (
            format!("/api/v2/bookings/{of}/reschedule"),
            json!({ "start": start }),
        ),
        Op::Cancel { of } => (
            format!("/api/v2/bookings/{of}/cancel"),
            json!({ "reason": "crash test" }),
        ),
    };
    let sent = client
        .post(format!("{url}{path}"))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .header("Prefer", prefer)
        .json(&body)
        .timeout(REQUEST_TIMEOUT)
        .send();
    let Ok(reply) = sent else {
        return Reply::CutOff;
    };
    let status = reply.status();
    let Ok(body) = reply.json::<Value>() else {
        return Reply::CutOff;
    };
    if !status.is_success() {
        return Reply::Refused;
    }
    let id = || body["id"].as_str().map(str::to_string);
    let ack = match op {
        Op::Book(_) => id().map(Ack::Booked),
        Op::Reschedule { of, .. } => id().map(|by| Ack::Rescheduled { of: of.clone(), by }),
        Op::Cancel { of } => Some(Ack::Cancelled { of: of.clone() }),
    };
    ack.map_or(Reply::CutOff, Reply::Acked)
}

/// The run's bookkeeping: what was acknowledged, and the bookings that may
/// still be rescheduled or cancelled (the head of each lineage).
#[derive(Default)]
struct Run {
    acknowledged: Vec<Ack>,
    heads: BTreeSet<String>,
}

impl Harness {
    /// This round's requests: new bookings plus changes of distinct heads.
    fn ops(&mut self, run: &mut Run) -> Vec<Op> {
        let mut ops: Vec<Op> = (0..BOOKINGS_PER_ROUND)
            .map(|_| Op::Book(self.request_body()))
            .collect();
        let mut heads: Vec<String> = run.heads.iter().cloned().collect();
        heads.shuffle(&mut self.rng);
        let reschedules = self.rng.gen_range(0..=CHANGES_PER_ROUND);
        let cancels = self.rng.gen_range(0..=CHANGES_PER_ROUND);
        for (i, of) in heads.into_iter().take(reschedules + cancels).enumerate() {
            run.heads.remove(&of);
            ops.push(if i < reschedules {
                Op::Reschedule {
                    of,
                    start: self.start_time(),
                }
            } else {
                Op::Cancel { of }
            });
        }
        ops.shuffle(&mut self.rng);
        ops
    }

    /// Fires one round concurrently and SIGKILLs the server after a seeded
    /// number of acknowledgements (or once every request has ended).
    fn round(&mut self, round: usize, run: &mut Run) {
        let ops = self.ops(run);
        let kill_after = self.rng.gen_range(1..=ops.len());
        let (server, url) = self.serve();
        let (tx, rx) = mpsc::channel();
        let client = Arc::new(reqwest::blocking::Client::new());
        for (i, op) in ops.into_iter().enumerate() {
            let (tx, client, url, token) =
                (tx.clone(), client.clone(), url.clone(), self.token.clone());
            std::thread::spawn(move || {
                let key = format!("crash-{round}-{i}");
                let reply = send(&client, (&url, &token), &key, "wait=0", &op);
                let _ = tx.send((op, reply));
            });
        }
        drop(tx);
        let mut acks = 0;
        for (op, reply) in rx.iter() {
            match (reply, op) {
                (Reply::Acked(ack), _) => {
                    acks += 1;
                    match &ack {
                        Ack::Booked(id) | Ack::Rescheduled { by: id, .. } => {
                            run.heads.insert(id.clone());
                        }
                        Ack::Cancelled { .. } => {}
                    }
                    run.acknowledged.push(ack);
                }
                // Cut off by the kill: the booking may still be changed later.
                (Reply::CutOff, Op::Reschedule { of, .. } | Op::Cancel { of }) => {
                    run.heads.insert(of);
                }
                _ => {}
            }
            if acks >= kill_after {
                break;
            }
        }
        drop(server); // SIGKILL
    }
}

/// Restarts calsaga (in-process, same code as `serve`) on the crashed
/// database and drives every unfinished saga to its end.
fn resume_to_the_end(db: &std::path::Path, mock_url: &str) -> Store {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = Store::open(db, StoreConfig::default()).unwrap();
        let config = ClientConfig {
            base_url: mock_url.to_string(),
            api_key: Some(API_KEY.into()),
            requests_per_minute_max: RATE_PER_MINUTE,
            request_timeout: Duration::from_secs(2),
            ..ClientConfig::default()
        };
        let client = Client::http(config, Arc::new(SystemClock)).unwrap();
        let catalog = Catalog::load_dir(&repo_root().join("workflows")).unwrap();
        let engine = Engine::new(
            store.clone(),
            Arc::new(client),
            Arc::new(SystemClock),
            Arc::new(catalog),
            EngineConfig {
                reconcile_settle: SETTLE,
                ..EngineConfig::default()
            },
        );
        engine.start().unwrap();
        for row in store.unfinished_workflows(TERMINAL_STATES).unwrap() {
            let view = engine
                .wait_terminal(row.id, Duration::from_secs(60))
                .await
                .unwrap();
            assert!(
                view.terminal,
                "saga {} did not finish: {view:?}\nlog:\n{}",
                row.id,
                log_of(&store, &row.id.to_string())
            );
        }
        engine.start_scan_settled(Duration::from_secs(60)).await;
        engine.shutdown();
        store
    })
}

/// The workflow's events, one a line, for a failure message.
fn log_of(store: &Store, workflow: &str) -> String {
    workflow
        .parse()
        .ok()
        .and_then(|id| store.events(id).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|e| format!("{} {} {}", e.seq, e.at, e.payload))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A saga as the checks see it.
struct Saga<'a> {
    row: &'a WorkflowRow,
    /// The booking a reschedule or cancel saga changes.
    original: Option<String>,
    segments: usize,
}

impl Saga<'_> {
    /// A reschedule or cancel that went through: its original is replaced.
    fn changed_its_original(&self) -> bool {
        matches!(
            (self.row.kind.as_str(), self.row.state.as_str()),
            ("reschedule", "rescheduled") | ("cancel", "cancelled")
        )
    }
}

/// Live bookings per workflow and segment, as the mock holds them. A
/// booking Cal.com moved keeps the original's metadata, so the holder is
/// the saga the booking mirror names; the metadata only for bookings no
/// saga recorded (an orphan shows up under its metadata's workflow).
fn live_bookings(store: &Store, mock_state: &Value) -> BTreeMap<String, BTreeMap<String, usize>> {
    let mut live: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for b in mock_state["bookings"].as_array().unwrap() {
        let Some(workflow) = b["metadata"]["calsaga_workflow"].as_str() else {
            continue;
        };
        if matches!(b["status"].as_str(), Some("accepted" | "pending")) {
            let uid = b["uid"].as_str().unwrap();
            let (workflow, segment) = match store.mirror_by_uid(uid).unwrap() {
                Some(m) => (m.workflow.to_string(), m.segment.to_string()),
                None => (
                    workflow.to_string(),
                    b["metadata"]["calsaga_segment"]
                        .as_str()
                        .unwrap_or("?")
                        .to_string(),
                ),
            };
            *live
                .entry(workflow)
                .or_default()
                .entry(segment)
                .or_default() += 1;
        }
    }
    live
}

/// Checks I1-I5 and the lineages against the mock's state; returns the
/// figures of the run, one a line.
pub fn check_invariants(store: &Store, mock_state: &Value, acknowledged: &[Ack]) -> String {
    let all = WorkflowFilter {
        limit: LIST_ROWS_MAX,
        ..Default::default()
    };
    let rows = store.list_workflows(&all).unwrap();
    assert!(
        rows.len() < LIST_ROWS_MAX,
        "more sagas than one listing shows"
    );
    let sagas: BTreeMap<String, Saga> = rows
        .iter()
        .map(|row| {
            let p: Value = serde_json::from_str(&row.projection).unwrap();
            let saga = Saga {
                row,
                original: p["original"]["workflow"].as_str().map(str::to_string),
                segments: p["request"]["plan"]["segments"]
                    .as_array()
                    .map_or(0, Vec::len),
            };
            (row.id.to_string(), saga)
        })
        .collect();
    let mut changes: BTreeMap<&str, Vec<&Saga>> = BTreeMap::new();
    for s in sagas.values().filter(|s| s.changed_its_original()) {
        changes
            .entry(s.original.as_deref().unwrap())
            .or_default()
            .push(s);
    }
    let live = live_bookings(store, mock_state);

    // I1: no host double booked, no segment booked twice.
    assert_eq!(
        mock_state["overlaps"],
        json!([]),
        "a host is double booked (I1)"
    );
    for (workflow, segments) in &live {
        for (segment, n) in segments {
            assert_eq!(
                *n, 1,
                "segment {segment} of {workflow} has {n} live bookings (I1)"
            );
        }
        // I2: nothing live that the log does not know.
        assert!(
            sagas.contains_key(workflow),
            "orphan: live bookings of {workflow}, unknown to the log (I2)"
        );
    }
    for (id, s) in &sagas {
        // I3: every saga ended.
        assert!(
            TERMINAL_STATES.contains(&s.row.state.as_str()),
            "{id} is {} (I3)",
            s.row.state
        );
        let changed = changes.get(id.as_str()).map_or(0, Vec::len);
        assert!(
            changed <= 1,
            "{id} was replaced {changed} times: two live lineages"
        );
        let holds = matches!(s.row.state.as_str(), "booked" | "rescheduled")
            && s.row.kind != "cancel"
            && changed == 0;
        let mine = live.get(id).map_or(0, BTreeMap::len);
        let expected = if holds { s.segments } else { 0 };
        // I2, I4: a booked saga holds each segment once; a compensated,
        // cancelled or replaced one holds nothing.
        assert_eq!(
            mine,
            expected,
            "{id} ({} {}, replaced {changed}x) has {mine} live segments, expected {expected} (I2/I4); its log:\n{}",
            s.row.kind,
            s.row.state,
            log_of(store, id)
        );
    }
    // I5: every acknowledged request is in the log.
    let change_of = |of: &str, kind: &str| {
        sagas
            .values()
            .any(|s| s.row.kind == kind && s.original.as_deref() == Some(of))
    };
    for ack in acknowledged {
        let found = match ack {
            Ack::Booked(id) => sagas.contains_key(id),
            Ack::Rescheduled { of, by } => sagas
                .get(by)
                .is_some_and(|s| s.original.as_deref() == Some(of.as_str())),
            Ack::Cancelled { of } => change_of(of, "cancel"),
        };
        assert!(found, "acknowledged {ack:?} is not in the log (I5)");
    }
    // One live lineage per original: follow each booking through the
    // reschedules that replaced it; only the last may hold bookings.
    let mut lineages: BTreeMap<&str, usize> = BTreeMap::new();
    for (id, s) in sagas.iter().filter(|(_, s)| s.row.kind == "book") {
        let mut head = (id.as_str(), s);
        let mut holding = usize::from(live.contains_key(id));
        let mut end = "live";
        while let Some(next) = changes.get(head.0).and_then(|c| c.first()) {
            if next.row.kind == "cancel" {
                end = "cancelled";
                break;
            }
            let next_id = next.row.id.to_string();
            holding += usize::from(live.contains_key(&next_id));
            head = (sagas.get_key_value(&next_id).unwrap().0.as_str(), next);
        }
        if end == "live" && !live.contains_key(head.0) {
            end = "not booked";
        }
        assert!(
            holding <= 1,
            "the lineage of {id} holds bookings in {holding} sagas"
        );
        *lineages.entry(end).or_default() += 1;
    }
    assert_eq!(store.integrity_check().unwrap(), "ok");

    let mut by_kind_state: BTreeMap<String, usize> = BTreeMap::new();
    for s in sagas.values() {
        *by_kind_state
            .entry(format!("{}/{}", s.row.kind, s.row.state))
            .or_default() += 1;
    }
    let mut acks: BTreeMap<&str, usize> = BTreeMap::new();
    for ack in acknowledged {
        let kind = match ack {
            Ack::Booked(_) => "bookings",
            Ack::Rescheduled { .. } => "reschedules",
            Ack::Cancelled { .. } => "cancels",
        };
        *acks.entry(kind).or_default() += 1;
    }
    let orphans: Vec<String> = store
        .orphans(LIST_ROWS_MAX)
        .unwrap()
        .iter()
        .map(|o| {
            let b = &o.booking;
            format!(
                "{} segment {} of {} at {} ({:?}): {}\n{}",
                b.calcom_uid,
                b.segment_ref,
                b.event_type_id,
                b.start,
                o.state,
                b.why,
                log_of(store, &b.workflow_ref)
            )
        })
        .collect();
    let duplicates = rows
        .iter()
        .flat_map(|row| store.events(row.id).unwrap())
        .filter(|e| e.kind == "duplicate_found")
        .count();
    format!(
        "{} sagas by kind/state {by_kind_state:?}\nacknowledged {acks:?}\nlineages {lineages:?}\n\
         duplicates found and cancelled by their sagas: {duplicates}\n\
         orphans cancelled by the start scan itself: {orphans:#?}",
        sagas.len(),
    )
}

#[test]
fn kill_9_at_random_moments_never_double_books_or_orphans() {
    let seed = env_u64("CALSAGA_CRASH_SEED", 20301105);
    let kills = env_u64("CALSAGA_CRASH_KILLS", 20) as usize;
    eprintln!("crash test: CALSAGA_CRASH_SEED={seed} CALSAGA_CRASH_KILLS={kills}");
    let started = std::time::Instant::now();
    // One create in five commits and then loses its reply.
    let mut h = Harness::new(seed, "reply-lost");
    let mut run = Run::default();
    for round in 0..kills {
        h.round(round, &mut run);
    }
    let store = resume_to_the_end(&h.db(), &h.mock_url);
    let figures = check_invariants(&store, &h.mock_state(), &run.acknowledged);
    eprintln!(
        "crash test: {kills} kills in {:.1} s\n{figures}",
        started.elapsed().as_secs_f64()
    );
    let changed = |a: &Ack| !matches!(a, Ack::Booked(_));
    assert!(
        run.acknowledged.iter().any(changed),
        "the run acknowledged reschedules or cancels"
    );
    assert!(figures.contains("book/booked"), "the run booked something");
}
