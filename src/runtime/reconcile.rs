//! The truth about an uncertain step. After a crash or a lost reply we do not
//! know whether Cal.com made a segment's booking, so we look: list the
//! host's bookings of that event type around the segment's window, page by
//! page, and keep the live ones whose metadata names this saga and segment
//! and whose times match. Cal.com's list filters are not trusted (users saw
//! them ignored), so every condition is checked again here.

use chrono::Duration;

use crate::calcom::wire::{self, Booking, BookingFilter};
use crate::calcom::{CalcomApi, CalcomError};
use crate::saga::ReconcileCall;

/// Bookings per page: Cal.com's maximum.
const PAGE_ROWS: u32 = 250;
/// Pages read before giving up; with filters ignored a busy account could
/// page forever, and a reconcile that fails is retried later.
const PAGES_MAX: u32 = 40;

/// Uids of the live bookings that are this segment's, oldest first: the
/// first is the segment's booking, any other a duplicate (I1).
pub async fn live_uids(
    api: &dyn CalcomApi,
    call: &ReconcileCall,
) -> Result<Vec<String>, CalcomError> {
    let seg = &call.segment;
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
        found.extend(page.bookings.into_iter().filter(|b| is_segment(b, call)));
        if !page.pagination.has_next_page || read == 0 {
            found.sort_by_key(|b| (b.created_at, b.id));
            return Ok(found.into_iter().map(|b| b.uid).collect());
        }
        filter.skip = Some(filter.skip.unwrap_or(0).saturating_add(read));
    }
    Err(CalcomError::Retryable {
        after: None,
        reason: format!(
            "reconciling segment {} of {} read {PAGES_MAX} pages of bookings without reaching the end",
            seg.index, call.workflow
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
