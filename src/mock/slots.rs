//! `GET /v2/slots` and `/v2/slots/reservations` (API 2024-09-04). Slots are
//! the owner's working hours minus the host's live bookings (any event type),
//! unexpired reservations and the minimum notice. Reservations only hide
//! slots: booking creation ignores them, as on Cal.com (#23938).

use chrono::{DateTime, Duration, NaiveTime, Utc};
use chrono_tz::Tz;

use super::availability::{SlotSearch, Span, free_starts, group_by_day, overlaps};
use super::engine::{Call, Mock};
use super::input::{self, Query};
use super::reply::{Answer, ApiError, NO_AUTH};
use super::state::State;
use crate::calcom::wire::{EventType, Reservation, ReserveSlot};

/// The longest window one slots request may span (bounds the work).
const WINDOW_DAYS_MAX: i64 = 90;
/// Cal.com's default reservation length.
const RESERVATION_MIN_DEFAULT: u32 = 5;
const RESERVATION_MIN_MAX: u32 = 24 * 60;
const SLOTS_PARAMS: [&str; 12] = [
    "start",
    "end",
    "timeZone",
    "duration",
    "format",
    "bookingUidToReschedule",
    "eventTypeId",
    "eventTypeSlug",
    "username",
    "teamSlug",
    "organizationSlug",
    "usernames",
];
const RESERVE_FIELDS: [&str; 4] = [
    "eventTypeId",
    "slotStart",
    "slotDuration",
    "reservationDuration",
];
pub const RESERVED: &str =
    "This time slot is already reserved by another user. Please choose a different time.";
pub const ALREADY_BOOKED: &str = "Can't reserve a slot if the event is already booked.";

/// `GET /v2/slots`.
pub fn list(mock: &Mock, call: &Call<'_>) -> Result<Answer, ApiError> {
    let q = &call.query;
    q.only(&SLOTS_PARAMS)?;
    let start = q.required_instant("start")?;
    let end = q.required_instant("end")?;
    // An end at midnight means "through that day" (slots-input.service.ts).
    let end_at = if end.at.time() == NaiveTime::MIN {
        end.at + Duration::days(1) - Duration::seconds(1)
    } else {
        end.at
    };
    let zone = zone(q)?;
    let duration_min = q.number("duration")?.map(|d| d.clamp(1, 24 * 60) as u32);
    let range = match q.get("format") {
        None | Some("time") => false,
        Some("range") => true,
        Some(_) => {
            return Err(ApiError::bad_property(
                "format",
                "slotFormat must be either 'range' or 'time'",
            ));
        }
    };
    if end_at < start.at {
        return Err(ApiError::bad_request(
            "Invalid time range given - check the 'start' and 'end' query parameters.",
        ));
    }
    if end_at - start.at > Duration::days(WINDOW_DAYS_MAX) {
        return Err(ApiError::bad_request(format!(
            "The mock serves at most {WINDOW_DAYS_MAX} days of slots per request; narrow 'start' and 'end'."
        )));
    }
    let skip_uid = q.get("bookingUidToReschedule");
    let (starts, length) = mock.read(|s| -> Result<_, ApiError> {
        let et = event_type_of(s, mock, q)?;
        let host = host(mock, et)?;
        let length = duration_min.unwrap_or(et.length_in_minutes);
        let mut busy = s.booked_spans(host.id, skip_uid);
        busy.extend(s.reserved_spans(host.id, call.now));
        let search = SlotSearch {
            host,
            length_min: length,
            interval_min: et.slot_interval.unwrap_or(et.length_in_minutes),
            window: (start.at, end_at),
            earliest: call.now + notice(et),
            busy: &busy,
        };
        Ok((free_starts(&search), length))
    })?;
    Ok(Answer::ok(group_by_day(
        &starts,
        zone,
        range.then_some(length),
    )))
}

fn zone(q: &Query) -> Result<Option<Tz>, ApiError> {
    q.get("timeZone")
        .map(|name| {
            name.parse::<Tz>().map_err(|_| {
                ApiError::bad_property("timeZone", "timeZone must be a valid IANA time-zone")
            })
        })
        .transpose()
}

/// The event type by id or by `eventTypeSlug` + `username`.
fn event_type_of<'s>(s: &'s State, mock: &Mock, q: &Query) -> Result<&'s EventType, ApiError> {
    let found = if let Some(id) = q.number("eventTypeId")? {
        s.event_type(id)
    } else {
        let user = q.get("username").and_then(|u| mock.fixture.user_by_name(u));
        let slug = q.get("eventTypeSlug");
        s.event_types.iter().find(|e| {
            user.is_some_and(|u| e.owner_id == Some(u.id)) && Some(e.slug.as_str()) == slug
        })
    };
    found.ok_or_else(|| ApiError::not_found("Event Type not found"))
}

pub(super) fn host<'m>(
    mock: &'m Mock,
    et: &EventType,
) -> Result<&'m super::fixture::User, ApiError> {
    et.owner_id
        .and_then(|id| mock.fixture.user(id))
        .ok_or_else(|| ApiError::not_found(format!("Event type with id {} not found.", et.id)))
}

pub(super) fn notice(et: &EventType) -> Duration {
    Duration::minutes(i64::from(et.minimum_booking_notice.unwrap_or(0)))
}

/// `POST /v2/slots/reservations`.
pub fn reserve(mock: &Mock, call: &Call<'_>) -> Result<Answer, ApiError> {
    let input = reservation_input(call)?;
    let uid = mock.new_uuid();
    let r = mock.commit(|s| {
        s.purge_expired_reservations(call.now);
        let r = plan_reservation(s, &input, uid, call.now, None)?;
        s.reservations.push(r.clone());
        Ok(r)
    })?;
    Ok(Answer::created(r))
}

/// `GET /v2/slots/reservations/{uid}`: `data: null` for an unknown uid.
pub fn get_reservation(mock: &Mock, call: &Call<'_>) -> Result<Answer, ApiError> {
    let found = mock.read(|s| {
        s.reservations
            .iter()
            .find(|r| r.reservation_uid == call.param && r.reservation_until > call.now)
            .cloned()
    });
    Ok(Answer::ok(found))
}

/// `PATCH /v2/slots/reservations/{uid}`.
pub fn update_reservation(mock: &Mock, call: &Call<'_>) -> Result<Answer, ApiError> {
    let input = reservation_input(call)?;
    let r = mock.commit(|s| {
        s.purge_expired_reservations(call.now);
        let Some(i) = s
            .reservations
            .iter()
            .position(|r| r.reservation_uid == call.param)
        else {
            return Err(ApiError::not_found(format!(
                "Slot with uid={} not found",
                call.param
            )));
        };
        let r = plan_reservation(s, &input, call.param.clone(), call.now, Some(&call.param))?;
        s.reservations[i] = r.clone();
        Ok(r)
    })?;
    Ok(Answer::ok(r))
}

/// `DELETE /v2/slots/reservations/{uid}`: succeeds for unknown uids too.
pub fn delete_reservation(mock: &Mock, call: &Call<'_>) -> Result<Answer, ApiError> {
    mock.commit(|s| {
        s.reservations.retain(|r| r.reservation_uid != call.param);
        Ok(())
    })?;
    Ok(Answer::bare_success())
}

fn reservation_input(call: &Call<'_>) -> Result<ReserveSlot, ApiError> {
    let mut body = input::object(call.body)?;
    input::keep_only(&mut body, &RESERVE_FIELDS);
    let input: ReserveSlot = input::decode(body)?;
    if input.reservation_duration.is_some() && call.caller.user_id().is_none() {
        return Err(ApiError::nest(401, NO_AUTH));
    }
    Ok(input)
}

/// The reservation `input` would make, or Cal.com's refusal. `skip` is the
/// reservation being updated, which does not conflict with itself.
fn plan_reservation(
    s: &State,
    input: &ReserveSlot,
    uid: String,
    now: DateTime<Utc>,
    skip: Option<&str>,
) -> Result<Reservation, ApiError> {
    let et = s.event_type(input.event_type_id).ok_or_else(|| {
        ApiError::not_found(format!(
            "Event Type with ID={} not found",
            input.event_type_id
        ))
    })?;
    let length = match input.slot_duration {
        Some(d) if d != et.length_in_minutes => {
            return Err(ApiError::bad_request(format!(
                "Event type with id={} does not have multiple durations, so slotDuration can't be provided.",
                et.id
            )));
        }
        _ => et.length_in_minutes,
    };
    let span: Span = (
        input.slot_start,
        input.slot_start + Duration::minutes(i64::from(length)),
    );
    let taken = s.reservations.iter().any(|r| {
        r.event_type_id == et.id
            && r.reservation_until > now
            && Some(r.reservation_uid.as_str()) != skip
            && overlaps((r.slot_start, r.slot_end), span)
    });
    if taken {
        return Err(ApiError::nest(422, RESERVED));
    }
    let host_id = et.owner_id.unwrap_or_default();
    if s.booked_spans(host_id, None)
        .iter()
        .any(|b| overlaps(*b, span))
    {
        return Err(ApiError::nest(422, ALREADY_BOOKED));
    }
    let minutes = input
        .reservation_duration
        .unwrap_or(RESERVATION_MIN_DEFAULT)
        .clamp(1, RESERVATION_MIN_MAX);
    Ok(Reservation {
        event_type_id: et.id,
        slot_start: span.0,
        slot_end: span.1,
        slot_duration: length,
        reservation_uid: uid,
        reservation_duration: minutes,
        reservation_until: now + Duration::minutes(i64::from(minutes)),
    })
}
