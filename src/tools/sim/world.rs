//! One simulated run: the real engine (store on a scratch file, client,
//! runner, recovery) against the in-process mock, with every call and sleep
//! parked at the `gate` and one seeded RNG choosing what happens next: the
//! next request, which parked call is answered, with which fault, and when
//! the process "crashes" (every task of the engine dropped mid-await, then a
//! fresh engine started on the same file). It never judges the outcome:
//! `invariants` does.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use super::faults::{CrashPlan, Fault, Mode};
use super::gate::{Gate, GatedClock, GatedTransport, Reply};
use super::{KEY, Op, Plan, RunStats, Salon, ScratchDir, SimError};
use crate::calcom::{ApiRequest, RetryPolicy, TransportError};
use crate::catalog::Catalog;
use crate::clock::{Clock, SimClock};
use crate::mock::{Mock, MockConfig};
use crate::runtime::{BookRequest, Engine, EngineConfig, EngineError, Idempotency, MoveRequest};
use crate::saga::Attendee;
use crate::store::{Store, StoreConfig, TimerRow};

/// How long the engine may stay busy without parking at the gate (real
/// time): past it the run is reported stuck instead of hanging.
const QUIET_WAIT: Duration = Duration::from_secs(30);
/// Crashes per random run; more would starve progress.
const CRASHES_MAX: u32 = 3;
/// Scheduler steps after the last request (faults healed) before the run
/// counts as not live (I3).
const HEALED_STEPS_MAX: u64 = 5_000;
/// Simulated time after the last request by which every saga must end (I3).
const HEALED_SIM_HOURS_MAX: i64 = 72;
/// Scheduler steps of one run in all: a bound for the faulty part too
/// (requests are issued at random steps, so it normally ends far sooner).
const STEPS_MAX: u64 = 200_000;
/// Hold length the plans ask for.
pub const HOLD_MIN: u32 = 10;

type TimerKey = (i64, Uuid, DateTime<Utc>);

/// How a life of the engine ended.
enum LifeEnd {
    Crashed,
    Done,
    /// Healed, but not every saga ended within the bounds (I3).
    NotLive(String),
}

/// A workflow the simulation started, and what it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub id: Uuid,
    pub op: &'static str,
}

/// Everything a run knows across engine lives.
pub struct World {
    pub mock: Arc<Mock>,
    pub clock: Arc<SimClock>,
    pub dir: ScratchDir,
    catalog: Arc<Catalog>,
    ops: Vec<Op>,
    next_op: usize,
    rng: SmallRng,
    seed: u64,
    reserve_min: Option<u32>,
    mode: Mode,
    pub started: Vec<Started>,
    /// Idempotency-Key -> workflows the engine said it started for it.
    pub keys: BTreeMap<String, BTreeSet<Uuid>>,
    pub stats: RunStats,
    pub not_live: Option<String>,
    healed_at: Option<(u64, DateTime<Utc>)>,
    steps: u64,
    /// Requests in flight that land at Cal.com after this many more steps,
    /// or as soon as simulated time is about to move (crashes included).
    late: Vec<(u32, ApiRequest)>,
}

impl World {
    pub fn new(plan: &Plan, catalog: Arc<Catalog>, mode: Mode) -> Result<World, SimError> {
        let config = MockConfig {
            fault_seed: plan.seed,
            ..MockConfig::default()
        };
        let Salon { mock, clock } =
            Salon::with(config).map_err(|e| SimError::Setup(format!("mock: {e}")))?;
        Ok(World {
            mock,
            clock,
            dir: ScratchDir::new(plan.seed)?,
            catalog,
            ops: plan.ops.clone(),
            next_op: 0,
            rng: SmallRng::seed_from_u64(plan.seed),
            seed: plan.seed,
            reserve_min: plan.reserve_min,
            mode,
            started: Vec::new(),
            keys: BTreeMap::new(),
            stats: RunStats::default(),
            not_live: None,
            healed_at: None,
            steps: 0,
            late: Vec::new(),
        })
    }

    pub fn db_path(&self) -> std::path::PathBuf {
        self.dir.path().join("calsaga.db")
    }

    /// Runs engine lives until one ends without a crash.
    pub fn run(&mut self) -> Result<(), SimError> {
        loop {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| SimError::Setup(format!("tokio runtime: {e}")))?;
            let end = runtime.block_on(self.life());
            // Dropping the runtime drops every task of the engine mid-await:
            // the in-process equivalent of kill -9.
            drop(runtime);
            match end? {
                LifeEnd::Crashed => self.stats.crashes += 1,
                LifeEnd::Done => return Ok(()),
                LifeEnd::NotLive(why) => {
                    self.not_live = Some(why);
                    return Ok(());
                }
            }
        }
    }

    fn engine(&self, gate: &Arc<Gate>) -> Result<Engine, SimError> {
        // Only the simulation and one saga at a time read: two readers do.
        let config = StoreConfig {
            read_pool_max: 2,
            ..StoreConfig::default()
        };
        let store = Store::open(self.db_path(), config)
            .map_err(|e| SimError::Setup(format!("store: {e}")))?;
        let clock: Arc<dyn Clock> = Arc::new(GatedClock(gate.clone()));
        let client = Salon::client_over(
            Arc::new(GatedTransport(gate.clone())),
            KEY,
            RetryPolicy::default(),
            clock.clone(),
            self.seed,
        );
        let engine = Engine::new(
            store,
            Arc::new(client),
            clock,
            self.catalog.clone(),
            EngineConfig {
                sagas_concurrent_max: 4096,
                in_task_wait_max: Duration::from_secs(120),
                // Due timers are fired by the simulation (`fire_timers`);
                // the engine's own loop looks once at start, then sleeps.
                timer_poll: Duration::from_secs(24 * 3600),
                reserve_min: self.reserve_min,
                rng_seed: self.seed,
                // A new id stream per life: a restarted engine must not
                // hand out the ids of the one that crashed.
                id_seed: Some(self.seed.rotate_left(17) ^ u64::from(self.stats.crashes)),
                // The start-up orphan scan is a task beside the saga drivers
                // that the gate does not schedule, so it would race them; the
                // simulated database is never restored from an older copy,
                // and the scan has its own tests (runtime::tests, it::restore).
                orphan_scan_on_start: false,
                // The gate parks every Cal.com call until the simulation
                // steps it, so a booking cannot wait for slots while being
                // planned; it plans from claims and fails over instead.
                plan_slots_wait: None,
                ..EngineConfig::default()
            },
        );
        engine
            .start()
            .map_err(|e| SimError::Setup(format!("engine start (recovery): {e}")))?;
        Ok(engine)
    }

    async fn life(&mut self) -> Result<LifeEnd, SimError> {
        let gate = Arc::new(Gate::new(self.clock.clone()));
        let engine = self.engine(&gate)?;
        let mut fired = HashSet::new();
        loop {
            quiesce(&engine, &gate).await?;
            if let Some(why) = self.check_live(&gate) {
                return Ok(LifeEnd::NotLive(why));
            }
            self.steps += 1;
            if self.steps > STEPS_MAX {
                return Err(SimError::Stuck(format!(
                    "{STEPS_MAX} scheduler steps without finishing the run"
                )));
            }
            self.land_late(false);
            let op_left = self.next_op < self.ops.len();
            let prefer_op = op_left && self.mode.prefers_op(&mut self.rng);
            if prefer_op {
                self.issue(&engine).await?;
            } else if gate.calls_parked() > 0 {
                if self.answer(&gate) {
                    engine.shutdown();
                    return Ok(LifeEnd::Crashed);
                }
            } else if gate.next_wake().is_some() {
                self.land_late(true);
                gate.wake_earliest();
            } else if op_left && self.mode.ops_before_timers() {
                self.issue(&engine).await?;
            } else if self.fire_timers(&engine, &mut fired)? {
                self.stats.timers += 1;
            } else if op_left {
                self.issue(&engine).await?;
            } else {
                engine.shutdown();
                return Ok(LifeEnd::Done);
            }
        }
    }

    /// Once every request is in, faults stop; from then on the run must end
    /// within bounds (I3).
    fn check_live(&mut self, gate: &Gate) -> Option<String> {
        if self.next_op < self.ops.len() {
            return None;
        }
        let (steps0, at0) = *self.healed_at.get_or_insert((self.steps, self.clock.now()));
        let steps = self.steps - steps0;
        let hours = (self.clock.now() - at0).num_hours();
        (steps > HEALED_STEPS_MAX || hours > HEALED_SIM_HOURS_MAX).then(|| {
            format!(
                "after faults healed, {steps} steps and {hours} simulated hours passed with \
                 {} calls still parked",
                gate.calls_parked()
            )
        })
    }

    fn healed(&self) -> bool {
        self.next_op >= self.ops.len()
    }

    /// Answers one parked call; true when the process crashes at it.
    fn answer(&mut self, gate: &Gate) -> bool {
        let rng = &mut self.rng;
        let Some(call) = gate.take_call(|n| rng.gen_range(0..n)) else {
            return false;
        };
        self.stats.calls += 1;
        let healed = self.healed();
        let (fault, mut crash) = self.mode.decide(&call.request, healed, &mut self.rng);
        if self.stats.crashes >= CRASHES_MAX && matches!(self.mode, Mode::Random(_)) {
            crash = CrashPlan::No;
        }
        if let Some(name) = fault.name() {
            *self.stats.faults.entry(name).or_default() += 1;
        }
        match crash {
            CrashPlan::BeforeSend => return true,
            CrashPlan::AfterCall => {
                drop(self.exchange(&call.request, fault));
                return true;
            }
            CrashPlan::No => {}
        }
        let reply = self.exchange(&call.request, fault);
        // A task dropped meanwhile needs no answer.
        let _ = call.reply.send(reply);
        false
    }

    /// What Cal.com (the mock) answers `request` under `fault`.
    fn exchange(&mut self, request: &ApiRequest, fault: Fault) -> Reply {
        let timeout = Err(TransportError::MaybeSent {
            reason: "simulated timeout: no reply from Cal.com".into(),
        });
        match fault {
            Fault::Timeout => return timeout,
            Fault::LateLanding => {
                self.late.push((self.rng.gen_range(1..=3), request.clone()));
                return timeout;
            }
            _ => {}
        }
        self.mock.clear_faults();
        if let Some(rule) = fault.rule() {
            self.mock
                .add_faults(vec![rule])
                .expect("the simulator's fault rules are valid");
        }
        let reply = self.mock.handle(request);
        self.mock.clear_faults();
        if !reply.latency.is_zero() {
            self.land_late(true);
            self.clock.advance(reply.latency);
        }
        reply.response.ok_or_else(|| TransportError::MaybeSent {
            reason: "simulated lost reply: Cal.com applied the request".into(),
        })
    }

    /// Lands the late requests whose steps ran out (all of them when `all`).
    fn land_late(&mut self, all: bool) {
        let mut kept = Vec::with_capacity(self.late.len());
        for (steps, request) in std::mem::take(&mut self.late) {
            if all || steps <= 1 {
                // Its reply went to a request nobody waits for any more.
                drop(self.mock.handle(&request));
            } else {
                kept.push((steps - 1, request));
            }
        }
        self.late = kept;
    }

    /// Wakes the sagas parked on the earliest durable timer, moving the
    /// clock there; false when no timer is left to fire.
    /// `fired` keys timers by (id, workflow, due): SQLite reuses the id of
    /// a deleted row, so an id alone may name a new timer.
    fn fire_timers(
        &mut self,
        engine: &Engine,
        fired: &mut HashSet<TimerKey>,
    ) -> Result<bool, SimError> {
        self.land_late(true);
        let far = self.clock.now() + chrono::Duration::days(365);
        let timers = engine
            .store()
            .due_timers(far, 4096)
            .map_err(|e| SimError::Engine(e.to_string()))?;
        let key = |t: &TimerRow| (t.id, t.workflow, t.due_at);
        let Some(first) = timers.iter().find(|t| !fired.contains(&key(t))) else {
            return Ok(false);
        };
        if first.due_at > self.clock.now() {
            self.clock.set(first.due_at);
        }
        let now = self.clock.now();
        for t in timers.iter().filter(|t| t.due_at <= now) {
            if fired.insert(key(t)) {
                engine.spawn_drive(t.workflow);
            }
        }
        Ok(true)
    }

    async fn issue(&mut self, engine: &Engine) -> Result<(), SimError> {
        let op = self.ops[self.next_op].clone();
        self.next_op += 1;
        self.mode.op_issued(self.next_op);
        let result = match &op {
            Op::Book {
                service,
                start,
                key,
            } => {
                let key = key.map(|k| Idempotency {
                    key: format!("key-{k}"),
                    fingerprint: format!("{service}@{start}"),
                });
                let id = engine.book(request(service, *start), key.clone()).await;
                if let (Ok(id), Some(k)) = (&id, key) {
                    self.keys.entry(k.key).or_default().insert(*id);
                }
                id.map(Some)
            }
            Op::Hold { service, start } => engine
                .hold(request(service, *start), HOLD_MIN, None)
                .await
                .map(Some),
            Op::Confirm { pick } => match self.pick(engine, *pick, &["held"]) {
                Some(id) => engine.confirm(id).await.map(|()| None),
                None => Ok(None),
            },
            Op::Reschedule { pick, start } => {
                match self.pick(engine, *pick, &["booked", "rescheduled"]) {
                    Some(id) => reschedule(engine, id, *start).await,
                    None => Ok(None),
                }
            }
            Op::Push { pick } => {
                let picked = self.pick(engine, *pick, &["booked", "rescheduled"]);
                let first = picked.and_then(|id| {
                    let view = engine.get(id).ok()?;
                    Some((id, view.segments.first()?.segment.start))
                });
                match first {
                    Some((id, start)) => {
                        reschedule(engine, id, start + chrono::Duration::minutes(15)).await
                    }
                    None => Ok(None),
                }
            }
            Op::Cancel { pick } => match self.pick(engine, *pick, &["booked", "rescheduled"]) {
                Some(id) => engine.cancel(id, "simulated".into()).await.map(Some),
                None => Ok(None),
            },
        };
        match result {
            Ok(Some(id)) => {
                self.stats.sagas += 1;
                self.started.push(Started { id, op: op.name() });
            }
            Ok(None) => {}
            Err(e) if refused(&e) => self.stats.refused += 1,
            Err(e) => return Err(SimError::Engine(format!("{} failed: {e}", op.name()))),
        }
        Ok(())
    }

    /// One of the started workflows now in one of `states`, or None.
    fn pick(&self, engine: &Engine, pick: u8, states: &[&str]) -> Option<Uuid> {
        let fits: Vec<Uuid> = self
            .started
            .iter()
            .filter(|s| {
                engine
                    .get(s.id)
                    .is_ok_and(|v| states.contains(&v.state.as_str()))
            })
            .map(|s| s.id)
            .collect();
        (!fits.is_empty()).then(|| fits[usize::from(pick) % fits.len()])
    }
}

async fn reschedule(
    engine: &Engine,
    id: Uuid,
    start: DateTime<Utc>,
) -> Result<Option<Uuid>, EngineError> {
    let to = MoveRequest {
        start,
        host: None,
        segment_hosts: BTreeMap::new(),
    };
    engine.reschedule(id, to, None).await.map(Some)
}

/// A refusal a caller is meant to get (the time is taken, the booking is
/// not in a state for this): part of a correct run, not a fault of it.
fn refused(e: &EngineError) -> bool {
    matches!(
        e,
        EngineError::SlotTaken(_)
            | EngineError::Plan(..)
            | EngineError::KeyUsed { .. }
            | EngineError::Illegal { .. }
            | EngineError::ChangeInProgress { .. }
            | EngineError::Transition(_)
            | EngineError::Advance(_)
    )
}

fn request(service: &str, start: DateTime<Utc>) -> BookRequest {
    BookRequest {
        service: service.into(),
        start,
        attendee: Attendee {
            name: "Sim Client".into(),
            email: Some("sim@example.com".into()),
            phone: None,
            time_zone: "Europe/Berlin".into(),
        },
        host: None,
        segment_hosts: BTreeMap::new(),
        notes: None,
    }
}

/// Waits until every saga with a driver is parked at the gate (or none is
/// running): only then is the next choice the simulation's alone.
async fn quiesce(engine: &Engine, gate: &Gate) -> Result<(), SimError> {
    let mut changes = engine.changes();
    let mut arrivals = gate.arrivals();
    loop {
        changes.borrow_and_update();
        arrivals.borrow_and_update();
        let active = engine.drivers_active();
        if gate.parked() >= active {
            return Ok(());
        }
        let woke = tokio::time::timeout(QUIET_WAIT, async {
            tokio::select! {
                _ = changes.changed() => {}
                _ = arrivals.changed() => {}
            }
        })
        .await;
        if woke.is_err() {
            return Err(SimError::Stuck(format!(
                "{active} saga drivers active but only {} parked after {QUIET_WAIT:?}",
                gate.parked()
            )));
        }
    }
}

impl World {
    /// Whether a crash-point run reached its step.
    pub fn reached(&self) -> bool {
        self.mode.reached()
    }
}
