//! `calsaga mock` as a user runs it: the real binary on 127.0.0.1 with port
//! 0, talked to over HTTP. Its state file survives a kill, a busy port is a
//! clear exit 1, and a scenario changes what it answers.

use std::net::TcpListener;

use reqwest::blocking::{Client, Response};
use serde_json::{Value, json};

use crate::support::{Running, run, spawn};

const KEY: &str = "cal_test_calsaga_mock";

/// Starts `calsaga mock --port 0 extra..` and returns it with its base URL,
/// read from the start-up line ("... mock on http://127.0.0.1:PORT (...").
fn start_mock(extra: &[&str]) -> (Running, String) {
    let mut args = vec!["mock", "--port", "0"];
    args.extend_from_slice(extra);
    let mock = spawn(&args);
    let url = mock
        .first_line
        .split_whitespace()
        .find(|word| word.starts_with("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no URL in {:?}", mock.first_line))
        .to_string();
    (mock, url)
}

/// A request with the test key and the route family's version.
fn send(method: reqwest::Method, url: &str, version: &str, body: Option<Value>) -> Response {
    let mut req = Client::new()
        .request(method, url)
        .bearer_auth(KEY)
        .header("cal-api-version", version);
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().expect("the mock answers")
}

#[test]
fn bookings_survive_a_kill_through_the_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("mock-state.json");
    let state_arg = state.to_str().unwrap();
    let (first, url) = start_mock(&["--state-file", state_arg]);
    let booking = json!({
        "start": "2030-03-04T10:00:00Z",
        "eventTypeId": 101,
        "attendee": {"name": "Jo Client", "email": "jo@example.com", "timeZone": "Europe/Berlin"},
        "metadata": {"calsaga_workflow": "wf-cli"},
    });
    let made = send(
        reqwest::Method::POST,
        &format!("{url}/v2/bookings"),
        "2024-08-13",
        Some(booking),
    );
    assert_eq!(made.status().as_u16(), 201);
    let made: Value = made.json().unwrap();
    let uid = made["data"]["uid"].as_str().unwrap().to_string();
    drop(first); // SIGKILL: no chance to flush anything on the way out.

    let (_second, url) = start_mock(&["--state-file", state_arg]);
    let got = send(
        reqwest::Method::GET,
        &format!("{url}/v2/bookings/{uid}"),
        "2024-08-13",
        None,
    );
    assert_eq!(got.status().as_u16(), 200);
    let got: Value = got.json().unwrap();
    assert_eq!(got["data"]["uid"], uid.as_str());
    assert_eq!(got["data"]["status"], "accepted");
    assert_eq!(got["data"]["metadata"]["calsaga_workflow"], "wf-cli");
}

#[test]
fn a_port_in_use_exits_1_and_says_to_pick_another() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (code, _, err) = run(&["mock", "--port", &port], None);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
    assert!(err.contains("pick another with --port"), "{err}");
}

#[test]
fn the_outage_scenario_answers_503_on_slots() {
    let (_mock, url) = start_mock(&["--scenario", "outage"]);
    let slots = format!("{url}/v2/slots?eventTypeId=101&start=2030-03-04&end=2030-03-04");
    let r = send(reqwest::Method::GET, &slots, "2024-09-04", None);
    assert_eq!(r.status().as_u16(), 503);
    let body: Value = r.json().unwrap();
    assert_eq!(
        body,
        json!({"statusCode": 503, "message": "Service Unavailable"})
    );
}
