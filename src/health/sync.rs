//! Check 8, database sync: do the database and Cal.com agree on which
//! bookings are live? It reads Cal.com's upcoming bookings of the
//! catalogue's event types in bounded pages and matches them on our side
//! (metadata and uids; list filters are not trusted to have been applied),
//! then looks both ways:
//! - a live Cal.com booking carrying our metadata that no booked saga
//!   holds is an orphan (I2);
//! - an upcoming mirror row believed live whose Cal.com booking is gone is
//!   missing, and a booked composite with some segments live and some not
//!   is broken.
//!
//! Sagas still running, changes (reschedule, cancel) in progress and
//! bookings younger than the grace period are left alone: they are in
//! flight, not wrong. The missing/broken direction needs the whole upcoming
//! list; when Cal.com has more pages than a run reads it is skipped. This
//! module only reads; repairs are the admin commands each finding names.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Health;
use super::evaluate::{Finding, FindingKind, SyncFigures};
use super::within;
use crate::calcom::wire::{Booking, BookingFilter, META_WORKFLOW};
use crate::calcom::{CalcomApi, Client};
use crate::saga::RUNNING_STATES;
use crate::store::{MirrorEntry, Store, StoreError};

/// Cal.com's largest page of bookings.
const PAGE_TAKE: u32 = 250;
/// Saga states that hold live bookings for good.
const HOLDING: [&str; 2] = ["booked", "rescheduled"];
pub async fn figures(health: &Health, client: &Client) -> SyncFigures {
    let inner = &health.inner;
    let now = inner.clock.now();
    let event_types: Vec<u64> = inner.catalog.event_type_ids().into_iter().collect();
    let (live, complete) =
        match live_bookings(client, &event_types, inner.config.booking_pages_max).await {
            Ok(found) => found,
            Err(why) => {
                return SyncFigures {
                    unverified: Some(why),
                    ..SyncFigures::default()
                };
            }
        };
    let mut out = Findings::new(inner.config.findings_max);
    let grace = chrono::Duration::from_std(inner.config.orphan_grace).unwrap_or_default();
    let compared = orphans(&inner.store, &live, now - grace, &mut out).and_then(|()| {
        if !complete {
            return Ok(0);
        }
        let limit = inner.config.mirror_rows_max;
        let rows = inner.store.mirror_upcoming(now, limit)?;
        let ours: Vec<MirrorEntry> = rows
            .into_iter()
            .filter(|r| event_types.contains(&r.event_type_id))
            .collect();
        gone(&inner.store, &live, &ours, now, &mut out)?;
        Ok(ours.len())
    });
    match compared {
        Ok(mirror_rows) => out.figures(live.len(), mirror_rows, complete),
        Err(e) => SyncFigures {
            unverified: Some(format!("reading the database: {e}")),
            ..SyncFigures::default()
        },
    }
}

/// Live upcoming bookings by uid, and whether every page was read.
async fn live_bookings(
    client: &Client,
    event_types: &[u64],
    pages_max: u32,
) -> Result<(BTreeMap<String, Booking>, bool), String> {
    let mut live = BTreeMap::new();
    for page in 0..pages_max {
        let filter = BookingFilter {
            status: vec!["upcoming".into()],
            event_type_ids: event_types.to_vec(),
            take: Some(PAGE_TAKE),
            skip: Some(page * PAGE_TAKE),
            ..BookingFilter::default()
        };
        let found = within(client.list_bookings(&filter))
            .await
            .map_err(|e| format!("listing Cal.com's bookings (page {}): {e}", page + 1))?;
        let more = found.pagination.has_next_page && !found.bookings.is_empty();
        for b in found.bookings {
            if b.status.is_live() && event_types.contains(&b.event_type_id) {
                live.insert(b.uid.clone(), b);
            }
        }
        if !more {
            return Ok((live, true));
        }
    }
    Ok((live, false))
}

/// Findings, bounded in number, counted in full.
struct Findings {
    max: usize,
    listed: Vec<Finding>,
    orphans: usize,
    missing: usize,
    broken: usize,
}

impl Findings {
    fn new(max: usize) -> Findings {
        Findings {
            max,
            listed: Vec::new(),
            orphans: 0,
            missing: 0,
            broken: 0,
        }
    }

    fn add(&mut self, finding: Finding) {
        match finding.kind {
            FindingKind::OrphanBooking => self.orphans += 1,
            FindingKind::MissingBooking => self.missing += 1,
            FindingKind::BrokenComposite => self.broken += 1,
        }
        if self.listed.len() < self.max {
            self.listed.push(finding);
        }
    }

    fn figures(self, calcom_bookings: usize, mirror_rows: usize, complete: bool) -> SyncFigures {
        SyncFigures {
            calcom_bookings,
            mirror_rows,
            complete,
            orphans: self.orphans,
            missing: self.missing,
            broken: self.broken,
            findings: self.listed,
            unverified: None,
        }
    }
}

fn compensate(workflow: &str, why: &str) -> String {
    format!("calsaga workflows compensate {workflow} --reason \"{why}\"")
}

/// Live Cal.com bookings with our metadata that no booked saga holds.
fn orphans(
    store: &Store,
    live: &BTreeMap<String, Booking>,
    created_before: DateTime<Utc>,
    out: &mut Findings,
) -> Result<(), StoreError> {
    for b in live.values() {
        let Some(named) = b.metadata.get(META_WORKFLOW) else {
            continue;
        };
        if b.created_at > created_before {
            continue;
        }
        let Some((detail, known)) = orphan_detail(store, named, &b.uid)? else {
            continue;
        };
        // A stray of a known saga goes back to that saga (which cancels it);
        // one no saga knows is cancelled by the orphan scan. Compensating the
        // saga instead would cancel the customer's real booking too.
        let fix = format!(
            "restart `calsaga serve` (its start-up orphan scan cancels it{}), or stop serve and run `calsaga reconcile orphans --apply`",
            if known { " through its saga" } else { "" }
        );
        out.add(Finding {
            kind: FindingKind::OrphanBooking,
            workflow: named.clone(),
            calcom_uids: vec![b.uid.clone()],
            detail: format!("{detail} (starts {})", b.start.to_rfc3339()),
            fix,
        });
    }
    Ok(())
}

/// Why a live booking naming `named` is an orphan and whether this
/// database knows the workflow, or `None` if it is not an orphan.
fn orphan_detail(
    store: &Store,
    named: &str,
    uid: &str,
) -> Result<Option<(String, bool)>, StoreError> {
    let Ok(id) = Uuid::parse_str(named) else {
        return Ok(Some((
            format!("its metadata names {named:?}, not a workflow id"),
            false,
        )));
    };
    let Some(row) = store.workflow(id)? else {
        return Ok(Some((
            "its workflow is not in this database".to_string(),
            false,
        )));
    };
    let state = row.state.as_str();
    // Running sagas are mid-step; failed ones already wait for an admin
    // (the activity check names them).
    if RUNNING_STATES.contains(&state) || state == "failed" {
        return Ok(None);
    }
    let mirrored = store.mirror_by_uid(uid)?;
    let held = mirrored
        .as_ref()
        .is_some_and(|m| m.status == "accepted" && HOLDING.contains(&state));
    if held {
        return Ok(None);
    }
    let believed = mirrored.map_or("not in the mirror".to_string(), |m| {
        format!("the mirror says {}", m.status)
    });
    Ok(Some((
        format!("live in Cal.com while its saga is {state} and {believed}"),
        true,
    )))
}

/// Mirror rows believed live whose Cal.com booking is gone, per workflow:
/// broken when the composite still has other live segments.
fn gone(
    store: &Store,
    live: &BTreeMap<String, Booking>,
    upcoming: &[MirrorEntry],
    now: DateTime<Utc>,
    out: &mut Findings,
) -> Result<(), StoreError> {
    let workflows: BTreeSet<Uuid> = upcoming
        .iter()
        .filter(|r| !live.contains_key(&r.calcom_uid))
        .map(|r| r.workflow)
        .collect();
    for id in workflows {
        let Some(row) = store.workflow(id)? else {
            continue;
        };
        let changing = store
            .changes_of(id)?
            .iter()
            .any(|c| RUNNING_STATES.contains(&c.state.as_str()));
        if !HOLDING.contains(&row.state.as_str()) || changing {
            continue;
        }
        let rows: Vec<MirrorEntry> = store
            .mirror(id)?
            .into_iter()
            .filter(|r| r.end > now)
            .collect();
        out.add(judge(id, &rows, live));
    }
    Ok(())
}

/// One workflow with at least one gone booking: broken or missing.
fn judge(id: Uuid, rows: &[MirrorEntry], live: &BTreeMap<String, Booking>) -> Finding {
    let is_live = |r: &MirrorEntry| r.status == "accepted" && live.contains_key(&r.calcom_uid);
    let segments: BTreeSet<u16> = rows.iter().map(|r| r.segment).collect();
    let live_segments: BTreeSet<u16> = rows
        .iter()
        .filter(|r| is_live(r))
        .map(|r| r.segment)
        .collect();
    let gone_uids: Vec<String> = rows
        .iter()
        .filter(|r| r.status == "accepted" && !live.contains_key(&r.calcom_uid))
        .map(|r| r.calcom_uid.clone())
        .collect();
    let dead: Vec<String> = segments
        .difference(&live_segments)
        .map(ToString::to_string)
        .collect();
    let workflow = id.to_string();
    if !live_segments.is_empty() && !dead.is_empty() {
        let why = format!(
            "broken composite: segments {} gone from Cal.com",
            dead.join(", ")
        );
        Finding {
            kind: FindingKind::BrokenComposite,
            fix: compensate(&workflow, &why),
            detail: format!(
                "{why}, segments {} still live",
                live_segments
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            workflow,
            calcom_uids: gone_uids,
        }
    } else {
        let why = "its Cal.com bookings are gone";
        Finding {
            kind: FindingKind::MissingBooking,
            fix: compensate(&workflow, why),
            detail: format!(
                "the saga is booked but {why} (cancelled in Cal.com without a webhook reaching calsaga?)"
            ),
            workflow,
            calcom_uids: gone_uids,
        }
    }
}
