//! The checks against the embedded mock, in-process: a real store on a
//! temp file, the real client, mock faults, simulated time (so the cache
//! and the orphan grace are stepped, never slept). `World` is the one door.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use super::*;
use crate::calcom::wire::{self, CancelBooking, CreateBooking, NewAttendee};
use crate::calcom::{ApiRequest, ApiResponse, CalcomApi, RetryPolicy, Transport, TransportError};
use crate::catalog::{Segment, Service, StaffOption};
use crate::clock::SimClock;
use crate::mock::{FaultRule, Mock, MockTransport};
use crate::runtime::{Engine, EngineConfig};
use crate::store::{CallStat, StoreConfig, WriteOp};

const KEY: &str = "cal_test_calsaga_mock";
const WAIT: Duration = Duration::from_secs(20);

use crate::tools::sim::{Salon, at};

struct World {
    mock: Arc<Mock>,
    clock: Arc<SimClock>,
    store: Store,
    catalog: Arc<Catalog>,
    _dir: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        let Salon { mock, clock } = Salon::new();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("calsaga.db"), StoreConfig::default()).unwrap();
        World {
            mock,
            clock,
            store,
            catalog: crate::tools::sim::catalog(),
            _dir: dir,
        }
    }

    fn client_over(&self, transport: Arc<dyn Transport>, key: &str) -> Arc<Client> {
        let retry = RetryPolicy {
            attempts_max: 1,
            ..RetryPolicy::default()
        };
        Arc::new(Salon::client_over(
            transport,
            key,
            retry,
            self.clock.clone(),
            7,
        ))
    }

    fn client(&self) -> Arc<Client> {
        self.client_over(Arc::new(MockTransport::new(self.mock.clone())), KEY)
    }

    fn health_with(&self, client: Option<Arc<Client>>, catalog: Arc<Catalog>) -> Health {
        let clock: Arc<dyn Clock> = self.clock.clone();
        let sources = Sources {
            store: self.store.clone(),
            calcom: client,
            catalog,
            clock,
        };
        Health::new(sources, HealthConfig::default(), None)
    }

    fn health(&self) -> Health {
        self.health_with(Some(self.client()), self.catalog.clone())
    }

    /// Books `service` through a real engine and returns the saga's id and
    /// its Cal.com uids by segment.
    async fn book(&self, service: &str, start: &str) -> (Uuid, Vec<String>) {
        let clock: Arc<dyn Clock> = self.clock.clone();
        let engine = Engine::new(
            self.store.clone(),
            self.client(),
            clock,
            self.catalog.clone(),
            EngineConfig {
                in_task_wait_max: Duration::from_secs(24 * 3600),
                ..EngineConfig::default()
            },
        );
        engine.start().unwrap();
        let request = crate::runtime::tests::request(service, start);
        let id = engine.book(request, None).await.unwrap();
        let done = engine.wait_terminal(id, WAIT).await.unwrap();
        assert_eq!(done.state, "booked");
        engine.shutdown();
        let uids = self.store.mirror(id).unwrap();
        (id, uids.into_iter().map(|m| m.calcom_uid).collect())
    }

    /// A booking made in Cal.com with `metadata`, as an old run might have.
    async fn book_directly(&self, metadata: &[(&str, &str)]) -> String {
        let input = CreateBooking {
            start: at("2030-03-06T10:00:00Z"),
            event_type_id: 104,
            attendee: NewAttendee {
                name: "Walk-in".into(),
                time_zone: "Europe/Berlin".into(),
                email: Some("walkin@example.com".into()),
                ..NewAttendee::default()
            },
            metadata: metadata
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            length_in_minutes: None,
            guests: vec![],
            booking_fields_responses: None,
        };
        self.client().create_booking(&input).await.unwrap().uid
    }
}

fn status_of(report: &Report, check: Check) -> Status {
    report.check(check).unwrap().status
}

fn message_of(report: &Report, check: Check) -> &str {
    &report.check(check).unwrap().message
}

#[tokio::test]
async fn a_healthy_world_is_ok_on_every_check() {
    let w = World::new();
    w.book("colour-and-cut", "2030-03-05T10:00:00Z").await;
    let report = w.health().run().await;
    for c in &report.checks {
        assert_eq!(c.status, Status::Ok, "{}: {}", c.check.as_str(), c.message);
    }
    let activity = &report.check(Check::Activity).unwrap().figures;
    assert_eq!(activity["last24h"]["booked"], 1);
    let sync = &report.check(Check::DatabaseSync).unwrap().figures;
    // The fixture's own bookings are live too; only ours are mirrored.
    assert!(sync["calcomBookings"].as_u64() > Some(2), "{sync}");
    assert_eq!(sync["mirrorRows"], 2);
    let summary = report.summary().to_string();
    assert!(
        !summary.contains("Jo Client") && !summary.contains("message"),
        "{summary}"
    );
}

#[tokio::test]
async fn a_refused_api_key_is_critical_with_the_fix() {
    let w = World::new();
    let wrong = w.client_over(Arc::new(MockTransport::new(w.mock.clone())), "cal_wrong");
    let report = w.health_with(Some(wrong), w.catalog.clone()).run().await;
    assert_eq!(report.status, Status::Critical);
    assert_eq!(status_of(&report, Check::Connectivity), Status::Ok);
    assert_eq!(status_of(&report, Check::Authentication), Status::Critical);
    assert!(message_of(&report, Check::Authentication).contains("CALCOM_API_KEY"));
    assert!(message_of(&report, Check::DatabaseSync).starts_with("not checked"));
}

/// A transport to a Cal.com that is not there.
struct Nowhere;

#[async_trait]
impl Transport for Nowhere {
    async fn send(&self, _request: ApiRequest) -> Result<ApiResponse, TransportError> {
        Err(TransportError::NotSent {
            url: "http://127.0.0.1:1".into(),
            reason: "connection refused".into(),
        })
    }
}

#[tokio::test]
async fn an_unreachable_cal_com_is_a_clear_critical() {
    let w = World::new();
    let gone = w.client_over(Arc::new(Nowhere), KEY);
    let report = w.health_with(Some(gone), w.catalog.clone()).run().await;
    assert_eq!(status_of(&report, Check::Connectivity), Status::Critical);
    let message = message_of(&report, Check::Connectivity);
    assert!(
        message.contains("could not reach Cal.com at http://127.0.0.1:1"),
        "{message}"
    );
    assert_eq!(status_of(&report, Check::EventTypes), Status::Warning);
    // The local checks still report.
    assert_eq!(status_of(&report, Check::Activity), Status::Ok);
}

#[tokio::test]
async fn without_cal_com_the_remote_checks_say_they_were_skipped() {
    let w = World::new();
    let report = w.health_with(None, w.catalog.clone()).run().await;
    assert_eq!(report.status, Status::Warning);
    assert!(message_of(&report, Check::Connectivity).contains("--calcom-api-key"));
}

fn service(event_type_id: u64, duration_min: u32) -> Service {
    Service {
        id: format!("svc-{event_type_id}"),
        name: "Test".into(),
        segments: vec![Segment {
            name: "only".into(),
            duration_min,
            staff: vec![StaffOption {
                host: 1,
                event_type_id,
            }],
            pause_after_min: 0,
        }],
    }
}

#[tokio::test]
async fn missing_and_mismatched_event_types_are_named() {
    let w = World::new();
    let catalog = Catalog::from_services(vec![service(999, 30), service(101, 35)]).unwrap();
    let report = w
        .health_with(Some(w.client()), Arc::new(catalog))
        .run()
        .await;
    assert_eq!(status_of(&report, Check::EventTypes), Status::Critical);
    let message = message_of(&report, Check::EventTypes);
    assert!(
        message.contains("event type 999 is missing (used by svc-999/only)"),
        "{message}"
    );
    assert!(
        message.contains("event type 101 lasts 30 min in Cal.com, the catalogue says 35 min"),
        "{message}"
    );
}

#[tokio::test]
async fn failing_cal_com_calls_raise_the_error_rate() {
    let w = World::new();
    let recorder = Arc::new(CallRecorder::new(w.store.clone(), w.clock.clone()));
    let transport = Arc::new(MockTransport::new(w.mock.clone()));
    let once = RetryPolicy {
        attempts_max: 1,
        ..RetryPolicy::default()
    };
    let client = Salon::client_over(transport, KEY, once, w.clock.clone(), 1)
        .with_observer(recorder.clone());
    let mut rule = FaultRule::on("GET /v2/bookings/{uid}");
    rule.every = Some(4);
    rule.status = Some(500);
    w.mock.add_faults(vec![rule]).unwrap();
    for _ in 0..40 {
        let _ = client.get_booking("no-such-uid").await;
    }
    assert_eq!(recorder.flush().await.unwrap(), 40);
    let report = w.health().run().await;
    assert_eq!(status_of(&report, Check::ErrorRate), Status::Critical);
    let figures = &report.check(Check::ErrorRate).unwrap().figures;
    // 10 server errors of 40 calls; the 404s are answers, not errors.
    assert_eq!(figures["errors"], 10);
}

#[tokio::test]
async fn slow_cal_com_calls_warn_on_response_time() {
    let w = World::new();
    let slow = |i: i64| CallStat {
        at: w.clock.now() - chrono::Duration::seconds(i),
        route: "GET /v2/slots".into(),
        status: Some(200),
        class: CLASS_OK.into(),
        latency_ms: 1_500,
    };
    w.store
        .commit(vec![WriteOp::RecordCalls((1..=30).map(slow).collect())])
        .await
        .unwrap();
    let report = w.health().run().await;
    assert_eq!(status_of(&report, Check::ResponseTime), Status::Warning);
}

#[tokio::test]
async fn an_orphaned_booking_is_critical_after_the_grace_period() {
    let w = World::new();
    let stranger = Uuid::new_v4().to_string();
    let uid = w.book_directly(&[(wire::META_WORKFLOW, &stranger)]).await;
    let health = w.health();
    let fresh = health.run().await;
    assert_eq!(
        status_of(&fresh, Check::DatabaseSync),
        Status::Ok,
        "still in flight"
    );
    w.clock.advance(Duration::from_secs(10 * 60));
    let report = health.run().await;
    assert_eq!(status_of(&report, Check::DatabaseSync), Status::Critical);
    let finding = &report.check(Check::DatabaseSync).unwrap().figures["findings"][0];
    assert_eq!(finding["kind"], "orphan_booking");
    assert_eq!(finding["workflow"], stranger.as_str());
    assert_eq!(finding["calcomUids"][0], uid.as_str());
    let fix = finding["fix"].as_str().unwrap();
    assert!(
        fix.contains("orphan scan cancels it)")
            && fix.contains("calsaga reconcile orphans --apply"),
        "{fix}"
    );
}

#[tokio::test]
async fn a_composite_with_a_segment_cancelled_in_cal_com_is_broken() {
    let w = World::new();
    let (id, uids) = w.book("colour-and-cut", "2030-03-05T10:00:00Z").await;
    w.client()
        .cancel_booking(&uids[1], &CancelBooking::default())
        .await
        .unwrap();
    let report = w.health().run().await;
    assert_eq!(status_of(&report, Check::DatabaseSync), Status::Critical);
    let finding = &report.check(Check::DatabaseSync).unwrap().figures["findings"][0];
    assert_eq!(finding["kind"], "broken_composite");
    assert_eq!(finding["calcomUids"][0], uids[1].as_str());
    let fix = finding["fix"].as_str().unwrap();
    assert!(
        fix.starts_with(&format!("calsaga workflows compensate {id} --reason")),
        "{fix}"
    );
}

#[tokio::test]
async fn the_quick_roll_up_is_cached_for_its_ttl() {
    let w = World::new();
    let health = w.health();
    let first = health.cached().await;
    w.clock.advance(Duration::from_secs(29));
    assert_eq!(health.cached().await.checked_at, first.checked_at);
    w.clock.advance(Duration::from_secs(1));
    let next = health.cached().await;
    assert_eq!(next.checked_at, w.clock.now());
    assert_ne!(next.checked_at, first.checked_at);
}

/// An alert receiver that asks the periodic loop to stop once it got one.
struct StopOnAlert {
    stop: tokio::sync::watch::Sender<bool>,
    got: std::sync::Mutex<Vec<serde_json::Value>>,
}

impl crate::calcom::Poster for StopOnAlert {
    fn post(
        &self,
        _url: &str,
        _headers: &[(String, String)],
        body: &[u8],
    ) -> Result<u16, TransportError> {
        self.got
            .lock()
            .unwrap()
            .push(serde_json::from_slice(body).unwrap());
        let _ = self.stop.send(true);
        Ok(200)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_run_alerts_an_outage_without_anyone_asking() {
    use crate::health::alerts::{AlertConfig, AlertFormat, AlertTarget, Alerts};
    let w = World::new();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let receiver = Arc::new(StopOnAlert {
        stop,
        got: std::sync::Mutex::new(Vec::new()),
    });
    let config = AlertConfig {
        targets: vec![AlertTarget {
            url: "http://127.0.0.1:9/alerts".into(),
            format: AlertFormat::Generic,
        }],
        ..AlertConfig::default()
    };
    let alerts = Alerts::new(config, receiver.clone(), w.clock.clone());
    let sources = Sources {
        store: w.store.clone(),
        calcom: Some(w.client_over(Arc::new(Nowhere), KEY)),
        catalog: w.catalog.clone(),
        clock: w.clock.clone(),
    };
    let health = Health::new(sources, HealthConfig::default(), Some(alerts));
    let periodic = health.run_every(Duration::from_secs(60), stopped);
    tokio::time::timeout(WAIT, periodic)
        .await
        .expect("the loop stops once the alert is out");
    let got = receiver.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "one alert for one change: {got:?}");
    assert_eq!(got[0]["status"], "critical");
}

#[tokio::test]
async fn a_stray_booking_of_a_booked_saga_is_an_orphan_with_the_orphan_scan_fix() {
    let w = World::new();
    let (id, _) = w.book("haircut", "2030-03-05T12:00:00Z").await;
    let id = id.to_string();
    let stray = w.book_directly(&[(wire::META_WORKFLOW, &id)]).await;
    w.clock.advance(Duration::from_secs(10 * 60));
    let report = w.health().run().await;
    let sync = &report.check(Check::DatabaseSync).unwrap().figures;
    assert_eq!(
        (sync["orphans"].as_u64(), sync["broken"].as_u64()),
        (Some(1), Some(0))
    );
    let finding = &sync["findings"][0];
    assert_eq!(finding["calcomUids"][0], stray.as_str());
    assert!(
        finding["detail"]
            .as_str()
            .unwrap()
            .contains("saga is booked and not in the mirror")
    );
    // Not the saga's compensate: that would cancel the customer's booking.
    let fix = finding["fix"].as_str().unwrap();
    assert!(
        fix.contains("through its saga") && fix.contains("calsaga reconcile orphans --apply"),
        "{fix}"
    );
}
