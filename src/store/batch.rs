//! What can be written: `WriteOp`, and `WriteBatch` (a list of ops committed
//! atomically: all of a batch or none of it). `apply` runs one batch on the
//! writer's connection inside the writer's transaction, checks once that
//! each workflow it names exists, and delegates each op to the module that
//! owns its table. This file must never open transactions or
//! savepoints (the writer does) and never read a clock (ops carry their times).

use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use uuid::Uuid;

use super::codec::Ms;
use super::log::require_workflow;
use super::sql::execute;
use super::{
    AdminRequestState, BookingFlag, CallStat, Claim, InboxState, MirrorEntry, NewEvent, OrphanRow,
    Projection, StoreConfig, StoreError, TokenRow, admin_requests, claims, flags, idempotency,
    inbox, log, mirror, orphans, stats, timers, tokens,
};

/// Ops committed together: either all of them are stored or none.
/// Order matters: create a workflow before the ops that refer to it.
pub type WriteBatch = Vec<WriteOp>;

/// One change to the database. Each names the error it can fail with; any
/// such error rolls back the whole batch and leaves other batches alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// New workflow with no events (`next_seq` 0). `projection` is JSON.
    /// Fails with `WorkflowExists`.
    CreateWorkflow {
        id: Uuid,
        kind: String,
        service: String,
        state: String,
        at: DateTime<Utc>,
        projection: String,
    },
    /// Append events numbered `expected_seq`, `expected_seq + 1`, ...
    /// `expected_seq` must equal the number of events already stored
    /// (`WorkflowRow::next_seq`), else `SequenceConflict`: a bug or a second
    /// engine, stop. Payloads are JSON. With `projection`, the workflow's
    /// state and projection become what the events fold to, in the same
    /// update of its row.
    AppendEvents {
        workflow: Uuid,
        expected_seq: u64,
        events: Vec<NewEvent>,
        projection: Option<Projection>,
    },
    /// Hold `[start, end)` on each host. A live claim of ANOTHER workflow
    /// overlapping on the same host fails with `SlotClaimed`. A claim for a
    /// segment this workflow already holds replaces the old one. The claims
    /// of `replacing` (the booking a reschedule replaces) do not conflict.
    ClaimSlots {
        workflow: Uuid,
        claims: Vec<Claim>,
        replacing: Option<Uuid>,
    },
    /// Release this workflow's live claims: all, or one segment's.
    ReleaseClaims {
        workflow: Uuid,
        segment: Option<u16>,
    },
    /// Wake the workflow at `due_at`; replaces a pending timer of that kind.
    SetTimer {
        workflow: Uuid,
        kind: String,
        due_at: DateTime<Utc>,
    },
    /// Drop pending timers of the workflow: of one kind, or all.
    ClearTimers {
        workflow: Uuid,
        kind: Option<String>,
    },
    /// Mark a due timer fired (commit it with the event it caused).
    /// Fails with `TimerNotPending` if it was fired, cleared or replaced.
    FireTimer { id: i64 },
    /// Remember an Idempotency-Key for `ttl`. An unexpired key fails with
    /// `IdempotencyKeyExists` (carrying its workflow and fingerprint); an
    /// expired one is replaced.
    PutIdempotencyKey {
        key: String,
        fingerprint: String,
        workflow: Uuid,
        at: DateTime<Utc>,
        ttl: Duration,
    },
    /// Store the response (JSON) replayed for later requests with the key.
    SetIdempotencyResponse { key: String, response: String },
    /// Insert or update what we know of one Cal.com booking.
    UpsertMirror(MirrorEntry),
    /// Store a verified webhook body; the same body again fails with
    /// `InboxDuplicate` (acknowledge it, it is already stored).
    InboxInsert {
        body: String,
        received_at: DateTime<Utc>,
    },
    /// Record a processing attempt of an inbox entry.
    InboxUpdate {
        id: i64,
        state: InboxState,
        attempts: u32,
        next_attempt_at: DateTime<Utc>,
        last_error: Option<String>,
    },
    /// Record Cal.com calls for health checks.
    RecordCalls(Vec<CallStat>),
    /// Store a new API token (its hash). A taken name fails with
    /// `TokenNameTaken`.
    PutToken(TokenRow),
    /// Delete the API token named so; an unknown name fails with
    /// `UnknownToken`.
    RevokeToken { name: String },
    /// When tokens were last used, by name; a later time never goes back
    /// and a revoked name is skipped.
    TouchTokens(Vec<(String, DateTime<Utc>)>),
    /// Insert or update the flag of one broken booking.
    FlagBooking(BookingFlag),
    /// Settle a pending admin request as applied or refused (commit it with
    /// the admin event it caused). Fails with `AdminRequestNotPending`.
    SettleAdminRequest {
        id: i64,
        state: AdminRequestState,
        outcome: String,
        at: DateTime<Utc>,
    },
    /// Insert or update the record of one orphaned Cal.com booking (its
    /// `found_at` is kept on update).
    RecordOrphan(OrphanRow),
    /// Delete expired idempotency keys, call stats older than
    /// `call_stats_keep_days` and finished inbox entries older than
    /// `inbox_keep_days` (at most `PRUNE_ROWS_MAX` rows per table per op;
    /// repeat to catch up).
    PruneExpired { now: DateTime<Utc> },
}

/// Bound on the rows one `PruneExpired` deletes per table, so one op never
/// holds the writer for long.
pub const PRUNE_ROWS_MAX: u32 = 10_000;

/// Apply every op of one batch; the first error stops the batch.
pub(super) fn apply(
    conn: &Connection,
    batch: &[WriteOp],
    config: &StoreConfig,
) -> Result<(), StoreError> {
    // A saga's step names its workflow in four or five ops; it is looked up
    // once per batch, not once per op. An op that has succeeded on a
    // workflow has shown that it exists.
    let mut known: Vec<Uuid> = Vec::new();
    // Created by this batch and not yet claimed for: such a workflow holds
    // no claim its new ones could replace.
    let mut unclaimed: Vec<Uuid> = Vec::new();
    for op in batch {
        if let Some(workflow) = op.requires()
            && !known.contains(&workflow)
        {
            require_workflow(conn, workflow)?;
        }
        apply_op(conn, op, config, &mut unclaimed)?;
        if let Some(workflow) = op.requires().or_else(|| op.proves())
            && !known.contains(&workflow)
        {
            known.push(workflow);
        }
    }
    Ok(())
}

impl WriteOp {
    /// The workflow this op refuses with `UnknownWorkflow` unless it exists
    /// (checked by `apply` before the op runs).
    fn requires(&self) -> Option<Uuid> {
        match self {
            WriteOp::ClaimSlots { workflow, .. }
            | WriteOp::ReleaseClaims { workflow, .. }
            | WriteOp::SetTimer { workflow, .. }
            | WriteOp::ClearTimers { workflow, .. }
            | WriteOp::PutIdempotencyKey { workflow, .. } => Some(*workflow),
            WriteOp::UpsertMirror(entry) => Some(entry.workflow),
            WriteOp::FlagBooking(flag) => Some(flag.workflow),
            _ => None,
        }
    }

    /// The workflow this op checks for itself, so that it exists once the
    /// op has succeeded.
    fn proves(&self) -> Option<Uuid> {
        match self {
            WriteOp::CreateWorkflow { id, .. } => Some(*id),
            WriteOp::AppendEvents { workflow, .. } => Some(*workflow),
            _ => None,
        }
    }
}

fn apply_op(
    conn: &Connection,
    op: &WriteOp,
    config: &StoreConfig,
    unclaimed: &mut Vec<Uuid>,
) -> Result<(), StoreError> {
    match op {
        WriteOp::CreateWorkflow {
            id,
            kind,
            service,
            state,
            at,
            projection,
        } => {
            log::create(conn, *id, kind, service, state, *at, projection)?;
            unclaimed.push(*id);
            Ok(())
        }
        WriteOp::AppendEvents {
            workflow,
            expected_seq,
            events,
            projection,
        } => log::append(conn, *workflow, *expected_seq, events, projection.as_ref()),
        WriteOp::ClaimSlots {
            workflow,
            claims,
            replacing,
        } => {
            let fresh = unclaimed.iter().position(|w| w == workflow);
            if let Some(i) = fresh {
                unclaimed.swap_remove(i);
            }
            claims::claim(conn, *workflow, claims, *replacing, fresh.is_some())
        }
        WriteOp::ReleaseClaims { workflow, segment } => claims::release(conn, *workflow, *segment),
        WriteOp::SetTimer {
            workflow,
            kind,
            due_at,
        } => timers::set(conn, *workflow, kind, *due_at),
        WriteOp::ClearTimers { workflow, kind } => timers::clear(conn, *workflow, kind.as_deref()),
        WriteOp::FireTimer { id } => timers::fire(conn, *id),
        WriteOp::PutIdempotencyKey {
            key,
            fingerprint,
            workflow,
            at,
            ttl,
        } => idempotency::put(conn, key, fingerprint, *workflow, *at, *ttl),
        WriteOp::SetIdempotencyResponse { key, response } => {
            idempotency::set_response(conn, key, response)
        }
        WriteOp::UpsertMirror(entry) => mirror::upsert(conn, entry),
        WriteOp::InboxInsert { body, received_at } => inbox::insert(conn, body, *received_at),
        WriteOp::InboxUpdate {
            id,
            state,
            attempts,
            next_attempt_at,
            last_error,
        } => inbox::update(
            conn,
            *id,
            *state,
            *attempts,
            *next_attempt_at,
            last_error.as_deref(),
        ),
        WriteOp::RecordCalls(calls) => stats::record(conn, calls),
        WriteOp::PutToken(token) => tokens::put(conn, token),
        WriteOp::RevokeToken { name } => tokens::revoke(conn, name),
        WriteOp::TouchTokens(uses) => tokens::touch(conn, uses),
        WriteOp::FlagBooking(flag) => flags::put(conn, flag),
        WriteOp::SettleAdminRequest {
            id,
            state,
            outcome,
            at,
        } => admin_requests::settle(conn, *id, *state, outcome, *at),
        WriteOp::RecordOrphan(orphan) => orphans::put(conn, orphan),
        WriteOp::PruneExpired { now } => prune(conn, *now, config),
    }
}

fn days_before(now: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    now.checked_sub_signed(chrono::Duration::days(i64::from(days)))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn prune(conn: &Connection, now: DateTime<Utc>, config: &StoreConfig) -> Result<(), StoreError> {
    let rules = [
        ("idempotency_keys", "expires_at_ms <= ?1", now),
        (
            "call_stats",
            "at_ms < ?1",
            days_before(now, config.call_stats_keep_days),
        ),
        (
            "webhook_inbox",
            "state <> 'pending' AND received_at_ms < ?1",
            days_before(now, config.inbox_keep_days),
        ),
    ];
    for (table, condition, cutoff) in rules {
        let sql = format!(
            "DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} WHERE {condition} LIMIT {PRUNE_ROWS_MAX})"
        );
        execute(conn, &sql, [Ms(cutoff)])?;
    }
    Ok(())
}
