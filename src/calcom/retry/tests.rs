use std::sync::atomic::{AtomicU32, Ordering};

use rand::SeedableRng;

use super::*;
use crate::clock::SimClock;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2030-03-04T09:00:00Z")
        .unwrap()
        .to_utc()
}

fn reply(status: u16, headers: &[(&str, &str)], body: &str) -> Result<ApiResponse, TransportError> {
    Ok(ApiResponse {
        status,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: body.as_bytes().to_vec(),
    })
}

fn enveloped(code: &str, message: &str) -> String {
    serde_json::json!({"status":"error","timestamp":"2030-03-04T09:00:00.000Z","path":"/v2/bookings",
        "error":{"code":code,"message":message}})
    .to_string()
}

/// What the caller is told to do, in one comparable word plus the detail a
/// caller reads.
#[derive(Debug, PartialEq)]
enum Verdict {
    Ok,
    Retry(Option<Duration>),
    Refused(u16, String),
    Unknown,
}

fn verdict(repeat_safe: bool, exchange: Result<ApiResponse, TransportError>) -> Verdict {
    match classify("POST /v2/bookings", repeat_safe, exchange, now()) {
        Ok(_) => Verdict::Ok,
        Err(CalcomError::Retryable { after, .. }) => Verdict::Retry(after),
        Err(CalcomError::Permanent { status, message }) => Verdict::Refused(status, message),
        Err(CalcomError::OutcomeUnknown { .. }) => Verdict::Unknown,
    }
}

const SAFE: bool = true;
const CREATE: bool = false;

#[test]
fn every_reply_class_maps_to_what_the_caller_must_do() {
    let slot_taken = "User either already has booking at this time or is not available";
    let throttled = "CustomThrottlerGuard - Too many requests. Please try again later.";
    let not_sent = Err(TransportError::NotSent {
        url: "http://127.0.0.1:1/v2/bookings".into(),
        reason: "connection refused".into(),
    });
    let maybe_sent = || {
        Err(TransportError::MaybeSent {
            reason: "timed out".into(),
        })
    };
    let too_large = || Err(TransportError::ReplyTooLarge { limit_bytes: 10 });
    let cases: Vec<(&str, bool, Result<ApiResponse, TransportError>, Verdict)> = vec![
        ("201 created", CREATE, reply(201, &[], "{}"), Verdict::Ok),
        ("200 read", SAFE, reply(200, &[], "{}"), Verdict::Ok),
        (
            "429 with Cal.com's reset header",
            CREATE,
            reply(
                429,
                &[("X-RateLimit-Reset-Default", "7")],
                &enveloped("ThrottlerException", throttled),
            ),
            Verdict::Retry(Some(Duration::from_secs(7))),
        ),
        (
            "429 honours Retry-After too, the longer wins",
            SAFE,
            reply(
                429,
                &[("retry-after", "12"), ("x-ratelimit-reset-default", "7")],
                "",
            ),
            Verdict::Retry(Some(Duration::from_secs(12))),
        ),
        (
            "429 with Retry-After as an HTTP date",
            SAFE,
            reply(429, &[("Retry-After", "Mon, 04 Mar 2030 09:00:30 GMT")], ""),
            Verdict::Retry(Some(Duration::from_secs(30))),
        ),
        (
            "429 without headers",
            SAFE,
            reply(429, &[], ""),
            Verdict::Retry(None),
        ),
        (
            "absurd reset is capped",
            SAFE,
            reply(429, &[("X-RateLimit-Reset-Default", "999999")], ""),
            Verdict::Retry(Some(SERVER_WAIT_MAX)),
        ),
        (
            "500 on a read",
            SAFE,
            reply(
                500,
                &[],
                r#"{"statusCode":500,"message":"Internal server error"}"#,
            ),
            Verdict::Retry(None),
        ),
        (
            "503 on a read",
            SAFE,
            reply(503, &[], ""),
            Verdict::Retry(None),
        ),
        (
            "500 on a create",
            CREATE,
            reply(
                500,
                &[],
                r#"{"statusCode":500,"message":"Internal server error"}"#,
            ),
            Verdict::Unknown,
        ),
        (
            "502 on a create",
            CREATE,
            reply(502, &[], "<html>bad gateway</html>"),
            Verdict::Unknown,
        ),
        (
            "400 slot taken, message verbatim",
            CREATE,
            reply(400, &[], &enveloped("BadRequestException", slot_taken)),
            Verdict::Refused(400, slot_taken.into()),
        ),
        (
            "409 bare body, message verbatim",
            CREATE,
            reply(
                409,
                &[],
                r#"{"statusCode":409,"message":"booking_conflict_error"}"#,
            ),
            Verdict::Refused(409, "booking_conflict_error".into()),
        ),
        (
            "404 enveloped",
            SAFE,
            reply(
                404,
                &[],
                &enveloped(
                    "NotFoundException",
                    "Booking with uid=x was not found in the database",
                ),
            ),
            Verdict::Refused(
                404,
                "Booking with uid=x was not found in the database".into(),
            ),
        ),
        (
            "422 reservation conflict",
            CREATE,
            reply(
                422,
                &[],
                &enveloped(
                    "UnprocessableEntityException",
                    "Can't reserve a slot if the event is already booked.",
                ),
            ),
            Verdict::Refused(
                422,
                "Can't reserve a slot if the event is already booked.".into(),
            ),
        ),
        (
            "403",
            SAFE,
            reply(
                403,
                &[],
                &enveloped(
                    "ForbiddenException",
                    "User with ID=1 does not own event type with ID=2",
                ),
            ),
            Verdict::Refused(
                403,
                "User with ID=1 does not own event type with ID=2".into(),
            ),
        ),
        (
            "400 with a list of validation messages",
            CREATE,
            reply(
                400,
                &[],
                r#"{"statusCode":400,"message":["start must be a valid ISO 8601 date string","attendee should not be empty"]}"#,
            ),
            Verdict::Refused(
                400,
                "start must be a valid ISO 8601 date string; attendee should not be empty".into(),
            ),
        ),
        ("connection refused", CREATE, not_sent, Verdict::Retry(None)),
        (
            "timeout after sending a create",
            CREATE,
            maybe_sent(),
            Verdict::Unknown,
        ),
        (
            "timeout after sending a read",
            SAFE,
            maybe_sent(),
            Verdict::Retry(None),
        ),
        (
            "oversized reply to a create",
            CREATE,
            too_large(),
            Verdict::Unknown,
        ),
        (
            "oversized reply to a read",
            SAFE,
            too_large(),
            Verdict::Retry(None),
        ),
    ];
    for (name, repeat_safe, exchange, expected) in cases {
        assert_eq!(verdict(repeat_safe, exchange), expected, "case: {name}");
    }
}

#[test]
fn a_401_keeps_calcoms_words_and_says_how_to_fix_it() {
    let body = enveloped(
        "UnauthorizedException",
        "ApiAuthStrategy - api key - Your api key is not valid",
    );
    let Verdict::Refused(401, message) = verdict(SAFE, reply(401, &[], &body)) else {
        panic!("401 must be permanent");
    };
    assert!(message.starts_with("ApiAuthStrategy - api key - Your api key is not valid"));
    assert!(message.contains("CALCOM_API_KEY"), "{message}");
}

#[test]
fn an_error_body_that_is_not_json_is_quoted_not_dropped() {
    let Verdict::Refused(400, message) = verdict(SAFE, reply(400, &[], "<html>nope</html>")) else {
        panic!("400 must be permanent");
    };
    assert!(
        message.contains("HTTP 400") && message.contains("<html>nope</html>"),
        "{message}"
    );
}

#[test]
fn a_redirect_is_refused_with_a_hint_about_the_base_url() {
    let Verdict::Refused(301, message) = verdict(
        SAFE,
        reply(301, &[("Location", "https://cal.com/login")], ""),
    ) else {
        panic!("3xx must be permanent");
    };
    assert!(
        message.contains("https://cal.com/login") && message.contains("base URL"),
        "{message}"
    );
}

#[test]
fn errors_name_the_route_that_failed() {
    let err = classify("GET /v2/slots", SAFE, reply(503, &[], ""), now()).unwrap_err();
    assert!(err.to_string().contains("GET /v2/slots"), "{err}");
    let err = unreadable(
        "POST /v2/bookings",
        CREATE,
        "HTTP 201 reply is not the expected JSON",
    );
    assert!(
        matches!(&err, CalcomError::OutcomeUnknown { reason } if reason.contains("POST /v2/bookings"))
    );
}

#[test]
fn the_already_cancelled_refusal_is_recognisable() {
    let message = "Can't cancel booking with uid=abc because it has been cancelled already. Please provide uid of a booking that is not cancelled.";
    let err = classify(
        "POST /v2/bookings/{uid}/cancel",
        SAFE,
        reply(400, &[], &enveloped("BadRequestException", message)),
        now(),
    )
    .unwrap_err();
    assert!(err.is_already_cancelled());
    assert!(!err.is_slot_taken());
    let other = CalcomError::Permanent {
        status: 404,
        message: "Booking with uid=abc was not found".into(),
    };
    assert!(!other.is_already_cancelled());
}

fn policy() -> RetryPolicy {
    RetryPolicy {
        attempts_max: 5,
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(1),
    }
}

#[test]
fn backoff_doubles_up_to_the_cap_and_jitter_scales_it() {
    let p = policy();
    let full: Vec<u128> = (1..=6)
        .map(|f| p.backoff_delay(f, None, 1.0).as_millis())
        .collect();
    assert_eq!(full, vec![100, 200, 400, 800, 1000, 1000]);
    assert_eq!(p.backoff_delay(3, None, 0.0), Duration::ZERO);
    assert_eq!(p.backoff_delay(3, None, 0.5), Duration::from_millis(200));
    assert_eq!(
        p.backoff_delay(u32::MAX, None, 1.0),
        p.max_delay,
        "no overflow"
    );
    assert_eq!(
        p.backoff_delay(1, None, f64::NAN),
        Duration::from_millis(100)
    );
}

#[test]
fn backoff_is_never_shorter_than_the_server_asked() {
    let after = Some(Duration::from_secs(7));
    for unit in [0.0, 0.3, 1.0] {
        assert_eq!(
            policy().backoff_delay(2, after, unit),
            Duration::from_secs(7)
        );
    }
}

#[test]
fn jitter_is_bounded_and_reproducible_for_a_seed() {
    let draw = |seed| {
        let mut rng = SmallRng::seed_from_u64(seed);
        (1..=20)
            .map(|f| policy().delay(f, None, &mut rng))
            .collect::<Vec<_>>()
    };
    let a = draw(7);
    assert_eq!(a, draw(7));
    assert_ne!(a, draw(8));
    for (i, d) in a.iter().enumerate() {
        let failures = i as u32 + 1;
        assert!(
            *d <= policy().backoff_delay(failures, None, 1.0),
            "failure {failures}: {d:?}"
        );
    }
}

/// Runs the loop over scripted attempt results; returns the result, the
/// number of attempts and the waits.
async fn run_loop(
    policy: RetryPolicy,
    results: Vec<Result<u32, CalcomError>>,
) -> (Result<u32, CalcomError>, u32, Vec<Duration>) {
    let clock = SimClock::new(now());
    let rng = Mutex::new(SmallRng::seed_from_u64(1));
    let calls = AtomicU32::new(0);
    let results = Mutex::new(results.into_iter());
    let out = with_retries(&policy, &clock, &rng, |_| {
        calls.fetch_add(1, Ordering::SeqCst);
        let next = results
            .lock()
            .unwrap()
            .next()
            .expect("the loop asked for one attempt too many");
        async move { next }
    })
    .await;
    (out, calls.load(Ordering::SeqCst), clock.sleeps())
}

fn retryable(after: Option<Duration>) -> Result<u32, CalcomError> {
    Err(CalcomError::Retryable {
        after,
        reason: "503".into(),
    })
}

#[tokio::test]
async fn the_loop_retries_retryable_errors_then_succeeds() {
    let (out, calls, sleeps) = run_loop(
        policy(),
        vec![
            retryable(None),
            retryable(Some(Duration::from_millis(700))),
            Ok(9),
        ],
    )
    .await;
    assert_eq!(out, Ok(9));
    assert_eq!(calls, 3);
    assert_eq!(sleeps.len(), 2);
    assert!(sleeps[0] <= Duration::from_millis(100));
    assert!(sleeps[1] >= Duration::from_millis(700));
}

#[tokio::test]
async fn the_loop_stops_at_attempts_max() {
    let p = RetryPolicy {
        attempts_max: 3,
        ..policy()
    };
    let (out, calls, sleeps) =
        run_loop(p, vec![retryable(None), retryable(None), retryable(None)]).await;
    assert!(matches!(out, Err(CalcomError::Retryable { .. })));
    assert_eq!(calls, 3);
    assert_eq!(sleeps.len(), 2);
}

#[tokio::test]
async fn the_loop_never_repeats_permanent_or_unknown_outcomes() {
    let permanent = Err(CalcomError::Permanent {
        status: 409,
        message: "booking_conflict_error".into(),
    });
    let (out, calls, _) = run_loop(policy(), vec![permanent.clone()]).await;
    assert_eq!((out, calls), (permanent, 1));
    let unknown = Err(CalcomError::OutcomeUnknown {
        reason: "timeout".into(),
    });
    let (out, calls, sleeps) = run_loop(policy(), vec![unknown.clone()]).await;
    assert_eq!((out, calls, sleeps), (unknown, 1, vec![]));
}

#[tokio::test]
async fn a_server_wait_longer_than_max_delay_goes_back_to_the_caller() {
    let after = Some(Duration::from_secs(60));
    let (out, calls, sleeps) = run_loop(policy(), vec![retryable(after)]).await;
    assert!(matches!(out, Err(CalcomError::Retryable { after: a, .. }) if a == after));
    assert_eq!((calls, sleeps), (1, vec![]));
}
