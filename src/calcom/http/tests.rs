use std::io::Cursor;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;

use super::*;
use crate::calcom::{CalcomApi, CalcomError, Client, ClientConfig};
use crate::clock::SimClock;

/// How long a test server waits for its one request before giving up, so a
/// broken test ends instead of hanging.
const SERVER_WAIT: Duration = Duration::from_secs(10);

/// What the server saw.
#[derive(Debug)]
struct Seen {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Starts a tiny_http server on 127.0.0.1:0 that answers one request with
/// `respond` and reports what it received. Returns the base URL.
fn serve_once<F>(respond: F) -> (String, mpsc::Receiver<Seen>)
where
    F: FnOnce(tiny_http::Request) + Send + 'static,
{
    let server = tiny_http::Server::http("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = server.server_addr().to_ip().expect("ip listener").port();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let Ok(Some(mut request)) = server.recv_timeout(SERVER_WAIT) else {
            return;
        };
        let mut body = Vec::new();
        let _ = request.as_reader().read_to_end(&mut body);
        let seen = Seen {
            method: request.method().to_string(),
            url: request.url().to_string(),
            headers: request
                .headers()
                .iter()
                .map(|h| (h.field.to_string(), h.value.to_string()))
                .collect(),
            body,
        };
        respond(request);
        let _ = tx.send(seen);
    });
    (format!("http://127.0.0.1:{port}"), rx)
}

fn header(name: &str, value: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("valid header")
}

fn limits() -> HttpLimits {
    HttpLimits {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_millis(200),
        reply_bytes_max: 1024,
    }
}

fn get(path: &str) -> ApiRequest {
    ApiRequest {
        method: Method::Get,
        path: path.into(),
        headers: vec![("cal-api-version".into(), "2024-09-04".into())],
        body: None,
    }
}

fn seen_header<'a>(seen: &'a Seen, name: &str) -> Option<&'a str> {
    seen.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn a_normal_reply_comes_back_with_status_headers_and_body() {
    let (base, seen) = serve_once(|req| {
        let reply = tiny_http::Response::from_string(r#"{"status":"success","data":{}}"#)
            .with_status_code(200)
            .with_header(header("X-RateLimit-Remaining-Default", "119"));
        let _ = req.respond(reply);
    });
    let transport = HttpTransport::new(&format!("{base}/"), limits()).unwrap();
    let reply = transport
        .send(get("/v2/slots?eventTypeId=101"))
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-ratelimit-remaining-default"), Some("119"));
    assert_eq!(reply.body, br#"{"status":"success","data":{}}"#);
    let seen = seen.recv_timeout(SERVER_WAIT).unwrap();
    assert_eq!(
        (seen.method.as_str(), seen.url.as_str()),
        ("GET", "/v2/slots?eventTypeId=101")
    );
    assert_eq!(seen_header(&seen, "cal-api-version"), Some("2024-09-04"));
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_as_maybe_sent() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accept and hold the connection, reading until the client gives up and
    // closes it (bounded by the read timeout if it never does).
    thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            let _ = stream.set_read_timeout(Some(SERVER_WAIT));
            let mut sink = Vec::new();
            let _ = stream.read_to_end(&mut sink);
        }
    });
    let transport = HttpTransport::new(&format!("http://127.0.0.1:{port}"), limits()).unwrap();
    let err = transport.send(get("/v2/bookings")).await.unwrap_err();
    assert!(
        matches!(&err, TransportError::MaybeSent { reason } if reason.contains("timed out")),
        "{err:?}"
    );
}

/// A port nobody listens on: bind one, note it, close it.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn a_refused_connection_is_not_sent() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    let transport = HttpTransport::new(&url, limits()).unwrap();
    let err = transport.send(get("/v2/bookings")).await.unwrap_err();
    assert!(
        matches!(&err, TransportError::NotSent { url: u, .. } if u.ends_with("/v2/bookings")),
        "{err:?}"
    );
}

async fn oversized(chunked: bool) -> TransportError {
    let (base, _seen) = serve_once(move |req| {
        let body = vec![b'x'; 5000];
        let length = (!chunked).then_some(body.len());
        let reply = tiny_http::Response::new(200.into(), vec![], Cursor::new(body), length, None);
        let _ = req.respond(reply);
    });
    let transport = HttpTransport::new(&base, limits()).unwrap();
    transport.send(get("/v2/bookings")).await.unwrap_err()
}

#[tokio::test]
async fn an_oversized_reply_is_refused_by_its_announced_length() {
    assert_eq!(
        oversized(false).await,
        TransportError::ReplyTooLarge { limit_bytes: 1024 }
    );
}

#[tokio::test]
async fn an_oversized_chunked_reply_is_cut_off_while_streaming() {
    assert_eq!(
        oversized(true).await,
        TransportError::ReplyTooLarge { limit_bytes: 1024 }
    );
}

#[test]
fn a_base_url_that_is_not_http_is_refused_up_front() {
    for bad in [
        "api.cal.com",
        "ftp://api.cal.com",
        "https://api.cal.com/?x=1",
    ] {
        let err = HttpTransport::new(bad, limits()).unwrap_err();
        assert!(
            matches!(err, HttpSetupError::BadBaseUrl { .. }),
            "{bad}: {err:?}"
        );
    }
}

#[tokio::test]
async fn a_create_answered_with_html_has_an_unknown_outcome() {
    let (base, seen) = serve_once(|req| {
        let _ = req.respond(
            tiny_http::Response::from_string("<html>Bad gateway</html>").with_status_code(201),
        );
    });
    let config = ClientConfig {
        base_url: base,
        api_key: Some("cal_test_calsaga_mock".into()),
        request_timeout: Duration::from_secs(5),
        ..ClientConfig::default()
    };
    let t0 = chrono::DateTime::parse_from_rfc3339("2030-03-04T09:00:00Z").unwrap();
    let clock = Arc::new(SimClock::new(t0.to_utc()));
    let client = Client::http(config, clock).unwrap();
    let input: crate::calcom::wire::CreateBooking = serde_json::from_value(serde_json::json!({
        "start": "2030-03-05T09:00:00.000Z", "eventTypeId": 101,
        "attendee": {"name": "Jo", "timeZone": "Europe/Berlin", "email": "jo@example.com"}
    }))
    .unwrap();
    let err = client.create_booking(&input).await.unwrap_err();
    let CalcomError::OutcomeUnknown { reason } = &err else {
        panic!("expected OutcomeUnknown, got {err:?}");
    };
    assert!(
        reason.contains("POST /v2/bookings") && reason.contains("not the expected JSON"),
        "{reason}"
    );
    let seen = seen.recv_timeout(SERVER_WAIT).unwrap();
    assert_eq!(
        seen_header(&seen, "authorization"),
        Some("Bearer cal_test_calsaga_mock")
    );
    assert_eq!(seen_header(&seen, "content-type"), Some("application/json"));
}

#[test]
fn the_poster_sends_the_exact_bytes_and_headers() {
    let (base, seen) = serve_once(|req| {
        let _ = req.respond(tiny_http::Response::empty(204));
    });
    let poster = HttpPoster::new(limits()).unwrap();
    let body = br#"{"triggerEvent":"BOOKING_CREATED","createdAt":"2030-03-01T12:00:00.000Z","payload":{}}"#;
    let headers = vec![
        ("Content-Type".to_string(), "application/json".to_string()),
        ("X-Cal-Signature-256".to_string(), "ab12".to_string()),
    ];
    let status = poster
        .post(&format!("{base}/webhooks/calcom"), &headers, body)
        .unwrap();
    assert_eq!(status, 204);
    let seen = seen.recv_timeout(SERVER_WAIT).unwrap();
    assert_eq!(
        (seen.method.as_str(), seen.url.as_str()),
        ("POST", "/webhooks/calcom")
    );
    assert_eq!(seen.body, body);
    assert_eq!(seen_header(&seen, "x-cal-signature-256"), Some("ab12"));
    assert_eq!(seen_header(&seen, "content-type"), Some("application/json"));
}

#[test]
fn the_poster_reports_a_refused_connection_as_not_sent() {
    let poster = HttpPoster::new(limits()).unwrap();
    let url = format!("http://127.0.0.1:{}/hook", closed_port());
    let err = poster.post(&url, &[], b"{}").unwrap_err();
    assert!(matches!(err, TransportError::NotSent { .. }), "{err:?}");
}
