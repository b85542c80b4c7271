//! calsaga's HTTP API over real sockets: `calsaga serve` as a child process
//! against its embedded Cal.com mock (the salon fixture), driven by a plain
//! HTTP/1.1 client. Dates are in March 2030 (2030-03-04 is a Monday).

use std::io::Write;

use serde_json::{Value, json};

use crate::support::{Resp, Served, create_token, http, read_response, run, spawn_serve};

/// Colour (Anna, 30 min) + 40 min pause + cut (Ben or Chloe, 45 min).
const COMPOSITE_START: &str = "2030-03-05T10:00:00Z";

fn booking(service: &str, start: &str) -> Value {
    json!({
        "service": service,
        "start": start,
        "timeZone": "Europe/Berlin",
        "attendee": {"name": "Jo Client", "email": "jo@example.com", "phone": "+4930123456"},
    })
}

fn book(s: &Served, key: &str, body: &Value) -> Resp {
    s.send(
        "POST",
        "/api/v2/bookings",
        &s.booking,
        &[("Idempotency-Key", key)],
        Some(body),
    )
}

/// Every workflow the server stored (admin list).
fn workflow_count(s: &Served) -> usize {
    let list = s.get("/api/v2/workflows?limit=500", &s.admin);
    assert_eq!(list.status, 200, "{}", list.body);
    list.json()["workflows"].as_array().map_or(0, Vec::len)
}

fn assert_error(r: &Resp, status: u16, code: &str, says: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    let body = r.json();
    assert_eq!(body["error"]["code"], code, "{}", r.body);
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(says), "{says:?} not in {message:?}");
}

#[test]
fn a_composite_booking_is_created_shown_listed_and_replayed_by_its_key() {
    let s = Served::start(&[]);
    let body = booking("colour-and-cut", COMPOSITE_START);
    let created = book(&s, "key-1", &body);
    assert_eq!(created.status, 201, "{}", created.body);
    let b = created.json();
    assert_eq!(b["status"], "booked");
    let id = b["id"].as_str().unwrap().to_string();
    assert_eq!(
        created.header("location"),
        Some(format!("/api/v2/bookings/{id}").as_str())
    );
    let segments = b["segments"].as_array().unwrap();
    assert_eq!(segments.len(), 2);
    assert_eq!(segments[0]["host"], 1);
    assert_eq!(segments[0]["hostName"], "Anna Colourist");
    assert_eq!(segments[0]["start"], "2030-03-05T11:00:00+01:00");
    assert_eq!(segments[1]["start"], "2030-03-05T12:10:00+01:00");
    assert!(
        segments
            .iter()
            .all(|s| s["calcomUid"].is_string() && s["calcomStatus"] == "accepted")
    );
    assert!(
        created
            .header("x-request-id")
            .is_some_and(|id| !id.is_empty())
    );

    let shown = s.get(&format!("/api/v2/bookings/{id}"), &s.booking);
    assert_eq!(shown.json()["segments"], b["segments"]);

    let replay = book(&s, "key-1", &body);
    assert_eq!(replay.status, 201);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.json()["id"], b["id"]);

    let other = book(
        &s,
        "key-1",
        &booking("colour-and-cut", "2030-03-06T10:00:00Z"),
    );
    assert_error(&other, 422, "idempotency_key_reused", "different request");

    let listed = s.get(
        "/api/v2/bookings?from=2030-03-05&to=2030-03-06&status=booked",
        &s.booking,
    );
    assert_eq!(listed.status, 200, "{}", listed.body);
    let ids: Vec<Value> = listed.json()["bookings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].clone())
        .collect();
    assert_eq!(ids, [b["id"].clone()]);
    let later = s.get("/api/v2/bookings?from=2030-03-06", &s.booking);
    assert_eq!(later.json()["bookings"], json!([]));
    assert_eq!(workflow_count(&s), 1);
}

#[test]
fn bad_input_gets_a_precise_4xx_and_nothing_is_written() {
    let s = Served::start(&[]);
    let post = |body: &str, content_type: &str| {
        s.call(
            "POST",
            "/api/v2/bookings",
            &[
                ("Authorization", &format!("Bearer {}", s.booking)),
                ("Idempotency-Key", "k"),
                ("Content-Type", content_type),
            ],
            body.as_bytes(),
        )
    };
    let json_type = "application/json";
    assert_error(
        &post("{\"service\":", json_type),
        400,
        "bad_request",
        "not valid JSON",
    );
    assert_error(&post("[1]", json_type), 400, "bad_request", "JSON object");
    assert_error(
        &post("{}", "text/plain"),
        415,
        "unsupported_media_type",
        "application/json",
    );
    let with = |field: &str, value: Value| {
        let mut b = booking("colour-and-cut", COMPOSITE_START);
        match field.split_once('.') {
            Some((outer, inner)) => b[outer][inner] = value,
            None => b[field] = value,
        }
        post(&b.to_string(), "application/json; charset=utf-8")
    };
    let unknown = with("colour", json!(true));
    assert_error(&unknown, 400, "bad_request", "unknown field `colour`");
    assert_eq!(unknown.json()["error"]["details"]["field"], "colour");
    assert_error(
        &with("attendee.age", json!(3)),
        400,
        "bad_request",
        "`attendee.age`",
    );
    assert_error(
        &with("host", json!(true)),
        400,
        "bad_request",
        "`host` must be a host id or name",
    );
    assert_error(
        &with("host", json!("zoe")),
        422,
        "invalid_request",
        "\"zoe\" is not a host; give a host id or name: 1 (Anna Colourist), 2 (Ben Stylist)",
    );
    // The planner's refusals name hosts as the catalogue does.
    assert_error(
        &with("hosts", json!({"0": "Chloe"})),
        422,
        "host_not_allowed",
        "host 3 (Chloe Stylist) cannot do segment 0 (\"colour\"); choose one of 1 (Anna Colourist) for it",
    );
    assert_error(
        &with("hosts", json!({"1": false})),
        400,
        "bad_request",
        "`hosts` must be an object of segment index to host id or name",
    );
    assert_error(
        &with("attendee.email", json!("jo")),
        422,
        "invalid_request",
        "not an e-mail",
    );
    assert_error(
        &with("timeZone", json!("Mars/Base")),
        422,
        "invalid_request",
        "IANA",
    );
    assert_error(
        &with("start", json!("2030-03-05T10:00:00")),
        422,
        "invalid_request",
        "offset",
    );
    assert_error(
        &with("service", json!("perm")),
        422,
        "unknown_service",
        "haircut",
    );
    assert_error(
        &with("start", json!("2020-03-05T10:00:00Z")),
        422,
        "start_in_past",
        "not in the future",
    );
    assert_error(
        &with("start", json!("2030-03-05T10:07:00Z")),
        422,
        "start_not_aligned",
        "15-minute",
    );
    assert_error(&with("host", json!(4)), 422, "host_not_allowed", "host 4");
    let no_key = s.send(
        "POST",
        "/api/v2/bookings",
        &s.booking,
        &[],
        Some(&booking("haircut", COMPOSITE_START)),
    );
    assert_error(
        &no_key,
        400,
        "bad_request",
        "Idempotency-Key header is missing",
    );
    let unknown_id = s.get(
        "/api/v2/bookings/4f0c2c4e-0000-4000-8000-000000000000",
        &s.booking,
    );
    assert_error(&unknown_id, 404, "not_found", "no booking or workflow");
    assert_error(
        &s.get("/api/v2/bookings/nope", &s.booking),
        404,
        "not_found",
        "UUIDs",
    );
    assert_error(
        &s.get("/api/v2/bookings?colour=1", &s.booking),
        400,
        "bad_request",
        "unknown query parameter",
    );
    assert_error(
        &s.get("/api/v2/bookings?status=happy", &s.booking),
        422,
        "invalid_request",
        "booked",
    );
    assert_eq!(workflow_count(&s), 0, "nothing was written");
}

#[test]
fn an_oversized_body_is_refused_from_its_length_before_it_is_sent() {
    let s = Served::start(&[]);
    let mut stream = std::net::TcpStream::connect(s.addr).unwrap();
    let head = format!(
        "POST /api/v2/bookings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nIdempotency-Key: k\r\nContent-Type: application/json\r\nContent-Length: 50000000\r\n\r\n",
        s.booking
    );
    // Only the head is sent: an answer proves the body was never awaited.
    stream.write_all(head.as_bytes()).unwrap();
    let r = read_response(&mut stream);
    assert_error(&r, 413, "body_too_large", "at most 65536");
    assert_eq!(r.header("connection"), Some("close"));
    let big = "x".repeat(20 * 1024);
    let r = s.call("GET", "/api/health", &[("X-Big", &big)], b"");
    assert_error(&r, 431, "headers_too_large", "16384 bytes");
    let auth = format!("Bearer {}", s.booking);
    let chunked = s.call(
        "POST",
        "/api/v2/bookings",
        &[("Authorization", &auth), ("Transfer-Encoding", "chunked")],
        b"0\r\n\r\n",
    );
    assert_error(&chunked, 411, "length_required", "Content-Length");
}

#[test]
fn tokens_scopes_and_the_shape_of_refusals() {
    let s = Served::start(&[]);
    let services = s.get("/api/v2/services", &s.booking);
    assert_eq!(services.status, 200);
    let services = services.json();
    let ids: Vec<&str> = services["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["id"].as_str())
        .collect();
    assert!(ids.contains(&"colour-and-cut"), "{ids:?}");
    for auth in [None, Some("Bearer cs_wrong"), Some("Basic dXNlcjpwdw==")] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
        let r = s.call("GET", "/api/v2/services", &headers, b"");
        assert_error(&r, 401, "unauthorized", "Authorization: Bearer");
        assert_eq!(
            r.header("www-authenticate"),
            Some(r#"Bearer realm="calsaga""#)
        );
    }
    let forbidden = s.get("/api/v2/workflows", &s.booking);
    assert_error(&forbidden, 403, "forbidden", "needs an admin token");
    assert_eq!(s.get("/api/v2/workflows", &s.admin).status, 200);
    assert_eq!(
        s.get("/api/v2/services", &s.admin).status,
        200,
        "admin may book too"
    );
    let health = s.call("GET", "/api/health", &[("X-Request-Id", "trace-42")], b"");
    assert_eq!(
        (health.status, health.json()["status"].clone()),
        (200, json!("ok"))
    );
    assert_eq!(health.header("x-request-id"), Some("trace-42"));
    let wrong_method = s.call("PUT", "/api/v2/bookings", &[], b"");
    assert_error(&wrong_method, 405, "method_not_allowed", "use POST or GET");
    assert_eq!(wrong_method.header("allow"), Some("POST, GET"));
    assert_error(
        &s.call("GET", "/nope", &[], b""),
        404,
        "not_found",
        "openapi.json",
    );
    let log = s.log();
    assert!(
        log.contains("trace-42") && log.contains(r#""who":"web""#),
        "access log names tokens: {log}"
    );
    assert!(
        !log.contains(&s.booking) && !log.contains(&s.admin),
        "tokens never logged"
    );
}

#[test]
fn serve_creates_the_first_admin_token_once_and_token_create_prints_only_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("first.db");
    let db = db.to_str().unwrap();
    let (mut child, lines) = spawn_serve(db, dir.path(), &[]);
    let token_line = lines
        .iter()
        .find(|l| l.contains("admin token"))
        .expect("a token line");
    let token = token_line.rsplit(' ').next().unwrap().to_string();
    let addr: std::net::SocketAddr = lines
        .last()
        .unwrap()
        .split("http://")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let auth = format!("Bearer {token}");
    assert_eq!(
        http(
            addr,
            "GET",
            "/api/v2/workflows",
            &[("Authorization", &auth)],
            b""
        )
        .status,
        200
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let (code, out, err) = run(
        &[
            "token", "create", "--db", db, "--name", "ops", "--scope", "root",
        ],
        None,
    );
    assert_eq!(code, 2, "{out}{err}");
    let second = create_token(db, "ops", "booking");
    assert!(second.starts_with("cs_") && second.len() > 40 && second != token);
    let (mut again, lines) = spawn_serve(db, dir.path(), &[]);
    assert!(
        !lines.iter().any(|l| l.contains("admin token")),
        "{lines:?}"
    );
    again.kill().unwrap();
    again.wait().unwrap();
}

#[test]
fn a_taken_slot_is_409_at_once_and_a_refused_booking_is_compensated_with_409() {
    let s = Served::start(&[]);
    assert_eq!(
        book(&s, "a", &booking("colour-and-cut", COMPOSITE_START)).status,
        201
    );
    let twice = book(&s, "b", &booking("colour-and-cut", COMPOSITE_START));
    assert_error(&twice, 409, "slot_unavailable", "choose another time");
    // 03:00 UTC is outside every working day: refused before anything starts.
    let closed = book(&s, "n", &booking("haircut", "2030-03-05T03:00:00Z"));
    assert_error(&closed, 409, "slot_unavailable", "choose another time");
    // Ben's first offered cut is taken in Cal.com after the search (the
    // cached answer still offers it): Cal.com refuses, the saga undoes.
    let offered = starts(&availability(
        &s,
        "service=haircut&start=2030-03-06&end=2030-03-06&timeZone=Europe%2FBerlin&staff=2",
    ));
    let start = &offered[0].0;
    s.take_in_calcom(201, start);
    let mut with_ben = booking("haircut", start);
    with_ben["host"] = json!(2);
    let refused = book(&s, "c", &with_ben);
    assert_error(&refused, 409, "slot_unavailable", "nothing of it is booked");
    let details = &refused.json()["error"]["details"]["booking"];
    assert_eq!(details["status"], "compensated");
    assert!(details["reason"].as_str().is_some_and(|r| !r.is_empty()));
    let replay = book(&s, "c", &with_ben);
    assert_eq!(replay.status, 409, "the stored answer is replayed");
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
}

#[test]
fn without_waiting_a_booking_is_202_with_a_location_to_long_poll() {
    let s = Served::start(&[]);
    let r = s.send(
        "POST",
        "/api/v2/bookings",
        &s.booking,
        &[("Idempotency-Key", "async"), ("Prefer", "respond-async")],
        Some(&booking("haircut", COMPOSITE_START)),
    );
    // A saga quicker than the answer is reported as done (RFC 7240 lets the
    // server answer synchronously); otherwise 202 points at where to poll.
    if r.status == 201 {
        assert_eq!(r.json()["status"], "booked", "{}", r.body);
        return;
    }
    assert_eq!(r.status, 202, "{}", r.body);
    let location = r.header("location").unwrap().to_string();
    let polled = s.send("GET", &location, &s.booking, &[("Prefer", "wait=20")], None);
    assert_eq!(polled.json()["status"], "booked", "{}", polled.body);
}

#[test]
fn reschedule_and_cancel_keep_the_lineage_visible() {
    let s = Served::start(&[]);
    let first = book(&s, "orig", &booking("colour-and-cut", COMPOSITE_START)).json();
    let id = first["id"].as_str().unwrap().to_string();
    let path = format!("/api/v2/bookings/{id}/reschedule");
    let new_time = json!({"start": "2030-03-06T10:00:00Z"});
    let no_key = s.send("POST", &path, &s.booking, &[], Some(&new_time));
    assert_error(&no_key, 400, "bad_request", "Idempotency-Key");
    let moved = s.send(
        "POST",
        &path,
        &s.booking,
        &[("Idempotency-Key", "mv")],
        Some(&new_time),
    );
    assert_eq!(moved.status, 201, "{}", moved.body);
    let moved = moved.json();
    assert_eq!(
        (moved["status"].as_str(), moved["replaces"].as_str()),
        (Some("booked"), Some(id.as_str()))
    );
    assert_eq!(moved["start"], "2030-03-06T11:00:00+01:00");
    let old = s.get(&format!("/api/v2/bookings/{id}"), &s.booking).json();
    assert_eq!(old["status"], "rescheduled");
    assert_eq!(old["replacedBy"], moved["id"]);
    assert!(
        old["segments"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["calcomStatus"] == "cancelled")
    );
    let again = s.send(
        "POST",
        &path,
        &s.booking,
        &[("Idempotency-Key", "mv2")],
        Some(&json!({"start": "2030-03-07T10:00:00Z"})),
    );
    assert_error(&again, 409, "invalid_state", "reschedule");

    let new_id = moved["id"].as_str().unwrap();
    let cancel = format!("/api/v2/bookings/{new_id}/cancel");
    let done = s.send(
        "POST",
        &cancel,
        &s.booking,
        &[],
        Some(&json!({"reason": "flu"})),
    );
    assert_eq!(done.status, 200, "{}", done.body);
    let done = done.json();
    assert_eq!(done["status"], "cancelled");
    assert!(done["cancelledBy"].is_string());
    let twice = s.send("POST", &cancel, &s.booking, &[], None);
    assert_eq!(
        (twice.status, twice.json()["cancelledBy"].clone()),
        (200, done["cancelledBy"].clone())
    );
    let bad = s.send("POST", &cancel, &s.booking, &[], Some(&json!({"why": "x"})));
    assert_error(&bad, 400, "bad_request", "unknown field `why`");
    let listed = s
        .get("/api/v2/bookings?status=cancelled", &s.booking)
        .json();
    assert_eq!(listed["bookings"].as_array().unwrap().len(), 1);
}

fn hosts_of(booking: &Value) -> Vec<u64> {
    booking["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["host"].as_u64().unwrap())
        .collect()
}

/// "Can we push it back a bit?" on a Monday (Ben is off), a Tuesday and a
/// Saturday (Chloe is off): the first start the search offers is booked as
/// offered, then moved by 15 minutes, into time that overlaps its own
/// segments. Every segment keeps its stylist.
#[test]
fn a_booking_pushed_back_fifteen_minutes_keeps_its_stylists_on_any_day() {
    let s = Served::start(&[]);
    for day in ["2030-03-04", "2030-03-05", "2030-03-09"] {
        let query = format!("service=colour-and-cut&start={day}&end={day}&timeZone=Europe/Berlin");
        let (start, offered) = starts(&availability(&s, &query)).remove(0);
        let first = book(
            &s,
            &format!("push-{day}"),
            &booking("colour-and-cut", &start),
        );
        assert_eq!(first.status, 201, "{}", first.body);
        let first = first.json();
        assert_eq!(hosts_of(&first), offered, "{day}: booked as offered");
        let id = first["id"].as_str().unwrap();
        let later =
            chrono::DateTime::parse_from_rfc3339(&start).unwrap() + chrono::Duration::minutes(15);
        let pushed = s.send(
            "POST",
            &format!("/api/v2/bookings/{id}/reschedule"),
            &s.booking,
            &[("Idempotency-Key", &format!("pushed-{day}"))],
            Some(&json!({"start": later.to_rfc3339()})),
        );
        assert_eq!(pushed.status, 201, "{day}: {}", pushed.body);
        let pushed = pushed.json();
        assert_eq!(pushed["status"], "booked", "{day}: {pushed}");
        assert_eq!(hosts_of(&pushed), offered, "{day}: the same people");
        let old = s.get(&format!("/api/v2/bookings/{id}"), &s.booking).json();
        assert_eq!(old["status"], "rescheduled", "{day}: {old}");
        assert_eq!(old["replacedBy"], pushed["id"]);
        assert!(
            old["segments"]
                .as_array()
                .unwrap()
                .iter()
                .all(|g| g["calcomStatus"] == "rescheduled"),
            "{day}: Cal.com moved each original: {old}"
        );
    }
}

#[test]
fn a_hold_is_confirmed_or_released_and_both_are_safe_to_repeat() {
    let s = Served::start(&[]);
    let mut body = booking("haircut", COMPOSITE_START);
    body["holdMinutes"] = json!(5);
    let held = s.send("POST", "/api/v2/holds", &s.booking, &[], Some(&body));
    assert_eq!(held.status, 201, "{}", held.body);
    let held = held.json();
    assert_eq!(held["status"], "held");
    assert!(held["expiresAt"].is_string());
    let id = held["id"].as_str().unwrap();
    let confirm = format!("/api/v2/holds/{id}/confirm");
    for _ in 0..2 {
        let r = s.send("POST", &confirm, &s.booking, &[], None);
        assert_eq!(
            (r.status, r.json()["status"].clone()),
            (200, json!("booked")),
            "{}",
            r.body
        );
    }
    let release_booked = s.send(
        "DELETE",
        &format!("/api/v2/holds/{id}"),
        &s.booking,
        &[],
        None,
    );
    assert_error(&release_booked, 409, "hold_confirmed", "cancel the booking");

    body["start"] = json!("2030-03-06T10:00:00Z");
    body["holdMinutes"] = json!(0);
    let bad = s.send("POST", "/api/v2/holds", &s.booking, &[], Some(&body));
    assert_error(&bad, 422, "invalid_request", "holdMinutes");
    body["holdMinutes"] = json!(10);
    let other = s
        .send("POST", "/api/v2/holds", &s.booking, &[], Some(&body))
        .json();
    let release = format!("/api/v2/holds/{}", other["id"].as_str().unwrap());
    for _ in 0..2 {
        let r = s.send("DELETE", &release, &s.booking, &[], None);
        assert_eq!(
            (r.status, r.json()["status"].clone()),
            (200, json!("compensated")),
            "{}",
            r.body
        );
    }
    let not_a_hold = s.send(
        "POST",
        "/api/v2/holds/00000000-0000-4000-8000-000000000000/confirm",
        &s.booking,
        &[],
        None,
    );
    assert_eq!(not_a_hold.status, 404);
}

#[test]
fn admins_list_workflows_by_state_and_read_a_timeline() {
    let s = Served::start(&[]);
    let id = book(&s, "k", &booking("haircut", COMPOSITE_START)).json()["id"].clone();
    let booked = s.get("/api/v2/workflows?state=booked", &s.admin).json();
    assert_eq!(booked["workflows"][0]["id"], id);
    assert_eq!(
        s.get("/api/v2/workflows?state=compensated", &s.admin)
            .json()["workflows"],
        json!([])
    );
    let one = s.get(
        &format!("/api/v2/workflows/{}", id.as_str().unwrap()),
        &s.admin,
    );
    assert_eq!(one.status, 200, "{}", one.body);
    let kinds: Vec<String> = one.json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds.first().map(String::as_str), Some("requested"));
    assert_eq!(kinds.last().map(String::as_str), Some("booked"));
    assert!(kinds.contains(&"segment_booked".to_string()), "{kinds:?}");
}

#[test]
fn a_thousand_concurrent_posts_with_one_key_start_exactly_one_saga() {
    let s = Served::start(&["--rate-limit-burst", "5000"]);
    let body = booking("colour-and-cut", COMPOSITE_START).to_string();
    let auth = format!("Bearer {}", s.booking);
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(1000));
    let threads: Vec<_> = (0..1000)
        .map(|_| {
            let (barrier, body, auth, addr) = (barrier.clone(), body.clone(), auth.clone(), s.addr);
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    let headers = [
                        ("Authorization", auth.as_str()),
                        ("Idempotency-Key", "one-key"),
                        ("Content-Type", "application/json"),
                    ];
                    barrier.wait();
                    http(addr, "POST", "/api/v2/bookings", &headers, body.as_bytes())
                })
                .unwrap()
        })
        .collect();
    let answers: Vec<Resp> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let mut ids = std::collections::BTreeSet::new();
    for r in &answers {
        match r.status {
            201 => {
                ids.insert(r.json()["id"].as_str().unwrap().to_string());
            }
            409 => assert_eq!(r.code(), "request_in_progress", "{}", r.body),
            other => panic!("unexpected {other}: {}", r.body),
        }
    }
    assert_eq!(ids.len(), 1, "every success names the one booking");
    assert_eq!(workflow_count(&s), 1, "exactly one saga");
}

#[test]
fn ten_times_the_quota_gets_429_with_retry_after_per_token_and_per_address() {
    let s = Served::start(&["--rate-limit-per-min", "60", "--rate-limit-burst", "5"]);
    let statuses: Vec<Resp> = (0..50)
        .map(|_| s.get("/api/v2/services", &s.booking))
        .collect();
    assert!(statuses[..5].iter().all(|r| r.status == 200));
    let limited: Vec<&Resp> = statuses.iter().filter(|r| r.status == 429).collect();
    assert!(limited.len() >= 44, "{} of 50 limited", limited.len());
    for r in &limited {
        assert_error(r, 429, "rate_limited", "60 per minute");
        let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry), "{retry}");
    }
    assert_eq!(
        s.get("/api/v2/services", &s.admin).status,
        200,
        "another token has its own bucket"
    );
    let guesses: Vec<u16> = (0..50)
        .map(|_| s.get("/api/v2/services", "cs_guess").status)
        .collect();
    assert_eq!(&guesses[..5], &[401; 5]);
    assert!(
        guesses[5..].iter().filter(|s| **s == 429).count() >= 44,
        "{guesses:?}"
    );
    assert_eq!(
        s.call("GET", "/api/health", &[], b"").status,
        429,
        "the address is spent"
    );
}

// ------------------------------------------------------------- webhooks

const SECRET: &str = "whsec_new";
const OLD_SECRET: &str = "whsec_old";

fn signature(secret: &str, body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn deliver(s: &Served, signature: Option<&str>, body: &[u8]) -> Resp {
    let mut headers = vec![("Content-Type", "application/json")];
    headers.extend(signature.map(|sig| ("X-Cal-Signature-256", sig)));
    s.call("POST", "/webhooks/calcom", &headers, body)
}

/// A BOOKING_CANCELLED delivery for `uid`, created `age_s` seconds ago.
fn cancelled_webhook(uid: &str, age_s: i64) -> Vec<u8> {
    let created = chrono::Utc::now() - chrono::Duration::seconds(age_s);
    json!({
        "triggerEvent": "BOOKING_CANCELLED",
        "createdAt": created.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "payload": {"uid": uid, "startTime": "2030-03-05T10:00:00Z", "endTime": "2030-03-05T10:30:00Z",
                    "status": "CANCELLED", "cancellationReason": "staff ill", "eventTypeId": 101},
    })
    .to_string()
    .into_bytes()
}

/// Long-polls booking `id` (ETag + `Prefer: wait`) until `done` holds.
fn await_booking(s: &Served, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let path = format!("/api/v2/bookings/{id}");
    let mut r = s.get(&path, &s.booking);
    for _ in 0..50 {
        let body = r.json();
        if done(&body) {
            return body;
        }
        let tag = r.header("etag").expect("an ETag").to_string();
        let headers = [("If-None-Match", tag.as_str()), ("Prefer", "wait=30")];
        r = s.send("GET", &path, &s.booking, &headers, None);
        assert_ne!(r.status, 304, "no change within 30 s: {body}");
    }
    panic!("booking {id} kept changing without reaching the expected state")
}

/// The server's log once it holds `count` lines with `needle`: the child
/// writes its log file on its own schedule, so this polls with a deadline.
fn log_with(s: &Served, needle: &str, count: usize) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let log = s.log();
        if log.matches(needle).count() >= count || std::time::Instant::now() > deadline {
            return log;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The Cal.com uids of a booking's segments.
fn uids(booking: &Value) -> Vec<String> {
    booking["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["calcomUid"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_webhook_corpus_only_genuine_fresh_first_deliveries_are_processed() {
    let s = Served::start(&[
        "--webhook-secret",
        SECRET,
        "--webhook-secret-previous",
        OLD_SECRET,
        "--broken-policy",
        "flag",
    ]);
    let booked = book(&s, "k", &booking("colour-and-cut", COMPOSITE_START)).json();
    let id = booked["id"].as_str().unwrap();
    let uid = uids(&booked);
    let valid = cancelled_webhook(&uid[0], 0);
    let good = signature(SECRET, &valid);
    assert_eq!(
        deliver(&s, Some(&good), &valid).json()["status"],
        "accepted"
    );
    assert_eq!(
        deliver(&s, Some(&good), &valid).json()["status"],
        "duplicate",
        "a replay is stored once"
    );

    let mut flipped = valid.clone();
    flipped[20] ^= 0x01;
    let stale = cancelled_webhook(&uid[0], 301);
    let not_json = b"triggerEvent=BOOKING_CANCELLED".to_vec();
    let refused = [
        deliver(&s, Some(&good), &flipped),
        deliver(&s, Some(&good[..40]), &valid),
        deliver(&s, Some(""), &valid),
        deliver(&s, Some(&good.to_ascii_uppercase()), &valid),
        deliver(&s, Some("no-secret-provided"), &valid),
        deliver(&s, None, &valid),
        deliver(&s, Some(&signature("guess", &valid)), &valid),
        deliver(&s, Some(&signature(SECRET, &stale)), &stale),
        deliver(&s, Some(&signature(SECRET, &not_json)), &not_json),
    ];
    for r in &refused {
        assert_eq!(
            (r.status, r.body.as_str()),
            (401, refused[0].body.as_str()),
            "one identical 401"
        );
    }
    assert_eq!(refused[0].code(), "webhook_rejected");
    let huge = vec![b' '; 300 * 1024];
    assert_error(
        &deliver(&s, Some(&signature(SECRET, &huge)), &huge),
        413,
        "body_too_large",
        "at most",
    );

    let rotated = cancelled_webhook(&uid[1], 1);
    let accepted = deliver(&s, Some(&signature(OLD_SECRET, &rotated)), &rotated);
    assert_eq!(
        accepted.json()["status"],
        "accepted",
        "the previous secret still works"
    );

    let flagged = await_booking(&s, id, |b| {
        // Each flag and its segment's mirror row may land in separate commits.
        b["flags"].as_array().is_some_and(|f| f.len() == 2)
            && b["segments"]
                .as_array()
                .is_some_and(|g| g.iter().all(|s| s["calcomStatus"] == "cancelled"))
    });
    assert_eq!(flagged["status"], "broken");
    assert!(
        flagged["flags"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["policy"] == "flag")
    );
    assert!(
        flagged["segments"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["calcomStatus"] == "cancelled")
    );
    // The flags are committed just before the line saying so is written.
    let log = log_with(&s, "webhook processed", 2);
    assert_eq!(log.matches("webhook stored").count(), 2, "{log}");
    assert_eq!(log.matches("webhook processed").count(), 2);
    assert_eq!(log.matches("webhook refused").count(), 9);
    assert!(
        log.contains("the signature matches no configured secret")
            && log.contains("outside the 300 s window")
    );
}

/// Registers calsaga's webhook route at the embedded mock, as an admin would
/// in Cal.com's settings.
fn subscribe(s: &Served) -> std::net::SocketAddr {
    let mock: std::net::SocketAddr = s.mock_url.trim_start_matches("http://").parse().unwrap();
    let body = json!({
        "subscriberUrl": format!("http://{}/webhooks/calcom", s.addr),
        "triggers": ["BOOKING_CREATED", "BOOKING_CANCELLED", "BOOKING_RESCHEDULED"],
        "active": true,
        "secret": SECRET,
    })
    .to_string();
    let r = http(
        mock,
        "POST",
        "/v2/webhooks",
        &calcom_headers(),
        body.as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    mock
}

fn calcom_headers() -> Vec<(&'static str, &'static str)> {
    vec![
        ("Authorization", "Bearer cal_test_calsaga_mock"),
        ("cal-api-version", "2024-08-13"),
        ("Content-Type", "application/json"),
    ]
}

#[test]
fn a_composite_broken_in_cal_com_is_repaired_by_the_policy_and_a_move_is_flagged() {
    let s = Served::start(&["--webhook-secret", SECRET]);
    let mock = subscribe(&s);
    let booked = book(&s, "k", &booking("colour-and-cut", COMPOSITE_START)).json();
    let id = booked["id"].as_str().unwrap();
    let uid = uids(&booked);
    // Staff cancel the cut in Cal.com itself.
    let cancel = http(
        mock,
        "POST",
        &format!("/v2/bookings/{}/cancel", uid[1]),
        &calcom_headers(),
        br#"{"cancellationReason":"stylist ill"}"#,
    );
    assert_eq!(cancel.status, 200, "{}", cancel.body);
    let repaired = await_booking(&s, id, |b| b["status"] == "cancelled");
    assert_eq!(repaired["flags"][0]["policy"], "cancel-rest");
    assert!(
        repaired["flags"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("stylist ill")
    );
    assert_eq!(
        repaired["cancelledBy"],
        repaired["flags"][0]["changeWorkflow"]
    );
    let colour = http(
        mock,
        "GET",
        &format!("/v2/bookings/{}", uid[0]),
        &calcom_headers(),
        b"",
    );
    assert_eq!(
        colour.json()["data"]["status"],
        "cancelled",
        "the rest is cancelled in Cal.com"
    );

    let other = book(&s, "k2", &booking("colour-and-cut", "2030-03-06T10:00:00Z")).json();
    let other_id = other["id"].as_str().unwrap();
    let moved = http(
        mock,
        "POST",
        &format!("/v2/bookings/{}/reschedule", uids(&other)[0]),
        &calcom_headers(),
        br#"{"start":"2030-03-06T13:00:00Z","reschedulingReason":"late"}"#,
    );
    assert_eq!(moved.status, 201, "{}", moved.body);
    let flagged = await_booking(&s, other_id, |b| b["status"] == "broken");
    assert_eq!(flagged["flags"][0]["trigger"], "BOOKING_RESCHEDULED");
    assert_eq!(flagged["segments"][0]["calcomStatus"], "rescheduled");
    assert_eq!(
        flagged["segments"][1]["calcomStatus"], "accepted",
        "a move is left for an admin"
    );
}

// ---------------------------------------------------------- availability

fn availability(s: &Served, query: &str) -> Resp {
    s.get(&format!("/api/v2/availability?{query}"), &s.booking)
}

/// (start, host of each segment) of every slot.
fn starts(r: &Resp) -> Vec<(String, Vec<u64>)> {
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let hosts = s["segments"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| g["host"].as_u64().unwrap())
                .collect();
            (s["start"].as_str().unwrap().to_string(), hosts)
        })
        .collect()
}

#[test]
fn composite_availability_intersects_segments_across_time_zones_and_follows_bookings() {
    let s = Served::start(&[]);
    let berlin = "service=colour-and-cut&start=2030-03-05&end=2030-03-05&timeZone=Europe%2FBerlin";
    let first = availability(&s, berlin);
    let all = starts(&first);
    // Anna colours from 09:00 Berlin; the cut 70 min later is Chloe's (from
    // 09:00 London) because Ben has a walk-in until 11:00 Berlin; Ben's day
    // ends 19:00 Berlin, so the last start is 17:00.
    assert_eq!(
        all.first().unwrap(),
        &("2030-03-05T09:00:00+01:00".to_string(), vec![1, 3])
    );
    assert!(
        all.contains(&("2030-03-05T10:00:00+01:00".to_string(), vec![1, 2])),
        "Ben from 11:10: {all:?}"
    );
    assert_eq!(all.last().unwrap().0, "2030-03-05T17:00:00+01:00");
    let plan = &first.json()["slots"][0]["segments"][1];
    assert_eq!(
        (plan["start"].as_str(), plan["end"].as_str()),
        (
            Some("2030-03-05T10:10:00+01:00"),
            Some("2030-03-05T10:55:00+01:00")
        )
    );
    assert_eq!(first.json()["cached"], false);
    assert_eq!(
        availability(&s, berlin).json()["cached"],
        true,
        "a repeat comes from the cache"
    );
    assert_eq!(
        availability(&s, &format!("{berlin}&fresh=true")).json()["cached"],
        false
    );

    let new_york = starts(&availability(
        &s,
        "service=colour-and-cut&start=2030-03-05&end=2030-03-05&timeZone=America%2FNew_York",
    ));
    assert_eq!(
        new_york.first().unwrap().0,
        "2030-03-05T03:00:00-05:00",
        "the same instant in New York"
    );

    assert_eq!(
        book(&s, "k", &booking("colour-and-cut", COMPOSITE_START)).status,
        201
    );
    let after = availability(&s, berlin);
    assert_eq!(
        after.json()["cached"],
        false,
        "our booking flushed the cache"
    );
    let after = starts(&after);
    assert!(
        !after.iter().any(|(t, _)| t == "2030-03-05T11:00:00+01:00"),
        "the booked start is gone"
    );
    // 10:30 Berlin: colour ends as ours starts; the cut overlaps Ben's, so Chloe.
    assert!(
        after.contains(&("2030-03-05T10:30:00+01:00".to_string(), vec![1, 3])),
        "{after:?}"
    );
    let ben = starts(&availability(&s, &format!("{berlin}&staff=2")));
    assert!(ben.iter().all(|(_, hosts)| hosts == &vec![1, 2]));
    assert!(!ben.iter().any(|(t, _)| t == "2030-03-05T10:30:00+01:00"));
}

#[test]
fn a_booking_makes_only_the_searches_around_it_cold_on_any_day() {
    let s = Served::start(&[]);
    let day =
        |d: &str| format!("service=colour-and-cut&start={d}&end={d}&timeZone=Europe%2FBerlin");
    // A search holds Cal.com's slots for its day and the next (a service
    // may run past midnight); a booking forgets those within a day of it.
    // The kept day before and after the booked one, in two weeks.
    for (kept, booked) in [("2030-03-05", "2030-03-08"), ("2030-03-14", "2030-03-12")] {
        let (kept, booked) = (day(kept), day(booked));
        let before = starts(&availability(&s, &kept));
        let offered = starts(&availability(&s, &booked));
        let start = offered.first().expect("a free start").0.clone();
        let key = format!("cold-{start}");
        assert_eq!(
            book(&s, &key, &booking("colour-and-cut", &start)).status,
            201
        );

        let again = availability(&s, &kept);
        assert_eq!(
            again.json()["cached"],
            true,
            "a booking days away keeps {kept} warm"
        );
        assert_eq!(starts(&again), before);
        let after = availability(&s, &booked);
        assert_eq!(
            after.json()["cached"],
            false,
            "the booked day is read again"
        );
        assert!(
            !starts(&after).iter().any(|(t, _)| *t == start),
            "the booked start {start} is gone"
        );
    }
}

#[test]
fn availability_follows_dst_and_refuses_bad_ranges() {
    let s = Served::start(&[]);
    // US DST starts Sunday 2030-03-10: Dev starts 08:00 local either side.
    let dev = starts(&availability(
        &s,
        "service=haircut&start=2030-03-08&end=2030-03-11&timeZone=America%2FNew_York&staff=4",
    ));
    let firsts: Vec<&str> = dev
        .iter()
        .map(|(t, _)| t.as_str())
        .filter(|t| t.ends_with("T08:00:00-05:00") || t.ends_with("T08:00:00-04:00"))
        .collect();
    assert_eq!(
        firsts,
        ["2030-03-08T08:00:00-05:00", "2030-03-11T08:00:00-04:00"]
    );
    assert!(dev.iter().all(|(_, hosts)| hosts == &vec![4]));

    let bad = |query: &str, status: u16, code: &str, says: &str| {
        assert_error(&availability(&s, query), status, code, says);
    };
    let q = "service=haircut&timeZone=Europe%2FBerlin";
    bad(
        &format!("{q}&start=2030-03-01&end=2030-04-01"),
        422,
        "range_too_large",
        "at most 31 days",
    );
    bad(
        &format!("{q}&start=2030-03-02&end=2030-03-01"),
        422,
        "invalid_request",
        "before it starts",
    );
    bad(
        &format!("{q}&start=2020-03-02&end=2020-03-03"),
        422,
        "invalid_request",
        "is in the past (today is",
    );
    bad(
        &format!("{q}&start=05.03.2030&end=2030-03-05"),
        422,
        "invalid_request",
        "YYYY-MM-DD",
    );
    bad(
        "service=haircut&start=2030-03-05&end=2030-03-05&timeZone=Mars",
        422,
        "invalid_request",
        "IANA",
    );
    bad(
        "start=2030-03-05&end=2030-03-05&timeZone=UTC",
        400,
        "bad_request",
        "\"service\" is missing",
    );
    bad(
        "service=perm&start=2030-03-05&end=2030-03-05&timeZone=UTC",
        422,
        "unknown_service",
        "haircut",
    );
    bad(
        "service=colour-and-cut&start=2030-03-05&end=2030-03-05&timeZone=UTC&staff=4",
        422,
        "host_not_allowed",
        "host 4 does no part",
    );
}

#[test]
fn a_batch_books_each_item_as_its_own_saga_and_replays_by_its_key() {
    let s = Served::start(&[]);
    let batch = |key: &str, items: Vec<Value>| {
        s.send(
            "POST",
            "/api/v2/bookings/batch",
            &s.booking,
            &[("Idempotency-Key", key)],
            Some(&json!({ "bookings": items })),
        )
    };
    let items = vec![
        booking("colour-and-cut", COMPOSITE_START),
        booking("haircut", "2030-03-06T10:00:00Z"),
        booking("colour-and-cut", COMPOSITE_START),
    ];
    let first = batch("batch-1", items.clone());
    assert_eq!(first.status, 200, "{}", first.body);
    let results = first.json()["results"].clone();
    let statuses: Vec<u64> = results
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [201, 201, 409]);
    assert_eq!(results[2]["body"]["error"]["code"], "slot_unavailable");
    let again = batch("batch-1", items).json()["results"].clone();
    assert_eq!(
        again[0]["body"]["id"], results[0]["body"]["id"],
        "a retried batch replays"
    );
    assert_eq!(again[1]["body"]["id"], results[1]["body"]["id"]);
    assert_eq!(workflow_count(&s), 2);
    let mut pages = Vec::new();
    let mut next = String::new();
    for _ in 0..4 {
        let page = s
            .get(&format!("/api/v2/bookings?limit=1{next}"), &s.booking)
            .json();
        pages.extend(
            page["bookings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["start"].clone()),
        );
        match page["nextCursor"].as_str() {
            Some(cursor) => next = format!("&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(
        pages,
        [
            json!("2030-03-05T11:00:00+01:00"),
            json!("2030-03-06T11:00:00+01:00")
        ],
        "by start, page by page"
    );

    let mut bad = booking("haircut", "2030-03-07T10:00:00Z");
    bad["attendee"]["email"] = json!("nope");
    let refused = batch(
        "batch-2",
        vec![booking("haircut", "2030-03-07T11:00:00Z"), bad],
    );
    assert_error(
        &refused,
        422,
        "invalid_request",
        "`bookings[1].attendee.email`",
    );
    let too_many = batch(
        "batch-3",
        vec![booking("haircut", "2030-03-07T11:00:00Z"); 51],
    );
    assert_error(&too_many, 422, "invalid_request", "1 to 50 bookings");
    assert_eq!(workflow_count(&s), 2, "a refused batch writes nothing");
}

#[test]
fn a_key_survives_kill_9_and_never_starts_a_second_saga() {
    let mut s = Served::start(&[]);
    let body = booking("haircut", COMPOSITE_START);
    let first = book(&s, "durable", &body);
    assert_eq!(first.status, 201, "{}", first.body);
    let started = s.send(
        "POST",
        "/api/v2/bookings",
        &s.booking,
        &[
            ("Idempotency-Key", "in-flight"),
            ("Prefer", "respond-async"),
        ],
        Some(&booking("haircut", "2030-03-06T10:00:00Z")),
    );
    // respond-async may still be answered at once when the saga is that quick.
    assert!(matches!(started.status, 201 | 202), "{}", started.body);
    s.kill_and_restart();
    let replay = book(&s, "durable", &body);
    assert_eq!(
        (replay.status, replay.json()["id"].clone()),
        (201, first.json()["id"].clone())
    );
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    let retried = s.send(
        "POST",
        "/api/v2/bookings",
        &s.booking,
        &[("Idempotency-Key", "in-flight"), ("Prefer", "wait=20")],
        Some(&booking("haircut", "2030-03-06T10:00:00Z")),
    );
    assert!(matches!(retried.status, 201 | 409), "{}", retried.body);
    assert_eq!(workflow_count(&s), 2, "one saga per key across the crash");
}

/// A search whose Cal.com slot calls do not come back in time (here: slow;
/// in production usually the per-minute request budget spent) answers 503
/// with Retry-After after 10 s instead of holding an HTTP worker for minutes.
#[test]
fn a_search_cal_com_cannot_answer_in_time_is_a_quick_503_with_retry_after() {
    let s = Served::start(&[]);
    let mock: std::net::SocketAddr = s.mock_url.trim_start_matches("http://").parse().unwrap();
    let rule = json!({"route": "GET /v2/slots", "latencyMs": 15_000}).to_string();
    let r = http(
        mock,
        "POST",
        "/_mock/faults",
        &[("Content-Type", "application/json")],
        rule.as_bytes(),
    );
    assert!(r.status < 300, "{}", r.body);
    let r = availability(
        &s,
        "service=haircut&start=2030-03-05&end=2030-03-05&timeZone=Europe%2FBerlin&fresh=true",
    );
    assert_error(&r, 503, "calcom_unavailable", "within 10 s");
    assert_eq!(r.header("retry-after"), Some("5"), "{}", r.body);
}

/// The segments of a slot or booking as a front end shows them: start, end,
/// host id and host name of each.
fn shown_segments(v: &Value) -> Vec<(String, String, u64, String)> {
    v["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let text = |k: &str| {
                g[k].as_str()
                    .unwrap_or_else(|| panic!("{k} in {g}"))
                    .to_string()
            };
            (
                text("start"),
                text("end"),
                g["host"].as_u64().unwrap(),
                text("hostName"),
            )
        })
        .collect()
}

/// A client in New York asks for Chloe by first name on a Monday, a
/// Wednesday and a Friday, books the first start offered by naming her, and
/// reads the booking back exactly as it was offered: the same local times in
/// its own zone, the same hosts, by name.
#[test]
fn hosts_are_named_asked_for_by_name_and_bookings_read_in_the_clients_zone_on_any_day() {
    let s = Served::start(&[]);
    let services = s.get("/api/v2/services", &s.booking).json();
    let cut = services["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == "colour-and-cut")
        .expect("colour-and-cut")["segments"][1]
        .clone();
    assert_eq!(
        cut["hosts"][1],
        json!({"host": 3, "hostName": "Chloe Stylist", "eventTypeId": 301})
    );
    assert_eq!(cut["staff"], cut["hosts"], "the older name still answers");
    for day in ["2030-03-04", "2030-03-06", "2030-03-08"] {
        let query =
            format!("service=colour-and-cut&start={day}&end={day}&timeZone=America%2FNew_York");
        let by_name = availability(&s, &format!("{query}&host=chloe"));
        assert_eq!(by_name.status, 200, "{}", by_name.body);
        let slots = by_name.json()["slots"].clone();
        let first = &slots[0];
        let offered = shown_segments(first);
        assert!(
            first["start"].as_str().unwrap().ends_with("-05:00"),
            "{first}"
        );
        assert_eq!(offered[0].2, 1, "{day}: colour by Anna");
        assert_eq!(
            (offered[1].2, offered[1].3.as_str()),
            (3, "Chloe Stylist"),
            "{day}"
        );
        let by_id = availability(&s, &format!("{query}&host=3")).json();
        let by_old_name = availability(&s, &format!("{query}&staff=Chloe%20Stylist")).json();
        assert_eq!((&by_id["slots"], &by_old_name["slots"]), (&slots, &slots));

        let mut body = booking("colour-and-cut", first["start"].as_str().unwrap());
        body["timeZone"] = json!("America/New_York");
        body["hosts"] = json!({"1": "Chloe"});
        let booked = book(&s, &format!("named-{day}"), &body);
        assert_eq!(booked.status, 201, "{day}: {}", booked.body);
        let booked = booked.json();
        assert_eq!(booked["start"], first["start"], "{day}");
        assert_eq!(shown_segments(&booked), offered, "{day}: booked as offered");
        let id = booked["id"].as_str().unwrap();
        let read = s.get(&format!("/api/v2/bookings/{id}"), &s.booking).json();
        assert_eq!(shown_segments(&read), offered, "{day}: read back the same");
    }
    assert_error(
        &availability(
            &s,
            "service=haircut&start=2030-03-05&end=2030-03-05&timeZone=UTC&host=zoe",
        ),
        422,
        "invalid_request",
        "\"zoe\" is not a host; give a host id or name: 1 (Anna Colourist), 2 (Ben Stylist), 3 (Chloe Stylist), 4 (Dev Barber)",
    );
    assert_error(
        &availability(
            &s,
            "service=haircut&start=2030-03-05&end=2030-03-05&timeZone=UTC&host=3&staff=3",
        ),
        422,
        "invalid_request",
        "send only `host`",
    );
}
