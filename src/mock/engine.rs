//! `Mock`: the fixture, the state behind a mutex, the injected clock, the
//! fault plan, the throttler and the seeded RNG, and the one entry point
//! `handle` that HTTP and in-process callers share. The pipeline order is
//! Cal.com's: faults (they model the network in front of it), the throttler
//! guard (unknown key, rate limit), version routing, the auth guard, then
//! the handler. Handlers live in their own modules; this file only wires.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::error::MockError;
use super::faults::{self, ActiveRule, Effect, FaultPlan, FaultRule, Scenario};
use super::fixture::Fixture;
use super::guard::{Caller, Throttler, Verdict};
use super::input::Query;
use super::reply::{self, Answer, ApiError, request_id};
use super::route::{Matched, Route, parse_query};
use super::state::{Overlap, State, StateFile};
use super::webhooks::{BookingEvent, Deliverer, Delivery};
use super::{admin, bookings, control, listing, slots};
use crate::calcom::wire::{Booking, EventType, Reservation, Webhook, ts};
use crate::calcom::{ApiRequest, ApiResponse, Method, Poster};
use crate::clock::Clock;

/// Alphabet of Cal.com's short uids (flickr base58).
const UID_ALPHABET: &[u8] = b"123456789abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ";
const UID_LEN: usize = 22;
const ID_STREAM: u64 = 0x05ee_d1d5;

/// How a mock is started besides its fixture and clock.
#[derive(Clone, Default)]
pub struct MockConfig {
    pub scenario: Scenario,
    /// Seeds the fault RNG and the ids the mock makes.
    pub fault_seed: u64,
    /// Persist the state here after every change; load it at start.
    pub state_file: Option<PathBuf>,
    /// Posts webhook deliveries; without one they are only recorded.
    pub poster: Option<Arc<dyn Poster>>,
}

/// The outcome of one request.
#[derive(Debug, Clone, PartialEq)]
pub struct MockReply {
    /// `None`: the request was applied but its reply is dropped (a lost
    /// reply); the caller must see no response at all.
    pub response: Option<ApiResponse>,
    /// Added latency to wait before answering (or before dropping).
    pub latency: Duration,
}

/// What `GET /_mock/state` shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StateView {
    #[serde(with = "ts")]
    pub now: DateTime<Utc>,
    pub bookings: Vec<Booking>,
    /// Unexpired reservations only.
    pub reservations: Vec<Reservation>,
    pub event_types: Vec<EventType>,
    pub webhooks: Vec<Webhook>,
    pub deliveries: u64,
    pub deliveries_dropped: u64,
    /// Overlapping live bookings per host: must be empty unless something
    /// double booked.
    pub overlaps: Vec<Overlap>,
    /// API requests served since the mock started, by route
    /// (`POST /v2/bookings`), faults and refusals included.
    pub requests: BTreeMap<String, u64>,
}

/// The embedded Cal.com API v2.
pub struct Mock {
    pub(super) fixture: Fixture,
    pub(super) clock: Arc<dyn Clock>,
    state: Mutex<State>,
    faults: Mutex<FaultPlan>,
    throttle: Mutex<Throttler>,
    rng: Mutex<SmallRng>,
    webhooks: Deliverer,
    state_file: Option<StateFile>,
    /// API requests per route (`Route::index`): what a client costs.
    requests: [AtomicU64; Route::COUNT],
    /// Tests hold racing creates here, between check and insert.
    #[cfg(test)]
    pub(super) race_gate: Mutex<Option<Arc<dyn Fn() + Send + Sync>>>,
}

/// One API call on its way to a handler.
pub(super) struct Call<'a> {
    /// The path with its query, as sent (Nest's `path` in errors).
    pub url: &'a str,
    pub param: String,
    pub query: Query,
    pub body: Option<&'a [u8]>,
    pub caller: Caller,
    pub now: DateTime<Utc>,
    pub effect: Effect,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take the whole mock down with it.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Mock {
    pub fn new(
        fixture: Fixture,
        clock: Arc<dyn Clock>,
        config: MockConfig,
    ) -> Result<Mock, MockError> {
        let state_file = config.state_file.map(StateFile::new);
        let state = match &state_file {
            Some(f) => f.load()?.unwrap_or_else(|| State::from_fixture(&fixture)),
            None => State::from_fixture(&fixture),
        };
        if let Some(f) = &state_file {
            f.save(&state)?;
        }
        let limit = config
            .scenario
            .rate_limit_per_minute()
            .unwrap_or(fixture.rate_limit_per_minute);
        Ok(Mock {
            rng: Mutex::new(SmallRng::seed_from_u64(id_seed(config.fault_seed, &state))),
            state: Mutex::new(state),
            faults: Mutex::new(FaultPlan::new(config.fault_seed, config.scenario.rules())),
            throttle: Mutex::new(Throttler::new(limit)),
            webhooks: Deliverer::new(config.poster),
            state_file,
            requests: std::array::from_fn(|_| AtomicU64::new(0)),
            fixture,
            clock,
            #[cfg(test)]
            race_gate: Mutex::new(None),
        })
    }

    pub fn fixture(&self) -> &Fixture {
        &self.fixture
    }

    /// Serves one request from an in-process caller (anonymous ones are
    /// throttled as 127.0.0.1).
    pub fn handle(&self, req: &ApiRequest) -> MockReply {
        self.handle_from(req, IpAddr::V4(Ipv4Addr::LOCALHOST))
    }

    /// Serves one request from `peer`.
    pub fn handle_from(&self, req: &ApiRequest, peer: IpAddr) -> MockReply {
        let now = self.clock.now();
        let url = req.path.as_str();
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        if path == "/_mock" || path.starts_with("/_mock/") {
            let answer = control::serve(self, req.method, path, req.body.as_deref());
            return MockReply::respond(reply::response(answer, request_id()));
        }
        let Some(matched) = Route::find(req.method, path) else {
            return MockReply::respond(self.no_route(req.method.as_str(), url));
        };
        self.requests[matched.route.index()].fetch_add(1, Ordering::Relaxed);
        let mut headers = request_id();
        let effect = lock(&self.faults).decide(matched.route);
        let answer = if let Some(status) = effect.status {
            if status == 429 {
                headers.extend(Verdict::blocked(lock(&self.throttle).limit()).headers());
            }
            faults::canned(status, matched.route, matched.param.as_deref()).render(url, now)
        } else {
            let call = Call {
                url,
                param: matched.param.clone().unwrap_or_default(),
                query: Query(parse_query(query)),
                body: req.body.as_deref(),
                caller: Caller::Anonymous,
                now,
                effect: effect.clone(),
            };
            let (answer, verdict) = self.guarded(req, call, &matched, peer);
            headers.extend(verdict.map(|v| v.headers()).unwrap_or_default());
            answer
        };
        let response = reply::response(answer, headers);
        MockReply {
            response: (!effect.reply_lost).then_some(response),
            latency: effect.latency,
        }
    }

    /// Nest's router 404, also for methods the API has no route for.
    pub fn no_route(&self, method: &str, url: &str) -> ApiResponse {
        let answer = ApiError::no_route(method, url).render(url, self.clock.now());
        reply::response(answer, request_id())
    }

    /// Guards, then the handler; the verdict carries the rate-limit headers.
    fn guarded(
        &self,
        req: &ApiRequest,
        mut call: Call<'_>,
        m: &Matched,
        peer: IpAddr,
    ) -> (Answer, Option<Verdict>) {
        let (url, now) = (call.url, call.now);
        call.caller = match Caller::identify(req.header("authorization"), &self.fixture) {
            Ok(c) => c,
            Err(e) => return (e.render(url, now), None),
        };
        let verdict = lock(&self.throttle).hit(&call.caller.tracker(peer), now);
        if !verdict.allowed {
            return (ApiError::Throttled.render(url, now), Some(verdict));
        }
        let result = m
            .route
            .check_version(req.header("cal-api-version"), url)
            .and_then(|()| call.caller.authorize(m.route.auth()))
            .and_then(|()| self.dispatch(m.route, &call));
        (result.unwrap_or_else(|e| e.render(url, now)), Some(verdict))
    }

    fn dispatch(&self, route: Route, call: &Call<'_>) -> Result<Answer, ApiError> {
        use Route::*;
        match route {
            Slots => slots::list(self, call),
            ReservationCreate => slots::reserve(self, call),
            ReservationGet => slots::get_reservation(self, call),
            ReservationUpdate => slots::update_reservation(self, call),
            ReservationDelete => slots::delete_reservation(self, call),
            BookingCreate => bookings::create(self, call),
            BookingList => listing::list(self, call),
            BookingGet => bookings::get(self, call),
            BookingReschedule => bookings::reschedule(self, call),
            BookingCancel => bookings::cancel(self, call),
            EventTypeCreate => admin::create_event_type(self, call),
            EventTypeList => admin::list_event_types(self, call),
            EventTypeGet => admin::get_event_type(self, call),
            EventTypeUpdate => admin::update_event_type(self, call),
            EventTypeDelete => admin::delete_event_type(self, call),
            WebhookCreate => admin::create_webhook(self, call),
            WebhookList => admin::list_webhooks(self, call),
            WebhookGet => admin::get_webhook(self, call),
            WebhookUpdate => admin::update_webhook(self, call),
            WebhookDelete => admin::delete_webhook(self, call),
        }
    }

    // ------------------------------------------------------ for handlers

    pub(super) fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&lock(&self.state))
    }

    /// One critical section that changes state; the state file is written
    /// before the lock is released, so the file never runs behind an answer.
    pub(super) fn commit<R>(
        &self,
        f: impl FnOnce(&mut State) -> Result<R, ApiError>,
    ) -> Result<R, ApiError> {
        let mut state = lock(&self.state);
        let out = f(&mut state)?;
        if let Err(e) = self.persist(&state) {
            // The change is applied in memory; the caller sees what Cal.com
            // shows for a failed write, and the operator sees why.
            eprintln!("calsaga mock: {e}");
            return Err(ApiError::internal());
        }
        Ok(out)
    }

    fn persist(&self, state: &State) -> Result<(), MockError> {
        self.state_file.as_ref().map_or(Ok(()), |f| f.save(state))
    }

    /// Between a create's availability check and its insert. Cal.com runs
    /// them as separate database round trips; giving way here keeps that
    /// race window open (and tests can hold it open).
    pub(super) fn between_check_and_insert(&self) {
        std::thread::yield_now();
        #[cfg(test)]
        {
            let gate = lock(&self.race_gate).clone();
            if let Some(gate) = gate {
                gate();
            }
        }
    }

    /// A 22-character booking uid.
    pub(super) fn new_uid(&self) -> String {
        let mut rng = lock(&self.rng);
        (0..UID_LEN)
            .map(|_| char::from(UID_ALPHABET[rng.gen_range(0..UID_ALPHABET.len())]))
            .collect()
    }

    /// A uuid v4 from the seeded RNG (reservation and webhook ids).
    pub(super) fn new_uuid(&self) -> String {
        let bytes: [u8; 16] = lock(&self.rng).r#gen();
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .to_string()
    }

    /// Queues the webhook deliveries for a booking change.
    pub(super) fn publish(
        &self,
        trigger: &'static str,
        booking: &Booking,
        previous: Option<&Booking>,
    ) {
        let Some(organizer) = booking.hosts.first().and_then(|h| self.fixture.user(h.id)) else {
            return;
        };
        let event = BookingEvent {
            trigger,
            booking,
            organizer,
            previous,
        };
        let list =
            self.read(|s| super::webhooks::deliveries(&s.webhooks, &event, self.clock.now()));
        self.webhooks.send(list);
    }

    // ------------------------------------------------- inspection, control

    /// The calendar as `GET /_mock/state` shows it.
    pub fn view(&self) -> StateView {
        let now = self.clock.now();
        let (deliveries, deliveries_dropped) = self.webhooks.counts();
        self.read(|s| StateView {
            now,
            bookings: s.bookings.clone(),
            reservations: s
                .reservations
                .iter()
                .filter(|r| r.reservation_until > now)
                .cloned()
                .collect(),
            event_types: s.event_types.clone(),
            webhooks: s.webhooks.clone(),
            deliveries,
            deliveries_dropped,
            overlaps: s.overlaps(),
            requests: self.requests(),
        })
    }

    /// API requests served so far, by route; routes never called are left out.
    pub fn requests(&self) -> BTreeMap<String, u64> {
        Route::all()
            .map(|r| (r.key(), self.requests[r.index()].load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Back to the fixture: state, rate-limit windows and delivery records
    /// (fault rules stay; clear them with `clear_faults`).
    pub fn reset(&self) -> Result<(), MockError> {
        {
            let mut state = lock(&self.state);
            *state = State::from_fixture(&self.fixture);
            self.persist(&state)?;
        }
        let limit = lock(&self.throttle).limit();
        *lock(&self.throttle) = Throttler::new(limit);
        self.webhooks.clear();
        Ok(())
    }

    /// Adds fault rules (all or none); the error says what is wrong.
    pub fn add_faults(&self, rules: Vec<FaultRule>) -> Result<(), String> {
        lock(&self.faults).add(rules)
    }

    pub fn clear_faults(&self) {
        lock(&self.faults).clear();
    }

    pub fn fault_rules(&self) -> Vec<ActiveRule> {
        lock(&self.faults).rules()
    }

    /// Recent webhook deliveries, oldest first.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.webhooks.recent()
    }
}

impl MockReply {
    fn respond(response: ApiResponse) -> MockReply {
        MockReply {
            response: Some(response),
            latency: Duration::ZERO,
        }
    }
}

/// The seed of the id RNG: the fault seed, a fixed stream tag (so making
/// ids never shifts the fault RNG) and a hash of the starting state, so a
/// mock restarted from its state file never repeats the uids it already made.
fn id_seed(fault_seed: u64, state: &State) -> u64 {
    // FNV-1a: small, stable across builds, good enough to separate streams.
    let bytes = serde_json::to_vec(state).unwrap_or_default();
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    fault_seed ^ ID_STREAM ^ hash
}

/// `Method` from its HTTP name, for servers that parse requests themselves.
pub fn method_from(name: &str) -> Option<Method> {
    match name {
        "GET" => Some(Method::Get),
        "POST" => Some(Method::Post),
        "PATCH" => Some(Method::Patch),
        "DELETE" => Some(Method::Delete),
        _ => None,
    }
}
