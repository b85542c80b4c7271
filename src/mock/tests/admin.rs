//! Event types (API 2024-06-14): what is created is bookable at once.

use serde_json::json;

use super::{Req, World, starts};

#[test]
fn a_created_event_type_gets_slots_and_bookings() {
    let w = World::new();
    let body = json!({"lengthInMinutes": 20, "title": "Fringe", "slug": "fringe-20", "slotInterval": 20, "colour": "red"});
    let r = w.send(Req::post("/v2/event-types", body.clone()));
    assert_eq!(
        r.status, 201,
        "unknown fields are dropped silently: {}",
        r.body
    );
    let id = r.data()["id"].as_u64().unwrap();
    assert_eq!(
        (
            r.data()["ownerId"].clone(),
            r.data()["slotInterval"].clone()
        ),
        (json!(1), json!(20))
    );
    let dup = w.send(Req::post("/v2/event-types", body));
    assert_eq!(
        (dup.status, dup.message()),
        (400, "User already has an event type with this slug.")
    );
    let day = starts(
        &w.slots(id, "start=2030-03-04&end=2030-03-04&timeZone=Europe/Berlin"),
        "2030-03-04",
    );
    assert_eq!(
        &day[..2],
        [
            "2030-03-04T09:00:00.000+01:00",
            "2030-03-04T09:20:00.000+01:00"
        ]
    );
    assert_eq!(w.book(id, "2030-03-04T08:20:00Z").status, 201);
}

#[test]
fn event_types_can_be_read_changed_and_deleted() {
    let w = World::new();
    assert_eq!(
        w.send(Req::get("/v2/event-types?username=ben"))
            .data()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        w.send(Req::get("/v2/event-types"))
            .data()
            .as_array()
            .unwrap()
            .len(),
        4,
        "the caller's own"
    );
    let r = w.send(Req::get("/v2/event-types/9"));
    assert_eq!(
        (r.status, r.message()),
        (404, "Event type with id 9 not found")
    );
    let r = w.send(Req::patch(
        "/v2/event-types/104",
        json!({"slug": "colour-30"}),
    ));
    assert_eq!(
        (r.status, r.message()),
        (400, "User already has an event type with this slug.")
    );
    let r = w.send(Req::patch("/v2/event-types/104", json!({"title": "Chat"})));
    assert_eq!(
        (
            r.status,
            r.data()["title"].clone(),
            r.data()["slug"].clone()
        ),
        (200, json!("Chat"), json!("consultation-15"))
    );
    let r = w.send(Req::delete("/v2/event-types/104"));
    assert_eq!(
        r.body,
        json!({"status": "success", "data": {"id": 104, "lengthInMinutes": 15, "slug": "consultation-15", "title": "Chat"}})
    );
    let r = w.send(Req::delete("/v2/event-types/104"));
    assert_eq!(
        (r.status, r.message()),
        (404, "Event type with ID=104 does not exist.")
    );
    let r = w.send(Req::get(
        "/v2/slots?eventTypeId=104&start=2030-03-04&end=2030-03-04",
    ));
    assert_eq!(r.status, 404);
    assert_eq!(
        w.send(Req::post("/v2/event-types", json!({"title": "x"})).auth(None))
            .status,
        401
    );
}
