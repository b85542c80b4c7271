//! `GET /v2/bookings` (API 2024-08-13): status and field filters, sorting
//! and paging with Cal.com's `pagination` object. The mock's API key acts as
//! an org admin and sees every booking. A fault can make it ignore
//! `afterStart`/`beforeEnd`, as users reported (#18010), so reconciliation
//! that trusts the filter blindly is caught in tests.

use chrono::{DateTime, Utc};

use super::engine::{Call, Mock};
use super::input::Query;
use super::reply::{Answer, ApiError};
use crate::calcom::wire::{Booking, BookingStatus, PagedEnvelope, Pagination};

const TAKE_DEFAULT: u64 = 100;
const TAKE_MAX: u64 = 250;
const STATUSES: [&str; 5] = ["upcoming", "recurring", "past", "cancelled", "unconfirmed"];

/// The filters of one list request, parsed.
struct Filter {
    statuses: Vec<String>,
    attendee_email: Option<String>,
    attendee_name: Option<String>,
    booking_uid: Option<String>,
    event_type_ids: Vec<u64>,
    after_start: Option<DateTime<Utc>>,
    before_end: Option<DateTime<Utc>>,
    descending: bool,
    take: u64,
    skip: u64,
}

pub fn list(mock: &Mock, call: &Call<'_>) -> Result<Answer, ApiError> {
    let f = parse(&call.query, call.effect.ignore_list_filters)?;
    let mut found: Vec<Booking> = mock.read(|s| {
        s.bookings
            .iter()
            .filter(|b| f.matches(b, call.now))
            .cloned()
            .collect()
    });
    found.sort_by(|a, b| {
        let o = a.start.cmp(&b.start).then(a.id.cmp(&b.id));
        if f.descending { o.reverse() } else { o }
    });
    let total = found.len() as u64;
    let page: Vec<Booking> = found
        .into_iter()
        .skip(usize::try_from(f.skip).unwrap_or(usize::MAX))
        .take(f.take as usize)
        .collect();
    let returned = page.len() as u64;
    let total_pages = total.div_ceil(f.take);
    let pagination = Pagination {
        returned_items: returned,
        total_items: total,
        items_per_page: f.take,
        remaining_items: total.saturating_sub(f.skip + returned),
        // getPagination (apps/api/v2/src/lib/pagination/pagination.ts): page
        // 0 of 0 when nothing matches.
        current_page: if total_pages == 0 {
            0
        } else {
            f.skip / f.take + 1
        },
        total_pages,
        has_next_page: f.skip + returned < total,
        has_previous_page: f.skip > 0,
    };
    Ok(Answer::plain(
        200,
        PagedEnvelope {
            status: "success".into(),
            data: page,
            pagination,
        },
    ))
}

fn parse(q: &Query, ignore_dates: bool) -> Result<Filter, ApiError> {
    let statuses: Vec<String> = q
        .get("status")
        .map(|s| s.split(',').map(|p| p.trim().to_string()).collect())
        .unwrap_or_default();
    if statuses.iter().any(|s| !STATUSES.contains(&s.as_str())) {
        return Err(ApiError::bad_request(
            "Invalid status. Allowed are upcoming, recurring, past, cancelled, unconfirmed",
        ));
    }
    let mut event_type_ids = ids(q, "eventTypeIds")?;
    event_type_ids.extend(q.number("eventTypeId")?);
    let take = q.number("take")?.unwrap_or(TAKE_DEFAULT);
    if !(1..=TAKE_MAX).contains(&take) {
        return Err(ApiError::bad_property(
            "take",
            &format!("take must not be less than 1 or greater than {TAKE_MAX}"),
        ));
    }
    let descending = match q.get("sortStart") {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(_) => {
            return Err(ApiError::bad_request(
                "SortStart must be either \"asc\" or \"desc\".",
            ));
        }
    };
    let after_start = q.instant("afterStart")?.map(|i| i.at);
    let before_end = q.instant("beforeEnd")?.map(|i| i.at);
    Ok(Filter {
        statuses,
        attendee_email: q.get("attendeeEmail").map(str::to_ascii_lowercase),
        attendee_name: q.get("attendeeName").map(str::to_string),
        booking_uid: q.get("bookingUid").map(str::to_string),
        event_type_ids,
        after_start: after_start.filter(|_| !ignore_dates),
        before_end: before_end.filter(|_| !ignore_dates),
        descending,
        take,
        skip: q.number("skip")?.unwrap_or(0),
    })
}

fn ids(q: &Query, name: &str) -> Result<Vec<u64>, ApiError> {
    let Some(raw) = q.get(name) else {
        return Ok(Vec::new());
    };
    raw.split(',')
        .map(|p| {
            p.trim().parse::<u64>().map_err(|_| {
                ApiError::bad_property(
                    name,
                    &format!("each value in {name} must be a number conforming to the specified constraints"),
                )
            })
        })
        .collect()
}

impl Filter {
    fn matches(&self, b: &Booking, now: DateTime<Utc>) -> bool {
        let by_status =
            self.statuses.is_empty() || self.statuses.iter().any(|s| status_is(s, b, now));
        let attendee =
            |pick: &dyn Fn(&crate::calcom::wire::Attendee) -> bool| b.attendees.iter().any(pick);
        by_status
            && self
                .attendee_email
                .as_ref()
                .is_none_or(|e| attendee(&|a| a.email.eq_ignore_ascii_case(e)))
            && self
                .attendee_name
                .as_ref()
                .is_none_or(|n| attendee(&|a| &a.name == n))
            && self.booking_uid.as_ref().is_none_or(|u| &b.uid == u)
            && (self.event_type_ids.is_empty() || self.event_type_ids.contains(&b.event_type_id))
            && self.after_start.is_none_or(|t| b.start >= t)
            && self.before_end.is_none_or(|t| b.end <= t)
    }
}

/// Cal.com's meaning of each status filter.
fn status_is(name: &str, b: &Booking, now: DateTime<Utc>) -> bool {
    let ended = b.end <= now;
    match name {
        "upcoming" => b.status.is_live() && !ended,
        "past" => b.status.is_live() && ended,
        "cancelled" => matches!(b.status, BookingStatus::Cancelled | BookingStatus::Rejected),
        "unconfirmed" => b.status == BookingStatus::Pending && !ended,
        // The mock has no recurring bookings.
        _ => false,
    }
}
