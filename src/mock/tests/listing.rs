//! `GET /v2/bookings`: filters, statuses, sorting, paging, and the fault
//! that makes date filters disappear (#18010).

use serde_json::{Value, json};

use super::{Req, Resp, World, t};
use crate::mock::FaultRule;

/// The salon's 5 fixture bookings plus Anna 03-04, Chloe 03-04, Dev 03-05.
fn world() -> World {
    let w = World::new();
    for (event_type, start) in [
        (101, "2030-03-04T10:00:00Z"),
        (301, "2030-03-04T14:00:00Z"),
        (401, "2030-03-05T14:00:00Z"),
    ] {
        assert_eq!(w.book(event_type, start).status, 201);
    }
    w
}

fn list(w: &World, query: &str) -> Resp {
    w.send(Req::get(&format!("/v2/bookings?{query}")))
}

fn total(w: &World, query: &str) -> Value {
    let r = list(w, query);
    assert_eq!(r.status, 200, "{query}: {}", r.body);
    r.body["pagination"]["totalItems"].clone()
}

#[test]
fn filters_select_the_matching_bookings() {
    let w = world();
    let cases = [
        ("", 8),
        ("attendeeEmail=JO@example.com", 3),
        ("eventTypeId=101", 3),
        ("eventTypeIds=101,301", 5),
        ("status=cancelled", 1),
        ("status=upcoming", 7),
        ("status=past", 0),
        ("status=upcoming,cancelled", 8),
        (
            "afterStart=2030-03-05T00:00:00Z&beforeEnd=2030-03-06T00:00:00Z",
            3,
        ),
        ("bookingUid=salonDev0311beard00001", 1),
        ("attendeeName=Noah%20Regular", 1),
    ];
    for (query, expected) in cases {
        assert_eq!(total(&w, query), json!(expected), "{query}");
    }
    w.clock.set(t("2030-03-20T00:00:00Z"));
    assert_eq!(total(&w, "status=past"), json!(7));
}

#[test]
fn pages_carry_calcoms_pagination_object() {
    let w = world();
    let r = list(&w, "take=3&skip=3");
    assert_eq!(
        r.body["pagination"],
        json!({"returnedItems": 3, "totalItems": 8, "itemsPerPage": 3, "remainingItems": 2,
            "currentPage": 2, "totalPages": 3, "hasNextPage": true, "hasPreviousPage": true})
    );
    let none = list(&w, "attendeeEmail=nobody%40example.com");
    assert_eq!(
        (
            &none.body["pagination"]["currentPage"],
            &none.body["pagination"]["totalPages"]
        ),
        (&json!(0), &json!(0)),
        "page 0 of 0 when nothing matches"
    );
    let starts: Vec<&str> = r
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["start"].as_str().unwrap())
        .collect();
    let mut sorted = starts.clone();
    sorted.sort();
    assert_eq!(starts, sorted, "ascending by start unless told otherwise");
    let desc = list(&w, "sortStart=desc&take=1");
    assert_eq!(desc.data()[0]["uid"], "salonDev0311beard00001");
    assert_eq!(list(&w, "").body["pagination"]["itemsPerPage"], 100);
}

#[test]
fn bad_list_queries_are_refused() {
    let w = World::new();
    for query in [
        "take=0",
        "take=251",
        "sortStart=up",
        "eventTypeIds=1,x",
        "afterStart=monday",
    ] {
        assert_eq!(list(&w, query).status, 400, "{query}");
    }
    let r = list(&w, "status=soon");
    assert_eq!(
        r.message(),
        "Invalid status. Allowed are upcoming, recurring, past, cancelled, unconfirmed"
    );
}

#[test]
fn a_fault_can_make_the_list_ignore_its_date_filters() {
    let w = world();
    let query = "afterStart=2030-03-05T00:00:00Z&beforeEnd=2030-03-06T00:00:00Z";
    let mut rule = FaultRule::on("GET /v2/bookings");
    rule.ignore_list_filters = true;
    w.mock.add_faults(vec![rule]).unwrap();
    assert_eq!(total(&w, query), json!(8), "#18010: the window is ignored");
    assert_eq!(
        total(&w, "eventTypeId=401"),
        json!(2),
        "other filters still apply"
    );
}
