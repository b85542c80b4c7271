//! Slot maths across zones and DST changes, busy times, notice, query
//! validation, and reservations (hide slots, expire by the clock, never
//! block a booking).

use std::time::Duration;

use serde_json::json;

use super::{Req, World, starts, t};

const ANNA_DAY: &str = "start=2030-03-04&end=2030-03-04&timeZone=Europe/Berlin";

#[test]
fn slots_follow_the_owners_hours_in_the_requested_zone() {
    let w = World::new();
    let data = w.slots(101, ANNA_DAY);
    let day = starts(&data, "2030-03-04");
    assert_eq!(data.as_object().unwrap().len(), 1, "only Monday: {data}");
    assert_eq!(
        day.len(),
        35,
        "09:00..17:30 every 15 min for a 30 min colour"
    );
    assert_eq!(day[0], "2030-03-04T09:00:00.000+01:00");
    assert_eq!(day[34], "2030-03-04T17:30:00.000+01:00");
}

#[test]
fn slots_without_a_time_zone_are_utc_with_z() {
    let w = World::new();
    let data = w.slots(101, "start=2030-03-04&end=2030-03-04");
    assert_eq!(starts(&data, "2030-03-04")[0], "2030-03-04T08:00:00.000Z");
}

#[test]
fn us_dst_change_keeps_slots_at_eight_local() {
    let w = World::new();
    let data = w.slots(
        401,
        "start=2030-03-08&end=2030-03-11&timeZone=America/New_York",
    );
    assert_eq!(
        starts(&data, "2030-03-08")[0],
        "2030-03-08T08:00:00.000-05:00"
    );
    assert_eq!(
        starts(&data, "2030-03-08").last().unwrap(),
        "2030-03-08T15:30:00.000-05:00"
    );
    assert!(
        data.get("2030-03-10").is_none(),
        "Dev does not work Sundays"
    );
    let monday = starts(&data, "2030-03-11");
    assert_eq!(monday[0], "2030-03-11T08:00:00.000-04:00");
    // Dev's fixture booking 09:00-09:20 local blocks every overlapping trim.
    for busy in ["08:45", "09:00", "09:15"] {
        assert!(
            !monday.contains(&format!("2030-03-11T{busy}:00.000-04:00")),
            "{busy} is busy"
        );
    }
    assert!(monday.contains(&"2030-03-11T09:30:00.000-04:00".to_string()));
}

#[test]
fn eu_dst_change_keeps_slots_at_nine_local() {
    let w = World::new();
    let data = w.slots(
        101,
        "start=2030-03-30&end=2030-04-01&timeZone=Europe/Berlin",
    );
    assert_eq!(
        starts(&data, "2030-03-30")[0],
        "2030-03-30T09:00:00.000+01:00"
    );
    assert!(
        data.get("2030-03-31").is_none(),
        "Anna does not work Sundays"
    );
    assert_eq!(
        starts(&data, "2030-04-01")[0],
        "2030-04-01T09:00:00.000+02:00"
    );
    let utc = w.slots(301, "start=2030-04-01&end=2030-04-01");
    assert_eq!(
        starts(&utc, "2030-04-01")[0],
        "2030-04-01T08:00:00.000Z",
        "Chloe, 09:00 BST"
    );
}

#[test]
fn slots_are_grouped_by_date_in_the_requested_zone_not_the_hosts() {
    let w = World::new();
    let data = w.slots(
        401,
        "start=2030-03-04T13:00:00Z&end=2030-03-04T21:00:00Z&timeZone=Asia/Tokyo",
    );
    let (evening, morning) = (starts(&data, "2030-03-04"), starts(&data, "2030-03-05"));
    assert_eq!(evening.len() + morning.len(), 31);
    assert_eq!(evening[0], "2030-03-04T22:00:00.000+09:00");
    assert_eq!(morning[0], "2030-03-05T00:00:00.000+09:00");
}

#[test]
fn a_hosts_bookings_block_all_of_their_event_types_but_cancelled_ones_do_not() {
    let w = World::new();
    let q = "start=2030-03-05&end=2030-03-05&timeZone=Europe/Berlin";
    // Ben's fixture booking is 10:00-11:00 Berlin, the start of his day.
    assert_eq!(
        starts(&w.slots(201, q), "2030-03-05")[0],
        "2030-03-05T11:00:00.000+01:00"
    );
    assert_eq!(
        starts(&w.slots(202, q), "2030-03-05")[0],
        "2030-03-05T11:00:00.000+01:00"
    );
    // Anna's 14:00 booking is cancelled, so 14:00 is free.
    assert!(
        starts(&w.slots(101, q), "2030-03-05")
            .contains(&"2030-03-05T14:00:00.000+01:00".to_string())
    );
}

#[test]
fn past_times_and_the_minimum_notice_are_not_offered() {
    let w = World::new();
    w.clock.set(t("2030-03-04T09:10:00Z"));
    let day = starts(&w.slots(101, ANNA_DAY), "2030-03-04");
    assert_eq!(
        day[0], "2030-03-04T11:15:00.000+01:00",
        "now 10:10 Berlin + 60 min notice"
    );
}

#[test]
fn an_end_at_midnight_covers_that_whole_day() {
    let w = World::new();
    let data = w.slots(101, "start=2030-03-04T00:00:00Z&end=2030-03-04T00:00:00Z");
    assert_eq!(starts(&data, "2030-03-04").len(), 35);
}

#[test]
fn range_format_adds_ends_and_duration_changes_the_length() {
    let w = World::new();
    let data = w.slots(101, &format!("{ANNA_DAY}&format=range&duration=60"));
    let first = &data["2030-03-04"][0];
    assert_eq!(first["end"], "2030-03-04T10:00:00.000+01:00");
    assert_eq!(
        data["2030-03-04"].as_array().unwrap().len(),
        33,
        "last start 17:00"
    );
}

#[test]
fn bad_slot_queries_get_calcoms_refusals() {
    let w = World::new();
    let cases = [
        (
            "eventTypeId=101&start=2030-03-05&end=2030-03-04",
            400,
            "Invalid time range given - check the 'start' and 'end' query parameters.",
        ),
        (
            "eventTypeId=101&start=2030-03-04&end=2030-03-04&foo=1",
            400,
            "foo property is wrong,property foo should not exist",
        ),
        (
            "eventTypeId=999&start=2030-03-04&end=2030-03-04",
            404,
            "Event Type not found",
        ),
        (
            "eventTypeId=101&start=soon&end=2030-03-04",
            400,
            "start property is wrong,start must be a valid ISO 8601 date string",
        ),
        (
            "eventTypeId=101&start=2030-03-04&end=2030-03-04&timeZone=Mars/Base",
            400,
            "timeZone property is wrong,timeZone must be a valid IANA time-zone",
        ),
    ];
    for (query, status, message) in cases {
        let r = w.send(Req::get(&format!("/v2/slots?{query}")));
        assert_eq!((r.status, r.message()), (status, message), "{query}");
        assert_eq!(r.body["error"]["details"]["statusCode"], status);
        assert_eq!(r.body["path"], format!("/v2/slots?{query}"));
    }
}

#[test]
fn slots_can_be_asked_by_slug_and_username() {
    let w = World::new();
    let r = w.send(Req::get(
        "/v2/slots?eventTypeSlug=cut-45&username=chloe&start=2030-03-04&end=2030-03-04",
    ));
    assert_eq!(
        starts(r.data(), "2030-03-04")[0],
        "2030-03-04T09:00:00.000Z"
    );
}

fn reserve(w: &World, event_type_id: u64, start: &str) -> super::Resp {
    w.send(Req::post(
        "/v2/slots/reservations",
        json!({"eventTypeId": event_type_id, "slotStart": start}),
    ))
}

#[test]
fn a_reservation_hides_the_hosts_slots_until_it_expires() {
    let w = World::new();
    let r = reserve(&w, 101, "2030-03-04T10:00:00Z");
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.data()["slotEnd"], "2030-03-04T10:30:00.000Z");
    assert_eq!(r.data()["reservationDuration"], 5);
    assert_eq!(r.data()["reservationUntil"], "2030-03-01T00:05:00.000Z");
    let uid = r.data()["reservationUid"].as_str().unwrap().to_string();
    let hidden = ["10:45", "11:00", "11:15"].map(|h| format!("2030-03-04T{h}:00.000+01:00"));
    for event_type in [101, 102] {
        let day = starts(&w.slots(event_type, ANNA_DAY), "2030-03-04");
        assert!(
            hidden.iter().all(|h| !day.contains(h)),
            "{event_type}: {day:?}"
        );
        assert!(day.contains(&"2030-03-04T10:00:00.000+01:00".to_string()));
    }
    assert_eq!(
        w.send(Req::get(&format!("/v2/slots/reservations/{uid}")))
            .data()["reservationUid"],
        uid
    );
    w.clock.advance(Duration::from_secs(5 * 60));
    let day = starts(&w.slots(101, ANNA_DAY), "2030-03-04");
    assert!(
        hidden.iter().all(|h| day.contains(h)),
        "expired reservations hide nothing"
    );
    assert!(
        w.send(Req::get(&format!("/v2/slots/reservations/{uid}")))
            .data()
            .is_null()
    );
}

#[test]
fn overlapping_reservations_and_booked_times_are_refused_with_422() {
    let w = World::new();
    assert_eq!(reserve(&w, 101, "2030-03-04T10:00:00Z").status, 201);
    for start in ["2030-03-04T10:00:00Z", "2030-03-04T10:15:00Z"] {
        let r = reserve(&w, 101, start);
        assert_eq!(r.status, 422);
        assert_eq!(
            r.message(),
            "This time slot is already reserved by another user. Please choose a different time."
        );
        assert_eq!(r.body["error"]["code"], "UnprocessableEntityException");
    }
    let r = reserve(&w, 201, "2030-03-05T09:15:00Z");
    assert_eq!(
        (r.status, r.message()),
        (422, "Can't reserve a slot if the event is already booked.")
    );
}

#[test]
fn a_reservation_does_not_stop_a_booking_of_the_same_slot() {
    let w = World::new();
    assert_eq!(reserve(&w, 101, "2030-03-04T10:00:00Z").status, 201);
    assert_eq!(w.book(101, "2030-03-04T10:00:00Z").status, 201, "#23938");
}

#[test]
fn reservation_lookups_updates_and_deletes_behave_like_calcom() {
    let w = World::new();
    let r = w.send(Req::get("/v2/slots/reservations/nope"));
    assert_eq!((r.status, r.data().is_null()), (200, true));
    let r = w.send(Req::delete("/v2/slots/reservations/nope"));
    assert_eq!(
        (r.status, r.body.clone()),
        (200, json!({"status": "success"}))
    );
    let r = w.send(Req::patch(
        "/v2/slots/reservations/nope",
        json!({"eventTypeId": 101, "slotStart": "2030-03-04T12:00:00Z"}),
    ));
    assert_eq!(
        (r.status, r.message()),
        (404, "Slot with uid=nope not found")
    );
    let uid = reserve(&w, 101, "2030-03-04T10:00:00Z").data()["reservationUid"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/v2/slots/reservations/{uid}");
    let moved = w.send(Req::patch(
        &path,
        json!({"eventTypeId": 101, "slotStart": "2030-03-04T12:00:00Z"}),
    ));
    assert_eq!(
        (moved.status, moved.data()["slotStart"].clone()),
        (200, json!("2030-03-04T12:00:00.000Z"))
    );
    let day = starts(&w.slots(101, ANNA_DAY), "2030-03-04");
    assert!(day.contains(&"2030-03-04T11:00:00.000+01:00".to_string()));
    assert!(!day.contains(&"2030-03-04T13:00:00.000+01:00".to_string()));
    assert_eq!(w.send(Req::delete(&path)).status, 200);
    assert!(
        starts(&w.slots(101, ANNA_DAY), "2030-03-04")
            .contains(&"2030-03-04T13:00:00.000+01:00".to_string())
    );
}

#[test]
fn a_custom_reservation_length_needs_a_caller() {
    let w = World::new();
    let body =
        json!({"eventTypeId": 101, "slotStart": "2030-03-04T10:00:00Z", "reservationDuration": 10});
    let r = w.send(Req::post("/v2/slots/reservations", body.clone()).auth(None));
    assert_eq!(r.status, 401);
    let r = w.send(Req::post("/v2/slots/reservations", body));
    assert_eq!(r.data()["reservationUntil"], "2030-03-01T00:10:00.000Z");
    // No pipe of its own: the global whitelist drops unknown fields.
    let r = w.send(Req::post(
        "/v2/slots/reservations",
        json!({"eventTypeId": 101, "slotStart": "2030-03-04T12:00:00Z", "seats": 1}),
    ));
    assert_eq!((r.status, r.data().get("seats")), (201, None), "{}", r.body);
}
