//! Operating calsaga as an admin would: `catalog sync`, `webhooks` and
//! `backup` run as the real binary (the Cal.com ones against the mock on a
//! loopback port), and `GET /metrics` scraped from a real `calsaga serve`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::json;

use calsaga::clock::SimClock;
use calsaga::mock::{Fixture, Mock, MockConfig, MockServer};

use crate::support::{Served, mock_faults, repo_root, run};

const KEY: &str = "cal_test_calsaga_mock";

/// The salon mock on 127.0.0.1:0, in this process.
fn mock() -> (Arc<Mock>, MockServer) {
    let fixture = Fixture::load(&repo_root().join("fixtures/mock/salon.json")).unwrap();
    let clock = Arc::new(SimClock::new("2030-03-01T08:00:00Z".parse().unwrap()));
    let mock = Arc::new(Mock::new(fixture, clock, MockConfig::default()).unwrap());
    let server = MockServer::start(mock.clone(), "127.0.0.1:0".parse().unwrap()).unwrap();
    (mock, server)
}

/// `calsaga args.. --calcom-url URL --calcom-api-key KEY`.
fn admin(server: &MockServer, args: &[&str]) -> (i32, String, String) {
    let url = server.url();
    let mut all = args.to_vec();
    all.extend(["--calcom-url", &url, "--calcom-api-key", KEY]);
    run(&all, None)
}

/// A copy of the shipped catalogue in a temp folder, for a test to edit.
fn catalogue_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(repo_root().join("workflows")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    dir
}

fn edit(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.contains(from), "{from:?} not in {}", file.display());
    std::fs::write(file, text.replacen(from, to, 1)).unwrap();
}

/// The table row of one event type.
fn row<'a>(table: &'a str, event_type: &str) -> &'a str {
    table
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(event_type))
        .unwrap_or_else(|| panic!("no row for {event_type} in\n{table}"))
}

#[test]
fn catalog_sync_shows_the_differences_and_apply_leaves_only_the_catalogue_edit() {
    let (_mock, server) = mock();
    let dir = catalogue_copy();
    let workflows = dir.path().to_str().unwrap();
    let (code, out, err) = admin(&server, &["catalog", "sync", "--workflows", workflows]);
    assert_eq!(
        code, 0,
        "the shipped catalogue matches the salon: {out}{err}"
    );
    assert!(out.contains("in sync"), "{out}");

    // Colour now takes 35 min, and consultations (20 min now) are booked
    // via an event type Cal.com does not have.
    let colour = dir.path().join("colour-and-cut.json");
    edit(&colour, "\"duration_min\": 30", "\"duration_min\": 35");
    let consultation = dir.path().join("consultation.json");
    edit(
        &consultation,
        "\"duration_min\": 15",
        "\"duration_min\": 20",
    );
    edit(
        &consultation,
        "\"event_type_id\": 104",
        "\"event_type_id\": 199",
    );
    let (code, out, err) = admin(&server, &["catalog", "sync", "--workflows", workflows]);
    assert_eq!(code, 1, "differences exit 1: {out}{err}");
    assert!(
        err.contains("2 event types differ") && err.contains("--apply"),
        "{err}"
    );
    let changed = row(&out, "101");
    assert!(changed.contains("differs"), "{changed}");
    assert!(
        changed.contains("length: Cal.com \"30\", catalogue \"35\""),
        "{changed}"
    );
    assert!(
        changed.contains("slug: Cal.com \"colour-30\", catalogue \"colour-35\""),
        "{changed}"
    );
    assert!(!changed.contains("title"), "the title matches: {changed}");
    assert!(row(&out, "199").contains("missing"), "{out}");
    assert!(row(&out, "102").contains("in sync"), "{out}");

    let (code, out, err) = admin(
        &server,
        &["catalog", "sync", "--apply", "--workflows", workflows],
    );
    assert_eq!(
        code, 1,
        "the created event type still needs the catalogue edit: {out}{err}"
    );
    assert!(out.contains("updated event type 101"), "{out}");
    let created = out
        .lines()
        .find(|l| l.starts_with("created event type "))
        .unwrap_or_else(|| panic!("nothing created: {out}"));
    let new_id = created.split_whitespace().nth(3).unwrap();
    let change = format!("change \"event_type_id\": 199 to \"event_type_id\": {new_id}");
    assert!(created.contains(&change), "{created}");
    assert!(!created.contains("note:"), "host 1 owns the key: {created}");

    // Following the printed line makes the next sync clean.
    edit(
        &consultation,
        "\"event_type_id\": 199",
        &format!("\"event_type_id\": {new_id}"),
    );
    let (code, out, err) = admin(&server, &["catalog", "sync", "--workflows", workflows]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        row(&out, "101").contains("colour-35 \"Colour\" 35 min"),
        "{out}"
    );
    assert!(
        row(&out, new_id).contains("consultation-20 \"Consultation\" 20 min"),
        "{out}"
    );
    assert!(
        !out.contains("differs") && !out.contains("missing"),
        "{out}"
    );
}

#[test]
fn catalog_sync_without_an_api_key_says_which_flag_to_set() {
    let (code, _, err) = run(&["catalog", "sync"], None);
    assert_eq!(code, 1);
    assert!(
        err.contains("--calcom-api-key") && err.contains("CALCOM_API_KEY"),
        "{err}"
    );
}

#[test]
fn webhooks_register_list_and_delete_round_trip() {
    let (mock, server) = mock();
    let url = "https://calsaga.example.com/webhooks/calcom";
    let (code, out, err) = admin(&server, &["webhooks", "register", "--url", url]);
    assert_eq!(code, 0, "{out}{err}");
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("CALSAGA_WEBHOOK_SECRET="))
        .unwrap_or_else(|| panic!("no secret line: {out}"));
    assert_eq!(secret.len(), 64);
    assert!(secret.chars().all(|c| c.is_ascii_hexdigit()), "{secret}");
    let stored = mock.view().webhooks;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].subscriber_url, url);
    assert_eq!(
        stored[0].secret.as_deref(),
        Some(secret),
        "Cal.com signs with it"
    );
    assert_eq!(
        stored[0].triggers,
        [
            "BOOKING_CREATED",
            "BOOKING_RESCHEDULED",
            "BOOKING_CANCELLED"
        ]
    );
    let id = stored[0].id.clone();

    let (code, out, err) = admin(&server, &["webhooks", "list"]);
    assert_eq!(code, 0, "{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains(url) && line.contains("yes"), "{line}");
    assert!(!out.contains(secret), "list never shows the secret");

    let (code, out, err) = admin(&server, &["webhooks", "register", "--url", url]);
    assert_eq!(
        code, 1,
        "a second subscription of one URL is refused: {out}"
    );
    assert!(err.contains("delete that subscription first"), "{err}");

    let (code, out, err) = admin(&server, &["webhooks", "delete", &id]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("deleted Cal.com webhook {id}")),
        "{out}"
    );
    assert!(mock.view().webhooks.is_empty());
    let (code, _, err) = admin(&server, &["webhooks", "delete", &id]);
    assert_eq!(code, 1);
    assert!(err.contains(&id) && err.contains("webhooks list"), "{err}");
}

/// Books through a running server: two bookings made, one refused by
/// Cal.com and compensated.
fn book_some(s: &Served) {
    for (key, service, start, want) in [
        ("k1", "colour-and-cut", "2030-03-05T10:00:00Z", 201),
        ("k2", "haircut", "2030-03-06T12:00:00Z", 201),
        ("k3", "haircut", "2030-03-05T12:00:00Z", 409),
    ] {
        let refused = want == 409;
        if refused {
            mock_faults(
                s.mock(),
                &json!([{"route": "POST /v2/bookings", "status": 409}]),
            );
        }
        let body = json!({
            "service": service,
            "start": start,
            "timeZone": "Europe/Berlin",
            "attendee": {"name": "Jo Client", "email": "jo@example.com"},
        });
        let r = s.send(
            "POST",
            "/api/v2/bookings",
            &s.booking,
            &[("Idempotency-Key", key)],
            Some(&body),
        );
        assert_eq!(r.status, want, "{}", r.body);
        if refused {
            mock_faults(s.mock(), &json!([]));
        }
    }
}

#[test]
fn backup_copies_a_live_database_verifies_it_and_never_overwrites() {
    let s = Served::start(&[]);
    book_some(&s);
    let db = s.db().display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.db");
    let copy = copy.to_str().unwrap();
    // serve still runs and holds the database's lock.
    let (code, out, err) = run(&["backup", "--db", &db, copy], None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("integrity ok; 3 workflows (the source had 3"),
        "{out}"
    );
    let (code, out, err) = run(
        &[
            "token", "create", "--db", copy, "--name", "x", "--scope", "admin",
        ],
        None,
    );
    assert_eq!(code, 0, "the copy is a working database: {out}{err}");

    let before = std::fs::metadata(copy).unwrap().len();
    let (code, _, err) = run(&["backup", "--db", &db, copy], None);
    assert_eq!(code, 1);
    assert!(
        err.contains("exists") && err.contains("never overwrites"),
        "{err}"
    );
    assert_eq!(std::fs::metadata(copy).unwrap().len(), before);
}

/// `name{labels} value` lines of an exposition, keyed by everything but
/// the value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            let value = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {l:?}"));
            (series.to_string(), value)
        })
        .collect()
}

/// Posts a signed BOOKING_CANCELLED delivery about a booking nobody knows.
fn deliver_webhook(s: &Served, secret: &str) {
    use hmac::Mac;
    let body = json!({
        "triggerEvent": "BOOKING_CANCELLED",
        "createdAt": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "payload": {"uid": "notOurs0001", "startTime": "2030-03-05T10:00:00Z",
                    "endTime": "2030-03-05T10:30:00Z", "status": "CANCELLED", "eventTypeId": 101},
    })
    .to_string();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    let headers = [
        ("Content-Type", "application/json"),
        ("X-Cal-Signature-256", signature.as_str()),
    ];
    let r = s.call("POST", "/webhooks/calcom", &headers, body.as_bytes());
    assert!((200..300).contains(&r.status), "{} {}", r.status, r.body);
}

#[test]
fn an_empty_inbox_has_a_zero_series_for_every_state() {
    // So an alert on `failed > 0` has a series before the first webhook.
    let s = Served::start(&[]);
    let r = s.get("/metrics", &s.admin);
    assert_eq!(r.status, 200, "{}", r.body);
    let m = samples(&r.body);
    for state in ["pending", "processed", "failed"] {
        let series = format!("calsaga_webhook_inbox_entries{{state=\"{state}\"}}");
        assert_eq!(m.get(&series), Some(&0.0), "{series} in\n{}", r.body);
    }
}

#[test]
fn metrics_count_requests_cal_com_calls_commits_sagas_and_webhooks() {
    let secret = "whsec_metrics";
    let s = Served::start(&["--webhook-secret", secret]);
    book_some(&s);
    deliver_webhook(&s, secret);
    assert_eq!(s.get("/api/v2/nope/123", &s.admin).status, 404);
    assert_eq!(
        s.get("/metrics", &s.booking).status,
        403,
        "metrics need an admin token"
    );
    assert_eq!(s.call("GET", "/metrics", &[], b"").status, 401);

    let r = s.get("/metrics", &s.admin);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.header("content-type"),
        Some(calsaga::metrics::CONTENT_TYPE)
    );
    let m = samples(&r.body);
    let get = |series: &str| {
        *m.get(series)
            .unwrap_or_else(|| panic!("no {series} in\n{}", r.body))
    };
    let bookings = "route=\"/api/v2/bookings\",method=\"POST\"";
    let http = "calsaga_http_request_duration_seconds";
    assert_eq!(
        get(&format!("{http}_count{{{bookings},status=\"2xx\"}}")),
        2.0
    );
    assert_eq!(
        get(&format!("{http}_count{{{bookings},status=\"4xx\"}}")),
        1.0
    );
    assert_eq!(
        get(&format!(
            "{http}_bucket{{{bookings},status=\"2xx\",le=\"+Inf\"}}"
        )),
        2.0
    );
    let unmatched = "route=\"unmatched\",method=\"unmatched\",status=\"4xx\"";
    assert_eq!(get(&format!("{http}_count{{{unmatched}}}")), 1.0);
    let metrics_route = "route=\"/metrics\",method=\"GET\"";
    assert_eq!(
        get(&format!("{http}_count{{{metrics_route},status=\"4xx\"}}")),
        2.0
    );
    assert!(
        !r.body.contains("/api/v2/nope"),
        "raw paths never become labels"
    );

    // Three segments booked, one refused by Cal.com.
    let calcom = "calsaga_calcom_request_duration_seconds_count";
    assert!(get(&format!("{calcom}{{family=\"bookings\",class=\"2xx\"}}")) >= 3.0);
    assert!(get(&format!("{calcom}{{family=\"bookings\",class=\"4xx\"}}")) >= 1.0);
    assert!(get("calsaga_store_commit_duration_seconds_count") >= 3.0);
    assert!(
        get("calsaga_store_commit_batches_total")
            >= get("calsaga_store_commit_duration_seconds_count")
    );
    assert_eq!(get("calsaga_store_poisoned"), 0.0);
    assert_eq!(
        get("calsaga_workflows{kind=\"book\",state=\"booked\"}"),
        2.0
    );
    assert_eq!(
        get("calsaga_workflows{kind=\"book\",state=\"compensated\"}"),
        1.0
    );
    assert_eq!(get("calsaga_compensations_total{phase=\"started\"}"), 1.0);
    assert_eq!(get("calsaga_compensations_total{phase=\"finished\"}"), 1.0);
    assert_eq!(
        get("calsaga_reconciliations_total{phase=\"resolved\"}"),
        0.0
    );
    // The delivery is stored once; the inbox task may not have taken it yet.
    let inbox: f64 = m
        .iter()
        .filter(|(series, _)| series.starts_with("calsaga_webhook_inbox_entries{"))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(inbox, 1.0, "{}", r.body);
    let webhooks = "route=\"/webhooks/calcom\",method=\"POST\",status=\"2xx\"";
    assert_eq!(get(&format!("{http}_count{{{webhooks}}}")), 1.0);
}

#[test]
fn a_start_on_a_busy_port_or_a_missing_fixture_changes_nothing_and_keeps_the_first_token() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("calsaga.db");
    let db = db.to_str().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = busy.local_addr().unwrap().to_string();
    let workflows = repo_root().join("workflows");
    let serve = |more: &[&str]| {
        let mut args = vec![
            "serve",
            "--db",
            db,
            "--workflows",
            workflows.to_str().unwrap(),
        ];
        args.extend_from_slice(more);
        run(&args, Some(dir.path()))
    };
    for _ in 0..2 {
        let fixture = repo_root().join("fixtures/mock/salon.json");
        let (code, out, err) =
            serve(&["--bind", &busy, "--mock-fixture", fixture.to_str().unwrap()]);
        assert_eq!(code, 1, "{out}{err}");
        assert!(err.contains(&busy), "the error names the address: {err}");
        assert!(
            !out.contains("admin token"),
            "a token for a start that failed: {out}"
        );
    }
    let missing = dir.path().join("salon.json");
    let missing = missing.to_str().unwrap();
    let (code, _, err) = serve(&["--mock-fixture", missing]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--mock-fixture"), "the flag to fix: {err}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "failed starts left files: {left:?}");

    // The next start that listens shows the token, and the token works.
    let (mut child, lines) = crate::support::spawn_serve(db, dir.path(), &[]);
    let shown = lines.iter().find(|l| l.contains("created the admin token"));
    let token = shown
        .and_then(|l| l.rsplit(' ').next())
        .unwrap_or_else(|| panic!("no token shown: {lines:?}"))
        .to_string();
    let line = lines.last().unwrap();
    let rest = &line[line.find("http://").unwrap() + 7..];
    let addr = rest[..rest.find(' ').unwrap()].parse().unwrap();
    let auth = format!("Bearer {token}");
    let r = crate::support::http(
        addr,
        "GET",
        "/api/v2/workflows",
        &[("Authorization", &auth)],
        b"",
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
}
