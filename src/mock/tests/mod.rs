//! Tests of the mock through one door: `World` (a salon mock on a SimClock)
//! and `Req` (a request with the right version header and the test key by
//! default). Test files assert behaviour; only this file knows how requests
//! are built and answers read.

mod admin;
mod bookings;
mod conformance;
mod faults;
mod fixture;
mod guards;
mod http;
mod listing;
mod persist;
mod slots;
mod webhooks;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{Fixture, Mock, MockConfig, MockReply};
use crate::calcom::{ApiRequest, Method};
use crate::clock::SimClock;

pub const KEY: &str = "cal_test_calsaga_mock";

/// A UTC instant from RFC 3339 text.
pub fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("test times are valid")
        .to_utc()
}

pub struct World {
    pub mock: Arc<Mock>,
    pub clock: Arc<SimClock>,
}

/// An answer, read.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub body: Value,
    pub headers: Vec<(String, String)>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `error.message` of an enveloped error.
    pub fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }

    pub fn data(&self) -> &Value {
        &self.body["data"]
    }
}

impl World {
    /// The salon at 2030-03-01 00:00 UTC, healthy, seed 7.
    pub fn new() -> World {
        World::with(Fixture::salon(), MockConfig::default())
    }

    pub fn with(fixture: Fixture, config: MockConfig) -> World {
        let clock = Arc::new(SimClock::new(t("2030-03-01T00:00:00Z")));
        let mock = Mock::new(fixture, clock.clone(), config).expect("the mock starts");
        World {
            mock: Arc::new(mock),
            clock,
        }
    }

    pub fn reply(&self, req: Req) -> MockReply {
        self.mock.handle(&req.build())
    }

    /// Sends and reads the answer; a dropped reply fails the test.
    pub fn send(&self, req: Req) -> Resp {
        read(self.reply(req))
    }

    /// Books `event_type_id` at `start` for a standard attendee.
    pub fn book(&self, event_type_id: u64, start: &str) -> Resp {
        self.send(Req::post(
            "/v2/bookings",
            booking_body(event_type_id, start),
        ))
    }

    /// `data` of `GET /v2/slots` for one event type.
    pub fn slots(&self, event_type_id: u64, query: &str) -> Value {
        let r = self.send(Req::get(&format!(
            "/v2/slots?eventTypeId={event_type_id}&{query}"
        )));
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["data"].clone()
    }

    pub fn state(&self) -> Value {
        self.send(Req::get("/_mock/state")).body
    }
}

/// Reads an answer; a dropped reply fails the test.
pub fn read(reply: MockReply) -> Resp {
    let r = reply.response.expect("a reply, not a dropped one");
    Resp {
        status: r.status,
        body: serde_json::from_slice(&r.body).unwrap_or(Value::Null),
        headers: r.headers,
    }
}

pub fn booking_body(event_type_id: u64, start: &str) -> Value {
    json!({
        "start": start,
        "eventTypeId": event_type_id,
        "attendee": {"name": "Jo Client", "email": "jo@example.com", "timeZone": "Europe/Berlin"},
        "metadata": {"calsaga_workflow": "wf-1", "calsaga_segment": "0", "calsaga_attempt": "1"},
    })
}

/// Slot starts of one day in a slots answer.
pub fn starts(data: &Value, day: &str) -> Vec<String> {
    data[day]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["start"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A request; by default authenticated with the test key and carrying the
/// version its family expects.
pub struct Req {
    method: Method,
    path: String,
    body: Option<Vec<u8>>,
    auth: Option<String>,
    version: Option<String>,
}

impl Req {
    pub fn new(method: Method, path: &str) -> Req {
        let version = if path.starts_with("/v2/slots") {
            Some("2024-09-04")
        } else if path.starts_with("/v2/bookings") {
            Some("2024-08-13")
        } else if path.starts_with("/v2/event-types") {
            Some("2024-06-14")
        } else {
            None
        };
        Req {
            method,
            path: path.to_string(),
            body: None,
            auth: Some(format!("Bearer {KEY}")),
            version: version.map(str::to_string),
        }
    }

    pub fn get(path: &str) -> Req {
        Req::new(Method::Get, path)
    }

    pub fn post(path: &str, body: Value) -> Req {
        Req::new(Method::Post, path).json(body)
    }

    pub fn patch(path: &str, body: Value) -> Req {
        Req::new(Method::Patch, path).json(body)
    }

    pub fn delete(path: &str) -> Req {
        Req::new(Method::Delete, path)
    }

    pub fn json(mut self, body: Value) -> Req {
        self.body = Some(body.to_string().into_bytes());
        self
    }

    pub fn version(mut self, v: Option<&str>) -> Req {
        self.version = v.map(str::to_string);
        self
    }

    /// The raw `Authorization` value, or none.
    pub fn auth(mut self, value: Option<&str>) -> Req {
        self.auth = value.map(str::to_string);
        self
    }

    pub fn build(self) -> ApiRequest {
        let mut headers = vec![("Content-Type".to_string(), "application/json".to_string())];
        headers.extend(self.auth.map(|a| ("Authorization".to_string(), a)));
        headers.extend(self.version.map(|v| ("cal-api-version".to_string(), v)));
        ApiRequest {
            method: self.method,
            path: self.path,
            headers,
            body: self.body,
        }
    }
}
