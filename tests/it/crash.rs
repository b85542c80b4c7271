//! kill -9 at random moments, with real processes: the mock as its own
//! process with a state file (what Cal.com "really" holds), calsaga serving
//! HTTP against it, concurrent composite bookings, and SIGKILL after a
//! seeded number of acknowledgements. After the last kill the log is
//! resumed to the end and the invariants are checked against the mock:
//! I1 no segment booked twice, I2 no orphan, I3 every saga terminal,
//! I4 compensated sagas hold nothing, I5 every acknowledged booking exists.
//! Seed: CALSAGA_CRASH_SEED (printed); kills: CALSAGA_CRASH_KILLS.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use calsaga::calcom::{Client, ClientConfig};
use calsaga::catalog::Catalog;
use calsaga::clock::SystemClock;
use calsaga::runtime::{Engine, EngineConfig, TERMINAL_STATES};
use calsaga::store::{Store, StoreConfig};

use crate::support::{Running, create_token, repo_root, spawn};

const API_KEY: &str = "cal_test_calsaga_mock";
const RATE_PER_MINUTE: u32 = 100_000;
/// Twice the 2 s Cal.com timeout the servers run with (see `serve`).
const SETTLE: Duration = Duration::from_secs(4);
const BOOKINGS_PER_ROUND: usize = 12;

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

struct Harness {
    dir: tempfile::TempDir,
    mock: Running,
    mock_url: String,
    token: String,
    rng: SmallRng,
}

impl Harness {
    fn new(seed: u64) -> Harness {
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
        salon["rateLimitPerMinute"] = serde_json::json!(RATE_PER_MINUTE);
        std::fs::write(&fixture, salon.to_string()).unwrap();
        // One create in five commits and then loses its reply.
        let mock = spawn(&[
            "mock",
            "--port",
            "0",
            "--fixture",
            fixture.to_str().unwrap(),
            "--scenario",
            "reply-lost",
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
            mock,
            mock_url,
            token,
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    fn db(&self) -> std::path::PathBuf {
        self.dir.path().join("calsaga.db")
    }

    fn serve(&self) -> (Running, String) {
        let server = spawn(&[
            "serve",
            "--db",
            self.db().to_str().unwrap(),
            "--bind",
            "127.0.0.1:0",
            "--calcom-url",
            &self.mock_url,
            "--calcom-api-key",
            API_KEY,
            "--calcom-requests-per-minute",
            &RATE_PER_MINUTE.to_string(),
            "--calcom-timeout-s",
            "2",
            "--webhook-secret",
            "crash-test-secret",
        ]);
        let url = url_in(&server.first_line);
        (server, url)
    }

    fn request_body(&mut self) -> Value {
        let services = ["colour-and-cut", "highlights-toner-blowdry", "haircut"];
        let service = services[self.rng.gen_range(0..services.len())];
        let day = self.rng.gen_range(5..=9);
        let quarter = self.rng.gen_range(0..24);
        let start = format!(
            "2030-03-{day:02}T{:02}:{:02}:00Z",
            9 + quarter / 4,
            (quarter % 4) * 15
        );
        serde_json::json!({
            "service": service,
            "start": start,
            "timeZone": "Europe/Berlin",
            "attendee": {"name": "Crash Test", "email": "crash@example.com"}
        })
    }

    /// Fires a round of concurrent bookings and SIGKILLs the server after
    /// `kill_after` acknowledgements. Returns the acknowledged workflow ids.
    fn round(&mut self, round: usize, kill_after: usize) -> Vec<String> {
        let (server, url) = self.serve();
        let (tx, rx) = mpsc::channel();
        let client = Arc::new(reqwest::blocking::Client::new());
        for i in 0..BOOKINGS_PER_ROUND {
            let body = self.request_body();
            let (tx, client, url, token) =
                (tx.clone(), client.clone(), url.clone(), self.token.clone());
            std::thread::spawn(move || {
                let reply = client
                    .post(format!("{url}/api/v2/bookings"))
                    .bearer_auth(token)
                    .header("Idempotency-Key", format!("crash-{round}-{i}"))
                    .header("Prefer", "wait=0")
                    .json(&body)
                    .timeout(Duration::from_secs(30))
                    .send();
                let acknowledged = reply.ok().and_then(|r| {
                    let status = r.status().as_u16();
                    let body: Value = r.json().ok()?;
                    matches!(status, 201 | 202).then(|| body["id"].as_str().map(str::to_string))?
                });
                let _ = tx.send(acknowledged);
            });
        }
        drop(tx);
        let mut acknowledged = Vec::new();
        for reply in rx.iter() {
            acknowledged.extend(reply);
            if acknowledged.len() >= kill_after {
                break;
            }
        }
        drop(server); // SIGKILL
        acknowledged
    }

    fn mock_state(&self) -> Value {
        reqwest::blocking::get(format!("{}/_mock/state", self.mock_url))
            .unwrap()
            .json()
            .unwrap()
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
            if !view.terminal {
                let log: Vec<String> = store
                    .events(row.id)
                    .unwrap()
                    .into_iter()
                    .map(|e| format!("{} {} {}", e.seq, e.at, e.payload))
                    .collect();
                panic!(
                    "saga {} did not finish: {view:?}\nlog:\n{}",
                    row.id,
                    log.join("\n")
                );
            }
        }
        engine.shutdown();
        store
    })
}

#[test]
fn kill_9_at_random_moments_never_double_books_or_orphans() {
    let seed = env_u64("CALSAGA_CRASH_SEED", 20301105);
    let kills = env_u64("CALSAGA_CRASH_KILLS", 8) as usize;
    eprintln!("crash test: CALSAGA_CRASH_SEED={seed} CALSAGA_CRASH_KILLS={kills}");
    let mut h = Harness::new(seed);
    let mut acknowledged = BTreeSet::new();
    for round in 0..kills {
        let kill_after = h.rng.gen_range(1..=BOOKINGS_PER_ROUND);
        acknowledged.extend(h.round(round, kill_after));
    }
    let store = resume_to_the_end(&h.db(), &h.mock_url);

    // I3 and I5: every acknowledged booking is in the log, and every saga ended.
    let mut states = BTreeMap::new();
    let all = calsaga::store::WorkflowFilter {
        limit: calsaga::store::LIST_ROWS_MAX,
        ..Default::default()
    };
    for row in store.list_workflows(&all).unwrap() {
        assert!(
            TERMINAL_STATES.contains(&row.state.as_str()),
            "{} is {}",
            row.id,
            row.state
        );
        states.insert(row.id.to_string(), row.state);
    }
    for id in &acknowledged {
        assert!(
            states.contains_key(id),
            "acknowledged booking {id} is not in the log (I5)"
        );
    }
    assert_eq!(store.integrity_check().unwrap(), "ok");

    // I1, I2, I4 against what the mock holds.
    let state = h.mock_state();
    assert_eq!(
        state["overlaps"],
        serde_json::json!([]),
        "a host is double booked"
    );
    let mut live_per_segment: BTreeMap<(String, String), usize> = BTreeMap::new();
    for b in state["bookings"].as_array().unwrap() {
        let Some(workflow) = b["metadata"]["calsaga_workflow"].as_str() else {
            continue;
        };
        if !matches!(b["status"].as_str(), Some("accepted" | "pending")) {
            continue;
        }
        let segment = b["metadata"]["calsaga_segment"]
            .as_str()
            .unwrap_or("?")
            .to_string();
        *live_per_segment
            .entry((workflow.to_string(), segment))
            .or_default() += 1;
        let owner = states.get(workflow).map(String::as_str);
        if !matches!(owner, Some("booked" | "rescheduled")) {
            let log = workflow
                .parse()
                .ok()
                .and_then(|id| store.events(id).ok())
                .unwrap_or_default()
                .into_iter()
                .map(|e| format!("{} {}", e.seq, e.payload))
                .collect::<Vec<_>>()
                .join("\n");
            panic!(
                "orphan: live booking {b} of workflow {workflow} ({owner:?}) (I2/I4); its log:\n{log}"
            );
        }
    }
    for ((workflow, segment), n) in live_per_segment {
        assert_eq!(
            n, 1,
            "segment {segment} of {workflow} has {n} live bookings (I1)"
        );
    }
    let booked = states.values().filter(|s| *s == "booked").count();
    eprintln!(
        "crash test: {kills} kills, {} acknowledged, {} sagas ({booked} booked)",
        acknowledged.len(),
        states.len()
    );
    assert!(booked > 0, "the run booked something");
    drop(h.mock);
}
