//! The mock's mutable calendar: event types, bookings, reservations and
//! webhooks, plus the queries every handler shares (a host's busy spans, the
//! overlap report) and the state file that survives a restart. It holds data
//! and answers questions about it; it never decides HTTP status codes and
//! never reads the clock (callers pass `now`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::availability::{Span, overlaps};
use super::error::MockError;
use super::fixture::{Fixture, User};
use crate::calcom::wire::{
    Attendee, Booking, BookingStatus, EventType, EventTypeRef, Reservation, Webhook,
};

/// Booking ids of the mock start here so they never look like fixture rows.
const BOOKING_ID_FIRST: u64 = 1_000;
const EVENT_TYPE_ID_FIRST: u64 = 10_000;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub event_types: Vec<EventType>,
    pub bookings: Vec<Booking>,
    pub reservations: Vec<Reservation>,
    pub webhooks: Vec<Webhook>,
    pub next_booking_id: u64,
    pub next_event_type_id: u64,
}

/// Two live bookings of one host whose times overlap: a double booking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Overlap {
    pub host_id: u64,
    pub first_uid: String,
    pub second_uid: String,
}

impl State {
    pub fn from_fixture(fixture: &Fixture) -> State {
        State {
            event_types: fixture.event_types.clone(),
            bookings: fixture.bookings.clone(),
            reservations: Vec::new(),
            webhooks: fixture.webhooks.clone(),
            next_booking_id: BOOKING_ID_FIRST,
            next_event_type_id: EVENT_TYPE_ID_FIRST,
        }
    }

    pub fn event_type(&self, id: u64) -> Option<&EventType> {
        self.event_types.iter().find(|e| e.id == id)
    }

    pub fn booking(&self, uid: &str) -> Option<&Booking> {
        self.bookings.iter().find(|b| b.uid == uid)
    }

    pub fn booking_mut(&mut self, uid: &str) -> Option<&mut Booking> {
        self.bookings.iter_mut().find(|b| b.uid == uid)
    }

    /// Owner of an event type (event types always have one in the mock).
    pub fn owner_of(&self, event_type_id: u64) -> Option<u64> {
        self.event_type(event_type_id).and_then(|e| e.owner_id)
    }

    /// Spans of the host's live bookings (any event type), except `skip_uid`.
    pub fn booked_spans(&self, host_id: u64, skip_uid: Option<&str>) -> Vec<Span> {
        self.bookings
            .iter()
            .filter(|b| b.status.is_live() && host_of(b) == host_id)
            .filter(|b| Some(b.uid.as_str()) != skip_uid)
            .map(|b| (b.start, b.end))
            .collect()
    }

    /// Spans of unexpired reservations on any of the host's event types.
    pub fn reserved_spans(&self, host_id: u64, now: DateTime<Utc>) -> Vec<Span> {
        self.reservations
            .iter()
            .filter(|r| r.reservation_until > now)
            .filter(|r| self.owner_of(r.event_type_id) == Some(host_id))
            .map(|r| (r.slot_start, r.slot_end))
            .collect()
    }

    /// Whether an ACCEPTED booking of this host (other than `skip_uid`) has
    /// exactly these times: Cal.com's unique idempotency key (calcom-v2
    /// reference, section 6).
    pub fn accepted_with_key(&self, host_id: u64, span: Span, skip_uid: Option<&str>) -> bool {
        self.bookings.iter().any(|b| {
            b.status == BookingStatus::Accepted
                && host_of(b) == host_id
                && (b.start, b.end) == span
                && Some(b.uid.as_str()) != skip_uid
        })
    }

    pub fn purge_expired_reservations(&mut self, now: DateTime<Utc>) {
        self.reservations.retain(|r| r.reservation_until > now);
    }

    pub fn take_booking_id(&mut self) -> u64 {
        let id = self.next_booking_id;
        self.next_booking_id += 1;
        id
    }

    pub fn take_event_type_id(&mut self) -> u64 {
        let id = self.next_event_type_id;
        self.next_event_type_id += 1;
        id
    }

    /// Every pair of overlapping live bookings, per host: tests read this to
    /// prove that nothing was double booked.
    pub fn overlaps(&self) -> Vec<Overlap> {
        let mut by_host: BTreeMap<u64, Vec<&Booking>> = BTreeMap::new();
        for b in self.bookings.iter().filter(|b| b.status.is_live()) {
            by_host.entry(host_of(b)).or_default().push(b);
        }
        let mut found = Vec::new();
        for (host_id, mut list) in by_host {
            list.sort_by_key(|b| (b.start, b.id));
            for (i, a) in list.iter().enumerate() {
                for b in list[i + 1..].iter().take_while(|b| b.start < a.end) {
                    if overlaps((a.start, a.end), (b.start, b.end)) {
                        found.push(Overlap {
                            host_id,
                            first_uid: a.uid.clone(),
                            second_uid: b.uid.clone(),
                        });
                    }
                }
            }
        }
        found
    }
}

/// The host of a booking: its first (and in the mock only) host.
pub fn host_of(b: &Booking) -> u64 {
    b.hosts.first().map_or(0, |h| h.id)
}

/// The attendee of a new booking, already validated.
#[derive(Debug, Clone)]
pub struct NewAttendeeParts {
    pub name: String,
    pub email: Option<String>,
    pub phone_number: Option<String>,
    pub time_zone: String,
    pub language: String,
}

pub struct NewBookingParts<'a> {
    pub id: u64,
    pub uid: String,
    pub event_type: &'a EventType,
    pub host: &'a User,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub attendee: NewAttendeeParts,
    pub guests: Vec<String>,
    pub metadata: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
}

/// An ACCEPTED booking shaped like API 2024-08-13 returns it.
pub fn new_booking(p: NewBookingParts<'_>) -> Booking {
    let email = p.attendee.email.clone().unwrap_or_default();
    let location = "integrations:daily".to_string();
    Booking {
        id: p.id,
        title: format!(
            "{} between {} and {}",
            p.event_type.title, p.host.name, p.attendee.name
        ),
        description: String::new(),
        hosts: vec![p.host.host()],
        status: BookingStatus::Accepted,
        cancellation_reason: Some(String::new()),
        cancelled_by_email: Some(String::new()),
        start: p.start,
        end: p.end,
        duration: u32::try_from((p.end - p.start).num_minutes()).unwrap_or(u32::MAX),
        event_type_id: p.event_type.id,
        event_type: Some(EventTypeRef {
            id: p.event_type.id,
            slug: p.event_type.slug.clone(),
        }),
        attendees: vec![Attendee {
            name: p.attendee.name.clone(),
            email: email.clone(),
            display_email: email.clone(),
            time_zone: p.attendee.time_zone,
            language: p.attendee.language,
            absent: false,
            phone_number: p.attendee.phone_number,
        }],
        booking_fields_responses: serde_json::json!({
            "name": p.attendee.name, "email": email, "guests": p.guests, "displayEmail": email,
        }),
        guests: p.guests,
        location: Some(location.clone()),
        meeting_url: Some(location),
        absent_host: false,
        created_at: p.created_at,
        updated_at: None,
        rating: None,
        ics_uid: Some(format!("{}@Cal.com", p.uid)),
        metadata: p.metadata,
        uid: p.uid,
        rescheduled_from_uid: None,
        rescheduled_to_uid: None,
    }
}

/// Where the state survives restarts: written after every mutation as
/// tmp + fsync + rename, so a crash leaves the old or the new file, never half.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    /// The saved state, or `None` when there is no file yet.
    pub fn load(&self) -> Result<Option<State>, MockError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.error(format!("cannot read it: {e}"))),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| self.error(format!("not a mock state: {e}")))
    }

    pub fn save(&self, state: &State) -> Result<(), MockError> {
        let body = serde_json::to_vec_pretty(state)
            .map_err(|e| self.error(format!("cannot encode the state: {e}")))?;
        let tmp = self.path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            // The rename itself is durable only once the directory is synced.
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(|e| self.error(format!("cannot write it: {e}")))
    }

    fn error(&self, detail: String) -> MockError {
        MockError::StateFile {
            path: self.path.clone(),
            detail,
        }
    }
}
