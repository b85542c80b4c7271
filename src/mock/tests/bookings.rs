//! Creating, racing, cancelling and rescheduling bookings, with Cal.com's
//! exact refusals.

use std::sync::{Arc, Barrier, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use super::{Req, Resp, World, booking_body, read, starts, t};

const TAKEN: &str = "User either already has booking at this time or is not available";

#[test]
fn a_create_returns_the_2024_08_13_booking() {
    let w = World::new();
    let r = w.book(201, "2030-03-05T12:00:00Z");
    assert_eq!(r.status, 201, "{}", r.body);
    let b = r.data();
    assert_eq!(b["uid"].as_str().unwrap().len(), 22);
    assert_eq!(b["status"], "accepted");
    assert_eq!(b["start"], "2030-03-05T12:00:00.000Z");
    assert_eq!(b["end"], "2030-03-05T12:45:00.000Z");
    assert_eq!(b["duration"], 45);
    assert_eq!(b["hosts"][0]["id"], 2);
    assert_eq!(b["eventType"], json!({"id": 201, "slug": "cut-45"}));
    assert_eq!(b["title"], "Cut between Ben Stylist and Jo Client");
    assert_eq!(b["metadata"]["calsaga_workflow"], "wf-1");
    assert_eq!(b["attendees"][0]["email"], "jo@example.com");
    assert!(
        r.header("X-Request-Id")
            .is_some_and(|id| uuid::Uuid::parse_str(id).is_ok())
    );
}

#[test]
fn bookings_in_the_past_within_notice_or_outside_hours_are_refused() {
    let w = World::new();
    w.clock.set(t("2030-03-05T12:00:00Z"));
    let past = w.book(201, "2030-03-05T11:00:00Z");
    assert_eq!(
        (past.status, past.message()),
        (400, "Attempting to book a meeting in the past.")
    );
    let soon = w.book(201, "2030-03-05T12:30:00Z");
    assert_eq!(soon.status, 400);
    assert!(
        soon.message()
            .starts_with("The event type can't be booked at the \"start\" time provided.")
    );
    for (event_type, start) in [
        (201, "2030-03-05T18:30:00Z"),
        (201, "2030-03-06T08:00:00Z"),
        (101, "2030-03-10T10:00:00Z"),
    ] {
        let r = w.book(event_type, start);
        assert_eq!(
            (r.status, r.message()),
            (400, TAKEN),
            "{event_type} {start} is outside working hours"
        );
    }
    let overlap = w.book(202, "2030-03-05T09:30:00Z").status;
    assert_eq!(overlap, 400, "Ben's fixture cut blocks his blow-dry too");
}

#[test]
fn unknown_fields_and_event_types_are_refused() {
    let w = World::new();
    let mut body = booking_body(101, "2030-03-04T10:00:00Z");
    body["notes"] = json!("hi");
    let r = w.send(Req::post("/v2/bookings", body));
    assert_eq!(
        (r.status, r.message()),
        (
            400,
            "notes property is wrong,property notes should not exist"
        )
    );
    let mut body = booking_body(101, "2030-03-04T10:00:00Z");
    body["attendee"]["age"] = json!(3);
    assert_eq!(
        w.send(Req::post("/v2/bookings", body)).message(),
        "age property is wrong,property age should not exist"
    );
    let r = w.book(999, "2030-03-04T10:00:00Z");
    assert_eq!(
        (r.status, r.message()),
        (404, "Event type with id 999 not found.")
    );
}

#[test]
fn metadata_and_contact_limits_are_enforced() {
    let w = World::new();
    let mut body = booking_body(101, "2030-03-04T10:00:00Z");
    body["metadata"] = json!({"k": "v".repeat(501)});
    let r = w.send(Req::post("/v2/bookings", body));
    assert_eq!(r.status, 400);
    assert!(
        r.message()
            .starts_with("Metadata must have at most 50 keys")
    );
    let mut body = booking_body(101, "2030-03-04T10:00:00Z");
    body["attendee"] = json!({"name": "No Contact", "timeZone": "Europe/Berlin"});
    assert_eq!(w.send(Req::post("/v2/bookings", body)).status, 400);
}

#[test]
fn a_second_create_of_a_taken_slot_gets_400() {
    let w = World::new();
    assert_eq!(w.book(101, "2030-03-04T10:00:00Z").status, 201);
    let r = w.book(101, "2030-03-04T10:00:00Z");
    assert_eq!((r.status, r.message()), (400, TAKEN));
    assert_eq!(
        w.book(102, "2030-03-04T09:45:00Z").status,
        400,
        "overlaps, other event type"
    );
}

/// Releases waiters once `n` arrived, or after a deadline so a bug cannot hang the suite.
fn gate(n: usize) -> Arc<dyn Fn() + Send + Sync> {
    let arrived = Arc::new((Mutex::new(0usize), Condvar::new()));
    Arc::new(move || {
        let (count, cv) = &*arrived;
        let mut c = count.lock().unwrap();
        *c += 1;
        cv.notify_all();
        let deadline = Instant::now() + Duration::from_secs(5);
        while *c < n && Instant::now() < deadline {
            c = cv.wait_timeout(c, deadline - Instant::now()).unwrap().0;
        }
    })
}

fn race(w: &World, threads: usize) -> Vec<Resp> {
    let start = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (mock, start) = (w.mock.clone(), start.clone());
            std::thread::spawn(move || {
                let req = Req::post("/v2/bookings", booking_body(301, "2030-03-04T14:00:00Z"));
                start.wait();
                read(mock.handle(&req.build()))
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("no panic"))
        .collect()
}

#[test]
fn concurrent_creates_of_one_slot_give_exactly_one_booking() {
    let w = World::new();
    let answers = race(&w, 8);
    assert_eq!(
        answers.iter().filter(|r| r.status == 201).count(),
        1,
        "{answers:?}"
    );
    assert!(answers.iter().all(|r| [201, 400, 409].contains(&r.status)));
    assert_eq!(w.state()["overlaps"], json!([]));
}

#[test]
fn creates_that_all_pass_the_check_meet_the_unique_key_and_get_a_bare_409() {
    let w = World::new();
    *super::super::engine::lock(&w.mock.race_gate) = Some(gate(8));
    let answers = race(&w, 8);
    assert_eq!(answers.iter().filter(|r| r.status == 201).count(), 1);
    let conflicts: Vec<&Resp> = answers.iter().filter(|r| r.status == 409).collect();
    assert_eq!(conflicts.len(), 7, "{answers:?}");
    for r in conflicts {
        assert_eq!(
            r.body,
            json!({"statusCode": 409, "message": "booking_conflict_error"})
        );
    }
}

#[test]
fn cancel_frees_the_slot_and_a_second_cancel_is_refused() {
    let w = World::new();
    let uid = w.book(101, "2030-03-04T10:00:00Z").data()["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/v2/bookings/{uid}/cancel");
    let r = w.send(Req::post(&path, json!({"cancellationReason": "ill"})));
    assert_eq!(r.status, 200);
    assert_eq!(
        (
            r.data()["status"].clone(),
            r.data()["cancellationReason"].clone()
        ),
        (json!("cancelled"), json!("ill"))
    );
    let again = w.send(Req::post(&path, json!({})));
    assert_eq!(again.status, 400);
    assert_eq!(
        again.message(),
        format!(
            "Can't cancel booking with uid={uid} because it has been cancelled already. Please provide uid of a booking that is not cancelled."
        )
    );
    let day = starts(
        &w.slots(101, "start=2030-03-04&end=2030-03-04"),
        "2030-03-04",
    );
    assert!(day.contains(&"2030-03-04T10:00:00.000Z".to_string()));
    let r = w.send(Req::post("/v2/bookings/nope/cancel", json!({})));
    assert_eq!(
        (r.status, r.message()),
        (404, "Booking with uid=nope not found")
    );
}

#[test]
fn a_booking_that_has_ended_cannot_be_cancelled() {
    let w = World::new();
    let uid = w.book(101, "2030-03-04T10:00:00Z").data()["uid"]
        .as_str()
        .unwrap()
        .to_string();
    w.clock.set(super::t("2030-03-04T10:31:00Z"));
    let r = w.send(Req::post(&format!("/v2/bookings/{uid}/cancel"), json!({})));
    assert_eq!(
        (r.status, r.body.clone()),
        (
            400,
            json!({"statusCode": 400, "message": "Cannot cancel a booking that has already ended"})
        )
    );
}

#[test]
fn get_returns_a_booking_or_calcoms_404() {
    let w = World::new();
    let r = w.send(Req::get("/v2/bookings/salonBen0305cut0000001"));
    assert_eq!(
        (r.status, r.data()["hosts"][0]["username"].clone()),
        (200, json!("ben"))
    );
    let r = w.send(Req::get("/v2/bookings/nope"));
    assert_eq!(
        (r.status, r.message()),
        (404, "Booking with uid=nope was not found in the database")
    );
}

#[test]
fn reschedule_moves_the_booking_and_cancels_the_old_one() {
    let w = World::new();
    let old = w.book(101, "2030-03-04T10:00:00Z").data()["uid"]
        .as_str()
        .unwrap()
        .to_string();
    // 15 minutes later overlaps the old time: the old booking must not block it.
    let r = w.send(Req::post(
        &format!("/v2/bookings/{old}/reschedule"),
        json!({"start": "2030-03-04T10:15:00Z"}),
    ));
    assert_eq!(r.status, 201, "{}", r.body);
    let new = r.data()["uid"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(r.data()["rescheduledFromUid"], old);
    assert_eq!(r.data()["start"], "2030-03-04T10:15:00.000Z");
    assert_eq!(r.data()["metadata"]["calsaga_workflow"], "wf-1");
    let was = w.send(Req::get(&format!("/v2/bookings/{old}")));
    assert_eq!(
        (
            was.data()["status"].clone(),
            was.data()["rescheduledToUid"].clone()
        ),
        (json!("cancelled"), json!(new))
    );
    let again = w.send(Req::post(
        &format!("/v2/bookings/{old}/reschedule"),
        json!({"start": "2030-03-04T12:00:00Z"}),
    ));
    assert_eq!(again.status, 400);
    assert!(
        again
            .message()
            .contains(&format!("rescheduled already to booking with uid={new}"))
    );
    let busy = w.send(Req::post(
        &format!("/v2/bookings/{new}/reschedule"),
        json!({"start": "2030-03-06T08:00:00Z"}),
    ));
    assert_eq!(
        (busy.status, busy.message()),
        (400, TAKEN),
        "Anna's fixture colour is there"
    );
    assert_eq!(w.state()["overlaps"], json!([]));
}
