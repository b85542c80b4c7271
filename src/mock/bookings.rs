//! Bookings, API 2024-08-13: create, list, get, reschedule, cancel. A create
//! runs like Cal.com's: an availability check (working hours, the host's live
//! bookings, notice), then - in a SEPARATE critical section - an insert
//! guarded by the unique key (host, start, end) among ACCEPTED bookings. Two
//! racing creates of one slot can both pass the check; the loser then hits
//! the key and gets the bare 409 `booking_conflict_error`. Reservations are
//! never consulted here (#23938).

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value};

use super::availability::{Span, overlaps, within_working_hours};
use super::engine::{Call, Mock};
use super::fixture::User;
use super::input;
use super::reply::{Answer, ApiError};
use super::slots::{host, notice};
use super::state::{NewAttendeeParts, NewBookingParts, State, new_booking};
use crate::calcom::wire::{
    Booking, BookingStatus, CancelBooking, CreateBooking, EventType, RescheduleBooking,
    TRIGGER_CANCELLED, TRIGGER_CREATED, TRIGGER_RESCHEDULED,
};

pub const SLOT_TAKEN: &str = "User either already has booking at this time or is not available";
pub const CONFLICT: &str = "booking_conflict_error";
const PAST: &str = "Attempting to book a meeting in the past.";
const OUT_OF_BOUNDS: &str = "The event type can't be booked at the \"start\" time provided. This could be because it's too soon (violating the minimum booking notice) or too far in the future (outside the event's scheduling window). Try fetching available slots first using the GET /v2/slots endpoint and then make a booking with \"start\" time equal to one of the available slots.";
const ENDED: &str = "Cannot cancel a booking that has already ended";
const METADATA: &str = "Metadata must have at most 50 keys, each key up to 40 characters, and string values up to 500 characters.";
const CONTACT: &str = "Attendee must have at least one contact method (email or phone number)";
const WHICH_EVENT: &str =
    "Either eventTypeId or eventTypeSlug + username or eventTypeSlug + teamSlug must be provided";
const METADATA_KEYS_MAX: usize = 50;
const METADATA_KEY_CHARS_MAX: usize = 40;
const METADATA_VALUE_CHARS_MAX: usize = 500;

const CREATE_FIELDS: [&str; 17] = [
    "start",
    "lengthInMinutes",
    "eventTypeId",
    "eventTypeSlug",
    "username",
    "teamSlug",
    "organizationSlug",
    "attendee",
    "guests",
    "meetingUrl",
    "location",
    "metadata",
    "bookingFieldsResponses",
    "routing",
    "emailVerificationCode",
    "instant",
    "recurrenceCount",
];
/// Accepted by Cal.com, not modelled by the mock.
const CREATE_IGNORED: [&str; 10] = [
    "eventTypeSlug",
    "username",
    "teamSlug",
    "organizationSlug",
    "meetingUrl",
    "location",
    "routing",
    "emailVerificationCode",
    "instant",
    "recurrenceCount",
];
const ATTENDEE_FIELDS: [&str; 5] = ["name", "email", "timeZone", "phoneNumber", "language"];
const RESCHEDULE_FIELDS: [&str; 5] = [
    "start",
    "rescheduledBy",
    "reschedulingReason",
    "emailVerificationCode",
    "seatUid",
];
const CANCEL_FIELDS: [&str; 3] = ["cancellationReason", "cancelSubsequentBookings", "seatUid"];

pub fn already_cancelled(uid: &str) -> String {
    format!(
        "Can't cancel booking with uid={uid} because it has been cancelled already. Please provide uid of a booking that is not cancelled."
    )
}

fn not_in_database(uid: &str) -> ApiError {
    ApiError::not_found(format!(
        "Booking with uid={uid} was not found in the database"
    ))
}

/// `POST /v2/bookings`.
pub fn create(mock: &Mock, call: &Call<'_>) -> Result<Answer, ApiError> {
    let input = create_input(mock, call)?;
    let (et, span) = mock.read(|s| -> Result<_, ApiError> {
        let et = s.event_type(input.event_type_id).ok_or_else(|| {
            ApiError::not_found(format!("Event type with id {} not found.", input.event_type_id))
        })?;
        if input.length_in_minutes.is_some_and(|l| l != et.length_in_minutes) {
            return Err(ApiError::bad_request("Can't specify 'lengthInMinutes' because event type does not have multiple possible lengths. Please, remove the 'lengthInMinutes' field from the request."));
        }
        let span = span_of(input.start, et);
        check_bookable(s, host(mock, et)?, et, span, call.now, None)?;
        Ok((et.clone(), span))
    })?;
    mock.between_check_and_insert();
    let host = host(mock, &et)?;
    let uid = mock.new_uid();
    let booking = mock.commit(|s| {
        if s.accepted_with_key(host.id, span, None) {
            return Err(ApiError::bare(409, CONFLICT));
        }
        let b = build(s, &et, host, span, &input, uid, call.now);
        s.bookings.push(b.clone());
        Ok(b)
    })?;
    mock.publish(TRIGGER_CREATED, &booking, None);
    Ok(Answer::created(booking))
}

fn create_input(mock: &Mock, call: &Call<'_>) -> Result<CreateBooking, ApiError> {
    let mut body = input::object(call.body)?;
    input::only(&body, &CREATE_FIELDS)?;
    if let Some(Value::Object(attendee)) = body.get("attendee") {
        input::only(attendee, &ATTENDEE_FIELDS)?;
    }
    if !body.contains_key("eventTypeId") {
        let id =
            event_type_by_slug(mock, &body).ok_or_else(|| ApiError::bad_request(WHICH_EVENT))?;
        body.insert("eventTypeId".into(), Value::from(id));
    }
    input::drop_keys(&mut body, &CREATE_IGNORED);
    let input: CreateBooking = input::decode(body)?;
    let a = &input.attendee;
    if a.email.as_deref().unwrap_or("").is_empty()
        && a.phone_number.as_deref().unwrap_or("").is_empty()
    {
        return Err(ApiError::bad_property("attendee email or phone", CONTACT));
    }
    if a.time_zone.parse::<Tz>().is_err() {
        return Err(ApiError::bad_property(
            "timeZone",
            "timeZone must be a valid IANA time-zone",
        ));
    }
    let m = &input.metadata;
    let too_big = m.len() > METADATA_KEYS_MAX
        || m.iter().any(|(k, v)| {
            k.chars().count() > METADATA_KEY_CHARS_MAX
                || v.chars().count() > METADATA_VALUE_CHARS_MAX
        });
    if too_big {
        return Err(ApiError::bad_request(METADATA));
    }
    Ok(input)
}

fn event_type_by_slug(mock: &Mock, body: &Map<String, Value>) -> Option<u64> {
    let slug = body.get("eventTypeSlug")?.as_str()?;
    let user = mock.fixture.user_by_name(body.get("username")?.as_str()?)?;
    mock.read(|s| {
        s.event_types
            .iter()
            .find(|e| e.slug == slug && e.owner_id == Some(user.id))
            .map(|e| e.id)
    })
}

fn span_of(start: DateTime<Utc>, et: &EventType) -> Span {
    (
        start,
        start + Duration::minutes(i64::from(et.length_in_minutes)),
    )
}

/// Cal.com's checks before an insert, in its order. `skip_uid` is a booking
/// being rescheduled, which does not block its own new time.
fn check_bookable(
    s: &State,
    host: &User,
    et: &EventType,
    span: Span,
    now: DateTime<Utc>,
    skip_uid: Option<&str>,
) -> Result<(), ApiError> {
    if span.0 < now {
        return Err(ApiError::bad_request(PAST));
    }
    if span.0 < now + notice(et) {
        return Err(ApiError::bad_request(OUT_OF_BOUNDS));
    }
    let busy = s
        .booked_spans(host.id, skip_uid)
        .iter()
        .any(|b| overlaps(*b, span));
    if busy || !within_working_hours(host, span) {
        return Err(ApiError::bad_request(SLOT_TAKEN));
    }
    Ok(())
}

fn build(
    s: &mut State,
    et: &EventType,
    host: &User,
    span: Span,
    input: &CreateBooking,
    uid: String,
    now: DateTime<Utc>,
) -> Booking {
    let a = &input.attendee;
    new_booking(NewBookingParts {
        id: s.take_booking_id(),
        uid,
        event_type: et,
        host,
        start: span.0,
        end: span.1,
        attendee: NewAttendeeParts {
            name: a.name.clone(),
            email: a.email.clone(),
            phone_number: a.phone_number.clone(),
            time_zone: a.time_zone.clone(),
            language: a.language.clone().unwrap_or_else(|| "en".into()),
        },
        guests: input.guests.clone(),
        metadata: input.metadata.clone(),
        created_at: now,
    })
}

/// `GET /v2/bookings/{uid}`.
pub fn get(mock: &Mock, call: &Call<'_>) -> Result<Answer, ApiError> {
    let b = mock.read(|s| s.booking(&call.param).cloned());
    b.map(Answer::ok)
        .ok_or_else(|| not_in_database(&call.param))
}

/// `POST /v2/bookings/{uid}/reschedule`: the new booking, 201.
pub fn reschedule(mock: &Mock, call: &Call<'_>) -> Result<Answer, ApiError> {
    let mut body = input::object(call.body)?;
    input::only(&body, &RESCHEDULE_FIELDS)?;
    input::drop_keys(&mut body, &["emailVerificationCode", "seatUid"]);
    let input: RescheduleBooking = input::decode(body)?;
    let uid = call.param.as_str();
    let (old, et) = mock.read(|s| -> Result<_, ApiError> {
        let old = movable(s, uid)?;
        let et = s.event_type(old.event_type_id).ok_or_else(|| {
            ApiError::not_found(format!(
                "Event type with id {} not found.",
                old.event_type_id
            ))
        })?;
        let span = span_of(input.start, et);
        check_bookable(s, host(mock, et)?, et, span, call.now, Some(uid))?;
        Ok((old.clone(), et.clone()))
    })?;
    mock.between_check_and_insert();
    let host = host(mock, &et)?;
    let span = span_of(input.start, &et);
    let new_uid = mock.new_uid();
    let (new, old) = mock.commit(|s| {
        movable(s, uid)?;
        if s.accepted_with_key(host.id, span, Some(uid)) {
            return Err(ApiError::bare(409, CONFLICT));
        }
        let mut new = old.clone();
        new.id = s.take_booking_id();
        new.ics_uid = Some(format!("{new_uid}@Cal.com"));
        new.uid = new_uid;
        (new.start, new.end) = span;
        new.duration = et.length_in_minutes;
        new.created_at = call.now;
        new.updated_at = None;
        new.rescheduled_from_uid = Some(uid.to_string());
        let Some(old) = s.booking_mut(uid) else {
            return Err(not_in_database(uid));
        };
        old.status = BookingStatus::Cancelled;
        old.rescheduled_to_uid = Some(new.uid.clone());
        old.updated_at = Some(call.now);
        let old = old.clone();
        s.bookings.push(new.clone());
        Ok((new, old))
    })?;
    mock.publish(TRIGGER_RESCHEDULED, &new, Some(&old));
    Ok(Answer::created(new))
}

/// The live booking `uid`, or why it cannot be rescheduled.
fn movable<'s>(s: &'s State, uid: &str) -> Result<&'s Booking, ApiError> {
    let b = s.booking(uid).ok_or_else(|| not_in_database(uid))?;
    if b.status.is_live() {
        return Ok(b);
    }
    Err(ApiError::bad_request(match &b.rescheduled_to_uid {
        Some(to) => format!(
            "Can't reschedule booking with uid={uid} because it has been cancelled and rescheduled already to booking with uid={to}. You probably want to reschedule {to} instead by passing it within the request URL."
        ),
        None => format!(
            "Can't reschedule booking with uid={uid} because it has been cancelled. Please provide uid of a booking that is not cancelled."
        ),
    }))
}

/// `POST /v2/bookings/{uid}/cancel`: 200 with the cancelled booking.
pub fn cancel(mock: &Mock, call: &Call<'_>) -> Result<Answer, ApiError> {
    let mut body = input::object(call.body)?;
    input::only(&body, &CANCEL_FIELDS)?;
    input::drop_keys(&mut body, &["seatUid"]);
    let input: CancelBooking = input::decode(body)?;
    let by = call
        .caller
        .user_id()
        .and_then(|id| mock.fixture.user(id))
        .map(|u| u.email.clone());
    let booking = mock.commit(|s| {
        let uid = call.param.as_str();
        let b = s
            .booking_mut(uid)
            .ok_or_else(|| ApiError::not_found(format!("Booking with uid={uid} not found")))?;
        if !b.status.is_live() {
            return Err(ApiError::bad_request(already_cancelled(uid)));
        }
        // handleCancelBooking throws an HttpError, which no filter wraps.
        if b.end < call.now {
            return Err(ApiError::bare(400, ENDED));
        }
        b.status = BookingStatus::Cancelled;
        b.cancellation_reason = Some(input.cancellation_reason.clone().unwrap_or_default());
        b.cancelled_by_email = Some(by.unwrap_or_default());
        b.updated_at = Some(call.now);
        Ok(b.clone())
    })?;
    mock.publish(TRIGGER_CANCELLED, &booking, None);
    Ok(Answer::ok(booking))
}
