//! Drives one saga: load its log, fold it, `advance` it, commit the batch
//! (events, claims, projection, mirror, timer) in one transaction, make the
//! call the batch ends with, and feed the outcome into the next `advance`,
//! so each commit carries the outcome of step k with the intent of step k+1.
//! Nothing is sent to Cal.com before its intent is committed (I6).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::saga::{self, Batch, CancelTarget, ClaimChange, Event, PlannedSegment, Saga, Then};
use crate::store::{
    Claim, EventRow, MirrorEntry, NewEvent, Projection, StoreError, WriteBatch, WriteOp,
};

use super::calls::Caller;
use super::failover;
use super::{EngineError, Inner};

/// Timer kind that wakes a saga waiting for a retry or a hold's expiry.
pub const WAKE_TIMER: &str = "wake";
/// Reload-and-retry rounds after an append lost its sequence race (the API
/// appended a confirm or an admin event meanwhile).
const SEQUENCE_RETRIES_MAX: usize = 8;

/// How one drive ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Driven {
    /// Terminal, or failed and waiting for an admin.
    Ended,
    /// Waiting for a timer at this instant.
    Waiting(DateTime<Utc>),
}

/// A saga whose first intent was committed with its request: the driver
/// starts with that call instead of reloading the log.
pub struct Started {
    pub saga: Saga,
    /// The next sequence number.
    pub seq: u64,
    pub call: saga::Call,
}

/// Runs the saga until it ends or must wait longer than the engine sleeps
/// in-task. Errors stop this saga only; a fatal store error also stops the
/// engine (the caller checks).
pub async fn drive(
    inner: &Arc<Inner>,
    id: Uuid,
    started: Option<Started>,
) -> Result<Driven, EngineError> {
    // The log as loaded, while no step has been added to it: a resumed
    // saga's first call, often a reconcile, finds its intent's time there
    // instead of reading the log again.
    let mut loaded: Option<Vec<EventRow>> = None;
    let (mut saga, mut seq, mut outcomes) = match started {
        Some(s) => {
            let outcomes = perform(inner, id, &s.saga, &s.call, None).await?;
            (s.saga, s.seq, outcomes)
        }
        None => {
            let (saga, seq, log) = load_with_log(inner, id)?;
            loaded = Some(log);
            (saga, seq, Vec::new())
        }
    };
    let mut conflicts = 0;
    loop {
        let now = inner.clock.now();
        let batch = saga::advance(&saga, outcomes.clone(), now)?;
        match commit(inner, &batch, seq, now).await {
            Ok(()) => {}
            Err(StoreError::SequenceConflict { .. }) if conflicts < SEQUENCE_RETRIES_MAX => {
                conflicts += 1;
                (saga, seq) = load(inner, id)?;
                continue;
            }
            Err(StoreError::SlotClaimed { .. }) if failover::drop_switch(&mut outcomes) => continue,
            Err(e) => return Err(inner.store_failed(e)),
        }
        if !batch.events.is_empty() {
            loaded = None;
        }
        seq += batch.events.len() as u64;
        inner.notify_step(&batch.saga, seq);
        saga = batch.saga;
        outcomes = match batch.then {
            Then::Idle => return Ok(Driven::Ended),
            Then::Call(call) => perform(inner, id, &saga, &call, loaded.as_deref()).await?,
            Then::WaitUntil(at) => {
                let wait = (at - inner.clock.now()).to_std().unwrap_or_default();
                if wait > inner.config.in_task_wait_max {
                    return Ok(Driven::Waiting(at));
                }
                inner.clock.sleep(wait).await;
                Vec::new()
            }
        };
    }
}

/// Makes the call whose intent is committed and returns its outcome events.
/// `log` is the saga's whole log, when the caller holds it as stored.
async fn perform(
    inner: &Inner,
    id: Uuid,
    saga: &Saga,
    call: &saga::Call,
    log: Option<&[EventRow]>,
) -> Result<Vec<Event>, EngineError> {
    let intent_at = match (call, log) {
        (saga::Call::Reconcile(c), Some(log)) => intent_time(log, c.segment.index),
        (saga::Call::Reconcile(c), None) => intent_time(&inner.store.events(id)?, c.segment.index),
        _ => None,
    };
    let now = inner.clock.now();
    let mut outcomes = caller(inner)
        .perform(call, &saga.known_uids(), intent_at, now)
        .await;
    if let Some(switch) = failover::switch(inner, saga, &outcomes).await? {
        outcomes.push(switch);
    }
    Ok(outcomes)
}

fn caller(inner: &Inner) -> Caller<'_> {
    Caller {
        api: inner.api.as_ref(),
        retry: &inner.config.retry,
        rng: &inner.rng,
        settle: chrono::Duration::from_std(inner.config.reconcile_settle)
            .unwrap_or(chrono::Duration::MAX),
        listings: &inner.listings,
    }
}

/// When the last create intent of `segment` was committed, in `log`.
fn intent_time(log: &[EventRow], segment: u16) -> Option<DateTime<Utc>> {
    log.iter().rev().find_map(
        |row| match serde_json::from_str::<Event>(&row.payload).ok()? {
            Event::SegmentBookingIntended { segment: k, .. }
            | Event::SegmentMoveIntended { segment: k, .. }
                if k == segment =>
            {
                Some(row.at)
            }
            _ => None,
        },
    )
}

/// The saga folded from its log, and the next sequence number.
pub fn load(inner: &Inner, id: Uuid) -> Result<(Saga, u64), EngineError> {
    load_with_log(inner, id).map(|(saga, seq, _)| (saga, seq))
}

/// `load`, and the log it folded.
fn load_with_log(inner: &Inner, id: Uuid) -> Result<(Saga, u64, Vec<EventRow>), EngineError> {
    let (row, log) = inner
        .store
        .workflow_and_events(id)?
        .ok_or(EngineError::UnknownWorkflow { id })?;
    let events = log
        .iter()
        .map(|e| {
            serde_json::from_str::<Event>(&e.payload).map_err(|err| EngineError::CorruptLog {
                id,
                detail: format!("event {} ({}) does not parse: {err}", e.seq, e.kind),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let saga = saga::fold(&events)?;
    Ok((saga, row.next_seq, log))
}

async fn commit(
    inner: &Inner,
    batch: &Batch,
    seq: u64,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut ops = batch_ops(batch, seq, now)?;
    ops.extend(
        restore_ops(inner, batch, now).map_err(|e| StoreError::Invalid {
            detail: format!("recording the restored original in its own log: {e}"),
        })?,
    );
    if ops.is_empty() {
        return Ok(());
    }
    let touched: Vec<_> = ops
        .iter()
        .filter_map(|op| match op {
            WriteOp::UpsertMirror(e) => Some((e.start, e.end)),
            _ => None,
        })
        .collect();
    inner.store.commit(ops).await?;
    // Each booking the mirror learns of was just made, moved or cancelled
    // in Cal.com: the slot sets cached around it are stale, no others.
    for (start, end) in touched {
        inner.availability.invalidate(start, end);
    }
    Ok(())
}

/// Everything one batch writes, in one transaction.
pub fn batch_ops(batch: &Batch, seq: u64, now: DateTime<Utc>) -> Result<WriteBatch, StoreError> {
    let workflow = batch.saga.workflow;
    let mut ops = WriteBatch::new();
    if !batch.events.is_empty() {
        ops.push(WriteOp::AppendEvents {
            workflow,
            expected_seq: seq,
            events: batch
                .events
                .iter()
                .map(|e| new_event(e, now))
                .collect::<Result<_, _>>()?,
            projection: Some(projection(&batch.saga, now)?),
        });
        ops.extend(batch.claims.iter().map(claim_op));
        ops.extend(batch.events.iter().flat_map(|e| mirror_ops(&batch.saga, e)));
    }
    match batch.then {
        Then::WaitUntil(due_at) => ops.push(WriteOp::SetTimer {
            workflow,
            kind: WAKE_TIMER.into(),
            due_at,
        }),
        _ if !ops.is_empty() => ops.push(WriteOp::ClearTimers {
            workflow,
            kind: Some(WAKE_TIMER.into()),
        }),
        _ => {}
    }
    Ok(ops)
}

pub fn new_event(e: &Event, at: DateTime<Utc>) -> Result<NewEvent, StoreError> {
    Ok(NewEvent {
        at,
        kind: e.kind().to_string(),
        payload: to_json(e)?,
    })
}

/// What the saga's events fold to, for the append that records them.
pub fn projection(saga: &Saga, at: DateTime<Utc>) -> Result<Projection, StoreError> {
    Ok(Projection {
        state: saga.state_name().to_string(),
        json: to_json(saga)?,
        at,
    })
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Invalid {
        detail: format!("cannot serialise for the log: {e}"),
    })
}

pub fn claim_op(change: &ClaimChange) -> WriteOp {
    match change {
        ClaimChange::Acquire {
            workflow,
            claims,
            replacing,
        } => WriteOp::ClaimSlots {
            workflow: *workflow,
            replacing: *replacing,
            claims: claims
                .iter()
                .enumerate()
                .map(|(i, c)| Claim {
                    segment: u16::try_from(i).unwrap_or(u16::MAX),
                    host: c.host,
                    start: c.start,
                    end: c.end,
                })
                .collect(),
        },
        ClaimChange::ReleaseAll { workflow } => WriteOp::ReleaseClaims {
            workflow: *workflow,
            segment: None,
        },
    }
}

/// Keeps the booking mirror in step with what the log says of Cal.com.
fn mirror_ops(saga: &Saga, event: &Event) -> Vec<WriteOp> {
    let own = |k: u16| {
        saga.segments_view()
            .into_iter()
            .find(|v| v.segment.index == k)
            .and_then(|v| Some((v.segment, v.calcom_uid?)))
    };
    let original = |k: u16| {
        let o = saga.original.as_ref()?;
        let b = o.segments.get(usize::from(k))?;
        Some((o.workflow, b.segment.clone(), b.calcom_uid.clone()))
    };
    let entry = |workflow, (p, uid): (PlannedSegment, String), status: &str| MirrorEntry {
        workflow,
        segment: p.index,
        calcom_uid: uid,
        event_type_id: p.event_type_id,
        host: p.host,
        start: p.start,
        end: p.end,
        status: status.into(),
    };
    // A move makes this saga's booking and ends the original's.
    let moved = |k: u16| -> Vec<MirrorEntry> {
        let mut out: Vec<_> = own(k)
            .map(|b| entry(saga.workflow, b, "accepted"))
            .into_iter()
            .collect();
        if saga
            .planned()
            .get(usize::from(k))
            .is_some_and(|p| p.moves.is_some())
        {
            out.extend(original(k).map(|(w, p, uid)| entry(w, (p, uid), "rescheduled")));
        }
        out
    };
    let entries = match event {
        Event::SegmentBooked { segment, .. }
        | Event::SegmentMoved { segment, .. }
        | Event::SegmentReconciled {
            segment,
            found: Some(_),
        } => moved(*segment),
        Event::BookingCancelled {
            target: CancelTarget::Segment(segment),
        } => own(*segment)
            .map(|b| entry(saga.workflow, b, "cancelled"))
            .into_iter()
            .collect(),
        Event::BookingCancelled {
            target: CancelTarget::Original(segment),
        } => original(*segment)
            .map(|(w, p, uid)| entry(w, (p, uid), "cancelled"))
            .into_iter()
            .collect(),
        // The original's time is booked again: that booking is the original's.
        Event::SegmentMovedBack {
            segment,
            calcom_uid,
        } => {
            let mut out: Vec<_> = own(*segment)
                .map(|b| entry(saga.workflow, b, "rescheduled"))
                .into_iter()
                .collect();
            out.extend(
                original(*segment).map(|(w, p, _)| entry(w, (p, calcom_uid.clone()), "accepted")),
            );
            out
        }
        _ => Vec::new(),
    };
    entries.into_iter().map(WriteOp::UpsertMirror).collect()
}

/// A move back gives the original a new Cal.com uid: the original's own log
/// learns it (`segment_restored`) in the same transaction, so its fold, its
/// answers and a later change of it name the booking that is live.
fn restore_ops(
    inner: &Inner,
    batch: &Batch,
    now: DateTime<Utc>,
) -> Result<WriteBatch, EngineError> {
    let mut ops = WriteBatch::new();
    let Some(original) = &batch.saga.original else {
        return Ok(ops);
    };
    for event in &batch.events {
        let Event::SegmentMovedBack {
            segment,
            calcom_uid,
        } = event
        else {
            continue;
        };
        let (mut saga, seq) = load(inner, original.workflow)?;
        let restored = Event::SegmentRestored {
            segment: *segment,
            calcom_uid: calcom_uid.clone(),
            by: batch.saga.workflow,
        };
        saga.apply(&restored)?;
        ops.push(WriteOp::AppendEvents {
            workflow: original.workflow,
            expected_seq: seq,
            events: vec![new_event(&restored, now)?],
            projection: Some(projection(&saga, now)?),
        });
    }
    Ok(ops)
}
