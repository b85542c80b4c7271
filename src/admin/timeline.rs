//! `calsaga workflows show ID`: one workflow's timeline. Each event with its
//! time, segment, Cal.com uid, what it says (status), how long its step took
//! (an outcome measured from its intent), the retry it belongs to and the
//! state derived by folding the log up to it with today's code. A log that
//! stops folding is still shown, with the refusal in place of the state, so
//! a broken saga can be inspected. Reads only.

use std::collections::HashMap;
use std::io::Write;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use super::{AdminError, workflow};
use crate::catalog::Hosts;
use crate::runtime::reason;
use crate::saga::{CancelTarget, Event, Failure, Saga};
use crate::status::{Around, Status};
use crate::store::{AdminRequestRow, EventRow, Store};

/// One line of the timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TimelineRow {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub kind: String,
    pub segment: Option<u16>,
    pub calcom_uid: Option<String>,
    pub status: String,
    /// For an outcome: milliseconds since its intent.
    pub took_ms: Option<i64>,
    /// Earlier attempts of this step (attempt - 1).
    pub retries: Option<u32>,
    /// The saga's state after this event, or why the event was not accepted.
    pub state: String,
}

/// An instant as the tables show it (UTC, milliseconds).
pub(super) fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Prints workflow `id`'s timeline to `out`: a table, or one JSON object.
/// Hosts are named as `hosts` names them ("3 (Chloe Stylist)").
pub fn show(
    store: &Store,
    id: Uuid,
    json: bool,
    hosts: &Hosts,
    out: &mut dyn Write,
) -> Result<(), AdminError> {
    let (row, events) = workflow(store, id)?;
    let rows = timeline(&events, hosts);
    let requests = store.admin_requests_of(id)?;
    // The stored projection, as the engine acts on it (`replay` checks it).
    let stored = serde_json::from_str::<Saga>(&row.projection).ok();
    let segments = stored.as_ref().map(Saga::segments_view).unwrap_or_default();
    let why = stored.as_ref().and_then(reason);
    // A projection that does not parse still gets its timeline shown.
    let standing = stored
        .as_ref()
        .map(|saga| Around::read(store, &row, saga).map(|a| a.standing(row.id, saga)))
        .transpose()?;
    let (status, lineage) = standing.unzip();
    let lineage = lineage.unwrap_or_default();
    if json {
        let value = json!({
            "workflow": {
                "id": row.id, "kind": row.kind, "service": row.service,
                "status": status, "state": row.state, "lineage": lineage,
                "reason": why, "createdAt": row.created_at, "updatedAt": row.updated_at,
                "events": row.next_seq,
            },
            "segments": segments,
            "events": rows,
            "adminRequests": requests.iter().map(request_json).collect::<Vec<_>>(),
        });
        writeln!(out, "{value}")?;
        return Ok(());
    }
    writeln!(
        out,
        "workflow {} ({} {}): {} (saga {}); created {}, updated {}",
        row.id,
        row.kind,
        row.service,
        status.map_or("unreadable", Status::as_str),
        row.state,
        time(row.created_at),
        time(row.updated_at)
    )?;
    if let Some(why) = why {
        writeln!(out, "reason: {why}")?;
    }
    for (link, other) in [
        ("replaces", lineage.replaces),
        ("replaced by", lineage.replaced_by),
        ("cancelled by", lineage.cancelled_by),
        ("change in progress", lineage.change_in_progress),
    ] {
        if let Some(other) = other {
            writeln!(out, "{link}: {other} (calsaga workflows show {other})")?;
        }
    }
    for v in &segments {
        let s = &v.segment;
        writeln!(
            out,
            "segment {} {}: host {} event type {}, {} to {}, Cal.com uid {}, {}",
            s.index,
            s.name,
            hosts.label(s.host),
            s.event_type_id,
            time(s.start),
            time(s.end),
            v.calcom_uid.as_deref().unwrap_or("-"),
            serde_json::to_value(v.status)
                .ok()
                .and_then(|j| j.as_str().map(str::to_string))
                .unwrap_or_default()
        )?;
    }
    writeln!(
        out,
        "{:>4}  {:<24}  {:<26}  {:>3}  {:>7}  {:<24}  {:>8}  {:<12}  STATUS",
        "SEQ", "AT", "EVENT", "SEG", "RETRIES", "CAL.COM UID", "TOOK MS", "STATE"
    )?;
    for r in &rows {
        writeln!(
            out,
            "{:>4}  {:<24}  {:<26}  {:>3}  {:>7}  {:<24}  {:>8}  {:<12}  {}",
            r.seq,
            time(r.at),
            r.kind,
            dash(r.segment),
            dash(r.retries),
            r.calcom_uid.as_deref().unwrap_or("-"),
            dash(r.took_ms),
            r.state,
            r.status
        )?;
    }
    for q in &requests {
        writeln!(
            out,
            "admin request {}: {} ({}) at {}: {}{}",
            q.id,
            q.action,
            q.reason.as_deref().unwrap_or("no reason"),
            time(q.requested_at),
            q.state.as_str(),
            q.outcome
                .as_deref()
                .map(|o| format!(": {o}"))
                .unwrap_or_default()
        )?;
    }
    Ok(())
}

fn dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

pub(super) fn request_json(q: &AdminRequestRow) -> serde_json::Value {
    json!({
        "id": q.id, "action": q.action, "reason": q.reason, "requestedAt": q.requested_at,
        "state": q.state.as_str(), "outcome": q.outcome, "settledAt": q.settled_at,
    })
}

/// Which step an intent opens and its outcome closes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Reserve(u16),
    Release(u16),
    Book(u16),
    Cancel(CancelTarget),
}

/// What one event says, before the saga is consulted.
struct Facts {
    step: Option<(Step, bool)>,
    segment: Option<u16>,
    attempt: Option<u32>,
    uid: Option<String>,
    status: String,
}

fn timeline(events: &[EventRow], hosts: &Hosts) -> Vec<TimelineRow> {
    let mut saga: Option<Saga> = None;
    let mut broken: Option<String> = None;
    let mut opened: HashMap<Step, DateTime<Utc>> = HashMap::new();
    events
        .iter()
        .map(|row| {
            let event = match serde_json::from_str::<Event>(&row.payload) {
                Ok(event) => event,
                Err(e) => {
                    broken.get_or_insert_with(|| format!("event {} does not parse", row.seq));
                    return unreadable(row, &e.to_string());
                }
            };
            let facts = facts(&event, hosts);
            if broken.is_none() {
                let applied = match saga.as_mut() {
                    None => Saga::start(&event).map(|s| saga = Some(s)),
                    Some(s) => s.apply(&event),
                };
                if let Err(e) = applied {
                    broken = Some(format!("not accepted: {}", e.problem));
                }
            }
            let took_ms = match &facts.step {
                Some((step, true)) => {
                    opened.insert(step.clone(), row.at);
                    None
                }
                Some((step, false)) => opened
                    .get(step)
                    .map(|from| (row.at - *from).num_milliseconds()),
                None => None,
            };
            TimelineRow {
                seq: row.seq,
                at: row.at,
                kind: row.kind.clone(),
                segment: facts.segment,
                calcom_uid: facts.uid.or_else(|| uid_of(saga.as_ref(), &facts.step)),
                status: facts.status,
                took_ms,
                retries: facts.attempt.map(|a| a.saturating_sub(1)),
                state: broken
                    .clone()
                    .or_else(|| saga.as_ref().map(|s| s.state_name().to_string()))
                    .unwrap_or_default(),
            }
        })
        .collect()
}

fn unreadable(row: &EventRow, error: &str) -> TimelineRow {
    TimelineRow {
        seq: row.seq,
        at: row.at,
        kind: row.kind.clone(),
        segment: None,
        calcom_uid: None,
        status: format!("does not parse: {error}"),
        took_ms: None,
        retries: None,
        state: "?".into(),
    }
}

/// The Cal.com booking a cancel or booking step is about, as the saga knows it.
fn uid_of(saga: Option<&Saga>, step: &Option<(Step, bool)>) -> Option<String> {
    let saga = saga?;
    match step.as_ref()? {
        (Step::Book(k) | Step::Cancel(CancelTarget::Segment(k)), _) => saga
            .segments
            .get(usize::from(*k))?
            .booking
            .done()
            .map(|b| b.calcom_uid.clone()),
        (Step::Cancel(CancelTarget::Original(k)), _) => saga
            .original
            .as_ref()?
            .segments
            .get(usize::from(*k))
            .map(|s| s.calcom_uid.clone()),
        (Step::Cancel(CancelTarget::Duplicate(uid)), _) => Some(uid.clone()),
        _ => None,
    }
}

fn failure_text(f: &Failure) -> String {
    match f {
        Failure::Retryable {
            reason,
            retry_at: Some(at),
        } => format!("retryable at {}: {reason}", time(*at)),
        Failure::Retryable { reason, .. } => format!("retryable: {reason}"),
        Failure::Permanent { reason } => format!("permanent: {reason}"),
        Failure::Taken { reason } => format!("taken: {reason}"),
    }
}

fn target_segment(t: &CancelTarget) -> Option<u16> {
    match t {
        CancelTarget::Segment(k) | CancelTarget::Original(k) => Some(*k),
        CancelTarget::Duplicate(_) => None,
    }
}

fn plain(status: impl Into<String>) -> Facts {
    Facts {
        step: None,
        segment: None,
        attempt: None,
        uid: None,
        status: status.into(),
    }
}

fn step(step: Step, intent: bool, attempt: Option<u32>, status: impl Into<String>) -> Facts {
    let segment = match &step {
        Step::Reserve(k) | Step::Release(k) | Step::Book(k) => Some(*k),
        Step::Cancel(t) => target_segment(t),
    };
    Facts {
        step: Some((step, intent)),
        segment,
        attempt,
        uid: None,
        status: status.into(),
    }
}

fn facts(event: &Event, hosts: &Hosts) -> Facts {
    use Event::*;
    match event {
        Requested { .. } => plain("booking requested"),
        HoldRequested { hold_min, .. } => plain(format!("hold for {hold_min} min requested")),
        RescheduleRequested { original, .. } => {
            plain(format!("reschedule of {} requested", original.workflow))
        }
        CancelRequested {
            original, reason, ..
        } => plain(format!(
            "cancel of {} requested: {reason}",
            original.workflow
        )),
        ReservationIntended { segment, attempt } => {
            step(Step::Reserve(*segment), true, Some(*attempt), "reserving")
        }
        ReservationMade {
            segment,
            reservation_uid,
            until,
        } => Facts {
            uid: Some(reservation_uid.clone()),
            ..step(
                Step::Reserve(*segment),
                false,
                None,
                format!("reserved until {}", time(*until)),
            )
        },
        ReservationFailed {
            segment,
            attempt,
            failure,
        } => step(
            Step::Reserve(*segment),
            false,
            Some(*attempt),
            failure_text(failure),
        ),
        ReleaseIntended { segment, attempt } => {
            step(Step::Release(*segment), true, Some(*attempt), "releasing")
        }
        ReservationReleased { segment } => step(Step::Release(*segment), false, None, "released"),
        ReleaseFailed {
            segment,
            attempt,
            failure,
        } => step(
            Step::Release(*segment),
            false,
            Some(*attempt),
            failure_text(failure),
        ),
        Held { expires_at } => plain(format!("held until {}", time(*expires_at))),
        ConfirmRequested => plain("confirm requested"),
        HoldExpired => plain("hold expired"),
        SegmentBookingIntended { segment, attempt } => {
            step(Step::Book(*segment), true, Some(*attempt), "booking")
        }
        SegmentBooked { segment, .. } => step(Step::Book(*segment), false, None, "booked"),
        SegmentBookingFailed {
            segment,
            attempt,
            failure,
        } => step(
            Step::Book(*segment),
            false,
            Some(*attempt),
            failure_text(failure),
        ),
        SegmentHostSwitched {
            segment,
            from,
            host,
            reason,
            ..
        } => Facts {
            segment: Some(*segment),
            ..plain(format!(
                "host {} -> host {}: {reason}",
                hosts.label(*from),
                hosts.label(*host)
            ))
        },
        SegmentMoveIntended { segment, attempt } => step(
            Step::Book(*segment),
            true,
            Some(*attempt),
            "moving the original",
        ),
        SegmentMoved {
            segment,
            calcom_uid,
            ..
        } => Facts {
            uid: Some(calcom_uid.clone()),
            ..step(
                Step::Book(*segment),
                false,
                None,
                "moved (the original is cancelled as rescheduled)",
            )
        },
        MoveBackIntended { segment, attempt } => step(
            Step::Cancel(CancelTarget::Segment(*segment)),
            true,
            Some(*attempt),
            "moving back to the original's time",
        ),
        SegmentMovedBack {
            segment,
            calcom_uid,
        } => Facts {
            uid: Some(calcom_uid.clone()),
            ..step(
                Step::Cancel(CancelTarget::Segment(*segment)),
                false,
                None,
                "moved back (the original lives on as this booking)",
            )
        },
        MoveBackFailed {
            segment,
            attempt,
            failure,
        } => step(
            Step::Cancel(CancelTarget::Segment(*segment)),
            false,
            Some(*attempt),
            failure_text(failure),
        ),
        SegmentRestored {
            segment,
            calcom_uid,
            by,
        } => Facts {
            segment: Some(*segment),
            uid: Some(calcom_uid.clone()),
            ..plain(format!(
                "restored as a new Cal.com booking after the failed change {by}"
            ))
        },
        SegmentOutcomeUnknown {
            segment,
            attempt,
            reason,
        } => step(
            Step::Book(*segment),
            false,
            Some(*attempt),
            format!("outcome unknown: {reason}"),
        ),
        SegmentReconciled { segment, found } => Facts {
            segment: Some(*segment),
            uid: found.clone(),
            ..plain(match found {
                Some(_) => "reconciled: the booking exists",
                None => "reconciled: no booking was made",
            })
        },
        ReconcileFailed { segment, failure } => Facts {
            segment: Some(*segment),
            ..plain(format!("reconcile failed, {}", failure_text(failure)))
        },
        DuplicateFound { segment, uid } => Facts {
            segment: Some(*segment),
            uid: Some(uid.clone()),
            ..plain("duplicate booking found")
        },
        CompensationStarted { reason } => plain(format!("compensating: {reason}")),
        CancelIntended { target, attempt } => step(
            Step::Cancel(target.clone()),
            true,
            Some(*attempt),
            "cancelling",
        ),
        BookingCancelled { target } => step(Step::Cancel(target.clone()), false, None, "cancelled"),
        CancelFailed {
            target,
            attempt,
            failure,
        } => step(
            Step::Cancel(target.clone()),
            false,
            Some(*attempt),
            failure_text(failure),
        ),
        Booked => plain("booked"),
        Rescheduled => plain("rescheduled"),
        Compensated { reason } => plain(format!("compensated: {reason}")),
        Cancelled => plain("cancelled"),
        Expired => plain("expired"),
        Failed { reason } => plain(format!("failed, needs an admin: {reason}")),
        AdminResumeRequested => plain("admin: resume"),
        AdminCompensateRequested { reason } => plain(format!("admin: compensate: {reason}")),
    }
}
