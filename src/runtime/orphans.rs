//! Orphans: live future Cal.com bookings that carry calsaga's metadata but
//! that no saga in the log holds (I2). They appear when the database is
//! restored from an older backup (or loses its last commits to a power cut)
//! while Cal.com keeps the bookings made since: the log no longer knows
//! their workflow. A scan reads every upcoming booking (bounded pages),
//! keeps those with our metadata, and cancels each whose workflow is unknown,
//! or known, finished and not holding that booking (per the mirror, which is
//! written with the events). A stray of a known saga goes into that saga's
//! log as `duplicate_found`, and the saga cancels it; any other is cancelled
//! here, recorded as intended before the call (I6) and its outcome after,
//! in the store's orphan table.
//!
//! It never touches a booking whose saga is still running (its own reconcile
//! decides), failed (an admin decides), being changed, or flagged by a
//! webhook (a person moved it in Cal.com). It assumes this database is the
//! only calsaga booking through the Cal.com account: a second instance's
//! bookings would look like orphans (turn the start scan off for that).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::calcom::CalcomError;
use crate::calcom::wire::{self, Booking, BookingFilter, CancelBooking};
use crate::saga::Event;
use crate::store::{OrphanBooking, OrphanRow, OrphanState, WriteOp};

use super::calls::is_not_found;
use super::{Engine, EngineError, TERMINAL_STATES};

/// Bookings per page: Cal.com's maximum.
const PAGE_ROWS: u32 = 250;
/// Pages read per scan (10 000 bookings); the rest waits for the next scan.
const PAGES_MAX: u32 = 40;
/// Sent to Cal.com as the cancellation reason, so staff see why.
pub const ORPHAN_CANCEL_REASON: &str =
    "cancelled by calsaga: no booking in calsaga's database owns it (orphan after a restore)";

/// What one scan found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrphanReport {
    /// Live upcoming bookings read from Cal.com.
    pub scanned: usize,
    /// Of those, bookings with calsaga's metadata.
    pub ours: usize,
    /// Orphans found; cancelled only when the scan applies.
    pub orphans: Vec<OrphanBooking>,
    /// Cancelled by the scan (their workflow unknown, or the saga knows
    /// the uid as undone).
    pub cancelled: usize,
    /// Recorded as a duplicate in their own saga's log, which cancels them.
    pub handed_to_saga: usize,
    /// Cancels Cal.com refused or did not answer; the next scan tries again.
    pub failed: usize,
    /// Ours, but left to their saga, an admin or a pending change.
    pub deferred: usize,
    /// Looked orphaned but were cancelled by the time the scan came to
    /// cancel them (a change saga finished meanwhile).
    pub gone: usize,
    /// The scan stopped after `PAGES_MAX` pages without reaching the end.
    pub truncated: bool,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OrphanError {
    #[error(
        "the orphan scan could not list Cal.com bookings: {0}; it runs again on the next start"
    )]
    List(CalcomError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<crate::store::StoreError> for OrphanError {
    fn from(e: crate::store::StoreError) -> Self {
        OrphanError::Engine(e.into())
    }
}

/// Where the scan started with the engine stands.
#[derive(Debug, Clone, PartialEq)]
pub enum StartScan {
    /// `EngineConfig::orphan_scan_on_start` is off.
    Off,
    Running,
    Done(Result<OrphanReport, OrphanError>),
}

/// Runs the scan in the background and publishes its end, so a caller
/// (serve, before it says it listens) can wait for it with a deadline.
pub(super) fn spawn_start_scan(engine: Engine) {
    engine.inner.start_scan.send_replace(StartScan::Running);
    tokio::spawn(async move {
        let result = engine.repair_orphans(true).await;
        if let Err(e) = &result {
            tracing::warn!(error = %e, "the orphan scan at start failed");
        }
        engine
            .inner
            .start_scan
            .send_replace(StartScan::Done(result));
    });
}

/// What the log says of one booking of ours.
enum Verdict {
    Held,
    /// Someone else decides: its saga, an admin, a running change.
    Deferred,
    Orphan(String),
}

impl Engine {
    /// Waits (up to `deadline`) for the scan started with the engine and
    /// returns where it stands then.
    pub async fn start_scan_settled(&self, deadline: std::time::Duration) -> StartScan {
        let mut scan = self.inner.start_scan.subscribe();
        let settled = scan.wait_for(|s| *s != StartScan::Running);
        let _ = tokio::time::timeout(deadline, settled).await;
        self.inner.start_scan.borrow().clone()
    }

    /// Finds orphaned Cal.com bookings and, when `apply`, cancels them.
    pub async fn repair_orphans(&self, apply: bool) -> Result<OrphanReport, OrphanError> {
        let now = self.inner.clock.now();
        let (upcoming, truncated) = self.upcoming_bookings(now).await?;
        let mut report = OrphanReport {
            scanned: upcoming.len(),
            truncated,
            ..OrphanReport::default()
        };
        for booking in &upcoming {
            let Some(workflow_ref) = booking.metadata.get(wire::META_WORKFLOW) else {
                continue;
            };
            report.ours += 1;
            match self.judge(booking, workflow_ref)? {
                Verdict::Held => {}
                Verdict::Deferred => report.deferred += 1,
                Verdict::Orphan(why) => report.orphans.push(orphan(booking, workflow_ref, why)),
            }
        }
        if apply {
            self.cancel_all(&mut report, now).await?;
        }
        if !report.orphans.is_empty() || truncated {
            tracing::warn!(
                orphans = report.orphans.len(),
                cancelled = report.cancelled,
                failed = report.failed,
                truncated,
                "orphan scan found Cal.com bookings no saga holds"
            );
        }
        Ok(report)
    }

    /// Every live booking starting from `now`, read to the end or to
    /// `PAGES_MAX` pages (then `true`). Read fully before anything is
    /// cancelled, so cancelling cannot shift the pages under the scan.
    async fn upcoming_bookings(
        &self,
        now: DateTime<Utc>,
    ) -> Result<(Vec<Booking>, bool), OrphanError> {
        let mut filter = BookingFilter {
            after_start: Some(now),
            take: Some(PAGE_ROWS),
            skip: Some(0),
            sort_start: Some("asc".into()),
            ..BookingFilter::default()
        };
        let mut found = Vec::new();
        for _ in 0..PAGES_MAX {
            let page = self
                .inner
                .api
                .list_bookings(&filter)
                .await
                .map_err(OrphanError::List)?;
            let read = u32::try_from(page.bookings.len()).unwrap_or(u32::MAX);
            // Filters are not trusted (calcom-v2 notes): check again here.
            found.extend(
                page.bookings
                    .into_iter()
                    .filter(|b| b.status.is_live() && b.start >= now),
            );
            if !page.pagination.has_next_page || read == 0 {
                return Ok((found, false));
            }
            filter.skip = Some(filter.skip.unwrap_or(0).saturating_add(read));
        }
        Ok((found, true))
    }

    fn judge(&self, b: &Booking, workflow_ref: &str) -> Result<Verdict, OrphanError> {
        let store = &self.inner.store;
        let Ok(id) = Uuid::parse_str(workflow_ref) else {
            return Ok(Verdict::Orphan(format!(
                "its calsaga_workflow {workflow_ref:?} is not a workflow id"
            )));
        };
        let Some(row) = store.workflow(id)? else {
            return Ok(Verdict::Orphan(format!(
                "workflow {id} is not in the log (the database may have been restored from an older backup)"
            )));
        };
        let finished = TERMINAL_STATES.contains(&row.state.as_str()) && row.state != "failed";
        let changing = store
            .changes_of(id)?
            .iter()
            .any(|c| !TERMINAL_STATES.contains(&c.state.as_str()));
        let moved_by_staff = b
            .rescheduled_from_uid
            .as_deref()
            .map(|from| store.mirror_by_uid(from))
            .transpose()?
            .flatten()
            .is_some();
        if !finished || changing || moved_by_staff || !store.booking_flags(id)?.is_empty() {
            return Ok(Verdict::Deferred);
        }
        Ok(match store.mirror_by_uid(&b.uid)? {
            Some(m) if m.workflow == id && m.status == "accepted" => Verdict::Held,
            // The uid is another workflow's in our records: not ours to undo.
            Some(m) if m.workflow != id => Verdict::Deferred,
            _ => Verdict::Orphan(format!(
                "workflow {id} is {} and does not hold this booking",
                row.state
            )),
        })
    }

    /// Cancels every orphan of `report` that is still live, counting each.
    async fn cancel_all(
        &self,
        report: &mut OrphanReport,
        now: DateTime<Utc>,
    ) -> Result<(), OrphanError> {
        for o in std::mem::take(&mut report.orphans) {
            if self.hand_to_saga(&o).await? {
                report.handed_to_saga += 1;
                report.orphans.push(o);
                continue;
            }
            // A change saga may have cancelled it since the list was read
            // (and its log then no longer holds it): not an orphan.
            if !self.still_live(&o.calcom_uid).await {
                report.gone += 1;
                continue;
            }
            match self.cancel_orphan(&o, now).await? {
                OrphanState::Cancelled => report.cancelled += 1,
                _ => report.failed += 1,
            }
            report.orphans.push(o);
        }
        Ok(())
    }

    /// A stray booking of a saga in the log that the saga does not know
    /// goes into that saga's own log as a duplicate, and the saga cancels
    /// it like any other (intent and outcome in its log, retries). False
    /// when the saga is unknown or knows the uid: the scan cancels it then.
    async fn hand_to_saga(&self, o: &OrphanBooking) -> Result<bool, OrphanError> {
        let (Ok(id), Ok(segment)) = (
            Uuid::parse_str(&o.workflow_ref),
            o.segment_ref.parse::<u16>(),
        ) else {
            return Ok(false);
        };
        let uid = o.calcom_uid.clone();
        match self
            .append(id, Event::DuplicateFound { segment, uid })
            .await
        {
            Ok(()) => Ok(true),
            Err(EngineError::UnknownWorkflow { .. } | EngineError::Transition(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether the booking is still live at Cal.com; when that cannot be
    /// read, the cancel is sent anyway (cancelling twice is harmless).
    async fn still_live(&self, uid: &str) -> bool {
        match self.inner.api.get_booking(uid).await {
            Ok(b) => b.status.is_live(),
            Err(e) => !is_not_found(&e),
        }
    }

    /// Records the intent, cancels at Cal.com, records the outcome.
    async fn cancel_orphan(
        &self,
        o: &OrphanBooking,
        now: DateTime<Utc>,
    ) -> Result<OrphanState, OrphanError> {
        self.record_orphan(o, OrphanState::Cancelling, None, now)
            .await?;
        let input = CancelBooking {
            cancellation_reason: Some(ORPHAN_CANCEL_REASON.into()),
            cancel_subsequent_bookings: None,
        };
        let (state, detail) = match self.inner.api.cancel_booking(&o.calcom_uid, &input).await {
            Ok(_) => (OrphanState::Cancelled, None),
            // Gone or already cancelled is what the cancel wants.
            Err(e) if e.is_already_cancelled() || is_not_found(&e) => {
                (OrphanState::Cancelled, None)
            }
            Err(e) => (OrphanState::Failed, Some(e.to_string())),
        };
        let at = self.inner.clock.now();
        self.record_orphan(o, state, detail.clone(), at).await?;
        match &detail {
            None => {
                tracing::info!(calcom_uid = %o.calcom_uid, workflow = %o.workflow_ref, why = %o.why, "cancelled an orphaned Cal.com booking")
            }
            Some(error) => {
                tracing::warn!(calcom_uid = %o.calcom_uid, error = %error, "cancelling an orphaned Cal.com booking failed; the next scan tries again")
            }
        }
        Ok(state)
    }

    async fn record_orphan(
        &self,
        o: &OrphanBooking,
        state: OrphanState,
        detail: Option<String>,
        at: DateTime<Utc>,
    ) -> Result<(), OrphanError> {
        let row = OrphanRow {
            booking: o.clone(),
            state,
            detail,
            found_at: at,
            updated_at: at,
        };
        self.inner
            .store
            .commit(vec![WriteOp::RecordOrphan(row)])
            .await
            .map_err(|e| self.inner.store_failed(e))?;
        Ok(())
    }
}

fn orphan(b: &Booking, workflow_ref: &str, why: String) -> OrphanBooking {
    OrphanBooking {
        calcom_uid: b.uid.clone(),
        workflow_ref: workflow_ref.to_string(),
        segment_ref: b
            .metadata
            .get(wire::META_SEGMENT)
            .cloned()
            .unwrap_or_default(),
        event_type_id: b.event_type_id,
        start: b.start,
        end: b.end,
        why,
    }
}
