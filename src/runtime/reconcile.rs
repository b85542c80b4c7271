//! The truth about an uncertain step. After a crash or a lost reply we do not
//! know whether Cal.com made a segment's booking, so we look: list the
//! host's bookings of that event type around the segment's window, page by
//! page, and keep the live ones whose metadata names this saga and segment
//! and whose times match. Cal.com's list filters are not trusted (users saw
//! them ignored), so every condition is checked again here. A move is
//! settled by following the original's lineage instead (`lineage`): the
//! moved booking keeps the original's metadata, so metadata cannot tell.

use chrono::Duration;

use crate::calcom::wire::{self, Booking, BookingFilter};
use crate::calcom::{CalcomApi, CalcomError};
use crate::saga::{PlannedSegment, ReconcileCall};

use super::calls::is_not_found;

/// Bookings per page: Cal.com's maximum.
const PAGE_ROWS: u32 = 250;
/// Pages read before giving up; with filters ignored a busy account could
/// page forever, and a reconcile that fails is retried later.
const PAGES_MAX: u32 = 40;

/// Uids of the live bookings that are this segment's, oldest first: the
/// first is the segment's booking, any other a duplicate (I1). For a move,
/// the booking Cal.com made from the original, if it did.
pub async fn live_uids(
    api: &dyn CalcomApi,
    call: &ReconcileCall,
) -> Result<Vec<String>, CalcomError> {
    if let Some(from) = &call.segment.moves {
        return Ok(match lineage(api, from, &call.segment).await? {
            Lineage::MovedTo(uid) => vec![uid],
            Lineage::Live | Lineage::Gone => Vec::new(),
        });
    }
    let found = around(api, &call.segment, |b| is_segment(b, call)).await?;
    Ok(found.into_iter().map(|b| b.uid).collect())
}

/// What became of a booking calsaga asked Cal.com to move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lineage {
    /// Still live where it was: the move did not happen.
    Live,
    /// Moved: Cal.com's booking made from it.
    MovedTo(String),
    /// Cancelled (or unknown) without a successor.
    Gone,
}

/// Follows `uid` to the booking Cal.com made from it: its
/// `rescheduledToUid`, else (older Cal.com) the live booking of the host
/// around `target` whose `rescheduledFromUid` is `uid`.
pub async fn lineage(
    api: &dyn CalcomApi,
    uid: &str,
    target: &PlannedSegment,
) -> Result<Lineage, CalcomError> {
    let booking = match api.get_booking(uid).await {
        Ok(b) => b,
        Err(e) if is_not_found(&e) => return Ok(Lineage::Gone),
        Err(e) => return Err(e),
    };
    if booking.status.is_live() {
        return Ok(Lineage::Live);
    }
    if let Some(to) = booking.rescheduled_to_uid {
        return Ok(Lineage::MovedTo(to));
    }
    let next = around(api, target, |b| {
        b.status.is_live() && b.rescheduled_from_uid.as_deref() == Some(uid)
    })
    .await?;
    Ok(next
        .into_iter()
        .next()
        .map_or(Lineage::Gone, |b| Lineage::MovedTo(b.uid)))
}

/// The bookings of `seg`'s event type around its window that `keep`
/// accepts, oldest first, read page by page.
async fn around(
    api: &dyn CalcomApi,
    seg: &PlannedSegment,
    keep: impl Fn(&Booking) -> bool,
) -> Result<Vec<Booking>, CalcomError> {
    let mut filter = BookingFilter {
        event_type_ids: vec![seg.event_type_id],
        after_start: Some(seg.start - Duration::hours(1)),
        before_end: Some(seg.end + Duration::hours(1)),
        take: Some(PAGE_ROWS),
        skip: Some(0),
        sort_start: Some("asc".into()),
        ..BookingFilter::default()
    };
    let mut found: Vec<Booking> = Vec::new();
    for _ in 0..PAGES_MAX {
        let page = api.list_bookings(&filter).await?;
        let read = u32::try_from(page.bookings.len()).unwrap_or(u32::MAX);
        found.extend(page.bookings.into_iter().filter(|b| keep(b)));
        if !page.pagination.has_next_page || read == 0 {
            found.sort_by_key(|b| (b.created_at, b.id));
            return Ok(found);
        }
        filter.skip = Some(filter.skip.unwrap_or(0).saturating_add(read));
    }
    Err(CalcomError::Retryable {
        after: None,
        reason: format!(
            "reading the bookings around segment {} ({}) took {PAGES_MAX} pages without reaching the end",
            seg.index, seg.start
        ),
    })
}

fn is_segment(b: &Booking, call: &ReconcileCall) -> bool {
    let workflow = call.workflow.to_string();
    let segment = call.segment.index.to_string();
    b.status.is_live()
        && b.metadata.get(wire::META_WORKFLOW) == Some(&workflow)
        && b.metadata.get(wire::META_SEGMENT) == Some(&segment)
        && b.start == call.segment.start
        && b.end == call.segment.end
}
