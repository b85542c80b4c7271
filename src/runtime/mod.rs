//! The engine: runs sagas. It owns the I/O the pure core asks for: it starts
//! sagas (request event + slot claims in one commit), drives them
//! concurrently with a bound (`runner`), makes their Cal.com calls (`calls`),
//! reconciles uncertain steps (`reconcile`), wakes them on durable timers,
//! resumes every unfinished saga after a restart (`recovery`), applies the
//! admin CLI's queued requests (`admin`) and cancels Cal.com bookings no saga
//! holds (`orphans`). It decides
//! nothing itself: `saga::decide` does. After a failed write the disk is in
//! doubt, so the engine stops taking work until it is restarted.

mod admin;
mod calls;
mod failover;
pub mod inbox;
mod listings;
mod orphans;
mod reconcile;
mod recovery;
mod runner;

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::sync::{Semaphore, watch};
use uuid::Uuid;

use crate::availability::Availability;
use crate::calcom::{CalcomApi, RetryPolicy};
use crate::catalog::{Catalog, Service};
use crate::clock::Clock;
use crate::saga::{
    self, AdvanceError, Attendee, BookingRequest, Event, Kind, Phase, PlanError, PlanRequest, Saga,
    SegmentView, Then, TransitionError,
};
use crate::store::{EventRow, Store, StoreError, WorkflowFilter, WorkflowRow, WriteOp};

pub use crate::saga::TERMINAL_STATES;
pub use admin::{ADMIN_REQUESTS_PER_POLL, AdminAction};
pub use inbox::{BrokenPolicy, Inbox};
pub use orphans::{ORPHAN_CANCEL_REASON, OrphanError, OrphanReport, StartScan};
pub use recovery::RecoveryReport;
pub use runner::WAKE_TIMER;

/// Tuning of the engine. Every wait has a bound.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Sagas driven at once; more wait for a permit.
    pub sagas_concurrent_max: usize,
    /// Waits up to this long are slept inside the saga's task; longer ones
    /// park the saga on a durable timer.
    pub in_task_wait_max: Duration,
    /// How often due timers are looked for.
    pub timer_poll: Duration,
    /// Reserve every segment's slot for this many minutes before booking
    /// (None: book directly; calsaga's own claims already stop races).
    pub reserve_min: Option<u32>,
    /// Cal.com's slot interval of the catalogue's event types.
    pub slot_interval_min: NonZeroU32,
    /// Spacing of durable retries (the same formula as the client's).
    pub retry: RetryPolicy,
    /// Seed of the retry jitter, so a simulated run repeats exactly.
    pub rng_seed: u64,
    /// How long after it was sent a create may still land at Cal.com (a
    /// request cut off by a crash or timeout can be processed late). A
    /// reconcile that finds nothing earlier looks again after it. Keep it
    /// above the client's request timeout.
    pub reconcile_settle: Duration,
    /// Seed of the workflow ids. None: random v4 ids. A simulation sets it
    /// so a seed repeats its event log byte for byte.
    pub id_seed: Option<u64>,
    /// Scan Cal.com for orphaned bookings (ours, held by no saga) on start
    /// and cancel them. On by default: a database restored from a backup
    /// looks like any other on start, and the scan costs a few list calls
    /// through the rate limiter. Off when several calsaga databases book
    /// through one Cal.com account.
    pub orphan_scan_on_start: bool,
    /// How long planning a booking, hold or reschedule waits for Cal.com's
    /// slots (cached ones are used at once). None: plan from calsaga's own
    /// claims only (the simulation, whose gate parks every call, and the
    /// engine benchmark); Cal.com then refuses a time that is not free.
    pub plan_slots_wait: Option<Duration>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            sagas_concurrent_max: 64,
            in_task_wait_max: Duration::from_secs(30),
            timer_poll: Duration::from_secs(1),
            reserve_min: None,
            slot_interval_min: NonZeroU32::new(15).expect("15 > 0"),
            retry: RetryPolicy::default(),
            rng_seed: 0x5a6a,
            reconcile_settle: Duration::from_secs(60),
            id_seed: None,
            orphan_scan_on_start: true,
            plan_slots_wait: Some(Duration::from_secs(5)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    #[error("unknown service {id:?}; known services: {known}")]
    UnknownService { id: String, known: String },
    /// The plan's refusal, and its message with the catalogue's host names.
    #[error("{1}")]
    Plan(PlanError, String),
    #[error("workflow {id} does not exist; list workflows with `calsaga workflows list`")]
    UnknownWorkflow { id: Uuid },
    #[error("workflow {id} is {state}; {action} needs a {needed} workflow")]
    Illegal {
        id: Uuid,
        state: String,
        action: &'static str,
        needed: &'static str,
    },
    #[error("the time is taken: {0}")]
    SlotTaken(String),
    #[error("workflow {id} is being changed by workflow {by}; wait for it to finish")]
    ChangeInProgress { id: Uuid, by: Uuid },
    /// The key was used before; `same_request` tells a retry (replay the
    /// workflow) from a different request reusing the key (refuse).
    #[error("Idempotency-Key {key:?} was already used for workflow {workflow}")]
    KeyUsed {
        key: String,
        workflow: Uuid,
        same_request: bool,
    },
    #[error("workflow {id}'s log is unreadable: {detail}; restore the database from a backup")]
    CorruptLog { id: Uuid, detail: String },
    #[error("saga rule broken: {0}")]
    Transition(#[from] TransitionError),
    #[error("{0}")]
    Advance(#[from] AdvanceError),
    #[error(
        "the engine stopped taking work after a database write failed ({0}); fix the disk and restart calsaga"
    )]
    Stopped(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::SlotClaimed { .. } => EngineError::SlotTaken(e.to_string()),
            other => EngineError::Store(other),
        }
    }
}

impl EngineError {
    /// The requested time is not free (another saga holds it): answer 409.
    pub fn is_slot_taken(&self) -> bool {
        matches!(
            self,
            EngineError::SlotTaken(_)
                | EngineError::Plan(PlanError::NoFreeHost { .. } | PlanError::HostBusy { .. }, _)
        )
    }

    fn key_used(e: StoreError, mine: Option<&Idempotency>) -> EngineError {
        match (e, mine) {
            (
                StoreError::IdempotencyKeyExists {
                    key,
                    workflow,
                    fingerprint,
                },
                Some(mine),
            ) => EngineError::KeyUsed {
                key,
                workflow,
                same_request: fingerprint == mine.fingerprint,
            },
            (other, _) => other.into(),
        }
    }
}

/// How long an Idempotency-Key is remembered.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);

/// A client's Idempotency-Key and the fingerprint of the request it came
/// with; stored in the same transaction that starts the saga, so a retry
/// after any crash finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    pub key: String,
    pub fingerprint: String,
}

/// A booking as the engine's callers see it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WorkflowView {
    pub id: Uuid,
    pub kind: String,
    pub service: String,
    pub state: String,
    pub terminal: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub segments: Vec<SegmentView>,
    /// Why it was compensated or failed, when it was.
    pub reason: Option<String>,
}

/// What a front end asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookRequest {
    pub service: String,
    pub start: DateTime<Utc>,
    pub attendee: Attendee,
    /// A host wanted for every segment they can do.
    pub host: Option<u64>,
    /// Hosts pinned per segment index.
    pub segment_hosts: BTreeMap<u16, u64>,
    pub notes: Option<String>,
}

/// How a booked workflow should move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveRequest {
    pub start: DateTime<Utc>,
    /// A host wanted for every segment they can do.
    pub host: Option<u64>,
    /// Hosts pinned per segment index; other segments keep their host when
    /// that host is free at the new time.
    pub segment_hosts: BTreeMap<u16, u64>,
}

/// The running engine; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

pub struct Inner {
    store: Store,
    api: Arc<dyn CalcomApi>,
    clock: Arc<dyn Clock>,
    catalog: Arc<Catalog>,
    /// Cal.com's free time, shared with the availability search.
    availability: Arc<Availability>,
    config: EngineConfig,
    permits: Semaphore,
    /// Sagas with a driver; `true` asks the driver to look again when done.
    active: Mutex<HashMap<Uuid, bool>>,
    changed: watch::Sender<u64>,
    /// Per workflow, for `wait`: a step of one saga wakes only its own
    /// waiters, not every caller waiting on any saga, and tells them where
    /// it left the saga so they read the workflow only once it may be done.
    waiters: Mutex<HashMap<Uuid, watch::Sender<Seen>>>,
    stopped: Mutex<Option<String>>,
    /// Held while a reschedule or cancel is checked and started.
    changes: tokio::sync::Mutex<()>,
    shutting_down: AtomicBool,
    rng: Mutex<SmallRng>,
    /// Source of workflow ids when `EngineConfig::id_seed` is set.
    ids: Option<Mutex<SmallRng>>,
    start_scan: watch::Sender<StartScan>,
    /// Cal.com listings shared by the reconciles of one day.
    listings: listings::Listings,
}

/// A waiter on one workflow; its channel is forgotten when the last one
/// goes, however the wait ends (answer, timeout or a dropped request).
struct Watching<'a> {
    inner: &'a Inner,
    id: Uuid,
    rx: watch::Receiver<Seen>,
}

/// What the waiters on one workflow have been told.
#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    /// Bumped by a change whose effect is not known here (the engine
    /// stopped, a driver left): a waiter reads the workflow to find out.
    unknown: u64,
    /// The newest commit announced, by the sequence number it left.
    step: Option<Step>,
}

/// Where one commit left a saga.
#[derive(Debug, Clone, Copy)]
struct Step {
    next_seq: u64,
    state: &'static str,
    terminal: bool,
}

impl Step {
    fn of(saga: &Saga, next_seq: u64) -> Step {
        Step {
            next_seq,
            state: saga.state_name(),
            terminal: saga.is_terminal(),
        }
    }
}

impl Drop for Watching<'_> {
    fn drop(&mut self) {
        self.inner.unwatch(self.id);
    }
}

impl Inner {
    /// Something changed that any reader may care about: wakes everyone.
    fn notify_changed(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
        for tx in self.waiters.lock().expect("waiters lock").values() {
            tx.send_modify(|seen| seen.unknown = seen.unknown.wrapping_add(1));
        }
    }

    /// Workflow `id` changed in a way not known here: wakes its waiters to
    /// read it, and the readers of every change.
    fn notify_workflow(&self, id: Uuid) {
        self.notify(id, |seen| {
            seen.unknown = seen.unknown.wrapping_add(1);
            true
        });
    }

    /// A commit left `saga` with `next_seq` events: wakes its waiters with
    /// where it stands, and the readers of every change (a long-polled
    /// booking may show another saga's lineage). Commits announced out of
    /// order keep the newest, so a waiter never acts on a stale step.
    fn notify_step(&self, saga: &Saga, next_seq: u64) {
        let step = Step::of(saga, next_seq);
        self.notify(saga.workflow, |seen| {
            let newer = seen.step.is_none_or(|s| s.next_seq < step.next_seq);
            if newer {
                seen.step = Some(step);
            }
            newer
        });
    }

    fn notify(&self, id: Uuid, modify: impl FnOnce(&mut Seen) -> bool) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
        if let Some(tx) = self.waiters.lock().expect("waiters lock").get(&id) {
            tx.send_if_modified(modify);
        }
    }

    /// A receiver woken when `id` changes (or everything does).
    fn watch(&self, id: Uuid) -> watch::Receiver<Seen> {
        self.waiters
            .lock()
            .expect("waiters lock")
            .entry(id)
            .or_insert_with(|| watch::channel(Seen::default()).0)
            .subscribe()
    }

    /// Forgets `id`'s channel when the waiter leaving is its last (new
    /// waiters subscribe under the same lock, so none is cut off).
    fn unwatch(&self, id: Uuid) {
        let mut waiters = self.waiters.lock().expect("waiters lock");
        if waiters.get(&id).is_some_and(|tx| tx.receiver_count() == 1) {
            waiters.remove(&id);
        }
    }

    /// Maps a store error; a fatal one stops the engine (the disk is in doubt).
    fn store_failed(&self, e: StoreError) -> EngineError {
        self.stop_if_fatal(&e);
        e.into()
    }

    fn stop_if_fatal(&self, e: &StoreError) {
        if e.is_fatal() {
            let mut stopped = self.stopped.lock().expect("stopped lock");
            if stopped.is_none() {
                tracing::error!(error = %e, "database write failed; the engine takes no new work");
                *stopped = Some(e.to_string());
                drop(stopped);
                self.notify_changed();
            }
        }
    }

    /// A new workflow id: UUIDv7 on the engine's clock, its random part
    /// from the seeded id stream when there is one. Time-ordered ids put a
    /// new saga's rows and events on the right-hand pages of every index
    /// keyed by workflow, so a commit dirties pages it shares with the
    /// sagas beside it instead of one random page per index.
    fn new_id(&self) -> Uuid {
        let random: [u8; 10] = match &self.ids {
            Some(rng) => rand::Rng::r#gen(&mut *rng.lock().expect("id rng lock")),
            None => rand::random(),
        };
        let millis = u64::try_from(self.clock.now().timestamp_millis()).unwrap_or(0);
        uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
    }

    fn check_running(&self) -> Result<(), EngineError> {
        match self.stopped.lock().expect("stopped lock").as_ref() {
            Some(reason) => Err(EngineError::Stopped(reason.clone())),
            None => Ok(()),
        }
    }
}

impl Engine {
    /// Builds the engine; call `start` inside a tokio runtime to resume
    /// unfinished sagas and run the timer loop.
    pub fn new(
        store: Store,
        api: Arc<dyn CalcomApi>,
        clock: Arc<dyn Clock>,
        catalog: Arc<Catalog>,
        config: EngineConfig,
    ) -> Engine {
        let (changed, _) = watch::channel(0);
        let availability = Arc::new(Availability::new(
            Arc::clone(&api),
            store.clone(),
            Arc::clone(&clock),
            config.slot_interval_min,
        ));
        Engine {
            inner: Arc::new(Inner {
                store,
                api,
                clock,
                catalog,
                availability,
                permits: Semaphore::new(config.sagas_concurrent_max.max(1)),
                rng: Mutex::new(SmallRng::seed_from_u64(config.rng_seed)),
                ids: config
                    .id_seed
                    .map(|s| Mutex::new(SmallRng::seed_from_u64(s))),
                config,
                active: Mutex::new(HashMap::new()),
                changed,
                waiters: Mutex::new(HashMap::new()),
                stopped: Mutex::new(None),
                changes: tokio::sync::Mutex::new(()),
                shutting_down: AtomicBool::new(false),
                start_scan: watch::Sender::new(StartScan::Off),
                listings: listings::Listings::default(),
            }),
        }
    }

    /// Resumes every unfinished saga, starts the timer loop and, when
    /// configured, the orphan scan (`start_scan_settled` waits for it).
    pub fn start(&self) -> Result<RecoveryReport, EngineError> {
        let report = recovery::resume_all(self)?;
        recovery::spawn_timer_loop(self.clone());
        if self.inner.config.orphan_scan_on_start {
            orphans::spawn_start_scan(self.clone());
        }
        Ok(report)
    }

    /// Stops the timer loop; running drivers finish their current step.
    pub fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Ticks on every commit made through the engine (and on
    /// `notify_changed`): long-polling readers subscribe, read, then wait.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.changed.subscribe()
    }

    /// Wakes long-polling readers after a write made outside the engine
    /// (e.g. the webhook inbox flagging a booking).
    pub fn notify_changed(&self) {
        self.inner.notify_changed();
    }

    /// Sagas with a driver right now (running, calling or sleeping), less
    /// those waiting for a Cal.com listing another saga's reconcile began:
    /// the call they wait on is that saga's.
    pub fn drivers_active(&self) -> usize {
        let active = self.inner.active.lock().expect("active lock").len();
        active.saturating_sub(self.inner.listings.joined())
    }

    pub fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }

    /// The one catalogue check: service `id`, or which ones there are.
    pub fn service(&self, id: &str) -> Result<&Service, EngineError> {
        self.inner
            .catalog
            .get(id)
            .ok_or_else(|| EngineError::UnknownService {
                id: id.to_string(),
                known: self.inner.catalog.ids().join(", "),
            })
    }

    /// The availability search that plans with the same free time as the
    /// engine (one slot cache for both).
    pub fn availability(&self) -> &Arc<Availability> {
        &self.inner.availability
    }

    /// Plans and starts a booking saga; returns its workflow id once the
    /// request and its slot claims are committed (I5).
    pub async fn book(
        &self,
        req: BookRequest,
        key: Option<Idempotency>,
    ) -> Result<Uuid, EngineError> {
        let reserve_min = self.inner.config.reserve_min;
        self.start_planned(&req, key, |workflow, request| Event::Requested {
            workflow,
            request,
            reserve_min,
        })
        .await
    }

    /// Starts a hold: every segment reserved for `hold_min` minutes until
    /// `confirm` books it or the hold expires.
    pub async fn hold(
        &self,
        req: BookRequest,
        hold_min: u32,
        key: Option<Idempotency>,
    ) -> Result<Uuid, EngineError> {
        self.start_planned(&req, key, |workflow, request| Event::HoldRequested {
            workflow,
            request,
            hold_min,
        })
        .await
    }

    /// Plans `req` and starts the saga whose first event `first` builds.
    async fn start_planned(
        &self,
        req: &BookRequest,
        key: Option<Idempotency>,
        first: impl FnOnce(Uuid, BookingRequest) -> Event,
    ) -> Result<Uuid, EngineError> {
        if let Some(found) = self.known_key(key.as_ref())? {
            return Err(found);
        }
        let id = self.inner.new_id();
        let mine = key.clone();
        let started = async {
            let request = self.plan(req, None).await?;
            self.start_saga(&req.service, first(id, request), key).await
        };
        match started.await {
            Ok(()) => Ok(id),
            Err(e) => Err(self.explain_with_key(e, mine.as_ref())?),
        }
    }

    /// Turns a held saga into a booking.
    pub async fn confirm(&self, hold: Uuid) -> Result<(), EngineError> {
        self.append(hold, Event::ConfirmRequested).await
    }

    /// Starts a make-before-break reschedule of booked workflow `of` to
    /// `to.start`; the original stays untouched unless every new segment
    /// exists. Each segment keeps its host when that host is free then.
    pub async fn reschedule(
        &self,
        of: Uuid,
        to: MoveRequest,
        key: Option<Idempotency>,
    ) -> Result<Uuid, EngineError> {
        if let Some(found) = self.known_key(key.as_ref())? {
            return Err(found);
        }
        let _one_change = self.inner.changes.lock().await;
        let original = self.original(of, "reschedule")?;
        let (saga, _) = runner::load(&self.inner, of)?;
        let request = saga.request.clone().ok_or(EngineError::Illegal {
            id: of,
            state: saga.state_name().into(),
            action: "reschedule",
            needed: "booked",
        })?;
        let req = BookRequest {
            service: request.plan.service_id.clone(),
            start: to.start,
            attendee: request.attendee.clone(),
            host: to.host,
            segment_hosts: to.segment_hosts,
            notes: request.notes.clone(),
        };
        let id = self.inner.new_id();
        let mine = key.clone();
        let started = async {
            let mut request = self.plan(&req, Some(&original)).await?;
            request.plan.mark_moves(&original);
            let first = Event::RescheduleRequested {
                workflow: id,
                original,
                request,
                reserve_min: self.inner.config.reserve_min,
            };
            self.start_saga(&req.service, first, key).await
        };
        match started.await {
            Ok(()) => Ok(id),
            Err(e) => Err(self.explain_with_key(e, mine.as_ref())?),
        }
    }

    /// Starts cancelling every segment of booked workflow `of`.
    pub async fn cancel(&self, of: Uuid, reason: String) -> Result<Uuid, EngineError> {
        let _one_change = self.inner.changes.lock().await;
        let original = self.original(of, "cancel")?;
        let service = self.get(of)?.service;
        let id = self.inner.new_id();
        self.start_saga(
            &service,
            Event::CancelRequested {
                workflow: id,
                original,
                reason,
            },
            None,
        )
        .await?;
        Ok(id)
    }

    /// Appends an event from outside the runner (confirm, admin requests)
    /// and wakes the saga.
    pub async fn append(&self, id: Uuid, event: Event) -> Result<(), EngineError> {
        self.append_with(id, event, Vec::new()).await
    }

    /// `append` with `also` in the same commit (an admin request settled
    /// together with the event it caused).
    async fn append_with(
        &self,
        id: Uuid,
        event: Event,
        also: Vec<WriteOp>,
    ) -> Result<(), EngineError> {
        self.inner.check_running()?;
        let now = self.inner.clock.now();
        let (mut saga, seq) = runner::load(&self.inner, id)?;
        saga.apply(&event)?;
        let mut ops = vec![WriteOp::AppendEvents {
            workflow: id,
            expected_seq: seq,
            events: vec![runner::new_event(&event, now)?],
            projection: Some(runner::projection(&saga, now)?),
        }];
        ops.extend(also);
        self.inner
            .store
            .commit(ops)
            .await
            .map_err(|e| self.inner.store_failed(e))?;
        self.inner.notify_step(&saga, seq + 1);
        self.spawn_drive(id);
        Ok(())
    }

    /// The workflow as callers see it.
    pub fn get(&self, id: Uuid) -> Result<WorkflowView, EngineError> {
        let row = self
            .inner
            .store
            .workflow(id)?
            .ok_or(EngineError::UnknownWorkflow { id })?;
        WorkflowView::of(row)
    }

    pub fn list(&self, filter: &WorkflowFilter) -> Result<Vec<WorkflowView>, EngineError> {
        self.inner
            .store
            .list_workflows(filter)?
            .into_iter()
            .map(WorkflowView::of)
            .collect()
    }

    pub fn events(&self, id: Uuid) -> Result<Vec<EventRow>, EngineError> {
        Ok(self.inner.store.events(id)?)
    }

    /// Waits until the workflow settles (terminal, or a hold that is held)
    /// or `deadline` passes, and returns it as it is then.
    pub async fn wait(&self, id: Uuid, deadline: Duration) -> Result<WorkflowView, EngineError> {
        self.wait_for(id, deadline, |state, terminal| terminal || state == "held")
            .await
    }

    /// Waits until the workflow is terminal or `deadline` passes.
    pub async fn wait_terminal(
        &self,
        id: Uuid,
        deadline: Duration,
    ) -> Result<WorkflowView, EngineError> {
        self.wait_for(id, deadline, |_, terminal| terminal).await
    }

    /// `done` is asked of a state and whether it is terminal, both of the
    /// workflow as read and of a step announced: a step that is not done is
    /// waited past without reading the workflow.
    async fn wait_for(
        &self,
        id: Uuid,
        deadline: Duration,
        done: impl Fn(&str, bool) -> bool,
    ) -> Result<WorkflowView, EngineError> {
        // Subscribed before the first read, so no change between is missed.
        let mut changes = Watching {
            inner: &self.inner,
            id,
            rx: self.inner.watch(id),
        };
        let mut unknown = changes.rx.borrow_and_update().unknown;
        let until = tokio::time::Instant::now() + deadline;
        loop {
            let current = self.get(id)?;
            if done(&current.state, current.terminal) {
                return Ok(current);
            }
            // A stopped engine makes no more progress: say so now.
            self.inner.check_running()?;
            loop {
                match tokio::time::timeout_at(until, changes.rx.changed()).await {
                    Ok(Ok(())) => {}
                    _ => return self.get(id),
                }
                let seen = *changes.rx.borrow_and_update();
                if seen.unknown != unknown {
                    unknown = seen.unknown;
                    break;
                }
                if seen.step.is_none_or(|s| done(s.state, s.terminal)) {
                    break;
                }
            }
        }
    }

    /// Plans `req` with who is free by Cal.com's slots and calsaga's claims
    /// (`Availability::free_at`, the search's own test). A reschedule keeps
    /// each segment's host where that host is free, and the booking it
    /// replaces blocks nothing.
    async fn plan(
        &self,
        req: &BookRequest,
        replacing: Option<&saga::OriginalBooking>,
    ) -> Result<BookingRequest, EngineError> {
        self.inner.check_running()?;
        let service = self.service(&req.service)?;
        let plan_request = PlanRequest {
            start: req.start,
            host: req.host,
            segment_hosts: req.segment_hosts.clone(),
            preferred: replacing
                .into_iter()
                .flat_map(|o| &o.segments)
                .map(|b| (b.segment.index, b.segment.host))
                .collect(),
            slot_interval_min: self.inner.config.slot_interval_min,
        };
        let free = self
            .inner
            .availability
            .free_at(
                service,
                req.start,
                replacing,
                self.inner.config.plan_slots_wait,
                |k, o| saga::may_pick(&service.segments[k], k as u16, &plan_request, o),
            )
            .await?;
        let plan = saga::plan(service, &plan_request, self.inner.clock.now(), |o, s, e| {
            free.is_free(o, s, e)
        })
        .map_err(|e| {
            let message = e.describe(&|h| self.inner.catalog.hosts().label(h));
            EngineError::Plan(e, message)
        })?;
        Ok(BookingRequest {
            plan,
            attendee: req.attendee.clone(),
            notes: req.notes.clone(),
        })
    }

    /// The bookings of `of` for a reschedule or cancel, refused when `of`
    /// is not booked, was already changed, or is being changed right now
    /// (callers hold `changes`, so two changes never race).
    fn original(
        &self,
        of: Uuid,
        action: &'static str,
    ) -> Result<saga::OriginalBooking, EngineError> {
        let (saga, _) = runner::load(&self.inner, of)?;
        let illegal = |state: &str| EngineError::Illegal {
            id: of,
            state: state.into(),
            action,
            needed: "booked",
        };
        let original = saga.as_original().map_err(|e| illegal(e.state))?;
        // The bookings it holds now (a failed move gives a segment a new
        // uid; the old one stays in the mirror as rescheduled).
        let mirror = self.inner.store.mirror(of)?;
        let live = |uid: &str| {
            mirror
                .iter()
                .any(|m| m.calcom_uid == uid && m.status == "accepted")
        };
        if !original.segments.iter().all(|s| live(&s.calcom_uid)) {
            return Err(illegal("cancelled or rescheduled"));
        }
        let running = self
            .inner
            .store
            .changes_of(of)?
            .into_iter()
            .find(|row| !TERMINAL_STATES.contains(&row.state.as_str()));
        if let Some(row) = running {
            return Err(EngineError::ChangeInProgress { id: of, by: row.id });
        }
        Ok(original)
    }

    /// A concurrent retry with the same key loses the race for the slot to
    /// its own first attempt (at the plan or at the commit of the claims);
    /// answer it as the retry it is. The one place a key explains a refusal.
    fn explain_with_key(
        &self,
        e: EngineError,
        key: Option<&Idempotency>,
    ) -> Result<EngineError, EngineError> {
        if !e.is_slot_taken() {
            return Ok(e);
        }
        Ok(self.known_key(key)?.unwrap_or(e))
    }

    /// A live key from an earlier request, as the error to answer with.
    fn known_key(&self, key: Option<&Idempotency>) -> Result<Option<EngineError>, EngineError> {
        let Some(mine) = key else { return Ok(None) };
        let Some(row) = self.inner.store.idempotency_key(&mine.key)? else {
            return Ok(None);
        };
        if row.is_expired(self.inner.clock.now()) {
            return Ok(None);
        }
        Ok(Some(EngineError::KeyUsed {
            key: row.key,
            workflow: row.workflow,
            same_request: row.fingerprint == mine.fingerprint,
        }))
    }

    /// Commits a new saga's first event with its claims, then drives it.
    async fn start_saga(
        &self,
        service: &str,
        first: Event,
        key: Option<Idempotency>,
    ) -> Result<(), EngineError> {
        self.inner.check_running()?;
        let now = self.inner.clock.now();
        let saga = Saga::start(&first)?;
        let mut ops = vec![
            WriteOp::CreateWorkflow {
                id: saga.workflow,
                kind: kind_name(saga.kind).into(),
                service: service.to_string(),
                state: saga.state_name().into(),
                at: now,
                projection: serde_json::to_string(&saga).map_err(|e| EngineError::CorruptLog {
                    id: saga.workflow,
                    detail: format!("cannot serialise the new saga: {e}"),
                })?,
            },
            WriteOp::AppendEvents {
                workflow: saga.workflow,
                expected_seq: 0,
                events: vec![runner::new_event(&first, now)?],
                projection: None,
            },
        ];
        // The key goes before the claims: a concurrent retry must fail on
        // the key (a replay), not on its own first attempt's claims.
        if let Some(k) = &key {
            ops.push(WriteOp::PutIdempotencyKey {
                key: k.key.clone(),
                fingerprint: k.fingerprint.clone(),
                workflow: saga.workflow,
                at: now,
                ttl: IDEMPOTENCY_TTL,
            });
        }
        ops.extend(
            saga::claim_change(&saga, &first)
                .iter()
                .map(runner::claim_op),
        );
        // The first step's intent rides in the same commit (one fsync fewer
        // per saga); the driver then starts with its call.
        let next = saga::advance(&saga, Vec::new(), now)?;
        ops.extend(runner::batch_ops(&next, 1, now)?);
        self.inner.store.commit(ops).await.map_err(|e| {
            self.inner.stop_if_fatal(&e);
            EngineError::key_used(e, key.as_ref())
        })?;
        self.inner
            .notify_step(&next.saga, 1 + next.events.len() as u64);
        let started = match next.then {
            Then::Call(call) => Some(runner::Started {
                seq: 1 + next.events.len() as u64,
                saga: next.saga,
                call,
            }),
            Then::WaitUntil(_) | Then::Idle => None,
        };
        self.spawn_driver(saga.workflow, started);
        Ok(())
    }

    /// Drives the saga in its own task unless a driver is already on it, in
    /// which case that driver is asked to look again when it is done.
    pub(crate) fn spawn_drive(&self, id: Uuid) {
        self.spawn_driver(id, None);
    }

    fn spawn_driver(&self, id: Uuid, mut started: Option<runner::Started>) {
        {
            let mut active = self.inner.active.lock().expect("active lock");
            if let Some(again) = active.get_mut(&id) {
                *again = true;
                return;
            }
            active.insert(id, false);
        }
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move {
            let Ok(_permit) = inner.permits.acquire().await else {
                return;
            };
            loop {
                if let Err(e) = runner::drive(&inner, id, started.take()).await {
                    tracing::error!(workflow = %id, error = %e, "saga stopped; it resumes on the next start");
                }
                let mut active = inner.active.lock().expect("active lock");
                if active.get(&id) == Some(&true) && inner.check_running().is_ok() {
                    active.insert(id, false);
                    continue;
                }
                active.remove(&id);
                drop(active);
                // Readers waiting for the engine to go quiet (the simulator)
                // learn that this driver is gone.
                inner.notify_workflow(id);
                break;
            }
        });
    }
}

impl WorkflowView {
    /// The view of a stored row.
    pub fn of(row: WorkflowRow) -> Result<WorkflowView, EngineError> {
        let saga: Saga =
            serde_json::from_str(&row.projection).map_err(|e| EngineError::CorruptLog {
                id: row.id,
                detail: format!("stored projection does not parse: {e}"),
            })?;
        Ok(WorkflowView {
            id: row.id,
            kind: row.kind,
            service: row.service,
            state: row.state,
            terminal: saga.is_terminal(),
            created_at: row.created_at,
            updated_at: row.updated_at,
            segments: saga.segments_view(),
            reason: reason(&saga),
        })
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Book => "book",
        Kind::Hold => "hold",
        Kind::Reschedule => "reschedule",
        Kind::Cancel => "cancel",
    }
}

/// Why the saga was compensated or failed, when it was.
pub fn reason(saga: &Saga) -> Option<String> {
    match (&saga.failure, &saga.phase) {
        (Some(failure), _) => Some(failure.clone()),
        (None, Phase::Compensating { reason } | Phase::Compensated { reason }) => {
            Some(reason.clone())
        }
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests;
