//! Starting a saga: the state after its first event, and the checks on the
//! request it carries (plan shape, original booking). Business rules on the
//! request (is the host free, is the start in the future) belong to
//! `plan` and the API; here only what would make the saga itself unsound.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::apply::{Check, TransitionError};
use super::event::{BookingRequest, Event, OriginalBooking};
use super::state::{Kind, Phase, Saga, SegmentState, Undo};
use crate::catalog::SEGMENTS_MAX;

impl Saga {
    /// The state after a saga's first event.
    pub fn start(event: &Event) -> Result<Saga, TransitionError> {
        let reject = |workflow: &Uuid, problem: String| TransitionError {
            workflow: *workflow,
            state: "new",
            event: event.kind(),
            problem,
        };
        let saga = match event {
            Event::Requested {
                workflow,
                request,
                reserve_min,
            } => booking_saga(*workflow, Kind::Book, request, *reserve_min, None),
            Event::HoldRequested {
                workflow,
                request,
                hold_min,
            } => booking_saga(*workflow, Kind::Hold, request, Some(*hold_min), None),
            Event::RescheduleRequested {
                workflow,
                original,
                request,
                reserve_min,
            } => check_original(*workflow, original).and_then(|()| {
                booking_saga(
                    *workflow,
                    Kind::Reschedule,
                    request,
                    *reserve_min,
                    Some(original),
                )
            }),
            Event::CancelRequested {
                workflow,
                original,
                reason,
            } => check_original(*workflow, original).map(|()| Saga {
                cancel_reason: Some(reason.clone()),
                originals: vec![Undo::Live; original.segments.len()],
                ..empty(*workflow, Kind::Cancel, Phase::Cancelling, Some(original))
            }),
            other => {
                return Err(reject(
                    &Uuid::nil(),
                    format!(
                        "a saga starts with requested, hold_requested, reschedule_requested or \
                         cancel_requested, not {}",
                        other.kind()
                    ),
                ));
            }
        };
        let workflow = start_workflow(event);
        saga.map_err(|problem| reject(&workflow, problem))
    }
}

fn start_workflow(event: &Event) -> Uuid {
    match event {
        Event::Requested { workflow, .. }
        | Event::HoldRequested { workflow, .. }
        | Event::RescheduleRequested { workflow, .. }
        | Event::CancelRequested { workflow, .. } => *workflow,
        _ => Uuid::nil(),
    }
}

fn empty(workflow: Uuid, kind: Kind, phase: Phase, original: Option<&OriginalBooking>) -> Saga {
    Saga {
        workflow,
        kind,
        phase,
        request: None,
        reserve_min: None,
        original: original.cloned(),
        cancel_reason: None,
        segments: Vec::new(),
        originals: Vec::new(),
        duplicates: Vec::new(),
        failure: None,
        version: 1,
    }
}

fn booking_saga(
    workflow: Uuid,
    kind: Kind,
    request: &BookingRequest,
    reserve_min: Option<u32>,
    original: Option<&OriginalBooking>,
) -> Result<Saga, String> {
    check_request(request)?;
    if reserve_min == Some(0) {
        return Err("reservations must last at least 1 minute".into());
    }
    let phase = match reserve_min {
        Some(_) => Phase::Reserving,
        None => Phase::Booking,
    };
    Ok(Saga {
        request: Some(Arc::new(request.clone())),
        reserve_min,
        segments: vec![SegmentState::default(); request.plan.segments.len()],
        originals: original.map_or(Vec::new(), |o| vec![Undo::Live; o.segments.len()]),
        ..empty(workflow, kind, phase, original)
    })
}

fn check_request(request: &BookingRequest) -> Check {
    let segments = &request.plan.segments;
    if segments.is_empty() || segments.len() > SEGMENTS_MAX {
        return Err(format!(
            "the plan has {} segments; it needs 1 to {SEGMENTS_MAX}",
            segments.len()
        ));
    }
    let mut previous_end: Option<DateTime<Utc>> = None;
    for (k, s) in segments.iter().enumerate() {
        if usize::from(s.index) != k {
            return Err(format!("segment {k} carries index {}", s.index));
        }
        if s.start >= s.end {
            return Err(format!("segment {k} does not end after it starts"));
        }
        if previous_end.is_some_and(|e| s.start < e) {
            return Err(format!("segment {k} starts before segment {} ends", k - 1));
        }
        previous_end = Some(s.end);
    }
    Ok(())
}

fn check_original(workflow: Uuid, original: &OriginalBooking) -> Check {
    if original.workflow == workflow {
        return Err("a saga cannot change itself; original names its own workflow".into());
    }
    if original.segments.is_empty() || original.segments.len() > SEGMENTS_MAX {
        return Err(format!(
            "the original has {} segments; it needs 1 to {SEGMENTS_MAX}",
            original.segments.len()
        ));
    }
    if let Some(k) = original
        .segments
        .iter()
        .enumerate()
        .position(|(k, s)| usize::from(s.segment.index) != k)
    {
        return Err(format!("original segment {k} carries another index"));
    }
    let mut uids: Vec<&str> = original
        .segments
        .iter()
        .map(|s| s.calcom_uid.as_str())
        .collect();
    uids.sort_unstable();
    uids.dedup();
    if uids.len() != original.segments.len() || uids.contains(&"") {
        return Err("the original's Cal.com uids must be present and distinct".into());
    }
    Ok(())
}
