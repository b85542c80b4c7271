//! Versions, auth and the throttler, with the real consequences of getting
//! them wrong.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde_json::json;

use super::{KEY, Req, Resp, World, booking_body, read};
use crate::calcom::Method;
use crate::mock::{Fixture, MockConfig, Scenario};

const SLOTS_Q: &str = "/v2/slots?eventTypeId=101&start=2030-03-04&end=2030-03-04";
const INTERNAL: &str = r#"{"statusCode":500,"message":"Internal server error"}"#;

fn internal() -> serde_json::Value {
    serde_json::from_str(INTERNAL).unwrap()
}

#[test]
fn a_route_and_version_without_a_controller_is_a_404() {
    let w = World::new();
    let cases = [
        (
            Req::post("/v2/bookings", booking_body(101, "2030-03-04T10:00:00Z"))
                .version(Some("2024-09-04")),
            "Cannot POST /v2/bookings",
        ),
        (
            Req::get(SLOTS_Q).version(None),
            "Cannot GET /v2/slots?eventTypeId=101&start=2030-03-04&end=2030-03-04",
        ),
        (
            Req::get(SLOTS_Q).version(Some("2024-08-13")),
            "Cannot GET /v2/slots?eventTypeId=101&start=2030-03-04&end=2030-03-04",
        ),
        (
            Req::post("/v2/bookings/x/reschedule", json!({})).version(Some("2024-06-14")),
            "Cannot POST /v2/bookings/x/reschedule",
        ),
        (
            Req::get("/v2/event-types/101").version(Some("2024-09-04")),
            "Cannot GET /v2/event-types/101",
        ),
        (Req::get("/v2/nope"), "Cannot GET /v2/nope"),
    ];
    for (req, message) in cases {
        let r = w.send(req);
        assert_eq!((r.status, r.message()), (404, message));
        assert_eq!(r.body["error"]["code"], "NotFoundException");
    }
}

#[test]
fn legacy_versions_end_in_calcoms_bare_500() {
    let w = World::new();
    for version in [
        None,
        Some("2024-06-14"),
        Some("bogus"),
        Some("\"2024-08-13\""),
    ] {
        let r = w.send(Req::get("/v2/bookings").version(version));
        assert_eq!(
            (r.status, r.body.clone()),
            (500, internal()),
            "{version:?} (#16924)"
        );
    }
    assert_eq!(
        w.send(Req::get("/v2/event-types/101").version(None)).status,
        500
    );
    assert_eq!(
        w.send(Req::get("/v2/webhooks").version(Some("2024-09-04")))
            .status,
        200,
        "any version"
    );
    assert_eq!(w.send(Req::get("/v2/webhooks")).status, 200, "no version");
}

#[test]
fn auth_errors_match_calcom() {
    let w = World::new();
    let r = w.send(Req::get(SLOTS_Q).auth(Some("Bearer cal_wrong")));
    assert_eq!(
        (r.status, r.message()),
        (401, "CustomThrottlerGuard - Invalid API Key"),
        "even on a public route"
    );
    let r = w.send(Req::get("/v2/bookings").auth(None));
    assert_eq!(r.status, 401);
    assert!(
        r.message()
            .starts_with("ApiAuthStrategy - No authentication method provided")
    );
    assert_eq!(r.body["error"]["code"], "UnauthorizedException");
    let r = w.send(Req::get("/v2/bookings").auth(Some(KEY)));
    assert_eq!(
        (r.status, r.body.clone()),
        (500, internal()),
        "#20808: no Bearer prefix"
    );
    let r = w.send(Req::post("/v2/bookings", booking_body(101, "2030-03-04T10:00:00Z")).auth(None));
    assert_eq!(r.status, 201, "creating needs no caller");
    assert_eq!(
        w.send(Req::get("/v2/webhooks").auth(Some("Bearer managed-token")))
            .status,
        401
    );
    assert_eq!(w.send(Req::get(SLOTS_Q).auth(None)).status, 200);
}

fn limit_headers(r: &Resp) -> (Option<&str>, Option<&str>, Option<&str>) {
    (
        r.header("X-RateLimit-Limit-Default"),
        r.header("X-RateLimit-Remaining-Default"),
        r.header("X-RateLimit-Reset-Default"),
    )
}

#[test]
fn the_throttler_counts_blocks_for_a_minute_and_never_sends_retry_after() {
    let mut fixture = Fixture::salon();
    fixture.rate_limit_per_minute = 5;
    let w = super::World::with(fixture, MockConfig::default());
    for remaining in (0..5).rev() {
        let r = w.send(Req::get(SLOTS_Q));
        assert_eq!(r.status, 200);
        let rem = remaining.to_string();
        assert_eq!(
            limit_headers(&r),
            (Some("5"), Some(rem.as_str()), Some("60"))
        );
    }
    w.clock.advance(Duration::from_secs(10));
    let r = w.send(Req::get(SLOTS_Q));
    assert_eq!(r.status, 429);
    assert_eq!(r.body["error"]["code"], "ThrottlerException");
    assert_eq!(
        r.message(),
        "CustomThrottlerGuard - Too many requests. Please try again later."
    );
    assert_eq!(r.body["error"]["details"], r.body["error"]["message"]);
    assert_eq!(limit_headers(&r), (Some("5"), Some("0"), Some("60")));
    assert_eq!(r.header("Retry-After"), None);
    w.clock.advance(Duration::from_secs(30));
    let r = w.send(Req::get(SLOTS_Q));
    assert_eq!(
        (r.status, r.header("X-RateLimit-Reset-Default")),
        (429, Some("30"))
    );
    w.clock.advance(Duration::from_secs(30));
    let r = w.send(Req::get(SLOTS_Q));
    assert_eq!(
        (r.status, r.header("X-RateLimit-Remaining-Default")),
        (200, Some("4"))
    );
}

#[test]
fn anonymous_callers_are_throttled_per_ip() {
    let w = World::with(
        Fixture::salon(),
        MockConfig {
            scenario: Scenario::RateLimited,
            ..Default::default()
        },
    );
    let from = |ip: [u8; 4]| {
        let req = Req::get(SLOTS_Q).auth(None).build();
        read(w.mock.handle_from(&req, IpAddr::V4(Ipv4Addr::from(ip))))
    };
    for _ in 0..10 {
        assert_eq!(
            from([10, 0, 0, 1]).header("X-RateLimit-Limit-Default"),
            Some("10")
        );
    }
    assert_eq!(from([10, 0, 0, 1]).status, 429);
    assert_eq!(
        from([10, 0, 0, 2]).status,
        200,
        "another IP has its own window"
    );
    assert_eq!(
        w.send(Req::get(SLOTS_Q)).status,
        200,
        "and so does the API key"
    );
}

#[test]
fn control_routes_are_never_throttled_or_guarded() {
    let w = World::with(
        Fixture::salon(),
        MockConfig {
            scenario: Scenario::RateLimited,
            ..Default::default()
        },
    );
    for _ in 0..20 {
        assert_eq!(
            w.send(Req::new(Method::Get, "/_mock/state").auth(None))
                .status,
            200
        );
    }
}
