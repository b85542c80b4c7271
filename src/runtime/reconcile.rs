//! The truth about an uncertain step. After a crash or a lost reply we do not
//! know whether Cal.com made a segment's booking, so we look: list the
//! host's bookings of that event type around the segment's window, page by
//! page, and keep the live ones whose metadata names this saga and segment
//! and whose times match. Cal.com's list filters are not trusted (users saw
//! them ignored), so every condition is checked again here. A move is
//! settled by following the original's lineage instead (`lineage`): the
//! moved booking keeps the original's metadata, so metadata cannot tell.

use chrono::{DateTime, Utc};

use crate::calcom::wire::{self, Booking};
use crate::calcom::{CalcomApi, CalcomError};
use crate::saga::{PlannedSegment, ReconcileCall};

use super::calls::is_not_found;
use super::listings::{self, Listings, Uncertain};

/// Uids of the live bookings that are this segment's, oldest first: the
/// first is the segment's booking, any other a duplicate (I1). For a move,
/// the booking Cal.com made from the original, if it did. With them, when
/// the listing they come from began: the day's listing may be shared, with
/// any reconcile it would have seen the `uncertain` create of.
pub async fn live_uids(
    api: &dyn CalcomApi,
    listings: &Listings,
    call: &ReconcileCall,
    now: DateTime<Utc>,
    uncertain: Option<Uncertain>,
) -> Result<(Vec<String>, DateTime<Utc>), CalcomError> {
    if let Some(from) = &call.segment.moves {
        let uids = match lineage(api, from, &call.segment).await? {
            Lineage::MovedTo(uid) => vec![uid],
            Lineage::Live | Lineage::Gone => Vec::new(),
        };
        return Ok((uids, now));
    }
    let listed = listings.around(api, &call.segment, now, uncertain).await?;
    let uids = listed
        .bookings
        .iter()
        .filter(|b| is_segment(b, call))
        .map(|b| b.uid.clone())
        .collect();
    Ok((uids, listed.at))
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
    let next = listings::of_segment(api, target)
        .await?
        .into_iter()
        .find(|b| b.status.is_live() && b.rescheduled_from_uid.as_deref() == Some(uid));
    Ok(next.map_or(Lineage::Gone, |b| Lineage::MovedTo(b.uid)))
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
