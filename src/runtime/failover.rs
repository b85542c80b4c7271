//! Staff failover: when Cal.com refuses a segment's reservation or booking
//! as taken, the runner looks for another of the segment's staff options
//! that is free then (the same `FreeTime` test planning uses: Cal.com's
//! slots, cached or fetched within the planning wait, and every other
//! saga's claims) and records the switch with the refusal, in one commit,
//! with the claim on the new host. Decide then books the new option; with
//! no option left it compensates as before. Pinned segments have no
//! alternatives, so they never fail over.

use chrono::{DateTime, Utc};

use crate::saga::{Event, Failure, Saga};

use super::{EngineError, Inner};

/// The switch to record after `outcomes`, if one of them is a refusal as
/// taken and another option of that segment is free.
pub async fn switch(
    inner: &Inner,
    saga: &Saga,
    outcomes: &[Event],
) -> Result<Option<Event>, EngineError> {
    let Some((k, reason)) = outcomes.iter().find_map(taken) else {
        return Ok(None);
    };
    let Some(planned) = saga.planned().get(usize::from(k)) else {
        return Ok(None);
    };
    // Cal.com just said the cached slots were wrong about this host.
    inner.availability.invalidate(planned.start, planned.end);
    if planned.alternatives.is_empty() {
        return Ok(None);
    }
    let Some(service) = saga
        .request
        .as_ref()
        .and_then(|r| inner.catalog.get(&r.plan.service_id))
    else {
        return Ok(None);
    };
    let first_start = saga.planned().first().map_or(planned.start, |p| p.start);
    let free = inner
        .availability
        .free_at(
            service,
            first_start,
            saga.original.as_ref(),
            inner.config.plan_slots_wait,
            // Only where this segment may go now.
            |s, o| s == usize::from(k) && planned.alternatives.contains(o),
        )
        .await
        .map_err(|e| inner.store_failed(e))?;
    let free_then = |at: (DateTime<Utc>, DateTime<Utc>)| {
        planned
            .alternatives
            .iter()
            .find(|o| free.is_free(o, at.0, at.1))
    };
    Ok(free_then((planned.start, planned.end)).map(|o| {
        tracing::info!(workflow = %saga.workflow, segment = k, from = planned.host, host = o.host, "Cal.com refused the segment as taken; failing over to another host");
        Event::SegmentHostSwitched {
            segment: k,
            from: planned.host,
            host: o.host,
            event_type_id: o.event_type_id,
            reason: format!("Cal.com refused host {}: {reason}", planned.host),
        }
    }))
}

/// The segment and reason of a reservation or booking refused as taken.
fn taken(event: &Event) -> Option<(u16, &str)> {
    match event {
        Event::ReservationFailed {
            segment,
            failure: Failure::Taken { reason },
            ..
        }
        | Event::SegmentBookingFailed {
            segment,
            failure: Failure::Taken { reason },
            ..
        } => Some((*segment, reason)),
        _ => None,
    }
}

/// Drops a switch whose claim lost a race with another saga (it was free
/// when looked at, claimed before the commit): the refusal alone is
/// committed and the saga compensates. True when there was one.
pub fn drop_switch(outcomes: &mut Vec<Event>) -> bool {
    let before = outcomes.len();
    outcomes.retain(|e| !matches!(e, Event::SegmentHostSwitched { .. }));
    outcomes.len() != before
}
