//! The client against a scripted transport and a simulated clock: what it
//! sends for every call, how it reads Cal.com's real reply shapes, and what
//! it does on each kind of failure. Tests touch the client only through
//! `World`.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::request::encode;
use super::*;
use crate::calcom::ApiRequest;
use crate::calcom::wire::{
    BookingStatus, CreateEventType, CreateWebhook, NewAttendee, UpdateEventType, UpdateWebhook,
};
use crate::clock::SimClock;

const KEY: &str = "cal_test_calsaga_mock";

/// Replays canned replies in order and records every request.
#[derive(Default)]
struct Script {
    replies: Mutex<VecDeque<Result<ApiResponse, TransportError>>>,
    sent: Mutex<Vec<ApiRequest>>,
}

#[async_trait]
impl Transport for Script {
    async fn send(&self, request: ApiRequest) -> Result<ApiResponse, TransportError> {
        self.sent.lock().unwrap().push(request);
        self.replies.lock().unwrap().pop_front().unwrap_or_else(|| {
            Err(TransportError::NotSent {
                url: "script".into(),
                reason: "the test scripted no more replies".into(),
            })
        })
    }
}

#[derive(Default)]
struct Recorder(Mutex<Vec<CallRecord>>);

impl CallObserver for Recorder {
    fn record(&self, call: &CallRecord) {
        self.0.lock().unwrap().push(call.clone());
    }
}

struct World {
    client: Client,
    script: Arc<Script>,
    clock: Arc<SimClock>,
    calls: Arc<Recorder>,
}

fn t(iso: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(iso).unwrap().to_utc()
}

fn world_with(config: ClientConfig) -> World {
    let script = Arc::new(Script::default());
    let clock = Arc::new(SimClock::new(t("2030-03-04T08:00:00Z")));
    let calls = Arc::new(Recorder::default());
    let client =
        Client::new(config, script.clone(), clock.clone(), 42).with_observer(calls.clone());
    World {
        client,
        script,
        clock,
        calls,
    }
}

fn world() -> World {
    world_with(ClientConfig {
        api_key: Some(KEY.into()),
        ..ClientConfig::default()
    })
}

impl World {
    fn reply(&self, status: u16, body: Value) -> &Self {
        self.reply_raw(status, &[], &body.to_string())
    }

    fn reply_raw(&self, status: u16, headers: &[(&str, &str)], body: &str) -> &Self {
        let headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.push(Ok(ApiResponse {
            status,
            headers,
            body: body.as_bytes().to_vec(),
        }))
    }

    fn push(&self, reply: Result<ApiResponse, TransportError>) -> &Self {
        self.script.replies.lock().unwrap().push_back(reply);
        self
    }

    /// The saga's main call, with a typical input.
    async fn create_booking(&self) -> Result<Booking, CalcomError> {
        self.client.create_booking(&create_booking_input()).await
    }

    fn sent(&self) -> Vec<ApiRequest> {
        self.script.sent.lock().unwrap().clone()
    }

    /// The one request the call made, checked for auth, version, path and
    /// body (and `Content-Type` exactly when there is a body).
    fn expect_one(&self, method: Method, path: &str, version: Option<&str>, body: Option<Value>) {
        let sent = self.sent();
        assert_eq!(sent.len(), 1, "requests: {sent:#?}");
        let request = &sent[0];
        assert_eq!((request.method, request.path.as_str()), (method, path));
        assert_eq!(
            request.header("authorization"),
            Some(format!("Bearer {KEY}").as_str())
        );
        assert_eq!(request.header("cal-api-version"), version);
        let sent_body = request
            .body
            .as_ref()
            .map(|b| serde_json::from_slice::<Value>(b).unwrap());
        assert_eq!(sent_body, body);
        let content_type = body.as_ref().map(|_| "application/json");
        assert_eq!(request.header("content-type"), content_type);
    }
}

fn booking_json(uid: &str, status: &str) -> Value {
    json!({"id":3441746,"uid":uid,"title":"Colour 30 between Anna Colourist and Jo Client","description":"",
        "hosts":[{"id":1,"name":"Anna Colourist","email":"anna@salon.example","displayEmail":"anna@salon.example","username":"anna","timeZone":"Europe/Berlin"}],
        "status":status,"cancellationReason":"","cancelledByEmail":"","start":"2030-03-05T09:00:00.000Z","end":"2030-03-05T09:30:00.000Z","duration":30,
        "eventTypeId":101,"eventType":{"id":101,"slug":"colour-30"},
        "attendees":[{"name":"Jo Client","email":"jo@example.com","displayEmail":"jo@example.com","timeZone":"Europe/Berlin","language":"en","absent":false}],
        "guests":[],"location":"integrations:daily","meetingUrl":"integrations:daily",
        "absentHost":false,"createdAt":"2030-03-04T08:00:00.000Z","updatedAt":null,"rating":null,"icsUid":"ics-1",
        "metadata":{"calsaga_workflow":"wf-1","calsaga_segment":"0","calsaga_attempt":"1"},
        "bookingFieldsResponses":{"name":"Jo Client","email":"jo@example.com","guests":[],"displayEmail":"jo@example.com"}})
}

fn success(data: Value) -> Value {
    json!({"status":"success","data":data})
}

fn create_booking_input() -> CreateBooking {
    CreateBooking {
        start: t("2030-03-05T09:00:00Z"),
        event_type_id: 101,
        attendee: NewAttendee {
            name: "Jo Client".into(),
            time_zone: "Europe/Berlin".into(),
            email: Some("jo@example.com".into()),
            ..NewAttendee::default()
        },
        metadata: BTreeMap::from([
            ("calsaga_workflow".to_string(), "wf-1".to_string()),
            ("calsaga_segment".to_string(), "0".to_string()),
            ("calsaga_attempt".to_string(), "1".to_string()),
        ]),
        length_in_minutes: None,
        guests: vec![],
        booking_fields_responses: None,
    }
}

// ------------------------------------------------------------- CalcomApi

#[tokio::test]
async fn slots_sends_an_encoded_query_with_the_slots_version() {
    let w = world();
    w.reply(
        200,
        success(json!({"2030-03-05":[
        {"start":"2030-03-05T10:00:00.000+01:00","end":"2030-03-05T10:30:00.000+01:00"},
        {"start":"2030-03-05T10:15:00.000+01:00","end":"2030-03-05T10:45:00.000+01:00"}]})),
    );
    let query = SlotsQuery {
        event_type_id: 101,
        start: "2030-03-05T00:00:00.000Z".into(),
        end: "2030-03-06T00:00:00.000Z".into(),
        time_zone: Some("Europe/Berlin".into()),
        duration_min: Some(30),
        range: true,
        booking_uid_to_reschedule: None,
    };
    let slots = w.client.slots(&query).await.unwrap();
    w.expect_one(
        Method::Get,
        "/v2/slots?eventTypeId=101&start=2030-03-05T00:00:00.000Z&end=2030-03-06T00:00:00.000Z&timeZone=Europe%2FBerlin&duration=30&format=range",
        Some("2024-09-04"),
        None,
    );
    assert_eq!(slots["2030-03-05"].len(), 2);
    assert_eq!(
        slots["2030-03-05"][1].end.as_deref(),
        Some("2030-03-05T10:45:00.000+01:00")
    );
}

#[tokio::test]
async fn slots_without_options_sends_only_the_required_parameters() {
    let w = world();
    w.reply(200, success(json!({})));
    let query = SlotsQuery {
        event_type_id: 202,
        start: "2030-03-05".into(),
        end: "2030-03-05".into(),
        time_zone: None,
        duration_min: None,
        range: false,
        booking_uid_to_reschedule: None,
    };
    assert!(w.client.slots(&query).await.unwrap().is_empty());
    w.expect_one(
        Method::Get,
        "/v2/slots?eventTypeId=202&start=2030-03-05&end=2030-03-05",
        Some("2024-09-04"),
        None,
    );
}

#[tokio::test]
async fn reserve_slot_posts_the_body_and_reads_the_reservation() {
    let w = world();
    w.reply(201, success(json!({"eventTypeId":101,"slotStart":"2030-03-05T09:00:00.000Z","slotEnd":"2030-03-05T09:30:00.000Z",
        "slotDuration":30,"reservationUid":"e84be5a3-4696-49e3-acc7-b2f3999c3b94","reservationDuration":10,
        "reservationUntil":"2030-03-04T08:10:00.000Z"})));
    let input = ReserveSlot {
        event_type_id: 101,
        slot_start: t("2030-03-05T09:00:00Z"),
        slot_duration: None,
        reservation_duration: Some(10),
    };
    let reservation = w.client.reserve_slot(&input).await.unwrap();
    w.expect_one(
        Method::Post,
        "/v2/slots/reservations",
        Some("2024-09-04"),
        Some(json!({"eventTypeId":101,"slotStart":"2030-03-05T09:00:00.000Z","reservationDuration":10})),
    );
    assert_eq!(
        reservation.reservation_uid,
        "e84be5a3-4696-49e3-acc7-b2f3999c3b94"
    );
    assert_eq!(reservation.slot_end, t("2030-03-05T09:30:00Z"));
}

#[tokio::test]
async fn release_reservation_deletes_by_uid_and_accepts_a_bare_success() {
    let w = world();
    w.reply(200, json!({"status":"success"}));
    w.client.release_reservation("e84be5a3").await.unwrap();
    w.expect_one(
        Method::Delete,
        "/v2/slots/reservations/e84be5a3",
        Some("2024-09-04"),
        None,
    );
}

#[tokio::test]
async fn get_reservation_reads_a_known_uid_and_null_for_an_unknown_one() {
    let w = world();
    w.reply(200, success(json!({"reservationUid":"r-1","eventTypeId":101,"slotStart":"2030-03-05T09:00:00.000Z",
        "slotEnd":"2030-03-05T09:30:00.000Z","slotDuration":30,"reservationUntil":"2030-03-04T08:05:00.000Z"})));
    w.reply(200, json!({"status":"success","data":null}));
    let known = w.client.get_reservation("r-1").await.unwrap().unwrap();
    assert_eq!(
        (known.event_type_id, known.reservation_until),
        (101, t("2030-03-04T08:05:00Z"))
    );
    assert_eq!(w.client.get_reservation("gone").await.unwrap(), None);
    let paths: Vec<String> = w.sent().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        ["/v2/slots/reservations/r-1", "/v2/slots/reservations/gone"]
    );
}

#[tokio::test]
async fn create_booking_posts_with_the_bookings_version_and_reads_the_booking() {
    let w = world();
    w.reply(
        201,
        success(booking_json("mg3EVprisqeBSLKZey4rKf", "accepted")),
    );
    let booking = w.create_booking().await.unwrap();
    w.expect_one(
        Method::Post,
        "/v2/bookings",
        Some("2024-08-13"),
        Some(json!({"start":"2030-03-05T09:00:00.000Z","eventTypeId":101,
            "attendee":{"name":"Jo Client","timeZone":"Europe/Berlin","email":"jo@example.com"},
            "metadata":{"calsaga_attempt":"1","calsaga_segment":"0","calsaga_workflow":"wf-1"}})),
    );
    assert_eq!(booking.uid, "mg3EVprisqeBSLKZey4rKf");
    assert_eq!(booking.status, BookingStatus::Accepted);
    assert_eq!(booking.hosts[0].username, "anna");
    assert_eq!(booking.metadata["calsaga_workflow"], "wf-1");
}

#[tokio::test]
async fn list_bookings_sends_every_filter_encoded_and_reads_the_page() {
    let w = world();
    w.reply(200, json!({"status":"success","data":[booking_json("b-1","accepted"), booking_json("b-2","cancelled")],
        "pagination":{"returnedItems":2,"totalItems":3,"itemsPerPage":2,"remainingItems":1,"currentPage":1,
            "totalPages":2,"hasNextPage":true,"hasPreviousPage":false}}));
    let filter = BookingFilter {
        status: vec!["upcoming".into(), "cancelled".into()],
        attendee_email: Some("jo+salon@example.com".into()),
        booking_uid: None,
        event_type_ids: vec![101, 201],
        after_start: Some(t("2030-03-05T00:00:00Z")),
        before_end: Some(t("2030-03-06T00:00:00Z")),
        take: Some(2),
        skip: Some(0),
        sort_start: Some("asc".into()),
    };
    let page = w.client.list_bookings(&filter).await.unwrap();
    w.expect_one(
        Method::Get,
        "/v2/bookings?status=upcoming,cancelled&attendeeEmail=jo%2Bsalon%40example.com&eventTypeIds=101,201\
         &afterStart=2030-03-05T00:00:00.000Z&beforeEnd=2030-03-06T00:00:00.000Z&take=2&skip=0&sortStart=asc",
        Some("2024-08-13"),
        None,
    );
    assert_eq!(page.bookings.len(), 2);
    assert_eq!(page.bookings[1].status, BookingStatus::Cancelled);
    assert!(page.pagination.has_next_page);
    assert_eq!(page.pagination.remaining_items, 1);
}

#[tokio::test]
async fn list_bookings_with_no_filter_sends_no_query() {
    let w = world();
    w.reply(200, json!({"status":"success","data":[],"pagination":{}}));
    let page = w
        .client
        .list_bookings(&BookingFilter::default())
        .await
        .unwrap();
    assert!(page.bookings.is_empty());
    w.expect_one(Method::Get, "/v2/bookings", Some("2024-08-13"), None);
}

/// Cal.com's output service passes nullable columns through: no notes,
/// a deleted event type, an unknown locale, a booking without a user.
#[tokio::test]
async fn a_page_of_bookings_with_the_nulls_calcom_can_send_is_read_whole() {
    let w = world();
    let mut odd = booking_json("b-2", "accepted");
    odd["description"] = Value::Null;
    odd["eventTypeId"] = Value::Null;
    odd["attendees"][0]["language"] = Value::Null;
    odd["hosts"][0] = json!({"id": "unknown", "name": "unknown", "email": "unknown",
                             "displayEmail": "unknown", "username": "unknown", "timeZone": null});
    w.reply(200, json!({"status": "success", "data": [booking_json("b-1", "accepted"), odd],
        "pagination": {"returnedItems": 2, "totalItems": 2, "itemsPerPage": 100, "remainingItems": 0,
                       "currentPage": 1, "totalPages": 1, "hasNextPage": false, "hasPreviousPage": false}}));
    let page = w
        .client
        .list_bookings(&BookingFilter::default())
        .await
        .unwrap();
    let odd = &page.bookings[1];
    assert_eq!(
        (odd.description.as_str(), odd.event_type_id, odd.hosts[0].id),
        ("", 0, 0)
    );
    assert_eq!(odd.attendees[0].language, "");
    assert_eq!(page.bookings[0].hosts[0].id, 1);
}

#[tokio::test]
async fn get_booking_encodes_the_uid_as_one_path_segment() {
    let w = world();
    w.reply(200, success(booking_json("a/b c", "accepted")));
    let booking = w.client.get_booking("a/b c").await.unwrap();
    assert_eq!(booking.uid, "a/b c");
    w.expect_one(
        Method::Get,
        "/v2/bookings/a%2Fb%20c",
        Some("2024-08-13"),
        None,
    );
}

#[tokio::test]
async fn reschedule_posts_the_new_start_and_reads_the_new_booking() {
    let w = world();
    let mut new_booking = booking_json("new-uid", "accepted");
    new_booking["rescheduledFromUid"] = json!("old-uid");
    w.reply(201, success(new_booking));
    let input = RescheduleBooking {
        start: t("2030-03-05T11:00:00Z"),
        rescheduled_by: None,
        rescheduling_reason: Some("client asked".into()),
    };
    let booking = w
        .client
        .reschedule_booking("old-uid", &input)
        .await
        .unwrap();
    w.expect_one(
        Method::Post,
        "/v2/bookings/old-uid/reschedule",
        Some("2024-08-13"),
        Some(json!({"start":"2030-03-05T11:00:00.000Z","reschedulingReason":"client asked"})),
    );
    assert_eq!(booking.rescheduled_from_uid.as_deref(), Some("old-uid"));
}

#[tokio::test]
async fn cancel_posts_the_reason_and_reads_the_cancelled_booking() {
    let w = world();
    w.reply(200, success(booking_json("b-1", "cancelled")));
    let input = CancelBooking {
        cancellation_reason: Some("composite failed".into()),
        cancel_subsequent_bookings: None,
    };
    let booking = w.client.cancel_booking("b-1", &input).await.unwrap();
    w.expect_one(
        Method::Post,
        "/v2/bookings/b-1/cancel",
        Some("2024-08-13"),
        Some(json!({"cancellationReason":"composite failed"})),
    );
    assert_eq!(booking.status, BookingStatus::Cancelled);
}

#[tokio::test]
async fn a_cancel_is_repeated_after_a_5xx_and_already_cancelled_is_recognisable() {
    let w = world();
    w.reply(
        500,
        json!({"statusCode":500,"message":"Internal server error"}),
    );
    w.reply(400, json!({"status":"error","timestamp":"2030-03-04T08:00:00.000Z","path":"/v2/bookings/b-1/cancel",
        "error":{"code":"BadRequestException","message":"Can't cancel booking with uid=b-1 because it has been cancelled already. Please provide uid of a booking that is not cancelled."}}));
    let err = w
        .client
        .cancel_booking("b-1", &CancelBooking::default())
        .await
        .unwrap_err();
    assert!(err.is_already_cancelled(), "{err:?}");
    assert_eq!(w.sent().len(), 2);
}

// ------------------------------------------------------ event types, webhooks

fn event_type_json(id: u64, slug: &str, length: u32) -> Value {
    json!({"id":id,"ownerId":1,"lengthInMinutes":length,"title":"Colour 30","slug":slug,"description":"",
        "locations":[],"bookingFields":[],"disableGuests":false,"slotInterval":15,"minimumBookingNotice":120,
        "beforeEventBuffer":0,"afterEventBuffer":0,"recurrence":null,"metadata":{},"price":0,"currency":"usd",
        "lockTimeZoneToggleOnBookingPage":false,"seatsPerTimeSlot":null,"scheduleId":null,"hidden":false,
        "users":[{"id":1,"username":"anna"}],"bookingUrl":"https://cal.com/anna/colour-30"})
}

#[tokio::test]
async fn event_types_crud_uses_the_event_types_version() {
    let w = world();
    w.reply(
        200,
        success(json!([
            event_type_json(101, "colour-30", 30),
            event_type_json(102, "highlights-60", 60)
        ])),
    )
    .reply(200, success(event_type_json(101, "colour-30", 30)))
    .reply(201, success(event_type_json(105, "gloss-10", 10)))
    .reply(200, success(event_type_json(105, "gloss-10", 15)))
    .reply(
        200,
        success(json!({"id":105,"lengthInMinutes":15,"slug":"gloss-10","title":"Gloss"})),
    );
    let listed = w.client.list_event_types(Some("anna")).await.unwrap();
    assert_eq!(listed.iter().map(|e| e.id).collect::<Vec<_>>(), [101, 102]);
    assert_eq!(
        w.client.get_event_type(101).await.unwrap().slot_interval,
        Some(15)
    );
    let create = CreateEventType {
        length_in_minutes: 10,
        title: "Gloss".into(),
        slug: "gloss-10".into(),
        description: None,
        hidden: None,
    };
    assert_eq!(w.client.create_event_type(&create).await.unwrap().id, 105);
    let update = UpdateEventType {
        length_in_minutes: Some(15),
        ..UpdateEventType::default()
    };
    assert_eq!(
        w.client
            .update_event_type(105, &update)
            .await
            .unwrap()
            .length_in_minutes,
        15
    );
    assert_eq!(
        w.client.delete_event_type(105).await.unwrap().slug,
        "gloss-10"
    );

    let sent: Vec<(Method, String, Option<String>, Option<Value>)> = w
        .sent()
        .into_iter()
        .map(|r| {
            assert_eq!(r.header("cal-api-version"), Some("2024-06-14"));
            let body = r.body.as_ref().map(|b| serde_json::from_slice(b).unwrap());
            (
                r.method,
                r.path.clone(),
                r.header("content-type").map(String::from),
                body,
            )
        })
        .collect();
    let json_type = Some("application/json".to_string());
    assert_eq!(
        sent,
        [
            (
                Method::Get,
                "/v2/event-types?username=anna".into(),
                None,
                None
            ),
            (Method::Get, "/v2/event-types/101".into(), None, None),
            (
                Method::Post,
                "/v2/event-types".into(),
                json_type.clone(),
                Some(json!({"lengthInMinutes":10,"title":"Gloss","slug":"gloss-10"}))
            ),
            (
                Method::Patch,
                "/v2/event-types/105".into(),
                json_type,
                Some(json!({"lengthInMinutes":15}))
            ),
            (Method::Delete, "/v2/event-types/105".into(), None, None),
        ]
    );
}

fn webhook_json(id: &str, active: bool) -> Value {
    json!({"id":id,"userId":1,"subscriberUrl":"https://calsaga.example/webhooks/calcom",
        "triggers":["BOOKING_CREATED","BOOKING_RESCHEDULED","BOOKING_CANCELLED"],"active":active,
        "payloadTemplate":null,"secret":"whsec-1"})
}

#[tokio::test]
async fn webhooks_crud_sends_no_version_and_pages_with_take_and_skip() {
    let w = world();
    let id = "3fa85f64-5717-4562-b3fc-2c963f66afa6";
    w.reply(200, success(json!([webhook_json(id, true)])))
        .reply(200, success(webhook_json(id, true)))
        .reply(201, success(webhook_json(id, true)))
        .reply(200, success(webhook_json(id, false)))
        .reply(200, success(webhook_json(id, false)));
    assert_eq!(
        w.client.list_webhooks(Some(250), Some(0)).await.unwrap()[0].id,
        id
    );
    assert_eq!(
        w.client.get_webhook(id).await.unwrap().secret.as_deref(),
        Some("whsec-1")
    );
    let create = CreateWebhook {
        subscriber_url: "https://calsaga.example/webhooks/calcom".into(),
        triggers: vec!["BOOKING_CREATED".into()],
        active: true,
        secret: Some("whsec-1".into()),
        payload_template: None,
    };
    assert!(w.client.create_webhook(&create).await.unwrap().active);
    let update = UpdateWebhook {
        active: Some(false),
        ..UpdateWebhook::default()
    };
    assert!(!w.client.update_webhook(id, &update).await.unwrap().active);
    assert_eq!(w.client.delete_webhook(id).await.unwrap().id, id);

    let sent = w.sent();
    assert!(sent.iter().all(|r| r.header("cal-api-version").is_none()));
    assert!(
        sent.iter()
            .all(|r| r.header("authorization") == Some("Bearer cal_test_calsaga_mock"))
    );
    let routes: Vec<(Method, &str)> = sent.iter().map(|r| (r.method, r.path.as_str())).collect();
    let one = format!("/v2/webhooks/{id}");
    assert_eq!(
        routes,
        [
            (Method::Get, "/v2/webhooks?take=250&skip=0"),
            (Method::Get, one.as_str()),
            (Method::Post, "/v2/webhooks"),
            (Method::Patch, one.as_str()),
            (Method::Delete, one.as_str()),
        ]
    );
    let created: Value = serde_json::from_slice(sent[2].body.as_ref().unwrap()).unwrap();
    assert_eq!(
        created,
        json!({"subscriberUrl":"https://calsaga.example/webhooks/calcom",
        "triggers":["BOOKING_CREATED"],"active":true,"secret":"whsec-1"})
    );
    let patched: Value = serde_json::from_slice(sent[3].body.as_ref().unwrap()).unwrap();
    assert_eq!(patched, json!({"active":false}));
}

#[tokio::test]
async fn without_a_key_no_authorization_is_sent() {
    let w = world_with(ClientConfig::default());
    w.reply(200, success(json!({})));
    let query = SlotsQuery {
        event_type_id: 101,
        start: "2030-03-05".into(),
        end: "2030-03-05".into(),
        time_zone: None,
        duration_min: None,
        range: false,
        booking_uid_to_reschedule: None,
    };
    w.client.slots(&query).await.unwrap();
    assert_eq!(w.sent()[0].header("authorization"), None);
}

// ------------------------------------------------------------ failures

#[tokio::test]
async fn a_429_waits_for_calcoms_reset_then_succeeds() {
    let w = world();
    w.reply_raw(
        429,
        &[("X-RateLimit-Limit-Default", "120"), ("X-RateLimit-Remaining-Default", "0"), ("X-RateLimit-Reset-Default", "7")],
        r#"{"status":"error","timestamp":"2030-03-04T08:00:00.000Z","path":"/v2/bookings/b-1","error":{"code":"ThrottlerException","message":"CustomThrottlerGuard - Too many requests. Please try again later.","details":"CustomThrottlerGuard - Too many requests. Please try again later."}}"#,
    );
    w.reply(200, success(booking_json("b-1", "accepted")));
    let booking = w.client.get_booking("b-1").await.unwrap();
    assert_eq!(booking.uid, "b-1");
    let sleeps = w.clock.sleeps();
    assert_eq!(
        sleeps.len(),
        1,
        "one wait, the limiter adds none: {sleeps:?}"
    );
    assert!(sleeps[0] >= Duration::from_secs(7), "{sleeps:?}");
    let sent = w.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0], sent[1], "the retry is the same request");
}

#[tokio::test]
async fn a_429_on_a_create_is_retried_because_calcom_did_nothing() {
    let w = world();
    w.reply_raw(429, &[("X-RateLimit-Reset-Default", "3")], "");
    w.reply(201, success(booking_json("b-1", "accepted")));
    assert!(w.create_booking().await.is_ok());
    assert_eq!(w.sent().len(), 2);
}

#[tokio::test]
async fn a_5xx_on_a_read_is_retried_with_backoff() {
    let w = world();
    w.reply(
        503,
        json!({"statusCode":503,"message":"Service Unavailable"}),
    )
    .reply(
        500,
        json!({"statusCode":500,"message":"Internal server error"}),
    )
    .reply(200, success(booking_json("b-1", "accepted")));
    assert!(w.client.get_booking("b-1").await.is_ok());
    assert_eq!(w.sent().len(), 3);
    let sleeps = w.clock.sleeps();
    let policy = RetryPolicy::default();
    assert_eq!(sleeps.len(), 2);
    for (i, sleep) in sleeps.iter().enumerate() {
        assert!(
            *sleep <= policy.backoff_delay(i as u32 + 1, None, 1.0),
            "{sleeps:?}"
        );
    }
}

#[tokio::test]
async fn a_5xx_on_create_booking_is_an_unknown_outcome_and_is_not_repeated() {
    let w = world();
    w.reply(
        500,
        json!({"statusCode":500,"message":"Internal server error"}),
    );
    let err = w.create_booking().await.unwrap_err();
    assert!(
        matches!(&err, CalcomError::OutcomeUnknown { reason } if reason.contains("POST /v2/bookings")),
        "{err:?}"
    );
    assert_eq!(w.sent().len(), 1);
    assert!(w.clock.sleeps().is_empty());
}

#[tokio::test]
async fn a_lost_reply_is_unknown_for_creates_and_retried_for_reads() {
    let lost = || {
        Err(TransportError::MaybeSent {
            reason: "timed out".into(),
        })
    };
    let w = world();
    w.push(lost());
    let input = ReserveSlot {
        event_type_id: 101,
        slot_start: t("2030-03-05T09:00:00Z"),
        slot_duration: None,
        reservation_duration: None,
    };
    let err = w.client.reserve_slot(&input).await;
    assert!(
        matches!(err, Err(CalcomError::OutcomeUnknown { .. })),
        "{err:?}"
    );
    assert_eq!(w.sent().len(), 1);

    let w = world();
    w.push(lost())
        .reply(200, success(booking_json("b-1", "accepted")));
    assert!(w.client.get_booking("b-1").await.is_ok());
    assert_eq!(w.sent().len(), 2);
}

#[tokio::test]
async fn a_create_that_never_left_is_sent_again() {
    let w = world();
    w.push(Err(TransportError::NotSent {
        url: "https://api.cal.com/v2/bookings".into(),
        reason: "connection refused".into(),
    }));
    w.reply(201, success(booking_json("b-1", "accepted")));
    assert!(w.create_booking().await.is_ok());
    assert_eq!(w.sent().len(), 2);
}

#[tokio::test]
async fn attempts_max_bounds_the_retries() {
    let w = world_with(ClientConfig {
        api_key: Some(KEY.into()),
        retry: RetryPolicy {
            attempts_max: 3,
            ..RetryPolicy::default()
        },
        ..ClientConfig::default()
    });
    for _ in 0..5 {
        w.reply(502, json!({"statusCode":502,"message":"Bad Gateway"}));
    }
    let err = w.client.get_booking("b-1").await.unwrap_err();
    assert!(
        matches!(&err, CalcomError::Retryable { reason, .. } if reason.contains("Bad Gateway")),
        "{err:?}"
    );
    assert_eq!(w.sent().len(), 3);
    assert_eq!(w.clock.sleeps().len(), 2);
}

#[tokio::test]
async fn refusals_come_back_at_once_with_calcoms_message() {
    let w = world();
    w.reply(
        409,
        json!({"statusCode":409,"message":"booking_conflict_error"}),
    );
    let err = w.create_booking().await.unwrap_err();
    assert_eq!(
        err,
        CalcomError::Permanent {
            status: 409,
            message: "booking_conflict_error".into()
        }
    );
    assert!(err.is_slot_taken());
    assert_eq!(w.sent().len(), 1);
}

#[tokio::test]
async fn an_unreadable_success_is_unknown_for_a_create_and_retried_for_a_read() {
    let w = world();
    w.reply_raw(201, &[], "<html>ok</html>");
    let err = w.create_booking().await.unwrap_err();
    assert!(
        matches!(&err, CalcomError::OutcomeUnknown { reason } if reason.contains("not the expected JSON")),
        "{err:?}"
    );

    let w = world();
    w.reply(200, json!({"status":"error","data":null}))
        .reply(200, success(booking_json("b-1", "accepted")));
    assert!(w.client.get_booking("b-1").await.is_ok());
    assert_eq!(w.sent().len(), 2);
}

#[tokio::test]
async fn every_attempt_is_reported_to_the_observer() {
    let w = world();
    w.reply(503, json!({}))
        .push(Err(TransportError::ReplyTooLarge { limit_bytes: 4 }))
        .reply(200, success(booking_json("b-1", "accepted")));
    w.client.get_booking("b-1").await.unwrap();
    let calls = w.calls.0.lock().unwrap().clone();
    let seen: Vec<(&str, CallOutcome, u32)> = calls
        .iter()
        .map(|c| (c.route, c.outcome, c.attempt))
        .collect();
    assert_eq!(
        seen,
        [
            ("GET /v2/bookings/{uid}", CallOutcome::Status(503), 1),
            ("GET /v2/bookings/{uid}", CallOutcome::ReplyTooLarge, 2),
            ("GET /v2/bookings/{uid}", CallOutcome::Status(200), 3),
        ]
    );
}

#[tokio::test]
async fn the_client_stays_under_its_per_minute_limit() {
    let w = world();
    for i in 0..130 {
        w.reply(200, success(booking_json(&format!("b-{i}"), "accepted")));
    }
    for i in 0..130 {
        w.client.get_booking(&format!("b-{i}")).await.unwrap();
    }
    assert_eq!(w.sent().len(), 130);
    assert_eq!(
        w.clock.sleeps(),
        vec![crate::calcom::limiter::CALCOM_WINDOW]
    );
}

#[test]
fn the_config_never_shows_the_key() {
    let config = ClientConfig {
        api_key: Some("cal_live_secret".into()),
        ..ClientConfig::default()
    };
    let shown = format!("{config:?}");
    assert!(
        !shown.contains("cal_live_secret") && shown.contains("redacted"),
        "{shown}"
    );
}

#[test]
fn query_values_are_percent_encoded_except_unreserved_and_colon() {
    assert_eq!(
        encode("2030-03-05T09:00:00.000Z"),
        "2030-03-05T09:00:00.000Z"
    );
    assert_eq!(
        encode("a b&c=d/e+f,g?h#é"),
        "a%20b%26c%3Dd%2Fe%2Bf%2Cg%3Fh%23%C3%A9"
    );
}
