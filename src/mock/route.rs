//! The mock's route table: which method and path pattern is which operation,
//! which `cal-api-version` each family answers, and which routes need a
//! caller. Fault rules name routes by the same patterns
//! (`POST /v2/bookings/{uid}/cancel`). Pure lookups: no state, no I/O.

use super::reply::ApiError;
use crate::calcom::Method;
use crate::calcom::wire::{VERSION_BOOKINGS, VERSION_EVENT_TYPES, VERSION_SLOTS};

/// The fallback Cal.com uses for a missing or unknown version header.
pub const VERSION_FALLBACK: &str = "2024-04-15";
/// Every value Cal.com knows; anything else becomes the fallback.
const VERSIONS_KNOWN: [&str; 5] = [
    "2024-04-15",
    "2024-06-11",
    "2024-06-14",
    "2024-08-13",
    "2024-09-04",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Slots,
    ReservationCreate,
    ReservationGet,
    ReservationUpdate,
    ReservationDelete,
    BookingCreate,
    BookingList,
    BookingGet,
    BookingReschedule,
    BookingCancel,
    EventTypeCreate,
    EventTypeList,
    EventTypeGet,
    EventTypeUpdate,
    EventTypeDelete,
    WebhookCreate,
    WebhookList,
    WebhookGet,
    WebhookUpdate,
    WebhookDelete,
}

const TABLE: [(Route, Method, &str); 20] = [
    (Route::Slots, Method::Get, "/v2/slots"),
    (
        Route::ReservationCreate,
        Method::Post,
        "/v2/slots/reservations",
    ),
    (
        Route::ReservationGet,
        Method::Get,
        "/v2/slots/reservations/{uid}",
    ),
    (
        Route::ReservationUpdate,
        Method::Patch,
        "/v2/slots/reservations/{uid}",
    ),
    (
        Route::ReservationDelete,
        Method::Delete,
        "/v2/slots/reservations/{uid}",
    ),
    (Route::BookingCreate, Method::Post, "/v2/bookings"),
    (Route::BookingList, Method::Get, "/v2/bookings"),
    (Route::BookingGet, Method::Get, "/v2/bookings/{uid}"),
    (
        Route::BookingReschedule,
        Method::Post,
        "/v2/bookings/{uid}/reschedule",
    ),
    (
        Route::BookingCancel,
        Method::Post,
        "/v2/bookings/{uid}/cancel",
    ),
    (Route::EventTypeCreate, Method::Post, "/v2/event-types"),
    (Route::EventTypeList, Method::Get, "/v2/event-types"),
    (Route::EventTypeGet, Method::Get, "/v2/event-types/{id}"),
    (
        Route::EventTypeUpdate,
        Method::Patch,
        "/v2/event-types/{id}",
    ),
    (
        Route::EventTypeDelete,
        Method::Delete,
        "/v2/event-types/{id}",
    ),
    (Route::WebhookCreate, Method::Post, "/v2/webhooks"),
    (Route::WebhookList, Method::Get, "/v2/webhooks"),
    (Route::WebhookGet, Method::Get, "/v2/webhooks/{id}"),
    (Route::WebhookUpdate, Method::Patch, "/v2/webhooks/{id}"),
    (Route::WebhookDelete, Method::Delete, "/v2/webhooks/{id}"),
];

/// Who must be calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthNeed {
    /// No guard at all.
    Public,
    /// Anyone, but a credential is read when present.
    Optional,
    Required,
}

/// A matched route and its one path parameter, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    pub route: Route,
    pub param: Option<String>,
}

impl Route {
    /// Finds the route for a method and a path without its query.
    pub fn find(method: Method, path: &str) -> Option<Matched> {
        let path = path.strip_suffix('/').unwrap_or(path);
        TABLE.iter().find_map(|(route, m, pattern)| {
            if *m != method {
                return None;
            }
            match_pattern(pattern, path).map(|param| Matched {
                route: *route,
                param,
            })
        })
    }

    pub fn all() -> impl Iterator<Item = Route> {
        TABLE.iter().map(|(r, _, _)| *r)
    }

    /// The route's place in the table, for counters kept per route.
    pub fn index(self) -> usize {
        TABLE
            .iter()
            .position(|(r, _, _)| *r == self)
            .expect("every route is in the table")
    }

    pub const COUNT: usize = TABLE.len();

    fn entry(self) -> &'static (Route, Method, &'static str) {
        TABLE
            .iter()
            .find(|(r, _, _)| *r == self)
            .expect("every route is in the table")
    }

    /// `METHOD /pattern`, the name fault rules use.
    pub fn key(self) -> String {
        let (_, method, pattern) = self.entry();
        format!("{} {}", method.as_str(), pattern)
    }

    pub fn auth(self) -> AuthNeed {
        use Route::*;
        match self {
            Slots => AuthNeed::Public,
            BookingList | EventTypeCreate | EventTypeGet | EventTypeUpdate | EventTypeDelete => {
                AuthNeed::Required
            }
            WebhookCreate | WebhookList | WebhookGet | WebhookUpdate | WebhookDelete => {
                AuthNeed::Required
            }
            _ => AuthNeed::Optional,
        }
    }

    /// Whether a controller serves this route at `version` (the header value,
    /// or `None` when absent). `Err` is what Cal.com answers otherwise.
    ///
    /// Only the current controllers are modelled. A version with no
    /// controller for the route gives Nest's router 404; a legacy version
    /// that a legacy controller would take gives the 500 users saw (#16924),
    /// because the mock does not model legacy bodies.
    pub fn check_version(self, version: Option<&str>, url: &str) -> Result<(), ApiError> {
        use Route::*;
        let version = version
            // A quoted value is unknown too (#16913).
            .map(str::trim)
            .filter(|v| VERSIONS_KNOWN.contains(v))
            .unwrap_or(VERSION_FALLBACK);
        let method = self.entry().1.as_str();
        let served =
            match self {
                Slots | ReservationCreate | ReservationGet | ReservationUpdate
                | ReservationDelete => version == VERSION_SLOTS,
                BookingCreate | BookingList | BookingGet | BookingReschedule | BookingCancel => {
                    if version == VERSION_SLOTS
                        || (self == BookingReschedule && version != VERSION_BOOKINGS)
                    {
                        false
                    } else if version != VERSION_BOOKINGS {
                        return Err(ApiError::internal());
                    } else {
                        true
                    }
                }
                EventTypeCreate | EventTypeList | EventTypeGet | EventTypeUpdate
                | EventTypeDelete => match version {
                    VERSION_EVENT_TYPES => true,
                    "2024-04-15" | "2024-06-11" => return Err(ApiError::internal()),
                    _ => false,
                },
                WebhookCreate | WebhookList | WebhookGet | WebhookUpdate | WebhookDelete => true,
            };
        if served {
            Ok(())
        } else {
            Err(ApiError::no_route(method, url))
        }
    }
}

/// `Some(param)` when `path` fits `pattern`; `{name}` takes one segment.
fn match_pattern(pattern: &str, path: &str) -> Option<Option<String>> {
    let mut want = pattern.split('/');
    let mut got = path.split('/');
    let mut param = None;
    loop {
        match (want.next(), got.next()) {
            (None, None) => return Some(param),
            (Some(w), Some(g)) if w.starts_with('{') && !g.is_empty() => {
                param = Some(
                    percent_encoding::percent_decode_str(g)
                        .decode_utf8_lossy()
                        .into_owned(),
                );
            }
            (Some(w), Some(g)) if w == g => {}
            _ => return None,
        }
    }
}

/// Query parameters in order, decoded (`+` is a space, as in a form).
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}
