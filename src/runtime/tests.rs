//! The engine against the embedded mock, in-process: real store on a temp
//! file, real client, real mock state; simulated time so retries and
//! backoffs take none. `World` is the one door these tests use.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Semaphore;

use super::*;
use crate::availability::Start;
use crate::calcom::wire::{self, Booking};
use crate::calcom::{ApiRequest, ApiResponse, Client, Transport, TransportError};
use crate::clock::SimClock;
use crate::mock::{FaultRule, Mock, MockTransport};
use crate::store::{OrphanState, StoreConfig};

const WAIT: Duration = Duration::from_secs(20);

use crate::tools::sim::{Salon, at};

struct World {
    mock: Arc<Mock>,
    clock: Arc<SimClock>,
    dir: tempfile::TempDir,
    store_config: StoreConfig,
}

impl World {
    fn new() -> World {
        let Salon { mock, clock } = Salon::new();
        World {
            mock,
            clock,
            dir: tempfile::tempdir().unwrap(),
            store_config: StoreConfig::default(),
        }
    }

    fn client(&self, transport: Arc<dyn Transport>) -> Client {
        self.salon().client(transport)
    }

    fn salon(&self) -> Salon {
        Salon {
            mock: self.mock.clone(),
            clock: self.clock.clone(),
        }
    }

    /// An engine over this world's database, talking to the mock through
    /// `transport` (the plain in-process mock when None).
    fn engine_with(&self, transport: Option<Arc<dyn Transport>>) -> Engine {
        // Simulated time only moves when slept on, so every wait is slept
        // in-task rather than parked on a timer polled in real time.
        self.build_engine(transport, Duration::from_secs(24 * 3600))
    }

    fn build_engine(
        &self,
        transport: Option<Arc<dyn Transport>>,
        in_task_wait_max: Duration,
    ) -> Engine {
        let transport =
            transport.unwrap_or_else(|| Arc::new(MockTransport::new(self.mock.clone())));
        let store = Store::open(
            self.dir.path().join("calsaga.db"),
            self.store_config.clone(),
        )
        .unwrap();
        let engine = Engine::new(
            store,
            Arc::new(self.client(transport)),
            self.clock.clone(),
            crate::tools::sim::catalog(),
            EngineConfig {
                in_task_wait_max,
                ..EngineConfig::default()
            },
        );
        engine.start().unwrap();
        engine
    }

    fn engine(&self) -> Engine {
        self.engine_with(None)
    }

    /// An engine that parks every wait on a durable timer instead of
    /// sleeping through it, so simulated time stands still (holds stay held).
    fn parking_engine(&self) -> Engine {
        self.build_engine(None, Duration::ZERO)
    }

    /// Live bookings calsaga made for `workflow`, per the mock.
    fn live_of(&self, workflow: Uuid) -> Vec<Booking> {
        let id = workflow.to_string();
        self.mock
            .view()
            .bookings
            .into_iter()
            .filter(|b| b.status.is_live() && b.metadata.get(wire::META_WORKFLOW) == Some(&id))
            .collect()
    }

    fn assert_no_double_booking(&self) {
        let overlaps = self.mock.view().overlaps;
        assert!(
            overlaps.is_empty(),
            "double bookings in the mock: {overlaps:?}"
        );
    }

    /// Searches `service`'s availability on `day`'s UTC date, as a client
    /// does before it books; the slots stay cached, so a booking planned
    /// next sees Cal.com as it was then (another client may book between).
    async fn search(&self, engine: &Engine, service: &str, day: &str) -> Vec<Start> {
        let date: chrono::NaiveDate = day.parse().unwrap();
        let q = crate::availability::Search {
            service: engine.catalog().get(service).unwrap(),
            start: date,
            end: date,
            zone: chrono_tz::UTC,
            staff: None,
            fresh: true,
        };
        engine.availability().search(&q).await.unwrap().starts
    }

    /// Books `event_type_id` at `start` directly in Cal.com, as another client would.
    async fn occupy(&self, event_type_id: u64, start: &str) {
        self.book_directly(event_type_id, start, Default::default())
            .await;
    }

    /// A booking made in Cal.com outside any saga, carrying `metadata`.
    async fn book_directly(
        &self,
        event_type_id: u64,
        start: &str,
        metadata: std::collections::BTreeMap<String, String>,
    ) -> Booking {
        crate::tools::sim::tests::book_at_mock(
            &self.mock,
            self.clock.clone(),
            event_type_id,
            at(start),
            metadata,
        )
        .await
    }
}

/// A booking request for `service` at `start` (RFC 3339), as a front end sends it.
pub(crate) fn request(service: &str, start: &str) -> BookRequest {
    BookRequest {
        service: service.into(),
        start: at(start),
        attendee: Attendee {
            name: "Jo Client".into(),
            email: Some("jo@example.com".into()),
            phone: None,
            time_zone: "Europe/Berlin".into(),
        },
        host: None,
        segment_hosts: Default::default(),
        notes: Some("first visit".into()),
    }
}

/// The kinds of a workflow's events, in order.
fn kinds(engine: &Engine, id: Uuid) -> Vec<String> {
    engine
        .events(id)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

async fn book_and_wait(engine: &Engine, service: &str, start: &str) -> WorkflowView {
    let id = engine.book(request(service, start), None).await.unwrap();
    engine.wait(id, WAIT).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_composite_service_is_booked_as_one_cal_booking_per_segment() {
    let world = World::new();
    let engine = world.engine();
    let done = book_and_wait(&engine, "colour-and-cut", "2030-03-05T10:00:00Z").await;
    assert_eq!(done.state, "booked", "{done:?}");
    let live = world.live_of(done.id);
    assert_eq!(live.len(), 2);
    let mut starts: Vec<_> = live.iter().map(|b| (b.start, b.event_type_id)).collect();
    starts.sort();
    // Colour with Anna at 10:00, cut 30 + 40 minutes later with a stylist.
    assert_eq!(starts[0], (at("2030-03-05T10:00:00Z"), 101));
    assert_eq!(starts[1].0, at("2030-03-05T11:10:00Z"));
    assert!([201, 301].contains(&starts[1].1));
    assert!(done.segments.iter().all(|s| s.calcom_uid.is_some()));
    let mirror = engine.store().mirror(done.id).unwrap();
    assert_eq!(mirror.len(), 2);
    assert!(mirror.iter().all(|m| m.status == "accepted"));
}

/// Waiting on sagas leaves nothing behind, however each wait ends (answer,
/// timeout, or a caller that gave up), so a server that answers for years
/// keeps no channel per booking it ever waited on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_on_many_sagas_leave_no_waiter_behind() {
    let world = World::new();
    let engine = world.engine();
    let mut ids = Vec::new();
    for (i, start) in [
        "2030-03-05T09:00:00Z",
        "2030-03-06T09:00:00Z",
        "2030-03-07T09:00:00Z",
    ]
    .into_iter()
    .enumerate()
    {
        let id = engine.book(request("haircut", start), None).await.unwrap();
        // One answered, one timed out at once, one abandoned mid-wait.
        match i {
            0 => assert_eq!(
                engine.wait_terminal(id, WAIT).await.unwrap().state,
                "booked"
            ),
            1 => drop(engine.wait_terminal(id, Duration::ZERO).await),
            _ => drop(
                tokio::time::timeout(Duration::from_millis(1), engine.wait_terminal(id, WAIT))
                    .await,
            ),
        }
        ids.push(id);
    }
    for id in ids {
        engine.wait_terminal(id, WAIT).await.unwrap();
    }
    assert!(engine.inner.waiters.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_second_segment_cancels_the_first_and_compensates() {
    let world = World::new();
    let engine = world.engine();
    world.search(&engine, "colour-and-cut", "2030-03-05").await;
    // Both stylists get booked in Cal.com after the search, before the cut.
    world.occupy(201, "2030-03-05T11:00:00Z").await;
    world.occupy(301, "2030-03-05T11:00:00Z").await;
    let done = book_and_wait(&engine, "colour-and-cut", "2030-03-05T10:00:00Z").await;
    assert_eq!(done.state, "compensated", "{done:?}");
    let reason = done.reason.unwrap_or_default();
    assert!(reason.contains("already has booking"), "{reason}");
    assert!(
        world.live_of(done.id).is_empty(),
        "the colour booking was cancelled"
    );
    let cancelled = world
        .mock
        .view()
        .bookings
        .into_iter()
        .filter(|b| b.metadata.get(wire::META_WORKFLOW) == Some(&done.id.to_string()))
        .count();
    assert_eq!(
        cancelled, 1,
        "the colour segment was booked, then cancelled"
    );
    assert!(
        engine
            .store()
            .claims(done.id)
            .unwrap()
            .iter()
            .all(|c| !c.live)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reschedule_books_the_new_times_before_cancelling_the_old() {
    let world = World::new();
    let engine = world.engine();
    let first = book_and_wait(&engine, "colour-and-cut", "2030-03-05T10:00:00Z").await;
    let moved = reschedule_and_wait(&engine, first.id, "2030-03-06T12:00:00Z").await;
    assert_eq!(moved.state, "rescheduled", "{moved:?}");
    assert!(world.live_of(first.id).is_empty(), "old segments cancelled");
    let new: Vec<_> = world.live_of(moved.id).iter().map(|b| b.start).collect();
    assert_eq!(new.len(), 2);
    assert!(new.contains(&at("2030-03-06T12:00:00Z")));
    world.assert_no_double_booking();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_reschedule_leaves_the_old_booking_intact() {
    let world = World::new();
    let engine = world.engine();
    let first = book_and_wait(&engine, "colour-and-cut", "2030-03-05T10:00:00Z").await;
    world.search(&engine, "colour-and-cut", "2030-03-06").await;
    world.occupy(201, "2030-03-06T13:00:00Z").await;
    world.occupy(301, "2030-03-06T13:00:00Z").await;
    let moved = reschedule_and_wait(&engine, first.id, "2030-03-06T12:00:00Z").await;
    assert_eq!(moved.state, "compensated", "{moved:?}");
    assert_eq!(
        world.live_of(first.id).len(),
        2,
        "the original is untouched"
    );
    assert!(world.live_of(moved.id).is_empty());
}

/// The Cal.com booking behind one segment of a workflow's view.
fn calcom_booking(world: &World, view: &WorkflowView, k: usize) -> Booking {
    let uid = view.segments[k].calcom_uid.clone().unwrap();
    world
        .mock
        .view()
        .bookings
        .into_iter()
        .find(|b| b.uid == uid)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_by_fifteen_minutes_moves_every_segment_with_its_people() {
    let world = World::new();
    let engine = world.engine();
    let first = book_and_wait(&engine, "colour-and-cut", "2030-03-05T10:00:00Z").await;
    let pushed = reschedule_and_wait(&engine, first.id, "2030-03-05T10:15:00Z").await;
    assert_eq!(pushed.state, "rescheduled", "{pushed:?}");
    assert_eq!(
        hosts(&pushed.segments),
        hosts(&first.segments),
        "same people"
    );
    for (k, old) in first.segments.iter().enumerate() {
        let new = calcom_booking(&world, &pushed, k);
        assert!(new.status.is_live(), "segment {k}: {new:?}");
        assert_eq!(new.start, old.segment.start + chrono::Duration::minutes(15));
        // Cal.com's own reschedule made it from the original, which it ended.
        assert_eq!(new.rescheduled_from_uid, old.calcom_uid);
        let original = calcom_booking(&world, &first, k);
        assert!(
            !original.status.is_live(),
            "original {k} ended: {original:?}"
        );
    }
    let (saga, _) = runner::load(&engine.inner, pushed.id).unwrap();
    assert!(saga.planned().iter().all(|p| p.moves.is_some()));
    world.assert_no_double_booking();
}

/// A later move goes last segment first, so a stylist's next segment
/// clears the time the one before moves into.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_of_back_to_back_segments_with_one_stylist_moves_the_later_one_first() {
    let world = World::new();
    let engine = world.engine();
    let first = book_and_wait(&engine, "highlights-toner-blowdry", "2030-03-05T09:00:00Z").await;
    assert_eq!(first.state, "booked", "{first:?}");
    let pushed = reschedule_and_wait(&engine, first.id, "2030-03-05T09:15:00Z").await;
    assert_eq!(pushed.state, "rescheduled", "{pushed:?}");
    assert_eq!(hosts(&pushed.segments), hosts(&first.segments));
    let (saga, _) = runner::load(&engine.inner, pushed.id).unwrap();
    let moved: Vec<u16> = saga.make_order();
    assert_eq!(moved, vec![2, 1, 0], "last segment first: {moved:?}");
    world.assert_no_double_booking();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_refused_after_one_move_moves_it_back_and_the_original_keeps_its_booking() {
    let world = World::new();
    let engine = world.engine();
    let first = book_and_wait(&engine, "colour-and-cut", "2030-03-05T10:00:00Z").await;
    world.search(&engine, "colour-and-cut", "2030-03-05").await;
    // A later move goes last first: the cut moves, then Cal.com refuses
    // the colour, which nobody else does.
    let mut rule = FaultRule::on("POST /v2/bookings/{uid}/reschedule");
    rule.nth = Some(2);
    rule.status = Some(400);
    world.mock.add_faults(vec![rule]).unwrap();
    let pushed = reschedule_and_wait(&engine, first.id, "2030-03-05T10:15:00Z").await;
    assert_eq!(pushed.state, "compensated", "{pushed:?}");
    let original = engine.get(first.id).unwrap();
    assert_eq!(original.state, "booked");
    let cut = calcom_booking(&world, &original, 1);
    assert!(cut.status.is_live(), "{cut:?}");
    assert_eq!(
        cut.start, first.segments[1].segment.start,
        "back at its time"
    );
    assert_ne!(
        original.segments[1].calcom_uid, first.segments[1].calcom_uid,
        "the original's log names the booking that is live now"
    );
    assert_eq!(
        original.segments[0].calcom_uid, first.segments[0].calcom_uid,
        "the colour never moved"
    );
    let mirror = engine.store().mirror(first.id).unwrap();
    assert!(
        mirror
            .iter()
            .any(|m| Some(&m.calcom_uid) == cut_uid(&original) && m.status == "accepted"),
        "{mirror:?}"
    );
    world.assert_no_double_booking();
    // Still a booking like any other: it can be moved again.
    let later = reschedule_and_wait(&engine, first.id, "2030-03-06T12:00:00Z").await;
    assert_eq!(later.state, "rescheduled", "{later:?}");
    assert!(world.live_of(first.id).is_empty(), "every original ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_whose_reply_is_lost_is_followed_to_its_new_booking_never_moved_twice() {
    let world = World::new();
    let engine = world.engine();
    let first = book_and_wait(&engine, "colour-and-cut", "2030-03-05T10:00:00Z").await;
    let mut rule = FaultRule::on("POST /v2/bookings/{uid}/reschedule");
    rule.nth = Some(1);
    rule.reply_lost = true;
    world.mock.add_faults(vec![rule]).unwrap();
    let pushed = reschedule_and_wait(&engine, first.id, "2030-03-05T10:15:00Z").await;
    assert_eq!(pushed.state, "rescheduled", "{pushed:?}");
    let kinds = kinds(&engine, pushed.id);
    assert!(
        kinds.contains(&"segment_outcome_unknown".into()),
        "{kinds:?}"
    );
    assert_eq!(
        kinds
            .iter()
            .filter(|k| *k == "segment_move_intended")
            .count(),
        2,
        "one move per segment, the lost one reconciled: {kinds:?}"
    );
    // A moved booking keeps the original's metadata.
    let live = world.live_of(first.id);
    assert_eq!(live.len(), 2, "one live booking per segment: {live:?}");
    assert!(live.iter().all(|b| b.rescheduled_from_uid.is_some()));
    world.assert_no_double_booking();
}

fn cut_uid(view: &WorkflowView) -> Option<&String> {
    view.segments[1].calcom_uid.as_ref()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_cancels_every_segment() {
    let world = World::new();
    let engine = world.engine();
    let booked = book_and_wait(&engine, "highlights-toner-blowdry", "2030-03-05T09:00:00Z").await;
    assert_eq!(booked.state, "booked", "{booked:?}");
    let cancel = engine
        .cancel(booked.id, "customer called".into())
        .await
        .unwrap();
    let cancel = engine.wait(cancel, WAIT).await.unwrap();
    assert_eq!(cancel.state, "cancelled", "{cancel:?}");
    assert!(world.live_of(booked.id).is_empty());
    let mirror = engine.store().mirror(booked.id).unwrap();
    assert!(mirror.iter().all(|m| m.status == "cancelled"), "{mirror:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_racing_bookings_of_one_composite_slot_book_exactly_one() {
    let world = World::new();
    let engine = world.engine();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let engine = engine.clone();
            tokio::spawn(async move {
                match engine
                    .book(request("colour-and-cut", "2030-03-05T10:00:00Z"), None)
                    .await
                {
                    Ok(id) => Some(engine.wait(id, WAIT).await.unwrap()),
                    Err(e) if e.is_slot_taken() => None,
                    Err(e) => panic!("unexpected error: {e}"),
                }
            })
        })
        .collect();
    let mut booked = 0;
    for task in tasks {
        if let Some(view) = task.await.unwrap() {
            assert!(
                ["booked", "compensated"].contains(&view.state.as_str()),
                "{view:?}"
            );
            booked += usize::from(view.state == "booked");
        }
    }
    assert_eq!(booked, 1);
    world.assert_no_double_booking();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_429s_still_books() {
    let world = World::new();
    let mut rule = FaultRule::on("POST /v2/bookings");
    rule.every = Some(1);
    rule.times = Some(6);
    rule.status = Some(429);
    world.mock.add_faults(vec![rule]).unwrap();
    let engine = world.engine();
    let done = book_and_wait(&engine, "colour-and-cut", "2030-03-05T10:00:00Z").await;
    assert_eq!(done.state, "booked", "{done:?}");
    assert_eq!(world.live_of(done.id).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_reply_is_reconciled_never_booked_twice() {
    let world = World::new();
    let mut rule = FaultRule::on("POST /v2/bookings");
    rule.nth = Some(2);
    rule.reply_lost = true;
    world.mock.add_faults(vec![rule]).unwrap();
    let engine = world.engine();
    let done = book_and_wait(&engine, "colour-and-cut", "2030-03-05T10:00:00Z").await;
    assert_eq!(done.state, "booked", "{done:?}");
    assert_eq!(world.live_of(done.id).len(), 2, "one booking per segment");
    let kinds = kinds(&engine, done.id);
    assert!(
        kinds.contains(&"segment_outcome_unknown".to_string()),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&"segment_reconciled".to_string()),
        "{kinds:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_before_any_saga_starts() {
    let world = World::new();
    let engine = world.engine();
    let unknown = engine
        .book(request("perm", "2030-03-05T10:00:00Z"), None)
        .await
        .unwrap_err();
    assert!(
        unknown
            .to_string()
            .contains("known services: colour-and-cut"),
        "{unknown}"
    );
    let past = engine
        .book(request("haircut", "2029-03-05T10:00:00Z"), None)
        .await
        .unwrap_err();
    assert!(matches!(past, EngineError::Plan(..)), "{past}");
    let unaligned = engine
        .book(request("haircut", "2030-03-05T10:07:00Z"), None)
        .await
        .unwrap_err();
    assert!(matches!(unaligned, EngineError::Plan(..)), "{unaligned}");
    let mut wrong_host = request("colour-and-cut", "2030-03-05T10:00:00Z");
    wrong_host.segment_hosts.insert(0, 4);
    assert!(matches!(
        engine.book(wrong_host, None).await,
        Err(EngineError::Plan(..))
    ));
    assert!(engine.list(&WorkflowFilter::default()).unwrap().is_empty());
    assert!(
        world
            .mock
            .view()
            .bookings
            .iter()
            .all(|b| b.attendees[0].name != "Jo Client")
    );
}

/// What becomes of the booking create that a crash cuts off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CutOff {
    /// Cal.com made the booking; the reply never came.
    Applied,
    /// The request never reached Cal.com.
    Lost,
    /// Cal.com will process it later (see `LateLanding`).
    Late,
}

/// Passes requests to the mock until the first booking create, which it
/// treats as `fate` says and then never answers: the process "dies" mid-call.
struct Gate {
    inner: MockTransport,
    fate: CutOff,
    /// A permit for every create that reached the gate.
    reached: Arc<Semaphore>,
    stashed: Arc<std::sync::Mutex<Option<ApiRequest>>>,
}

#[async_trait]
impl Transport for Gate {
    async fn send(&self, request: ApiRequest) -> Result<ApiResponse, TransportError> {
        if request.path == "/v2/bookings" && request.method == crate::calcom::Method::Post {
            match self.fate {
                CutOff::Applied => drop(self.inner.send(request.clone()).await),
                CutOff::Lost => {}
                CutOff::Late => *self.stashed.lock().unwrap() = Some(request.clone()),
            }
            self.reached.add_permits(1);
            std::future::pending::<()>().await;
        }
        self.inner.send(request).await
    }
}

impl World {
    /// Books `service` and "kills" the engine while its first create is in
    /// flight; returns the workflow and the create if it is to land late.
    fn crash_mid_create(&self, service: &str, fate: CutOff) -> (Uuid, Option<ApiRequest>) {
        let (ids, late) = self.crash_mid_creates(service, &["2030-03-05T10:00:00Z"], fate);
        (ids[0], late)
    }

    /// `crash_mid_create` for one saga per start, killed once every one of
    /// them has its first create in flight.
    fn crash_mid_creates(
        &self,
        service: &str,
        starts: &[&str],
        fate: CutOff,
    ) -> (Vec<Uuid>, Option<ApiRequest>) {
        let gate = Gate {
            inner: MockTransport::new(self.mock.clone()),
            fate,
            reached: Arc::new(Semaphore::new(0)),
            stashed: Arc::default(),
        };
        let (reached, stashed) = (gate.reached.clone(), gate.stashed.clone());
        let crashed = tokio::runtime::Runtime::new().unwrap();
        let ids = crashed.block_on(async {
            let engine = self.engine_with(Some(Arc::new(gate)));
            let mut ids = Vec::new();
            for start in starts {
                ids.push(engine.book(request(service, start), None).await.unwrap());
            }
            let all = u32::try_from(starts.len()).unwrap();
            tokio::time::timeout(WAIT, reached.acquire_many(all))
                .await
                .unwrap()
                .unwrap()
                .forget();
            ids
        });
        // Dropping the runtime drops every task mid-await, like kill -9.
        drop(crashed);
        let late = stashed.lock().unwrap().take();
        (ids, late)
    }

    /// Starts a new engine on the same database and waits for `id`.
    fn restart(&self, transport: Option<Arc<dyn Transport>>, id: Uuid) -> WorkflowView {
        let restarted = tokio::runtime::Runtime::new().unwrap();
        restarted.block_on(async {
            let engine = self.engine_with(transport);
            engine.wait(id, WAIT).await.unwrap()
        })
    }
}

/// A crash between the intent and the outcome of a create, with the booking
/// made or not: after restart the step is reconciled and the saga finishes
/// with exactly one booking per segment.
#[test]
fn a_crash_mid_create_is_reconciled_after_restart() {
    for fate in [CutOff::Applied, CutOff::Lost] {
        let world = World::new();
        let (id, _) = world.crash_mid_create("colour-and-cut", fate);
        let done = world.restart(None, id);
        let applied = fate == CutOff::Applied;
        assert_eq!(done.state, "booked", "applied={applied}: {done:?}");
        assert_eq!(
            world.live_of(id).len(),
            2,
            "applied={applied}: one booking per segment"
        );
        world.assert_no_double_booking();
    }
}

/// A mass recovery: every interrupted saga of one day and event type is
/// reconciled from one Cal.com listing (a real account allows 120 requests
/// a minute), and still ends with exactly one booking per segment.
#[test]
fn interrupted_sagas_of_one_day_are_reconciled_from_one_listing() {
    let starts = [
        "2030-03-06T09:00:00Z",
        "2030-03-06T10:00:00Z",
        "2030-03-06T11:00:00Z",
        "2030-03-06T12:00:00Z",
        "2030-03-06T13:00:00Z",
    ];
    // Each start's orphan scan lists once, then: Applied, found by the
    // first look; Lost, the first look is too early to believe "not
    // found", and the one after the settle window is shared too.
    for (fate, listings) in [(CutOff::Applied, 1 + 1), (CutOff::Lost, 1 + 2)] {
        let world = World::new();
        let (ids, _) = world.crash_mid_creates("haircut", &starts, fate);
        let lists = || world.mock.requests().get("GET /v2/bookings").copied();
        let before = lists().unwrap_or(0);
        // The restart comes a moment after the crash.
        world.clock.advance(Duration::from_secs(1));
        let restarted = tokio::runtime::Runtime::new().unwrap();
        let done: Vec<_> = restarted.block_on(async {
            let engine = world.engine();
            let mut done = Vec::new();
            for id in &ids {
                done.push(engine.wait(*id, WAIT).await.unwrap());
            }
            done
        });
        let hosts: BTreeSet<u64> = done.iter().map(|v| v.segments[0].segment.host).collect();
        assert_eq!(hosts.len(), 1, "one event type: {hosts:?}");
        for (id, view) in ids.iter().zip(&done) {
            assert_eq!(view.state, "booked", "{fate:?}: {view:?}");
            assert_eq!(world.live_of(*id).len(), 1, "{fate:?}: one booking");
        }
        assert_eq!(
            lists().unwrap_or(0) - before,
            listings,
            "{fate:?}: Cal.com listings for {} sagas",
            ids.len()
        );
        world.assert_no_double_booking();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_never_starts_a_second_saga() {
    let world = World::new();
    let engine = world.engine();
    let key = |fingerprint: &str| {
        Some(Idempotency {
            key: "k-1".into(),
            fingerprint: fingerprint.into(),
        })
    };
    let id = engine
        .book(request("haircut", "2030-03-05T10:00:00Z"), key("f1"))
        .await
        .unwrap();
    let again = engine
        .book(request("haircut", "2030-03-05T10:00:00Z"), key("f1"))
        .await;
    assert_eq!(
        again,
        Err(EngineError::KeyUsed {
            key: "k-1".into(),
            workflow: id,
            same_request: true
        })
    );
    let other = engine
        .book(request("haircut", "2030-03-06T10:00:00Z"), key("f2"))
        .await;
    assert!(matches!(
        other,
        Err(EngineError::KeyUsed {
            same_request: false,
            ..
        })
    ));
    assert_eq!(engine.list(&WorkflowFilter::default()).unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_is_changed_by_one_saga_at_a_time() {
    let world = World::new();
    let engine = world.engine();
    let booked = book_and_wait(&engine, "haircut", "2030-03-05T10:00:00Z").await;
    let cancel = engine.cancel(booked.id, "first".into()).await.unwrap();
    let second = engine.cancel(booked.id, "second".into()).await.unwrap_err();
    assert!(
        matches!(second, EngineError::ChangeInProgress { by, .. } if by == cancel)
            || matches!(second, EngineError::Illegal { .. }),
        "{second}"
    );
    engine.wait(cancel, WAIT).await.unwrap();
    let after = engine
        .reschedule(booked.id, to("2030-03-06T10:00:00Z"), None)
        .await
        .unwrap_err();
    assert!(
        after.to_string().contains("cancelled or rescheduled"),
        "{after}"
    );
}

/// A 10-minute hold of colour-and-cut on 2030-03-05 at 10:00 UTC.
async fn start_hold(engine: &Engine) -> Uuid {
    let req = request("colour-and-cut", "2030-03-05T10:00:00Z");
    engine.hold(req, 10, None).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_reserves_every_segment_and_confirm_books_it() {
    let world = World::new();
    let engine = world.parking_engine();
    let hold = start_hold(&engine).await;
    let held = engine.wait(hold, WAIT).await.unwrap();
    assert_eq!(held.state, "held", "{held:?}");
    assert_eq!(world.mock.view().reservations.len(), 2);
    engine.confirm(hold).await.unwrap();
    let done = engine.wait(hold, WAIT).await.unwrap();
    assert_eq!(done.state, "booked", "{done:?}");
    assert_eq!(world.live_of(hold).len(), 2);
    assert!(
        world.mock.view().reservations.is_empty(),
        "reservations released"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconfirmed_hold_expires_and_releases_its_reservations() {
    let world = World::new();
    let engine = world.engine();
    let hold = start_hold(&engine).await;
    // With simulated time the hold's expiry is slept through in-task.
    let done = engine.wait_terminal(hold, WAIT).await.unwrap();
    assert_eq!(done.state, "expired", "{done:?}");
    assert!(world.mock.view().reservations.is_empty());
    assert!(world.live_of(hold).is_empty());
    assert!(engine.store().claims(hold).unwrap().iter().all(|c| !c.live));
}

/// Replays a create that was cut off by a crash right after the restarted
/// engine's first look at Cal.com's bookings: the request landed late.
struct LateLanding {
    inner: MockTransport,
    stashed: std::sync::Mutex<Option<ApiRequest>>,
}

#[async_trait]
impl Transport for LateLanding {
    async fn send(&self, request: ApiRequest) -> Result<ApiResponse, TransportError> {
        let listing = request.method == crate::calcom::Method::Get
            && request.path.starts_with("/v2/bookings?");
        let reply = self.inner.send(request).await;
        let late = listing
            .then(|| self.stashed.lock().unwrap().take())
            .flatten();
        if let Some(create) = late {
            let _ = self.inner.send(create).await;
        }
        reply
    }
}

#[test]
fn a_create_that_lands_after_the_restart_looked_is_not_booked_twice() {
    let world = World::new();
    let (id, create) = world.crash_mid_create("haircut", CutOff::Late);
    let late = LateLanding {
        inner: MockTransport::new(world.mock.clone()),
        stashed: std::sync::Mutex::new(create),
    };
    let done = world.restart(Some(Arc::new(late)), id);
    assert_eq!(done.state, "booked", "{done:?}");
    assert_eq!(
        world.live_of(id).len(),
        1,
        "the late booking is the segment's booking"
    );
    world.assert_no_double_booking();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_engine_and_leaves_every_log_whole() {
    let mut world = World::new();
    // 192 KiB of database (the schema takes a part), then the "disk" is full.
    world.store_config.writer_test_sql = "PRAGMA max_page_count = 48";
    let engine = world.engine();
    let mut stopped = None;
    'fill: for day in 4..=9 {
        for hour in 9..16 {
            for minute in [0, 45] {
                let start = format!("2030-03-{day:02}T{hour:02}:{minute:02}:00Z");
                match engine.book(request("haircut", &start), None).await {
                    Ok(id) => {
                        if let Err(e) = engine.wait(id, WAIT).await {
                            stopped = Some(e);
                            break 'fill;
                        }
                    }
                    // Nobody free then (Ben is off on Mondays): the next start.
                    Err(EngineError::Plan(..)) => {}
                    Err(e) => {
                        stopped = Some(e);
                        break 'fill;
                    }
                }
            }
        }
    }
    let first = stopped.expect("the capped database filled up");
    assert!(
        matches!(first, EngineError::Store(_) | EngineError::Stopped(_)),
        "{first}"
    );
    let next = engine
        .book(request("haircut", "2030-03-11T10:00:00Z"), None)
        .await;
    let Err(refused @ EngineError::Stopped(_)) = next else {
        panic!("a stopped engine must refuse new work: {next:?}");
    };
    let message = refused.to_string();
    assert!(
        message.contains("full") && message.contains("fix the disk and restart calsaga"),
        "{message}"
    );
    drop(engine);

    // Nothing half-written: every log folds to its stored projection (I7).
    let store = Store::open_read_only(world.dir.path().join("calsaga.db")).unwrap();
    let all = WorkflowFilter {
        limit: crate::store::LIST_ROWS_MAX,
        ..WorkflowFilter::default()
    };
    for row in store.list_workflows(&all).unwrap() {
        let events: Vec<Event> = store
            .events(row.id)
            .unwrap()
            .iter()
            .map(|e| serde_json::from_str(&e.payload).unwrap())
            .collect();
        let folded = saga::fold(&events).unwrap();
        let stored: Saga = serde_json::from_str(&row.projection).unwrap();
        assert_eq!(folded, stored, "workflow {}", row.id);
    }
}

/// Waits (bounded) until every listed admin request is settled.
async fn settled(engine: &Engine, ids: &[i64]) -> Vec<crate::store::AdminRequestRow> {
    let mut changes = engine.changes();
    let until = tokio::time::Instant::now() + WAIT;
    loop {
        let rows: Vec<_> = ids
            .iter()
            .map(|id| engine.store().admin_request(*id).unwrap().unwrap())
            .collect();
        if rows
            .iter()
            .all(|r| r.state != crate::store::AdminRequestState::Pending)
        {
            return rows;
        }
        let waited = tokio::time::timeout_at(until, changes.changed()).await;
        assert!(waited.is_ok(), "admin requests still pending: {rows:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_admin_requests_are_applied_or_refused_by_the_running_engine() {
    let world = World::new();
    let engine = world.parking_engine();
    let hold = start_hold(&engine).await;
    assert_eq!(engine.wait(hold, WAIT).await.unwrap().state, "held");
    let db = world.dir.path().join("calsaga.db");
    let now = world.clock.now();
    let compensate = AdminAction::Compensate {
        reason: "no-show".into(),
    };
    // Queued as the CLI does, beside the engine that holds the lock.
    let queued: Vec<i64> = [&AdminAction::Resume, &compensate, &compensate]
        .iter()
        .map(|a| crate::store::queue_admin_request(&db, &a.request(hold, now), 1_000).unwrap())
        .collect();
    let rows = settled(&engine, &queued).await;
    let outcomes: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r.state.as_str(), r.outcome.as_deref().unwrap_or_default()))
        .collect();
    assert_eq!(outcomes[1], ("applied", "compensating: no-show"));
    for (state, why) in [outcomes[0], outcomes[2]] {
        assert_eq!(state, "refused", "{outcomes:?}");
        assert!(why.contains("is not possible: workflow"), "{why}");
    }
    assert!(outcomes[0].1.contains("only a failed saga is resumed"));
    let done = engine.wait_terminal(hold, WAIT).await.unwrap();
    assert_eq!(done.state, "compensated", "{done:?}");
    assert!(world.mock.view().reservations.is_empty());
    let admin_events = engine
        .events(hold)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind.starts_with("admin_"))
        .count();
    assert_eq!(admin_events, 1, "one event for the one applied request");
}

impl World {
    /// Runs `body` on a fresh engine in its own runtime; dropping the runtime
    /// at the end stops the engine and frees the database.
    fn session<T>(&self, body: impl AsyncFnOnce(Engine) -> T) -> T {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async { body(self.engine()).await })
    }

    /// Puts `backup` in place of the database, as an operator restoring it.
    fn restore(&self, backup: &std::path::Path) {
        let db = self.dir.path().join("calsaga.db");
        for side in ["calsaga.db-wal", "calsaga.db-shm"] {
            let _ = std::fs::remove_file(self.dir.path().join(side));
        }
        std::fs::copy(backup, db).unwrap();
    }
}

/// The start scan's report, which must have finished without error.
async fn start_scan(engine: &Engine) -> OrphanReport {
    match engine.start_scan_settled(WAIT).await {
        StartScan::Done(Ok(report)) => report,
        other => panic!("the orphan scan did not finish: {other:?}"),
    }
}

/// A database restored from an older backup no longer knows the sagas booked
/// since: their Cal.com bookings are orphans, which the scan on start
/// cancels (and records), while the bookings the backup knows stay.
#[test]
fn a_restored_database_cancels_the_bookings_it_no_longer_knows() {
    let world = World::new();
    let backup = world.dir.path().join("backup.db");
    let (kept, lost) = world.session(async |engine| {
        assert_eq!(start_scan(&engine).await.ours, 0);
        let kept = book_and_wait(&engine, "haircut", "2030-03-05T10:00:00Z").await;
        engine.store().backup_to(&backup).unwrap();
        let mut lost = Vec::new();
        for (service, start) in [
            ("colour-and-cut", "2030-03-06T10:00:00Z"),
            ("haircut", "2030-03-07T10:00:00Z"),
        ] {
            lost.push(book_and_wait(&engine, service, start).await);
        }
        (kept, lost)
    });
    assert!(
        std::iter::once(&kept)
            .chain(&lost)
            .all(|v| v.state == "booked")
    );
    world.restore(&backup);

    let (report, recorded, again) = world.session(async |engine| {
        let report = start_scan(&engine).await;
        let recorded = engine.store().orphans(10).unwrap();
        (
            report,
            recorded,
            engine.repair_orphans(false).await.unwrap(),
        )
    });
    assert_eq!((report.ours, report.cancelled, report.failed), (4, 3, 0));
    for v in &lost {
        assert!(world.live_of(v.id).is_empty(), "{} was left live", v.id);
    }
    assert_eq!(world.live_of(kept.id).len(), 1, "the known booking stays");
    assert_eq!(recorded.len(), 3);
    assert!(
        recorded
            .iter()
            .all(|o| o.state == OrphanState::Cancelled && o.booking.why.contains("not in the log"))
    );
    let cancelled = world.mock.view().bookings;
    assert!(
        cancelled
            .iter()
            .filter(|b| recorded.iter().any(|o| o.booking.calcom_uid == b.uid))
            .all(|b| b.cancellation_reason.as_deref() == Some(ORPHAN_CANCEL_REASON))
    );
    assert!(again.orphans.is_empty(), "a second scan finds nothing");
    world.assert_no_double_booking();
}

/// A booking naming a finished saga that does not hold it (a duplicate
/// made behind the saga's back) goes into the saga's log as a duplicate
/// and the saga cancels it; the saga's own booking stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_saga_keeps_its_booking_and_loses_a_stray_one() {
    let world = World::new();
    let engine = world.engine();
    let done = book_and_wait(&engine, "haircut", "2030-03-05T10:00:00Z").await;
    let metadata = [
        (wire::META_WORKFLOW.to_string(), done.id.to_string()),
        (wire::META_SEGMENT.to_string(), "0".to_string()),
    ];
    let stray = world
        .book_directly(201, "2030-03-08T10:00:00Z", metadata.into())
        .await;
    let report = engine.repair_orphans(true).await.unwrap();
    assert_eq!(
        (report.handed_to_saga, report.cancelled),
        (1, 0),
        "{report:?}"
    );
    assert_eq!(report.orphans[0].calcom_uid, stray.uid);
    assert!(
        report.orphans[0].why.contains("does not hold"),
        "{report:?}"
    );
    let after = engine.wait_terminal(done.id, WAIT).await.unwrap();
    assert_eq!(after.state, "booked", "{after:?}");
    let live = world.live_of(done.id);
    assert_eq!(live.len(), 1);
    assert_eq!(Some(&live[0].uid), done.segments[0].calcom_uid.as_ref());
    let kinds = kinds(&engine, done.id);
    assert!(
        kinds.ends_with(&[
            "duplicate_found".into(),
            "cancel_intended".into(),
            "booking_cancelled".into()
        ]),
        "{kinds:?}"
    );
}

/// A move to `start` that keeps whoever is free.
async fn reschedule_and_wait(engine: &Engine, of: Uuid, start: &str) -> WorkflowView {
    let id = engine.reschedule(of, to(start), None).await.unwrap();
    engine.wait(id, WAIT).await.unwrap()
}

fn to(start: &str) -> MoveRequest {
    MoveRequest {
        start: at(start),
        host: None,
        segment_hosts: BTreeMap::new(),
    }
}

/// Each segment's host, as planned or booked.
fn hosts(segments: &[crate::saga::SegmentView]) -> Vec<u64> {
    segments.iter().map(|s| s.segment.host).collect()
}

fn offered_hosts(start: &Start) -> Vec<u64> {
    start.segments.iter().map(|s| s.host).collect()
}

/// A client that posts back what the search offered, naming no staff.
fn as_offered(service: &str, start: &Start) -> BookRequest {
    BookRequest {
        start: start.start,
        ..request(service, "2030-03-01T00:00:00Z")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_monday_every_offered_start_books_as_offered_without_naming_staff() {
    let world = World::new();
    let engine = world.engine();
    // Ben, the cut's first-listed stylist, is off on Mondays.
    let offered = world.search(&engine, "colour-and-cut", "2030-03-04").await;
    assert!(offered.len() > 4, "{offered:?}");
    let with_chloe = offered
        .iter()
        .filter(|s| offered_hosts(s) == [1, 3])
        .count();
    assert_eq!(with_chloe, offered.len(), "only Chloe cuts on a Monday");
    // Non-overlapping picks: first, middle, last.
    for pick in [0, offered.len() / 2, offered.len() - 1] {
        let start = &offered[pick];
        let id = engine
            .book(as_offered("colour-and-cut", start), None)
            .await
            .unwrap();
        let done = engine.wait(id, WAIT).await.unwrap();
        assert_eq!(done.state, "booked", "{} {done:?}", start.start);
        assert_eq!(hosts(&done.segments), offered_hosts(start));
    }
    world.assert_no_double_booking();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_monday_an_offered_hold_is_reserved_and_confirmed_as_offered() {
    let world = World::new();
    let engine = world.parking_engine();
    let offered = world.search(&engine, "colour-and-cut", "2030-03-04").await;
    let start = &offered[0];
    let hold = engine
        .hold(as_offered("colour-and-cut", start), 10, None)
        .await
        .unwrap();
    let held = engine.wait(hold, WAIT).await.unwrap();
    assert_eq!(held.state, "held", "{held:?}");
    engine.confirm(hold).await.unwrap();
    let done = engine.wait(hold, WAIT).await.unwrap();
    assert_eq!(done.state, "booked", "{done:?}");
    assert_eq!(hosts(&done.segments), offered_hosts(start));
    assert_eq!(world.live_of(hold).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_refused_as_taken_fails_over_to_the_other_stylist() {
    let world = World::new();
    let engine = world.engine();
    let offered = world.search(&engine, "colour-and-cut", "2030-03-05").await;
    let start = offered
        .iter()
        .find(|s| offered_hosts(s) == [1, 2])
        .expect("a Tuesday start offered with Ben");
    // Ben is booked in Cal.com after the search: the cached answer still
    // offers him, Cal.com refuses, Chloe is free then.
    let cut = &start.segments[1];
    world.occupy(201, &cut.start.to_rfc3339()).await;
    let id = engine
        .book(as_offered("colour-and-cut", start), None)
        .await
        .unwrap();
    let done = engine.wait(id, WAIT).await.unwrap();
    assert_eq!(done.state, "booked", "{done:?}");
    assert_eq!(hosts(&done.segments), [1, 3]);
    let change = done.segments[1].segment.host_change.clone().unwrap();
    assert_eq!(change.from, 2);
    assert!(change.reason.contains("already has booking"), "{change:?}");
    assert_eq!(world.live_of(id).len(), 2);
    let kinds = kinds(&engine, id);
    let switched = kinds.iter().position(|k| k == "segment_host_switched");
    let refused = kinds.iter().position(|k| k == "segment_booking_failed");
    assert!(
        refused.is_some() && switched == refused.map(|r| r + 1),
        "{kinds:?}"
    );
    assert!(
        engine
            .store()
            .claims(id)
            .unwrap()
            .iter()
            .any(|c| c.live && c.host == 3)
    );
    assert!(
        !engine
            .store()
            .claims(id)
            .unwrap()
            .iter()
            .any(|c| c.live && c.host == 2)
    );
    world.assert_no_double_booking();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_stylist_refused_as_taken_never_fails_over() {
    let world = World::new();
    let engine = world.engine();
    let offered = world.search(&engine, "colour-and-cut", "2030-03-05").await;
    let start = offered
        .iter()
        .find(|s| offered_hosts(s) == [1, 2])
        .expect("a Tuesday start offered with Ben");
    world
        .occupy(201, &start.segments[1].start.to_rfc3339())
        .await;
    let mut pinned = as_offered("colour-and-cut", start);
    pinned.segment_hosts = BTreeMap::from([(1, 2)]);
    let id = engine.book(pinned, None).await.unwrap();
    let done = engine.wait(id, WAIT).await.unwrap();
    assert_eq!(done.state, "compensated", "{done:?}");
    assert!(world.live_of(id).is_empty());
}
