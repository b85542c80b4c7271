//! The judge of a run: reads what the engine left in its database and what
//! the mock's calendar (the stand-in for Cal.com, i.e. the truth) holds,
//! and lists every broken invariant (docs/ARCHITECTURE.md, I1-I7) plus the
//! digest of the event log that proves two runs of a seed were identical.
//! It only reads; it never repairs anything.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::SimError;
use crate::calcom::wire::{self, Booking};
use crate::mock::StateView;
use crate::saga::{self, Event, Saga};
use crate::store::{
    ClaimRow, EventRow, LIST_ROWS_MAX, MirrorEntry, Store, WorkflowFilter, WorkflowRow,
};

/// One broken invariant, in words.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    pub invariant: &'static str,
    pub detail: String,
}

/// States in which a saga may hold Cal.com bookings.
const HOLDING: &[&str] = &["booked", "rescheduled", "failed"];
/// States in which a saga must hold nothing (I4).
const EMPTY: &[&str] = &["compensated", "cancelled", "expired"];

/// One workflow as the database has it.
pub struct Stored {
    pub row: WorkflowRow,
    pub events: Vec<EventRow>,
    pub claims: Vec<ClaimRow>,
    pub mirror: Vec<MirrorEntry>,
}

/// Everything the database holds about the run's workflows.
pub struct Evidence {
    pub workflows: Vec<Stored>,
    pub keys: BTreeMap<String, Option<Uuid>>,
}

impl Evidence {
    /// Reads the database read-only (the engine is gone by now).
    pub fn load(
        db: &std::path::Path,
        keys: &BTreeMap<String, BTreeSet<Uuid>>,
    ) -> Result<Evidence, SimError> {
        let fail = |e: crate::store::StoreError| SimError::Engine(format!("reading the log: {e}"));
        let store = Store::open_read_only(db).map_err(fail)?;
        let filter = WorkflowFilter {
            limit: LIST_ROWS_MAX,
            ..WorkflowFilter::default()
        };
        let mut rows = store.list_workflows(&filter).map_err(fail)?;
        rows.sort_by_key(|r| r.id);
        let mut workflows = Vec::with_capacity(rows.len());
        for row in rows {
            workflows.push(Stored {
                events: store.events(row.id).map_err(fail)?,
                claims: store.claims(row.id).map_err(fail)?,
                mirror: store.mirror(row.id).map_err(fail)?,
                row,
            });
        }
        let mut stored_keys = BTreeMap::new();
        for key in keys.keys() {
            let row = store.idempotency_key(key).map_err(fail)?;
            stored_keys.insert(key.clone(), row.map(|r| r.workflow));
        }
        Ok(Evidence {
            workflows,
            keys: stored_keys,
        })
    }

    /// SHA-256 over every workflow's events (id, seq, time, kind, payload),
    /// in id order: equal digests mean identical logs.
    pub fn digest(&self) -> String {
        let mut hash = Sha256::new();
        for w in &self.workflows {
            hash.update(w.row.id.as_bytes());
            hash.update(w.row.kind.as_bytes());
            for e in &w.events {
                hash.update(e.seq.to_le_bytes());
                hash.update(e.at.timestamp_millis().to_le_bytes());
                hash.update(e.kind.as_bytes());
                hash.update(e.payload.as_bytes());
            }
        }
        hex::encode(hash.finalize())
    }

    pub fn count_events(&self, kind: &str) -> u64 {
        let n = self
            .workflows
            .iter()
            .flat_map(|w| &w.events)
            .filter(|e| e.kind == kind)
            .count();
        n as u64
    }

    pub fn states(&self) -> BTreeMap<String, u64> {
        let mut states = BTreeMap::new();
        for w in &self.workflows {
            *states.entry(w.row.state.clone()).or_default() += 1;
        }
        states
    }
}

/// Every broken invariant of a finished run.
pub fn check(
    evidence: &Evidence,
    calendar: &StateView,
    started_keys: &BTreeMap<String, BTreeSet<Uuid>>,
    not_live: Option<&str>,
) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut flag =
        |invariant: &'static str, detail: String| out.push(Violation { invariant, detail });
    let sagas = replay(evidence, &mut flag);
    let live: Vec<&Booking> = calendar
        .bookings
        .iter()
        .filter(|b| b.status.is_live() && b.metadata.contains_key(wire::META_WORKFLOW))
        .collect();
    no_double_booking(calendar, &live, &mut flag);
    no_orphans(evidence, &live, &mut flag);
    if let Some(why) = not_live {
        flag("I3", why.to_string());
    }
    for (w, saga) in evidence.workflows.iter().zip(&sagas) {
        if saga.as_ref().is_some_and(|s| !s.is_terminal()) {
            flag(
                "I3",
                format!("workflow {} ended the run {}", w.row.id, w.row.state),
            );
        }
    }
    holds_nothing(evidence, &sagas, &live, calendar, &mut flag);
    keys_unique(evidence, started_keys, &mut flag);
    claims_disjoint(evidence, &sagas, &mut flag);
    out
}

/// I7: folding each log gives its stored projection. Returns the sagas.
fn replay(evidence: &Evidence, flag: &mut impl FnMut(&'static str, String)) -> Vec<Option<Saga>> {
    let mut sagas = Vec::with_capacity(evidence.workflows.len());
    for w in &evidence.workflows {
        let events: Result<Vec<Event>, _> = w
            .events
            .iter()
            .map(|e| serde_json::from_str::<Event>(&e.payload))
            .collect();
        let folded = events
            .map_err(|e| e.to_string())
            .and_then(|ev| saga::fold(&ev).map_err(|e| e.to_string()));
        let stored = serde_json::from_str::<Saga>(&w.row.projection).map_err(|e| e.to_string());
        match (folded, stored) {
            (Ok(f), Ok(s)) if f == s => sagas.push(Some(s)),
            (Ok(_), Ok(s)) => {
                flag(
                    "I7",
                    format!(
                        "workflow {}: replay differs from the stored projection",
                        w.row.id
                    ),
                );
                sagas.push(Some(s));
            }
            (f, s) => {
                flag(
                    "I7",
                    format!(
                        "workflow {}: log or projection unreadable: {f:?} / {s:?}",
                        w.row.id
                    ),
                );
                sagas.push(None);
            }
        }
    }
    sagas
}

/// I1: one live booking per saga segment, and no host double-booked.
fn no_double_booking(
    calendar: &StateView,
    live: &[&Booking],
    flag: &mut impl FnMut(&'static str, String),
) {
    let mut per_segment: BTreeMap<(String, String), Vec<&str>> = BTreeMap::new();
    for b in live {
        let key = (meta(b, wire::META_WORKFLOW), meta(b, wire::META_SEGMENT));
        per_segment.entry(key).or_default().push(&b.uid);
    }
    for ((workflow, segment), uids) in per_segment.iter().filter(|(_, u)| u.len() > 1) {
        flag(
            "I1",
            format!(
                "workflow {workflow} segment {segment} is booked {} times: {uids:?}",
                uids.len()
            ),
        );
    }
    for o in &calendar.overlaps {
        flag(
            "I1",
            format!(
                "host {} is double-booked: {} and {}",
                o.host_id, o.first_uid, o.second_uid
            ),
        );
    }
}

/// I2: every live booking of ours belongs to a saga that holds it, as the
/// booking mirror says; every booking the mirror holds is live.
fn no_orphans(evidence: &Evidence, live: &[&Booking], flag: &mut impl FnMut(&'static str, String)) {
    let mut accepted: BTreeMap<&str, (&Stored, &MirrorEntry)> = BTreeMap::new();
    for w in &evidence.workflows {
        for m in w.mirror.iter().filter(|m| m.status == "accepted") {
            accepted.insert(&m.calcom_uid, (w, m));
        }
    }
    let live_uids: BTreeSet<&str> = live.iter().map(|b| b.uid.as_str()).collect();
    for b in live {
        match accepted.get(b.uid.as_str()) {
            Some((w, _)) if HOLDING.contains(&w.row.state.as_str()) => {}
            Some((w, _)) => flag(
                "I2",
                format!(
                    "booking {} is live but its workflow {} is {}",
                    b.uid, w.row.id, w.row.state
                ),
            ),
            None => flag(
                "I2",
                format!(
                    "booking {} of workflow {} is live but no saga holds it (orphan)",
                    b.uid,
                    meta(b, wire::META_WORKFLOW)
                ),
            ),
        }
    }
    for (uid, (w, m)) in &accepted {
        if !live_uids.contains(uid) {
            flag(
                "I2",
                format!(
                    "workflow {} segment {} says booking {uid} is held, but Cal.com has it {}",
                    w.row.id, m.segment, "not live"
                ),
            );
        }
    }
}

/// I4: compensated, cancelled and expired sagas hold no booking, claim or
/// reservation, and a cancel leaves its original with no live booking.
fn holds_nothing(
    evidence: &Evidence,
    sagas: &[Option<Saga>],
    live: &[&Booking],
    calendar: &StateView,
    flag: &mut impl FnMut(&'static str, String),
) {
    let live_of = |id: Uuid| {
        live.iter()
            .filter(|b| meta(b, wire::META_WORKFLOW) == id.to_string())
            .count()
    };
    for (w, saga) in evidence.workflows.iter().zip(sagas) {
        if !EMPTY.contains(&w.row.state.as_str()) {
            continue;
        }
        let claims = w.claims.iter().filter(|c| c.live).count();
        let bookings = live_of(w.row.id);
        if claims + bookings > 0 {
            flag(
                "I4",
                format!(
                    "workflow {} is {} but holds {bookings} bookings and {claims} claims",
                    w.row.id, w.row.state
                ),
            );
        }
        let cancelled_original = saga
            .as_ref()
            .filter(|s| s.kind == saga::Kind::Cancel && w.row.state == "cancelled")
            .and_then(|s| s.original.as_ref());
        if let Some(original) = cancelled_original {
            let left = live_of(original.workflow);
            if left > 0 {
                flag(
                    "I4",
                    format!(
                        "cancel {} ended but its original {} keeps {left} live bookings",
                        w.row.id, original.workflow
                    ),
                );
            }
        }
    }
    // A reservation whose reply a crash cut off is unknown to every log and
    // simply lapses; one a log knows must have been released.
    let all_ended = sagas.iter().flatten().all(Saga::is_terminal);
    let known = |uid: &str| {
        evidence
            .workflows
            .iter()
            .flat_map(|w| &w.events)
            .any(|e| e.payload.contains(uid))
    };
    for r in calendar
        .reservations
        .iter()
        .filter(|r| all_ended && known(&r.reservation_uid))
    {
        flag(
            "I4",
            format!(
                "every saga ended but reservation {} is still held at Cal.com",
                r.reservation_uid
            ),
        );
    }
}

/// An Idempotency-Key never starts two sagas, and the store maps it to the
/// one that was started.
fn keys_unique(
    evidence: &Evidence,
    started: &BTreeMap<String, BTreeSet<Uuid>>,
    flag: &mut impl FnMut(&'static str, String),
) {
    for (key, ids) in started {
        if ids.len() > 1 {
            flag(
                "keys",
                format!(
                    "Idempotency-Key {key} started {} workflows: {ids:?}",
                    ids.len()
                ),
            );
        }
        let stored = evidence.keys.get(key).copied().flatten();
        if stored.is_none_or(|s| !ids.contains(&s)) {
            flag(
                "keys",
                format!("Idempotency-Key {key} is stored for {stored:?}, not for {ids:?}"),
            );
        }
    }
}

/// Live claims of two sagas never overlap on a host, except a reschedule's
/// with the booking it replaces.
fn claims_disjoint(
    evidence: &Evidence,
    sagas: &[Option<Saga>],
    flag: &mut impl FnMut(&'static str, String),
) {
    let original_of: BTreeMap<Uuid, Uuid> = sagas
        .iter()
        .flatten()
        .filter_map(|s| Some((s.workflow, s.original.as_ref()?.workflow)))
        .collect();
    let claims: Vec<&ClaimRow> = evidence
        .workflows
        .iter()
        .flat_map(|w| &w.claims)
        .filter(|c| c.live)
        .collect();
    let related =
        |a: Uuid, b: Uuid| original_of.get(&a) == Some(&b) || original_of.get(&b) == Some(&a);
    for (i, a) in claims.iter().enumerate() {
        for b in &claims[i + 1..] {
            let overlap = a.host == b.host && a.start < b.end && b.start < a.end;
            if overlap && a.workflow != b.workflow && !related(a.workflow, b.workflow) {
                flag(
                    "claims",
                    format!(
                        "host {} is claimed by {} and {} for overlapping times {}..{} and {}..{}",
                        a.host,
                        a.workflow,
                        b.workflow,
                        show(a.start),
                        show(a.end),
                        show(b.start),
                        show(b.end)
                    ),
                );
            }
        }
    }
}

fn meta(b: &Booking, key: &str) -> String {
    b.metadata.get(key).cloned().unwrap_or_default()
}

fn show(t: DateTime<Utc>) -> String {
    let mut s = String::new();
    let _ = write!(s, "{}", t.format("%Y-%m-%dT%H:%MZ"));
    s
}
