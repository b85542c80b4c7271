//! The Cal.com health checks through the real surfaces: `calsaga serve`'s
//! health routes (who may call them, the quick roll-up's status codes,
//! alerts to a local receiver when the embedded mock goes down) and the
//! `calsaga health` command against a running server's database.

use std::sync::{Arc, mpsc};
use std::time::Duration;

use serde_json::Value;

use crate::support::{Served, http, run};

const KEY: &str = "cal_test_calsaga_mock";
const WAIT: Duration = Duration::from_secs(30);

/// An alert receiver on 127.0.0.1:0: answers the first `failures` POSTs
/// with 500, then 200, and hands every body to the test.
struct AlertReceiver {
    url: String,
    got: mpsc::Receiver<Value>,
    server: Arc<tiny_http::Server>,
}

impl AlertReceiver {
    fn start(failures: usize) -> AlertReceiver {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let addr = server.server_addr().to_ip().expect("an IP listener");
        let (tx, got) = mpsc::channel();
        let serving = server.clone();
        std::thread::spawn(move || {
            for (n, mut req) in serving.incoming_requests().enumerate() {
                let mut body = Vec::new();
                let _ = req.as_reader().read_to_end(&mut body);
                let _ = tx.send(serde_json::from_slice(&body).unwrap_or(Value::Null));
                let status = if n < failures { 500 } else { 200 };
                let _ = req.respond(tiny_http::Response::empty(status));
            }
        });
        AlertReceiver {
            url: format!("http://{addr}/alerts"),
            got,
            server,
        }
    }

    fn next(&self) -> Value {
        self.got
            .recv_timeout(WAIT)
            .expect("an alert within the deadline")
    }
}

impl Drop for AlertReceiver {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

fn mock_outage(s: &Served) {
    let rule = br#"{"route":"*","status":503}"#;
    let addr = s.mock_url.trim_start_matches("http://").parse().unwrap();
    let r = http(
        addr,
        "POST",
        "/_mock/faults",
        &[("Content-Type", "application/json")],
        rule,
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn health_routes_answer_by_access_and_an_outage_is_alerted_once_delivered() {
    let receiver = AlertReceiver::start(1);
    let s = Served::start(&[
        "--health-interval-s",
        "0",
        "--alert-webhook-url",
        &receiver.url,
    ]);
    let quick = s.call("GET", "/api/health/calcom", &[], b"");
    assert_eq!(quick.status, 200, "{}", quick.body);
    let summary = quick.json();
    assert_eq!(summary["status"], "ok", "{summary}");
    assert_eq!(summary["checks"].as_object().unwrap().len(), 8);
    assert!(
        !quick.body.contains("message"),
        "statuses only: {}",
        quick.body
    );

    assert_eq!(
        s.call("GET", "/api/health/calcom/detailed", &[], b"")
            .status,
        401
    );
    assert_eq!(s.get("/api/health/calcom/detailed", &s.booking).status, 403);
    let detailed = s.get("/api/health/calcom/detailed", &s.admin);
    assert_eq!(detailed.status, 200, "{}", detailed.body);
    assert_eq!(detailed.json()["checks"].as_array().unwrap().len(), 8);
    let metrics = s.get("/api/health/calcom/metrics", &s.admin);
    assert_eq!(metrics.status, 200, "{}", metrics.body);
    assert!(metrics.json()["figures"]["calls"]["calls"].is_u64());

    mock_outage(&s);
    let check = s.send("POST", "/api/health/calcom/check", &s.admin, &[], None);
    assert_eq!(check.status, 200, "{}", check.body);
    let report = check.json();
    assert_eq!(report["status"], "critical");
    assert_eq!(report["checks"][0]["check"], "connectivity");
    assert_eq!(report["checks"][0]["status"], "critical");
    let down = s.call("GET", "/api/health/calcom", &[], b"");
    assert_eq!(down.status, 503, "{}", down.body);

    // The receiver refuses the first delivery; the retry gets through.
    let first = receiver.next();
    let retried = receiver.next();
    assert_eq!(first, retried);
    assert_eq!(retried["status"], "critical");
    let connectivity = retried["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["subject"] == "connectivity")
        .expect("a connectivity change");
    assert_eq!(
        (&connectivity["from"], &connectivity["to"]),
        (&"ok".into(), &"critical".into())
    );
}

#[test]
fn the_health_command_reads_a_running_servers_database_and_exits_by_status() {
    let s = Served::start(&["--health-interval-s", "0"]);
    let db = s.db();
    let db = db.to_str().unwrap();
    let (code, out, err) = run(
        &[
            "health",
            "--db",
            db,
            "--calcom-url",
            &s.mock_url,
            "--calcom-api-key",
            KEY,
        ],
        None,
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.starts_with("calsaga health: OK"), "{out}");
    assert_eq!(out.lines().count(), 9, "{out}");

    // Without flags it finds the running serve's embedded mock, says so in
    // one line and logs no status changes: a one-off run has none.
    let (code, out, err) = run(&["health", "--db", db, "--strict"], None);
    assert_eq!(code, 0, "{out}\n{err}");
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some(
            format!(
                "checking the embedded Cal.com mock of the serve on {db} at {} (pass --calcom-url and --calcom-api-key to check another)",
                s.mock_url
            )
            .as_str()
        ),
        "{out}"
    );
    assert!(
        lines.next().unwrap().starts_with("calsaga health: OK"),
        "{out}"
    );
    assert_eq!(out.lines().count(), 10, "{out}");
    assert!(!err.contains("WARN"), "{err}");

    // A copy has no serve beside it: the one line says what to pass.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.db");
    let copy = copy.to_str().unwrap();
    let (code, _, err) = run(&["backup", "--db", db, copy], None);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(&["health", "--db", copy], None);
    assert_eq!(code, 0, "warning is not a failure without --strict: {out}");
    assert!(
        out.starts_with(&format!(
            "no Cal.com configured and no running serve announced one for {copy}: checks 1-3 and 8 are skipped; pass --calcom-url"
        )),
        "{out}"
    );
    assert!(!err.contains("WARN"), "{err}");
    let (code, _, err) = run(&["health", "--db", copy, "--strict"], None);
    assert_eq!(code, 1, "{err}");

    let (code, out, err) = run(
        &[
            "health",
            "--db",
            db,
            "--calcom-url",
            "http://127.0.0.1:1",
            "--calcom-api-key",
            KEY,
            "--json",
        ],
        None,
    );
    assert_eq!(code, 1, "{out}\n{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["checks"][0]["status"], "critical");
    assert!(err.contains("Cal.com health is critical"), "{err}");
}
