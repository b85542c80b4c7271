//! Cal.com API v2 JSON shapes, exactly as the real API sends and accepts them
//! (field names, envelopes, versions). Shared by the client and the embedded
//! mock so both speak one dialect. Readers are lenient (unknown fields are
//! ignored, optional ones default); writers emit only what Cal.com accepts,
//! because its input pipes reject unknown fields with 400.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// `cal-api-version` per route family (calcom-v2 reference, section 0).
pub const VERSION_SLOTS: &str = "2024-09-04";
pub const VERSION_BOOKINGS: &str = "2024-08-13";
pub const VERSION_EVENT_TYPES: &str = "2024-06-14";

/// Metadata keys calsaga puts on every booking it makes; reconciliation and
/// the orphan check find our bookings by them.
pub const META_WORKFLOW: &str = "calsaga_workflow";
pub const META_SEGMENT: &str = "calsaga_segment";
pub const META_ATTEMPT: &str = "calsaga_attempt";

/// Timestamps as Cal.com writes them: UTC with milliseconds (`...07:00:00.000Z`).
pub mod ts {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn format(t: &DateTime<Utc>) -> String {
        t.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let raw = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&raw)
            .map(|t| t.to_utc())
            .map_err(|e| serde::de::Error::custom(format!("{raw:?} is not an ISO-8601 time: {e}")))
    }

    /// The same for `Option<DateTime<Utc>>` fields.
    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(
            t: &Option<DateTime<Utc>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_str(&format(t)),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<DateTime<Utc>>, D::Error> {
            match Option::<String>::deserialize(d)? {
                None => Ok(None),
                Some(raw) => DateTime::parse_from_rfc3339(&raw)
                    .map(|t| Some(t.to_utc()))
                    .map_err(|e| serde::de::Error::custom(format!("{raw:?}: {e}"))),
            }
        }
    }
}

// ---------------------------------------------------------------- envelopes

/// `{"status":"success","data":...}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Envelope<T> {
    pub status: String,
    pub data: T,
}

impl<T> Envelope<T> {
    pub fn success(data: T) -> Self {
        Self {
            status: "success".into(),
            data,
        }
    }
}

/// `GET /v2/bookings` adds paging figures beside `data`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PagedEnvelope<T> {
    pub status: String,
    pub data: Vec<T>,
    pub pagination: Pagination,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct Pagination {
    pub returned_items: u64,
    pub total_items: u64,
    pub items_per_page: u64,
    pub remaining_items: u64,
    pub current_page: u64,
    pub total_pages: u64,
    pub has_next_page: bool,
    pub has_previous_page: bool,
}

/// Nest's enveloped error: `{"status":"error","timestamp","path","error":{code,message,details}}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorEnvelope {
    pub status: String,
    pub timestamp: String,
    pub path: String,
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

/// The bare body of errors that escape the filters: `{"statusCode":409,"message":"booking_conflict_error"}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BareError {
    pub status_code: u16,
    pub message: String,
}

// -------------------------------------------------------------------- slots

/// Query of `GET /v2/slots` by event type id. `start`/`end` are ISO dates or
/// UTC times as Cal.com takes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotsQuery {
    pub event_type_id: u64,
    pub start: String,
    pub end: String,
    pub time_zone: Option<String>,
    pub duration_min: Option<u32>,
    /// `format=range`: each slot also carries its end.
    pub range: bool,
    /// `bookingUidToReschedule`: that booking's time counts as free (the
    /// slots a reschedule of it may take).
    pub booking_uid_to_reschedule: Option<String>,
}

/// `data` of `GET /v2/slots`: local day (`YYYY-MM-DD`) -> slots; days without
/// slots are absent.
pub type SlotsByDay = BTreeMap<String, Vec<Slot>>;

/// A slot start (and end with `format=range`) in the requested time zone,
/// e.g. `2050-09-05T09:00:00.000+02:00`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Slot {
    pub start: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
}

/// Body of `POST /v2/slots/reservations`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReserveSlot {
    pub event_type_id: u64,
    #[serde(with = "ts")]
    pub slot_start: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_duration: Option<u32>,
    /// Minutes; Cal.com's default is 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation_duration: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Reservation {
    pub event_type_id: u64,
    #[serde(with = "ts")]
    pub slot_start: DateTime<Utc>,
    #[serde(with = "ts")]
    pub slot_end: DateTime<Utc>,
    pub slot_duration: u32,
    pub reservation_uid: String,
    pub reservation_duration: u32,
    #[serde(with = "ts")]
    pub reservation_until: DateTime<Utc>,
}

/// `data` of `GET /v2/slots/reservations/{uid}` (no `reservationDuration`
/// here); Cal.com answers `data: null` for an unknown or expired uid.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ReservedSlot {
    pub reservation_uid: String,
    pub event_type_id: u64,
    #[serde(with = "ts")]
    pub slot_start: DateTime<Utc>,
    #[serde(with = "ts")]
    pub slot_end: DateTime<Utc>,
    pub slot_duration: u32,
    #[serde(with = "ts")]
    pub reservation_until: DateTime<Utc>,
}

// ----------------------------------------------------------------- bookings

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum BookingStatus {
    Accepted,
    Cancelled,
    Rejected,
    Pending,
    AwaitingHost,
}

impl BookingStatus {
    /// Whether the booking occupies the host's time.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            BookingStatus::Accepted | BookingStatus::Pending | BookingStatus::AwaitingHost
        )
    }
}

/// A booking's host. Cal.com answers a booking without a user with
/// `{"id": "unknown", ...}` (`output.service.ts` `getHost(null)`): that id
/// reads as 0, which no Cal.com user has.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct Host {
    #[serde(deserialize_with = "user_id")]
    pub id: u64,
    #[serde(deserialize_with = "null_as_default")]
    pub name: String,
    #[serde(deserialize_with = "null_as_default")]
    pub email: String,
    #[serde(deserialize_with = "null_as_default")]
    pub display_email: String,
    #[serde(deserialize_with = "null_as_default")]
    pub username: String,
    #[serde(deserialize_with = "null_as_default")]
    pub time_zone: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct Attendee {
    #[serde(deserialize_with = "null_as_default")]
    pub name: String,
    #[serde(deserialize_with = "null_as_default")]
    pub email: String,
    #[serde(deserialize_with = "null_as_default")]
    pub display_email: String,
    #[serde(deserialize_with = "null_as_default")]
    pub time_zone: String,
    /// The attendee's locale, which Cal.com may not know (null).
    #[serde(deserialize_with = "null_as_default")]
    pub language: String,
    pub absent: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EventTypeRef {
    pub id: u64,
    pub slug: String,
}

/// The booking object of API 2024-08-13.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Booking {
    pub id: u64,
    pub uid: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub title: String,
    /// The attendee's notes: null when there are none.
    #[serde(default, deserialize_with = "null_as_default")]
    pub description: String,
    #[serde(default)]
    pub hosts: Vec<Host>,
    pub status: BookingStatus,
    #[serde(default)]
    pub cancellation_reason: Option<String>,
    #[serde(default)]
    pub cancelled_by_email: Option<String>,
    #[serde(with = "ts")]
    pub start: DateTime<Utc>,
    #[serde(with = "ts")]
    pub end: DateTime<Utc>,
    /// Minutes.
    pub duration: u32,
    /// 0 when Cal.com sends null (the event type is gone).
    #[serde(deserialize_with = "null_as_default")]
    pub event_type_id: u64,
    #[serde(default)]
    pub event_type: Option<EventTypeRef>,
    #[serde(default)]
    pub attendees: Vec<Attendee>,
    #[serde(default)]
    pub guests: Vec<String>,
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    pub meeting_url: Option<String>,
    #[serde(default)]
    pub absent_host: bool,
    #[serde(with = "ts")]
    pub created_at: DateTime<Utc>,
    #[serde(default, with = "ts::option")]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub rating: Option<i64>,
    #[serde(default)]
    pub ics_uid: Option<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub booking_fields_responses: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rescheduled_from_uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rescheduled_to_uid: Option<String>,
}

/// The attendee part of a create request.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewAttendee {
    pub name: String,
    pub time_zone: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// Body of `POST /v2/bookings` (by event type id, the form calsaga uses).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateBooking {
    #[serde(with = "ts")]
    pub start: DateTime<Utc>,
    pub event_type_id: u64,
    pub attendee: NewAttendee,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length_in_minutes: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guests: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booking_fields_responses: Option<serde_json::Value>,
}

/// Body of `POST /v2/bookings/{uid}/reschedule`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RescheduleBooking {
    #[serde(with = "ts")]
    pub start: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rescheduled_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rescheduling_reason: Option<String>,
}

/// Body of `POST /v2/bookings/{uid}/cancel`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CancelBooking {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancellation_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_subsequent_bookings: Option<bool>,
}

/// Filters of `GET /v2/bookings`; `None`/empty means "not sent".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BookingFilter {
    /// Any of `upcoming,recurring,past,cancelled,unconfirmed`.
    pub status: Vec<String>,
    pub attendee_email: Option<String>,
    pub booking_uid: Option<String>,
    pub event_type_ids: Vec<u64>,
    pub after_start: Option<DateTime<Utc>>,
    pub before_end: Option<DateTime<Utc>>,
    /// 1..=250; Cal.com's default is 100.
    pub take: Option<u32>,
    pub skip: Option<u32>,
    /// `asc` or `desc`.
    pub sort_start: Option<String>,
}

/// One page of `GET /v2/bookings`.
#[derive(Debug, Clone, PartialEq)]
pub struct BookingPage {
    pub bookings: Vec<Booking>,
    pub pagination: Pagination,
}

// -------------------------------------------------------------- event types

/// The event type object of API 2024-06-14 (the fields calsaga uses; the rest
/// is ignored on read).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EventType {
    pub id: u64,
    #[serde(default)]
    pub owner_id: Option<u64>,
    pub length_in_minutes: u32,
    pub title: String,
    pub slug: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub hidden: bool,
    #[serde(default)]
    pub slot_interval: Option<u32>,
    #[serde(default)]
    pub minimum_booking_notice: Option<u32>,
}

/// Body of `POST /v2/event-types`. Cal.com silently drops unknown fields here.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CreateEventType {
    pub length_in_minutes: u32,
    pub title: String,
    pub slug: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden: Option<bool>,
}

/// Body of `PATCH /v2/event-types/{id}`: every field optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UpdateEventType {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length_in_minutes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden: Option<bool>,
}

// ----------------------------------------------------------------- webhooks

/// The booking triggers calsaga subscribes to and the mock delivers.
pub const TRIGGER_CREATED: &str = "BOOKING_CREATED";
pub const TRIGGER_RESCHEDULED: &str = "BOOKING_RESCHEDULED";
pub const TRIGGER_CANCELLED: &str = "BOOKING_CANCELLED";

/// Header carrying the hex HMAC-SHA256 of the exact body.
pub const SIGNATURE_HEADER: &str = "X-Cal-Signature-256";
/// Sent instead of a signature when the subscription has no secret.
pub const NO_SECRET_SIGNATURE: &str = "no-secret-provided";
pub const WEBHOOK_VERSION_HEADER: &str = "X-Cal-Webhook-Version";
pub const WEBHOOK_VERSION: &str = "2021-10-20";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    /// A uuid string, although Cal.com's DTO says integer.
    pub id: String,
    #[serde(default)]
    pub user_id: Option<u64>,
    pub subscriber_url: String,
    pub triggers: Vec<String>,
    pub active: bool,
    #[serde(default)]
    pub payload_template: Option<String>,
    /// Cal.com echoes the secret back.
    #[serde(default)]
    pub secret: Option<String>,
}

/// Body of `POST /v2/webhooks`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateWebhook {
    pub subscriber_url: String,
    pub triggers: Vec<String>,
    pub active: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_template: Option<String>,
}

/// Body of `PATCH /v2/webhooks/{id}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateWebhook {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriber_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggers: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// A delivered webhook body: `{triggerEvent, createdAt, payload}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WebhookDelivery {
    pub trigger_event: String,
    pub created_at: String,
    pub payload: WebhookBookingPayload,
}

/// The booking payload of webhook version 2021-10-20 (the fields calsaga
/// reads; `status` is UPPERCASE here, unlike the REST API).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WebhookBookingPayload {
    #[serde(rename = "type", default)]
    pub event_slug: String,
    #[serde(default)]
    pub title: String,
    pub start_time: String,
    pub end_time: String,
    pub uid: String,
    #[serde(default)]
    pub booking_id: Option<u64>,
    #[serde(default)]
    pub event_type_id: Option<u64>,
    pub status: String,
    #[serde(default)]
    pub length: Option<u32>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub organizer: Option<serde_json::Value>,
    #[serde(default)]
    pub attendees: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancellation_reason: Option<String>,
    /// On BOOKING_RESCHEDULED: the old booking's uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reschedule_uid: Option<String>,
}

/// Cal.com passes some database columns through as they are, null
/// included (`apps/api/v2/src/ee/bookings/2024-08-13/services/output.service.ts`
/// `getOutputBooking`): null reads as the type's default, so one such booking
/// cannot make a whole page unreadable.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A user id, or 0 for Cal.com's `"unknown"` (or null).
fn user_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Number(u64),
        Text(String),
    }
    Ok(match Option::<Id>::deserialize(d)? {
        Some(Id::Number(n)) => n,
        Some(Id::Text(t)) => t.parse().unwrap_or(0),
        None => 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_written_with_milliseconds_like_calcom() {
        let t = DateTime::parse_from_rfc3339("2050-09-05T09:00:00+02:00")
            .unwrap()
            .to_utc();
        assert_eq!(ts::format(&t), "2050-09-05T07:00:00.000Z");
    }

    #[test]
    fn create_booking_omits_empty_optionals_because_calcom_rejects_unknown_fields() {
        let body = CreateBooking {
            start: DateTime::parse_from_rfc3339("2050-09-05T07:00:00Z")
                .unwrap()
                .to_utc(),
            event_type_id: 101,
            attendee: NewAttendee {
                name: "Jo".into(),
                time_zone: "Europe/Berlin".into(),
                email: Some("jo@example.com".into()),
                ..Default::default()
            },
            metadata: BTreeMap::new(),
            length_in_minutes: None,
            guests: vec![],
            booking_fields_responses: None,
        };
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"start":"2050-09-05T07:00:00.000Z","eventTypeId":101,
                "attendee":{"name":"Jo","timeZone":"Europe/Berlin","email":"jo@example.com"}})
        );
    }
}
