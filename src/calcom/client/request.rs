//! How the client spells a request and reads a success: the planned `Call`
//! (route, family version, repeat safety, JSON body), paths and
//! percent-encoded queries, and the envelope shapes a 2xx reply must have.
//! Nothing here sends, waits or decides about retries.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::calcom::retry;
use crate::calcom::wire::{self, Booking, BookingPage, Envelope, PagedEnvelope};
use crate::calcom::{ApiRequest, ApiResponse, CalcomError, Method};

/// One request as the client plans it, before any attempt.
pub(super) struct Call {
    pub(super) route: &'static str,
    method: Method,
    version: Option<&'static str>,
    path: String,
    body: Option<Vec<u8>>,
    /// Whether sending it twice cannot do anything twice.
    pub(super) repeat_safe: bool,
}

impl Call {
    fn new(
        route: &'static str,
        method: Method,
        version: Option<&'static str>,
        path: String,
    ) -> Self {
        Self {
            route,
            method,
            version,
            path,
            body: None,
            repeat_safe: method.is_idempotent(),
        }
    }

    pub(super) fn slots(route: &'static str, method: Method, path: String) -> Self {
        Self::new(route, method, Some(wire::VERSION_SLOTS), path)
    }

    pub(super) fn bookings(route: &'static str, method: Method, path: String) -> Self {
        Self::new(route, method, Some(wire::VERSION_BOOKINGS), path)
    }

    pub(super) fn event_types(route: &'static str, method: Method, path: String) -> Self {
        Self::new(route, method, Some(wire::VERSION_EVENT_TYPES), path)
    }

    /// `/v2/webhooks` takes any version, so none is sent.
    pub(super) fn webhooks(route: &'static str, method: Method, path: String) -> Self {
        Self::new(route, method, None, path)
    }

    pub(super) fn json(mut self, body: &impl Serialize) -> Self {
        // Our wire request types have string map keys and no floats, the
        // only things that make serde_json fail; failing here is a bug in
        // wire.rs, never a consequence of input.
        self.body = Some(serde_json::to_vec(body).expect("wire request types always serialise"));
        self
    }

    /// The request as sent; `api_key` becomes the bearer token.
    pub(super) fn to_request(&self, api_key: Option<&str>) -> ApiRequest {
        let mut headers = Vec::with_capacity(3);
        if let Some(key) = api_key {
            headers.push(("Authorization".to_string(), format!("Bearer {key}")));
        }
        if let Some(version) = self.version {
            headers.push(("cal-api-version".to_string(), version.to_string()));
        }
        if self.body.is_some() {
            headers.push(("Content-Type".to_string(), "application/json".to_string()));
        }
        ApiRequest {
            method: self.method,
            path: self.path.clone(),
            headers,
            body: self.body.clone(),
        }
    }

    pub(super) fn repeat_safe(mut self) -> Self {
        self.repeat_safe = true;
        self
    }
}

pub(super) fn booking_path(uid: &str, suffix: &str) -> String {
    format!("/v2/bookings/{}{suffix}", encode(uid))
}

pub(super) fn reservation_path(uid: &str) -> String {
    format!("/v2/slots/reservations/{}", encode(uid))
}

pub(super) fn event_type_path(id: u64) -> String {
    format!("/v2/event-types/{id}")
}

pub(super) fn webhook_path(id: &str) -> String {
    format!("/v2/webhooks/{}", encode(id))
}

/// A successful body shape: which `status` it claims and what it carries.
pub(super) trait Reply: DeserializeOwned {
    type Data;
    fn status(&self) -> &str;
    fn into_data(self) -> Self::Data;
}

impl<T: DeserializeOwned> Reply for Envelope<T> {
    type Data = T;
    fn status(&self) -> &str {
        &self.status
    }
    fn into_data(self) -> T {
        self.data
    }
}

impl Reply for PagedEnvelope<Booking> {
    type Data = BookingPage;
    fn status(&self) -> &str {
        &self.status
    }
    fn into_data(self) -> BookingPage {
        BookingPage {
            bookings: self.data,
            pagination: self.pagination,
        }
    }
}

/// `{"status":"success"}` with no data (e.g. releasing a reservation).
#[derive(serde::Deserialize)]
pub(super) struct Ack {
    status: String,
}

impl Reply for Ack {
    type Data = ();
    fn status(&self) -> &str {
        &self.status
    }
    fn into_data(self) {}
}

pub(super) fn parse<R: Reply>(call: &Call, reply: &ApiResponse) -> Result<R::Data, CalcomError> {
    let status = reply.status;
    let what = match serde_json::from_slice::<R>(&reply.body) {
        Ok(parsed) if parsed.status() == "success" => return Ok(parsed.into_data()),
        Ok(parsed) => format!(
            "HTTP {status} reply says status {:?}, not \"success\"",
            parsed.status()
        ),
        Err(e) => format!("HTTP {status} reply is not the expected JSON ({e})"),
    };
    Err(retry::unreadable(call.route, call.repeat_safe, &what))
}

/// A path with a query string, every value percent-encoded.
pub(super) struct Query {
    text: String,
    separator: char,
}

impl Query {
    pub(super) fn new(path: &str) -> Self {
        Self {
            text: path.to_string(),
            separator: '?',
        }
    }

    pub(super) fn add(mut self, key: &str, value: impl fmt::Display) -> Self {
        self.text.push(self.separator);
        self.separator = '&';
        self.text.push_str(key);
        self.text.push('=');
        self.text.push_str(&encode(&value.to_string()));
        self
    }

    pub(super) fn opt(self, key: &str, value: Option<impl fmt::Display>) -> Self {
        match value {
            Some(v) => self.add(key, v),
            None => self,
        }
    }

    /// Cal.com takes lists as one comma-separated value; an empty list is
    /// not sent at all. Commas inside items are encoded, the separators not.
    pub(super) fn list(self, key: &str, values: &[impl fmt::Display]) -> Self {
        if values.is_empty() {
            return self;
        }
        let items: Vec<String> = values.iter().map(|v| encode(&v.to_string())).collect();
        let mut query = self.add(key, "");
        query.text.push_str(&items.join(","));
        query
    }

    pub(super) fn finish(self) -> String {
        self.text
    }
}

/// Everything but RFC 3986 unreserved characters and `:` (left readable in
/// timestamps; it is legal in a query and a path segment).
const ESCAPED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b':');

pub(super) fn encode(raw: &str) -> String {
    percent_encoding::utf8_percent_encode(raw, ESCAPED).to_string()
}
