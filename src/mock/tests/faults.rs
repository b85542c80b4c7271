//! Fault rules and scenarios: counted and seeded triggers, the real bodies
//! of canned statuses, latency through the clock, and lost replies that were
//! nevertheless applied.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::{Req, World, t};
use crate::calcom::{Transport, TransportError};
use crate::clock::{Clock, SimClock};
use crate::mock::{Fixture, MockConfig, MockTransport, Scenario};

fn add(w: &World, rule: Value) -> Value {
    let r = w.send(Req::post("/_mock/faults", rule));
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

fn bookings(w: &World) -> usize {
    w.state()["bookings"].as_array().unwrap().len()
}

#[test]
fn nth_fires_once_and_the_refused_request_is_not_applied() {
    let w = World::new();
    add(
        &w,
        json!({"route": "POST /v2/bookings", "nth": 2, "status": 500}),
    );
    let statuses: Vec<u16> = ["10:00", "11:00", "12:00"]
        .iter()
        .map(|h| w.book(101, &format!("2030-03-04T{h}:00Z")).status)
        .collect();
    assert_eq!(statuses, [201, 500, 201]);
    assert_eq!(bookings(&w), 5 + 2);
    let rules = w.send(Req::get("/_mock/faults")).body;
    assert_eq!(
        (
            rules["rules"][0]["matched"].clone(),
            rules["rules"][0]["fired"].clone()
        ),
        (json!(3), json!(1))
    );
}

#[test]
fn every_respects_its_cap_and_other_routes_are_untouched() {
    let w = World::new();
    add(
        &w,
        json!({"route": "GET /v2/bookings/{uid}", "every": 2, "times": 1, "status": 503}),
    );
    let get = || w.send(Req::get("/v2/bookings/salonBen0305cut0000001"));
    let statuses: Vec<u16> = (0..4).map(|_| get().status).collect();
    assert_eq!(statuses, [200, 503, 200, 200]);
    assert_eq!(w.send(Req::get("/v2/bookings")).status, 200);
}

#[test]
fn canned_statuses_carry_the_real_body_for_their_route() {
    let w = World::new();
    add(
        &w,
        json!([
            {"route": "POST /v2/bookings", "nth": 1, "status": 409},
            {"route": "POST /v2/bookings", "nth": 2, "status": 400},
            {"route": "POST /v2/bookings/{uid}/cancel", "nth": 1, "status": 400},
            {"route": "GET /v2/bookings", "nth": 1, "status": 429},
            {"route": "GET /v2/bookings", "nth": 2, "status": 503},
        ]),
    );
    let r = w.book(101, "2030-03-04T10:00:00Z");
    assert_eq!(
        r.body,
        json!({"statusCode": 409, "message": "booking_conflict_error"})
    );
    let r = w.book(101, "2030-03-04T10:00:00Z");
    assert_eq!(
        r.message(),
        "User either already has booking at this time or is not available"
    );
    let r = w.send(Req::post("/v2/bookings/abc/cancel", json!({})));
    assert!(
        r.message()
            .starts_with("Can't cancel booking with uid=abc because")
    );
    let r = w.send(Req::get("/v2/bookings"));
    assert_eq!(
        (r.status, r.body["error"]["code"].clone()),
        (429, json!("ThrottlerException"))
    );
    assert_eq!(r.header("X-RateLimit-Remaining-Default"), Some("0"));
    let r = w.send(Req::get("/v2/bookings"));
    assert_eq!(
        r.body,
        json!({"statusCode": 503, "message": "Service Unavailable"})
    );
}

fn rate_pattern(seed: u64) -> Vec<u16> {
    let w = World::with(
        Fixture::salon(),
        MockConfig {
            fault_seed: seed,
            ..Default::default()
        },
    );
    add(
        &w,
        json!({"route": "GET /v2/bookings/{uid}", "rate": 0.5, "status": 503}),
    );
    (0..40)
        .map(|_| {
            w.send(Req::get("/v2/bookings/salonBen0305cut0000001"))
                .status
        })
        .collect()
}

#[test]
fn rate_faults_repeat_exactly_for_a_seed() {
    let a = rate_pattern(1);
    assert_eq!(a, rate_pattern(1));
    assert_ne!(a, rate_pattern(2));
    assert!(a.contains(&200) && a.contains(&503), "{a:?}");
}

#[test]
fn scenarios_install_their_faults() {
    let outage = World::with(
        Fixture::salon(),
        MockConfig {
            scenario: Scenario::Outage,
            ..Default::default()
        },
    );
    assert_eq!(outage.send(Req::get("/v2/bookings")).status, 503);
    assert_eq!(
        outage.send(Req::get("/_mock/state")).status,
        200,
        "control routes stay up"
    );
    let flaky = World::with(
        Fixture::salon(),
        MockConfig {
            scenario: Scenario::Flaky,
            fault_seed: 3,
            ..Default::default()
        },
    );
    let failed = (0..100)
        .filter(|_| flaky.send(Req::get("/v2/webhooks")).status == 503)
        .count();
    assert!((1..30).contains(&failed), "about 10 % fail: {failed}");
    let slow = World::with(
        Fixture::salon(),
        MockConfig {
            scenario: Scenario::Slow,
            ..Default::default()
        },
    );
    assert_eq!(
        slow.reply(Req::get("/v2/webhooks")).latency,
        Duration::from_millis(300)
    );
    assert!(
        "sunny"
            .parse::<Scenario>()
            .unwrap_err()
            .to_string()
            .contains("healthy, flaky, slow")
    );
}

#[test]
fn bad_rules_are_refused_with_a_reason() {
    let w = World::new();
    for rule in [
        json!({"route": "POST /v2/nothing", "status": 500}),
        json!({"route": "*", "status": 418}),
        json!({"route": "*", "nth": 1, "every": 2}),
        json!({"route": "*", "rate": 2.0}),
        json!({"route": "*", "colour": "red"}),
    ] {
        let r = w.send(Req::post("/_mock/faults", rule.clone()));
        assert_eq!(r.status, 400, "{rule}");
        assert!(r.body["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    add(&w, json!({"route": "*", "status": 503}));
    assert_eq!(
        w.send(Req::delete("/_mock/faults")).body,
        json!({"rules": []})
    );
    assert_eq!(w.send(Req::get("/v2/webhooks")).status, 200);
}

fn transport_world(scenario: Scenario) -> (Arc<SimClock>, MockTransport, World) {
    let w = World::with(
        Fixture::salon(),
        MockConfig {
            scenario,
            ..Default::default()
        },
    );
    (w.clock.clone(), MockTransport::new(w.mock.clone()), w)
}

#[tokio::test]
async fn latency_is_waited_through_the_clock() {
    let (clock, transport, _w) = transport_world(Scenario::Slow);
    let r = transport
        .send(Req::get("/v2/webhooks").build())
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(clock.sleeps(), vec![Duration::from_millis(300)]);
    assert_eq!(clock.now(), t("2030-03-01T00:00:00.300Z"));
}

#[tokio::test]
async fn a_lost_reply_is_maybe_sent_but_the_booking_exists() {
    let (_clock, transport, w) = transport_world(Scenario::Healthy);
    add(
        &w,
        json!({"route": "POST /v2/bookings", "nth": 1, "replyLost": true}),
    );
    let req = || {
        Req::post(
            "/v2/bookings",
            super::booking_body(101, "2030-03-04T10:00:00Z"),
        )
        .build()
    };
    let err = transport.send(req()).await.unwrap_err();
    assert!(matches!(err, TransportError::MaybeSent { .. }), "{err:?}");
    let made: Vec<Value> = w.state()["bookings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["metadata"]["calsaga_workflow"] == "wf-1")
        .cloned()
        .collect();
    assert_eq!(made.len(), 1, "applied although the reply was lost");
    assert_eq!(
        transport.send(req()).await.unwrap().status,
        400,
        "a blind retry finds the slot taken"
    );
}
