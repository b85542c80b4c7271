//! Webhook subscriptions and deliveries: the signed body arrives through the
//! Poster asynchronously, and the signature is checked here independently.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::{Req, World};
use crate::mock::{Delivery, Fixture, MockConfig, RecordingPoster};

const WAIT: Duration = Duration::from_secs(5);
const HOOK: &str = "http://127.0.0.1:9/calcom";

fn world() -> (World, Arc<RecordingPoster>) {
    let poster = RecordingPoster::new(200);
    let config = MockConfig {
        poster: Some(poster.clone()),
        ..Default::default()
    };
    (World::with(Fixture::salon(), config), poster)
}

fn subscribe(w: &World, url: &str, secret: Option<&str>) -> Value {
    let mut body = json!({"subscriberUrl": url, "active": true,
        "triggers": ["BOOKING_CREATED", "BOOKING_RESCHEDULED", "BOOKING_CANCELLED"]});
    if let Some(s) = secret {
        body["secret"] = json!(s);
    }
    let r = w.send(Req::post("/v2/webhooks", body));
    assert_eq!(r.status, 201, "{}", r.body);
    r.data().clone()
}

fn header<'a>(d: &'a Delivery, name: &str) -> &'a str {
    d.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map_or("", |(_, v)| v.as_str())
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn payload(d: &Delivery) -> Value {
    serde_json::from_slice(&d.body).unwrap()
}

#[test]
fn a_booking_change_is_delivered_signed_over_the_exact_body() {
    let (w, poster) = world();
    let hook = subscribe(&w, HOOK, Some("s3cret"));
    assert_eq!(hook["secret"], "s3cret", "Cal.com echoes the secret");
    assert!(uuid::Uuid::parse_str(hook["id"].as_str().unwrap()).is_ok());
    let booking = w.book(101, "2030-03-04T10:00:00Z").data().clone();
    let got = poster.wait_for(1, WAIT);
    assert_eq!(got.len(), 1);
    let d = &got[0];
    assert_eq!(d.url, HOOK);
    assert_eq!(header(d, "Content-Type"), "application/json");
    assert_eq!(header(d, "X-Cal-Webhook-Version"), "2021-10-20");
    assert_eq!(
        header(d, "X-Cal-Signature-256"),
        hmac_hex("s3cret", &d.body)
    );
    let body = payload(d);
    assert_eq!(body["triggerEvent"], "BOOKING_CREATED");
    let p = &body["payload"];
    assert_eq!(
        (p["status"].clone(), p["uid"].clone()),
        (json!("ACCEPTED"), booking["uid"].clone())
    );
    assert_eq!(
        (p["bookingId"].clone(), p["eventTypeId"].clone()),
        (booking["id"].clone(), json!(101))
    );
    assert_eq!(
        (p["startTime"].clone(), p["endTime"].clone()),
        (json!("2030-03-04T10:00:00Z"), json!("2030-03-04T10:30:00Z"))
    );
    assert_eq!(
        (p["type"].clone(), p["length"].clone()),
        (json!("colour-30"), json!(30))
    );
    assert_eq!(p["metadata"]["calsaga_workflow"], "wf-1");
    assert_eq!(
        (
            p["organizer"]["email"].clone(),
            p["organizer"]["utcOffset"].clone()
        ),
        (json!("anna@salon.example"), json!(60))
    );
}

#[test]
fn reschedule_and_cancel_are_delivered_with_their_details() {
    let (w, poster) = world();
    subscribe(&w, HOOK, None);
    let old = w.book(101, "2030-03-04T10:00:00Z").data()["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let new = w.send(Req::post(
        &format!("/v2/bookings/{old}/reschedule"),
        json!({"start": "2030-03-04T12:00:00Z"}),
    ));
    let new = new.data()["uid"].as_str().unwrap().to_string();
    w.send(Req::post(
        &format!("/v2/bookings/{new}/cancel"),
        json!({"cancellationReason": "ill"}),
    ));
    let got = poster.wait_for(3, WAIT);
    let bodies: Vec<Value> = got.iter().map(payload).collect();
    let triggers: Vec<&str> = bodies
        .iter()
        .map(|b| b["triggerEvent"].as_str().unwrap())
        .collect();
    assert_eq!(
        triggers,
        [
            "BOOKING_CREATED",
            "BOOKING_RESCHEDULED",
            "BOOKING_CANCELLED"
        ]
    );
    assert_eq!(
        (
            bodies[1]["payload"]["uid"].clone(),
            bodies[1]["payload"]["rescheduleUid"].clone()
        ),
        (json!(new), json!(old))
    );
    assert_eq!(bodies[2]["payload"]["status"], "CANCELLED");
    assert_eq!(bodies[2]["payload"]["cancellationReason"], "ill");
    assert!(
        got.iter()
            .all(|d| header(d, "X-Cal-Signature-256") == "no-secret-provided")
    );
}

#[test]
fn only_active_subscribers_of_the_trigger_are_called() {
    let (w, poster) = world();
    let hook = subscribe(&w, HOOK, Some("k"));
    w.send(Req::post(
        "/v2/webhooks",
        json!({"subscriberUrl": "http://127.0.0.1:9/other",
        "triggers": ["BOOKING_CANCELLED"], "active": true}),
    ));
    let path = format!("/v2/webhooks/{}", hook["id"].as_str().unwrap());
    assert_eq!(
        w.send(Req::patch(&path, json!({"active": false}))).data()["active"],
        false
    );
    w.book(101, "2030-03-04T10:00:00Z");
    // Deliveries are recorded before they are queued, so none recorded
    // means none will ever reach the poster.
    assert_eq!(
        w.mock.deliveries().len(),
        0,
        "no active BOOKING_CREATED subscriber"
    );
    w.send(Req::post(
        "/v2/bookings/salonBen0305cut0000001/cancel",
        json!({}),
    ));
    assert_eq!(
        poster.wait_for(1, WAIT).len(),
        1,
        "the cancel subscriber is called"
    );
}

#[test]
fn webhook_subscriptions_behave_like_calcom() {
    let (w, _poster) = world();
    subscribe(&w, HOOK, None);
    let dup = w.send(Req::post(
        "/v2/webhooks",
        json!({"subscriberUrl": HOOK, "triggers": ["BOOKING_CREATED"], "active": true}),
    ));
    assert_eq!(
        (dup.status, dup.message()),
        (
            409,
            "Webhook with this subscriber url already exists for this user"
        )
    );
    subscribe(&w, "http://127.0.0.1:9/b", None);
    let page = w.send(Req::get("/v2/webhooks?take=1&skip=1"));
    assert_eq!(page.data().as_array().unwrap().len(), 1);
    assert_eq!(page.data()[0]["subscriberUrl"], "http://127.0.0.1:9/b");
    let r = w.send(Req::get("/v2/webhooks/nope"));
    assert_eq!((r.status, r.message()), (404, "Webhook (nope) not found"));
    let bad = w.send(Req::post("/v2/webhooks", json!({"subscriberUrl": "http://x.example", "triggers": ["BOOKING_WHENEVER"], "active": true})));
    assert_eq!(bad.status, 400);
    let org_only = w.send(Req::post("/v2/webhooks", json!({"subscriberUrl": "http://x.example", "triggers": ["DELEGATION_CREDENTIAL_ERROR"], "active": true})));
    assert_eq!(
        (org_only.status, org_only.message()),
        (
            400,
            "DELEGATION_CREDENTIAL_ERROR trigger is only available for organization webhooks"
        )
    );
    // Only the global whitelist applies: an unknown field is dropped.
    let extra = w.send(Req::post("/v2/webhooks", json!({"subscriberUrl": "http://x.example", "triggers": ["BOOKING_CREATED"], "active": true, "colour": "red"})));
    assert_eq!(
        (extra.status, extra.data().get("colour")),
        (201, None),
        "{}",
        extra.body
    );
    let extra_id = extra.data()["id"].as_str().unwrap().to_string();
    assert_eq!(
        w.send(Req::delete(&format!("/v2/webhooks/{extra_id}")))
            .status,
        200
    );
    assert_eq!(w.send(Req::get("/v2/webhooks").auth(None)).status, 401);
    let id = page.data()[0]["id"].as_str().unwrap().to_string();
    let gone = w.send(Req::delete(&format!("/v2/webhooks/{id}")));
    assert_eq!((gone.status, gone.data()["id"].clone()), (200, json!(id)));
    assert_eq!(
        w.send(Req::get("/v2/webhooks"))
            .data()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
