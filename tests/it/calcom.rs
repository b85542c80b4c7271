//! The Cal.com client against the embedded mock over real HTTP on 127.0.0.1:
//! every `Client` method, every error class a caller must tell apart (driven
//! by mock faults), and webhook delivery with its signature checked
//! independently. Tests go through one door, `Setup`/`World`, and never
//! sleep: the mock and the client share one `SimClock`, so rate-limit waits
//! and backoffs cost no real time and can be asserted exactly.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use calsaga::calcom::wire::{
    Booking, BookingFilter, BookingStatus, CancelBooking, CreateBooking, CreateEventType,
    CreateWebhook, META_ATTEMPT, META_SEGMENT, META_WORKFLOW, NewAttendee, RescheduleBooking,
    ReserveSlot, SIGNATURE_HEADER, SlotsQuery, TRIGGER_CREATED, UpdateEventType, UpdateWebhook,
};
use calsaga::calcom::{
    CalcomApi, CalcomError, CallObserver, CallOutcome, CallRecord, Client, ClientConfig,
    HttpLimits, HttpPoster,
};
use calsaga::clock::SimClock;
use calsaga::mock::{ActiveRule, FaultRule, Fixture, Mock, MockConfig, MockServer};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

const KEY: &str = "cal_test_calsaga_mock";
const START: &str = "2030-03-01T08:00:00Z";
/// The longest any test waits for something another thread does.
const WAIT: Duration = Duration::from_secs(10);
/// A fixture booking: Ben's cut, 2030-03-05 09:00-10:00 UTC.
const BEN_CUT: &str = "salonBen0305cut0000001";
const BERLIN: &str = "Europe/Berlin";
const SLOT_TAKEN: &str = "User either already has booking at this time or is not available";

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("test times are valid")
        .to_utc()
}

// ------------------------------------------------------------- the door

/// How one test's world differs from the healthy salon.
struct Setup {
    fixture: Fixture,
    mock: MockConfig,
    /// `base_url` is filled in once the server listens.
    client: ClientConfig,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            fixture: Fixture::salon(),
            mock: MockConfig::default(),
            client: ClientConfig {
                api_key: Some(KEY.into()),
                ..ClientConfig::default()
            },
        }
    }
}

/// The salon with its rate limit lowered, to reach it in a few calls.
fn salon_limited_to(per_minute: u32) -> Fixture {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/mock/salon.json");
    let mut json: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    json["rateLimitPerMinute"] = json!(per_minute);
    Fixture::parse(&json.to_string(), &path).expect("the edited salon is valid")
}

/// A running mock on 127.0.0.1:0 and a client talking HTTP to it; both read
/// time from `clock`.
struct World {
    clock: Arc<SimClock>,
    mock: Arc<Mock>,
    server: MockServer,
    client: Arc<Client>,
    calls: Arc<Calls>,
}

impl Setup {
    fn start(self) -> World {
        let clock = Arc::new(SimClock::new(t(START)));
        let mock = Arc::new(Mock::new(self.fixture, clock.clone(), self.mock).unwrap());
        let server = MockServer::start(mock.clone(), "127.0.0.1:0".parse().unwrap()).unwrap();
        let calls = Arc::new(Calls::default());
        let config = ClientConfig {
            base_url: server.url(),
            ..self.client
        };
        let client = client(config, &clock).with_observer(calls.clone());
        World {
            clock,
            mock,
            server,
            client: Arc::new(client),
            calls,
        }
    }
}

fn client(config: ClientConfig, clock: &Arc<SimClock>) -> Client {
    Client::http(config, clock.clone()).expect("a valid base URL")
}

/// Every attempt the client reports.
#[derive(Default)]
struct Calls(Mutex<Vec<CallRecord>>);

impl CallObserver for Calls {
    fn record(&self, call: &CallRecord) {
        self.0.lock().unwrap().push(call.clone());
    }
}

impl Calls {
    fn outcomes(&self) -> Vec<CallOutcome> {
        self.0.lock().unwrap().iter().map(|c| c.outcome).collect()
    }
}

impl World {
    fn new() -> World {
        Setup::default().start()
    }

    /// Another client of the same mock, configured by `edit`.
    fn client_with(&self, edit: impl FnOnce(&mut ClientConfig)) -> Client {
        let mut config = ClientConfig {
            base_url: self.server.url(),
            api_key: Some(KEY.into()),
            ..ClientConfig::default()
        };
        edit(&mut config);
        client(config, &self.clock)
    }

    async fn book(&self, event_type_id: u64, start: &str) -> Result<Booking, CalcomError> {
        self.client
            .create_booking(&booking(event_type_id, start, "wf-1"))
            .await
    }

    /// Slot starts of one UTC day, as written in `zone`.
    async fn starts(&self, event_type_id: u64, day: &str, zone: &str) -> Vec<String> {
        let query = SlotsQuery {
            event_type_id,
            start: day.into(),
            end: day.into(),
            time_zone: Some(zone.into()),
            duration_min: None,
            range: false,
            booking_uid_to_reschedule: None,
        };
        let by_day = self.client.slots(&query).await.unwrap();
        by_day.values().flatten().map(|s| s.start.clone()).collect()
    }

    /// Whether `slot`, written as Berlin time, is offered for the event type.
    async fn offers(&self, event_type_id: u64, slot: &str) -> bool {
        let day = slot.get(..10).expect("a slot starts with its date");
        let starts = self.starts(event_type_id, day, BERLIN).await;
        starts.iter().any(|s| s == slot)
    }

    /// Installs a rule written as `POST /_mock/faults` takes it.
    fn fault(&self, rule: Value) {
        let rule: FaultRule = serde_json::from_value(rule).expect("a fault rule");
        self.mock.add_faults(vec![rule]).unwrap();
    }

    /// The one installed rule with its counters.
    fn rule(&self) -> ActiveRule {
        let rules = self.mock.fault_rules();
        assert_eq!(rules.len(), 1, "one rule installed");
        rules[0].clone()
    }

    /// Live bookings in the mock that start at `start`.
    fn live_at(&self, start: &str) -> Vec<Booking> {
        let view = self.mock.view();
        view.bookings
            .into_iter()
            .filter(|b| b.start == t(start) && b.status.is_live())
            .collect()
    }
}

fn booking(event_type_id: u64, start: &str, workflow: &str) -> CreateBooking {
    CreateBooking {
        start: t(start),
        event_type_id,
        attendee: NewAttendee {
            name: "Jo Client".into(),
            time_zone: BERLIN.into(),
            email: Some("jo@example.com".into()),
            ..NewAttendee::default()
        },
        metadata: BTreeMap::from([
            (META_WORKFLOW.to_string(), workflow.to_string()),
            (META_SEGMENT.to_string(), "0".to_string()),
            (META_ATTEMPT.to_string(), "1".to_string()),
        ]),
        length_in_minutes: None,
        guests: vec![],
        booking_fields_responses: None,
    }
}

fn permanent(e: &CalcomError) -> (u16, &str) {
    match e {
        CalcomError::Permanent { status, message } => (*status, message),
        other => panic!("expected a permanent refusal, got {other:?}"),
    }
}

fn unknown_reason(e: &CalcomError) -> &str {
    match e {
        CalcomError::OutcomeUnknown { reason } => reason,
        other => panic!("expected an unknown outcome, got {other:?}"),
    }
}

fn retryable(e: &CalcomError) -> (Option<Duration>, &str) {
    match e {
        CalcomError::Retryable { after, reason } => (*after, reason),
        other => panic!("expected a retryable error, got {other:?}"),
    }
}

/// A tiny_http server on 127.0.0.1:0 that answers every request with one
/// canned reply and hands what it received to the test. Stops on drop.
struct Receiver {
    url: String,
    got: mpsc::Receiver<Received>,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

struct Received {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Receiver {
    fn start(status: u16, content_type: &'static str, body: &'static str) -> Receiver {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let addr = server.server_addr().to_ip().expect("an IP listener");
        let (tx, got) = mpsc::channel();
        let serving = server.clone();
        let thread = std::thread::spawn(move || {
            for mut req in serving.incoming_requests() {
                let mut received = Vec::new();
                let _ = req.as_reader().read_to_end(&mut received);
                let headers = req
                    .headers()
                    .iter()
                    .map(|h| (h.field.as_str().to_string(), h.value.as_str().to_string()))
                    .collect();
                // Recorded before answering: once the caller has its reply,
                // the test sees the request.
                let _ = tx.send(Received {
                    headers,
                    body: received,
                });
                let header = tiny_http::Header::from_bytes("Content-Type", content_type).unwrap();
                let reply = tiny_http::Response::from_string(body)
                    .with_status_code(status)
                    .with_header(header);
                let _ = req.respond(reply);
            }
        });
        Receiver {
            url: format!("http://{addr}"),
            got,
            server,
            thread: Some(thread),
        }
    }

    /// The next request, waiting at most `WAIT`.
    fn next(&self) -> Option<Received> {
        self.got.recv_timeout(WAIT).ok()
    }

    /// Requests received so far and not yet taken.
    fn count(&self) -> usize {
        self.got.try_iter().count()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// ------------------------------------------------------ slots, reservations

#[tokio::test]
async fn slots_are_written_in_the_asked_zone_with_its_offset_and_skip_fixture_bookings() {
    let w = World::new();
    // Dev works 08:00-16:00 New York; US DST started the day before, and the
    // fixture books his beard trim 09:00-09:20 EDT.
    let new_york = w.starts(402, "2030-03-11", "America/New_York").await;
    assert_eq!(new_york.first().unwrap(), "2030-03-11T08:00:00.000-04:00");
    assert_eq!(new_york.last().unwrap(), "2030-03-11T15:15:00.000-04:00");
    assert!(new_york.contains(&"2030-03-11T08:15:00.000-04:00".into()));
    for busy in ["08:30", "08:45", "09:00", "09:15"] {
        let slot = format!("2030-03-11T{busy}:00.000-04:00");
        assert!(!new_york.contains(&slot), "{slot} overlaps the beard trim");
    }
    assert!(new_york.contains(&"2030-03-11T09:30:00.000-04:00".into()));
    // The same instants, seen from Berlin (still on winter time).
    let berlin = w.starts(402, "2030-03-11", BERLIN).await;
    assert_eq!(berlin.first().unwrap(), "2030-03-11T13:00:00.000+01:00");
    let instants = |v: &[String]| v.iter().map(|s| t(s)).collect::<Vec<_>>();
    assert_eq!(instants(&berlin), instants(&new_york));
    // Ben's fixture cut (10:00-11:00 Berlin) blocks his morning.
    let ben = w.starts(201, "2030-03-05", BERLIN).await;
    assert_eq!(ben.first().unwrap(), "2030-03-05T11:00:00.000+01:00");
}

#[tokio::test]
async fn a_reservation_hides_its_slot_until_released_but_does_not_stop_a_booking() {
    let w = World::new();
    let ten = "2030-03-04T10:00:00.000+01:00";
    assert!(w.offers(101, ten).await);
    let reserve = ReserveSlot {
        event_type_id: 101,
        slot_start: t(ten),
        slot_duration: None,
        reservation_duration: Some(10),
    };
    let held = w.client.reserve_slot(&reserve).await.unwrap();
    assert_eq!(held.slot_end, t("2030-03-04T09:30:00Z"));
    let ten_min = chrono::Duration::minutes(10);
    assert_eq!(held.reservation_until, t(START) + ten_min);
    assert!(!w.offers(101, ten).await);
    assert!(
        !w.offers(104, ten).await,
        "the host is held, not the event type"
    );
    let uid = held.reservation_uid.as_str();
    let found = w.client.get_reservation(uid).await.unwrap();
    assert_eq!(found.map(|r| r.slot_start), Some(held.slot_start));
    assert_eq!(w.client.get_reservation("no-such-uid").await.unwrap(), None);

    w.client.release_reservation(uid).await.unwrap();
    assert!(w.offers(101, ten).await);
    assert_eq!(w.client.get_reservation(uid).await.unwrap(), None);
    // Releasing an unknown uid succeeds too.
    w.client.release_reservation("no-such-uid").await.unwrap();

    // Cal.com's reservations only hide slots; a create still goes through.
    w.client.reserve_slot(&reserve).await.unwrap();
    assert!(w.book(101, "2030-03-04T09:00:00Z").await.is_ok());
}

// ---------------------------------------------------------------- bookings

#[tokio::test]
async fn a_booking_keeps_its_metadata_moves_on_reschedule_and_cancels_once() {
    let w = World::new();
    let made = w.book(104, "2030-03-04T08:00:00Z").await.unwrap();
    assert_eq!(made.status, BookingStatus::Accepted);
    assert_eq!(made.end, t("2030-03-04T08:15:00Z"));
    assert_eq!(made.hosts[0].id, 1);
    assert_eq!(made.metadata[META_WORKFLOW], "wf-1");
    assert_eq!(w.client.get_booking(&made.uid).await.unwrap(), made);

    let to = RescheduleBooking {
        start: t("2030-03-04T09:00:00Z"),
        rescheduled_by: None,
        rescheduling_reason: Some("client asked".into()),
    };
    let moved = w.client.reschedule_booking(&made.uid, &to).await.unwrap();
    assert_ne!(moved.uid, made.uid);
    assert_eq!(
        moved.rescheduled_from_uid.as_deref(),
        Some(made.uid.as_str())
    );
    assert_eq!((moved.start, &moved.metadata), (to.start, &made.metadata));
    let old = w.client.get_booking(&made.uid).await.unwrap();
    assert_eq!(old.status, BookingStatus::Cancelled);
    assert_eq!(old.rescheduled_to_uid.as_deref(), Some(moved.uid.as_str()));

    let why = CancelBooking {
        cancellation_reason: Some("changed plans".into()),
        cancel_subsequent_bookings: None,
    };
    let cancelled = w.client.cancel_booking(&moved.uid, &why).await.unwrap();
    assert_eq!(cancelled.status, BookingStatus::Cancelled);
    assert_eq!(
        cancelled.cancellation_reason.as_deref(),
        Some("changed plans")
    );
    let again = w.client.cancel_booking(&moved.uid, &why).await.unwrap_err();
    assert!(again.is_already_cancelled(), "{again}");

    let missing = w.client.get_booking("noSuchBooking").await.unwrap_err();
    assert_eq!(
        permanent(&missing),
        (
            404,
            "Booking with uid=noSuchBooking was not found in the database"
        )
    );
    let missing = w
        .client
        .cancel_booking("noSuchBooking", &why)
        .await
        .unwrap_err();
    assert_eq!(permanent(&missing).0, 404);
}

#[tokio::test]
async fn the_booking_list_filters_and_pages() {
    let w = World::new();
    let starts = [
        "2030-03-04T08:00:00Z",
        "2030-03-04T08:15:00Z",
        "2030-03-04T08:30:00Z",
        "2030-03-04T08:45:00Z",
        "2030-03-04T09:00:00Z",
        "2030-03-05T08:00:00Z",
        "2030-03-05T08:15:00Z",
    ];
    let mut made = Vec::new();
    for start in starts {
        made.push(w.book(104, start).await.unwrap().uid);
    }
    let list = |filter: BookingFilter| {
        let client = w.client.clone();
        async move { client.list_bookings(&filter).await.unwrap() }
    };
    let of_104 = || BookingFilter {
        event_type_ids: vec![104],
        ..BookingFilter::default()
    };
    assert_eq!(list(of_104()).await.pagination.total_items, 7);

    let tuesday = list(BookingFilter {
        after_start: Some(t("2030-03-05T00:00:00Z")),
        before_end: Some(t("2030-03-06T00:00:00Z")),
        ..of_104()
    })
    .await;
    let uids: Vec<_> = tuesday.bookings.iter().map(|b| b.uid.clone()).collect();
    assert_eq!(uids, made[5..].to_vec());

    let one = list(BookingFilter {
        booking_uid: Some(made[2].clone()),
        ..BookingFilter::default()
    })
    .await;
    assert_eq!(one.bookings.len(), 1);
    assert_eq!(one.bookings[0].uid, made[2]);

    // The fixture's bookings of 101 (one cancelled) and 201.
    let fixture = list(BookingFilter {
        event_type_ids: vec![101, 201],
        ..BookingFilter::default()
    })
    .await;
    assert_eq!(fixture.pagination.total_items, 3);

    let mut paged = Vec::new();
    for skip in [0, 3, 6] {
        let page = list(BookingFilter {
            take: Some(3),
            skip: Some(skip),
            ..of_104()
        })
        .await;
        assert_eq!(page.pagination.total_items, 7);
        assert_eq!(page.pagination.has_next_page, skip < 6, "skip {skip}");
        assert_eq!(page.pagination.has_previous_page, skip > 0, "skip {skip}");
        paged.extend(page.bookings.into_iter().map(|b| b.uid));
    }
    assert_eq!(paged, made, "pages in start order cover every booking once");
}

#[tokio::test]
async fn a_taken_slot_is_refused_with_calcoms_400_text() {
    let w = World::new();
    // The fixture books Ben 09:00-10:00 UTC on 2030-03-05.
    for start in ["2030-03-05T09:00:00Z", "2030-03-05T09:30:00Z"] {
        let e = w.book(201, start).await.unwrap_err();
        assert_eq!(permanent(&e), (400, SLOT_TAKEN), "{start}");
        assert!(e.is_slot_taken());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_racing_creates_of_one_slot_through_one_client_make_one_booking() {
    let w = World::new();
    let start = "2030-03-06T10:00:00Z";
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..10 {
        let client = w.client.clone();
        let input = booking(201, start, &format!("wf-{i}"));
        tasks.spawn(async move { client.create_booking(&input).await });
    }
    let results = tasks.join_all().await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    for e in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(e.is_slot_taken(), "{e}");
    }
    assert_eq!(w.live_at(start).len(), 1);
    assert!(w.mock.view().overlaps.is_empty());
}

// ------------------------------------------------------------------ admin

#[tokio::test]
async fn event_types_can_be_created_read_listed_changed_and_deleted() {
    let w = World::new();
    let c = &w.client;
    let created = c
        .create_event_type(&CreateEventType {
            length_in_minutes: 60,
            title: "Gloss".into(),
            slug: "gloss-60".into(),
            description: Some("Shine treatment".into()),
            hidden: None,
        })
        .await
        .unwrap();
    assert_eq!(created.owner_id, Some(1), "owned by the key's user");
    assert_eq!(c.get_event_type(created.id).await.unwrap(), created);
    let own: Vec<u64> = c
        .list_event_types(None)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(own, vec![101, 102, 103, 104, created.id]);
    let ben: Vec<u64> = c
        .list_event_types(Some("ben"))
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ben, vec![201, 202]);

    let change = UpdateEventType {
        title: Some("Gloss and shine".into()),
        length_in_minutes: Some(45),
        ..UpdateEventType::default()
    };
    let changed = c.update_event_type(created.id, &change).await.unwrap();
    assert_eq!(
        (changed.title.as_str(), changed.length_in_minutes),
        ("Gloss and shine", 45)
    );
    assert_eq!(c.get_event_type(created.id).await.unwrap(), changed);

    let duplicate = CreateEventType {
        length_in_minutes: 30,
        title: "Colour".into(),
        slug: "colour-30".into(),
        description: None,
        hidden: None,
    };
    let e = c.create_event_type(&duplicate).await.unwrap_err();
    assert_eq!(
        permanent(&e),
        (400, "User already has an event type with this slug.")
    );

    let deleted = c.delete_event_type(created.id).await.unwrap();
    assert_eq!(
        (deleted.id, deleted.slug.as_str()),
        (created.id, "gloss-60")
    );
    let e = c.get_event_type(created.id).await.unwrap_err();
    assert_eq!(permanent(&e).0, 404);
}

#[tokio::test]
async fn webhooks_can_be_created_read_listed_changed_and_deleted() {
    let w = World::new();
    let c = &w.client;
    let input = CreateWebhook {
        subscriber_url: "http://127.0.0.1:9/calcom".into(),
        triggers: vec![TRIGGER_CREATED.into()],
        active: true,
        secret: Some("whsec-1".into()),
        payload_template: None,
    };
    let created = c.create_webhook(&input).await.unwrap();
    assert_eq!(
        created.secret.as_deref(),
        Some("whsec-1"),
        "Cal.com echoes the secret"
    );
    assert_eq!(created.user_id, Some(1));
    assert_eq!(
        c.list_webhooks(None, None).await.unwrap(),
        vec![created.clone()]
    );
    assert_eq!(c.get_webhook(&created.id).await.unwrap(), created);

    let e = c.create_webhook(&input).await.unwrap_err();
    assert_eq!(
        permanent(&e),
        (
            409,
            "Webhook with this subscriber url already exists for this user"
        )
    );

    let off = UpdateWebhook {
        active: Some(false),
        ..UpdateWebhook::default()
    };
    let changed = c.update_webhook(&created.id, &off).await.unwrap();
    assert!(!changed.active);
    assert_eq!(
        changed.secret, created.secret,
        "a PATCH without secret keeps it"
    );

    assert_eq!(c.delete_webhook(&created.id).await.unwrap().id, created.id);
    assert_eq!(
        permanent(&c.get_webhook(&created.id).await.unwrap_err()).0,
        404
    );
    assert!(c.list_webhooks(None, None).await.unwrap().is_empty());
}

// ----------------------------------------------------------- error classes

#[tokio::test]
async fn a_500_on_a_read_is_retried_and_then_succeeds() {
    let w = World::new();
    w.fault(json!({"route": "GET /v2/bookings/{uid}", "nth": 1, "status": 500}));
    let b = w.client.get_booking(BEN_CUT).await.unwrap();
    assert_eq!(b.event_type_id, 201);
    assert_eq!((w.rule().matched, w.rule().fired), (2, 1));
    assert_eq!(
        w.clock.sleeps().len(),
        1,
        "one backoff between the two sends"
    );
}

#[tokio::test]
async fn a_503_on_a_create_is_an_unknown_outcome_sent_exactly_once() {
    let w = World::new();
    w.fault(json!({"route": "POST /v2/bookings", "status": 503}));
    let e = w.book(101, "2030-03-04T10:00:00Z").await.unwrap_err();
    assert!(unknown_reason(&e).contains("HTTP 503"), "{e}");
    assert_eq!(w.rule().matched, 1, "a create is never repeated blindly");
    assert!(w.live_at("2030-03-04T10:00:00Z").is_empty());
}

#[tokio::test]
async fn a_429_makes_the_client_wait_the_reset_seconds_then_succeed() {
    let mut setup = Setup::default();
    // Long enough to hold the 60 s Cal.com asks for in memory.
    setup.client.retry.max_delay = Duration::from_secs(120);
    let w = setup.start();
    w.fault(json!({"route": "GET /v2/bookings/{uid}", "nth": 1, "status": 429}));
    assert!(w.client.get_booking(BEN_CUT).await.is_ok());
    assert_eq!(w.clock.sleeps(), vec![Duration::from_secs(60)]);
    assert_eq!(
        w.calls.outcomes(),
        vec![CallOutcome::Status(429), CallOutcome::Status(200)]
    );
}

#[tokio::test]
async fn a_lost_reply_on_a_create_is_unknown_yet_the_booking_exists() {
    let w = World::new();
    w.fault(json!({"route": "POST /v2/bookings", "nth": 1, "replyLost": true}));
    let e = w.book(101, "2030-03-04T10:00:00Z").await.unwrap_err();
    assert!(unknown_reason(&e).contains("POST /v2/bookings"), "{e}");
    assert_eq!(w.rule().matched, 1);
    let made = w.live_at("2030-03-04T10:00:00Z");
    assert_eq!(
        made.len(),
        1,
        "Cal.com applied it before the reply was lost"
    );
    assert_eq!(
        made[0].metadata[META_WORKFLOW], "wf-1",
        "reconcilable by metadata"
    );
}

#[tokio::test]
async fn a_create_slower_than_the_request_timeout_is_an_unknown_outcome() {
    let w = World::new();
    // reqwest's timeout runs on real time; the mock's worker really waits.
    let impatient = w.client_with(|c| c.request_timeout = Duration::from_millis(200));
    w.fault(json!({"route": "POST /v2/bookings", "latencyMs": 1000}));
    let input = booking(101, "2030-03-04T10:00:00Z", "wf-1");
    let e = impatient.create_booking(&input).await.unwrap_err();
    assert!(unknown_reason(&e).contains("timed out"), "{e}");
    assert_eq!(w.rule().matched, 1);
}

#[tokio::test]
async fn the_mocks_rate_limit_answers_429_and_the_clients_limiter_stays_under_it() {
    let limited = || Setup {
        fixture: salon_limited_to(5),
        ..Setup::default()
    };
    // A client that does not limit itself runs into the mock's limit.
    let mut setup = limited();
    setup.client.requests_per_minute_max = 1_000;
    let w = setup.start();
    let uid = BEN_CUT;
    for _ in 0..5 {
        w.client.get_booking(uid).await.unwrap();
    }
    let e = w.client.get_booking(uid).await.unwrap_err();
    let (after, reason) = retryable(&e);
    assert_eq!(
        after,
        Some(Duration::from_secs(60)),
        "X-RateLimit-Reset-Default"
    );
    assert!(reason.contains("Too many requests"), "{reason}");
    assert!(
        w.clock.sleeps().is_empty(),
        "a 60 s wait is handed back, not held"
    );
    let raw = reqwest::Client::new()
        .get(format!("{}/v2/bookings/{uid}", w.server.url()))
        .bearer_auth(KEY)
        .header("cal-api-version", "2024-08-13")
        .send()
        .await
        .unwrap();
    let header = |name: &str| {
        raw.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    assert_eq!(raw.status().as_u16(), 429);
    assert_eq!(header("X-RateLimit-Limit-Default").as_deref(), Some("5"));
    assert_eq!(
        header("X-RateLimit-Remaining-Default").as_deref(),
        Some("0")
    );
    assert!(header("X-RateLimit-Reset-Default").is_some());
    assert_eq!(header("Retry-After"), None, "Cal.com sends no Retry-After");

    // A client that knows the limit spreads a burst and never sees a 429.
    let mut setup = limited();
    setup.client.requests_per_minute_max = 5;
    let w = setup.start();
    for _ in 0..12 {
        w.client.get_booking(uid).await.unwrap();
    }
    assert!(
        w.calls
            .outcomes()
            .iter()
            .all(|o| *o == CallOutcome::Status(200))
    );
    assert_eq!(w.calls.outcomes().len(), 12);
    assert_eq!(w.clock.sleeps(), vec![Duration::from_secs(61); 2]);
}

#[tokio::test]
async fn an_unknown_or_missing_api_key_is_a_401_that_says_what_to_fix() {
    let w = World::new();
    let wrong = w.client_with(|c| c.api_key = Some("cal_not_a_key".into()));
    let e = wrong.get_booking(BEN_CUT).await.unwrap_err();
    let (status, message) = permanent(&e);
    assert_eq!(status, 401);
    assert!(
        message.starts_with("CustomThrottlerGuard - Invalid API Key"),
        "{message}"
    );
    assert!(message.contains("check CALCOM_API_KEY"), "{message}");
    let anonymous = w.client_with(|c| c.api_key = None);
    let e = anonymous
        .list_bookings(&BookingFilter::default())
        .await
        .unwrap_err();
    let (status, message) = permanent(&e);
    assert_eq!(status, 401);
    assert!(
        message.contains("No authentication method provided"),
        "{message}"
    );
}

#[tokio::test]
async fn a_closed_port_is_retryable_and_names_the_url() {
    let port = {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let clock = Arc::new(SimClock::new(t(START)));
    let config = ClientConfig {
        base_url: format!("http://127.0.0.1:{port}"),
        ..ClientConfig::default()
    };
    let e = client(config, &clock).get_booking("abc").await.unwrap_err();
    let (_, reason) = retryable(&e);
    let url = format!("could not reach Cal.com at http://127.0.0.1:{port}/v2/bookings/abc");
    assert!(reason.contains(&url), "{reason}");
    assert!(reason.contains("check the Cal.com base URL"), "{reason}");
    assert_eq!(
        clock.sleeps().len(),
        3,
        "retried up to the policy's attempts"
    );
}

#[tokio::test]
async fn a_reply_that_is_not_calcom_json_is_a_clear_error() {
    let proxy = Receiver::start(200, "text/html", "<html>Please log in</html>");
    let clock = Arc::new(SimClock::new(t(START)));
    let config = ClientConfig {
        base_url: proxy.url.clone(),
        api_key: Some(KEY.into()),
        ..ClientConfig::default()
    };
    let c = client(config, &clock);
    let e = c
        .create_booking(&booking(101, "2030-03-04T10:00:00Z", "wf-1"))
        .await
        .unwrap_err();
    assert!(
        unknown_reason(&e).contains("HTTP 200 reply is not the expected JSON"),
        "{e}"
    );
    assert_eq!(proxy.count(), 1, "the create was not repeated");
    let e = c.get_booking("abc").await.unwrap_err();
    assert!(retryable(&e).1.contains("not the expected JSON"), "{e}");
}

// --------------------------------------------------------------- webhooks

#[test]
fn a_new_booking_is_posted_to_the_subscriber_signed_over_the_exact_body() {
    const SECRET: &str = "whsec-salon";
    let hook = Receiver::start(200, "application/json", "{}");
    // A blocking reqwest client: made outside any tokio runtime.
    let poster = HttpPoster::new(HttpLimits::default()).unwrap();
    let mut setup = Setup::default();
    setup.mock.poster = Some(Arc::new(poster));
    let w = setup.start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let made = runtime.block_on(async {
        let subscribe = CreateWebhook {
            subscriber_url: format!("{}/webhooks/calcom", hook.url),
            triggers: vec![TRIGGER_CREATED.into()],
            active: true,
            secret: Some(SECRET.into()),
            payload_template: None,
        };
        w.client.create_webhook(&subscribe).await.unwrap();
        w.book(101, "2030-03-04T10:00:00Z").await.unwrap()
    });
    let got = hook
        .next()
        .expect("BOOKING_CREATED delivered within the deadline");
    let signature = got
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(SIGNATURE_HEADER))
        .map(|(_, v)| v.clone());
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(&got.body);
    assert_eq!(signature, Some(hex::encode(mac.finalize().into_bytes())));
    let body: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(body["triggerEvent"], TRIGGER_CREATED);
    assert_eq!(body["payload"]["uid"], made.uid.as_str());
    assert_eq!(body["payload"]["metadata"][META_WORKFLOW], "wf-1");
}
