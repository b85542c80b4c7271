//! `calsaga bench http`: what the HTTP service costs on top of the engine.
//! One run starts the embedded Cal.com mock, an engine on a scratch database
//! and the HTTP server, all in this process on loopback ports, and drives
//! them with blocking clients on their own threads: simple (`haircut`) and
//! composite (`colour-and-cut`) bookings at each client count, availability
//! searches cold and cached, and signed webhook deliveries. Each figure is
//! set against a baseline from the same run: bookings against
//! `GET /api/health` (the HTTP path alone, no engine, no disk) at the same
//! client count, cached availability against cold, webhook ingest against
//! the disk's raw commit rate. It never talks to anything but 127.0.0.1,
//! never touches a real database, and never fails a run for being slow.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};
use tokio::runtime::Runtime;
use uuid::Uuid;

use super::report::Machine;
use super::{BenchError, RUNTIME_STOP, Scratch, runtime};
use crate::calcom::wire::SIGNATURE_HEADER;
use crate::calcom::{CalcomApi, Client, ClientConfig};
use crate::catalog::Catalog;
use crate::clock::{Clock, SystemClock};
use crate::http::{self, App, HttpConfig, HttpServer, HttpSettings, Quota, Scope};
use crate::mock::{Fixture, Mock, MockConfig, MockServer, sign};
use crate::runtime::{Engine, EngineConfig};
use crate::store::{self, Store, StoreConfig};

pub use super::http_report::{
    Availability, CalcomBudget, HttpBenchReport, Level, LevelRatios, Load,
};

/// The services booked: one segment, and two segments with a pause.
pub const SIMPLE: &str = "haircut";
pub const COMPOSITE: &str = "colour-and-cut";
/// Webhook secret of the run; deliveries are signed with it.
const SECRET: &str = "calsaga-bench-secret";
/// Far above anything one run sends, so no limit shapes the figures.
const PER_MIN_UNLIMITED: u32 = 100_000_000;
/// One request, booking included, must answer within this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a booking request asks the server to wait for `booked`.
const BOOKING_WAIT: &str = "wait=30";
/// First day handed out: Tuesday 2030-03-05. Bookings use Tuesday to
/// Friday only, when every host of both services works.
const FIRST_DAY: (i32, u32, u32) = (2030, 3, 5);
const DAYS_PER_WEEK: usize = 4;
/// The day searched for availability (nothing is booked before it is).
const AVAILABILITY_QUERY: &str = "/api/v2/availability?service=colour-and-cut&start=2030-03-05&end=2030-03-05&timeZone=Europe/Berlin";

/// What to run.
#[derive(Debug, Clone)]
pub struct HttpBenchConfig {
    /// Where the scratch folder (database, raw-commit probe) goes.
    pub dir: PathBuf,
    pub workflows: PathBuf,
    /// Requests in each phase at each client count.
    pub requests: usize,
    /// Client counts, each run in turn (1, 16, 64 by default).
    pub clients: Vec<usize>,
    /// Availability searches timed cold and again cached.
    pub availability_requests: usize,
    /// Commits timed in each sample of the raw commit rate.
    pub raw_commits: u32,
    /// The command line, recorded with the figures.
    pub command: String,
}

#[derive(Debug, thiserror::Error)]
pub enum HttpBenchError {
    #[error(transparent)]
    Bench(#[from] BenchError),
    #[error(
        "the catalogue has no service {0:?}, which the benchmark books; pass --workflows with the shipped workflows/ folder"
    )]
    MissingService(&'static str),
    #[error("cannot start {what}: {detail}; check that loopback ports and threads are available")]
    Start { what: &'static str, detail: String },
    #[error(
        "{phase}: the request failed: {detail}; the server may be overloaded, try fewer clients"
    )]
    Request { phase: &'static str, detail: String },
    #[error(
        "{phase}: the answer was {status} instead of {expected}: {body}; the run stops, since the figures would not mean what they say"
    )]
    Status {
        phase: &'static str,
        status: u16,
        expected: u16,
        body: String,
    },
}

/// Runs every phase once and returns the figures.
pub fn run_http(config: &HttpBenchConfig) -> Result<HttpBenchReport, HttpBenchError> {
    let catalog = Arc::new(Catalog::load_dir(&config.workflows).map_err(BenchError::from)?);
    for service in [SIMPLE, COMPOSITE] {
        catalog
            .get(service)
            .ok_or(HttpBenchError::MissingService(service))?;
    }
    let scratch = Scratch::create(&config.dir)?;
    let stack = Stack::start(catalog, &scratch.path().join("http.db"))?;
    let result = measure(config, &stack, scratch.path());
    stack.stop();
    result
}

fn measure(
    config: &HttpBenchConfig,
    stack: &Stack,
    scratch: &std::path::Path,
) -> Result<HttpBenchReport, HttpBenchError> {
    let requests = config.requests.max(1);
    let caller = Caller::new(stack.addr, stack.token.clone())?;
    let count = Counter(&stack.calcom);
    let searches = config.availability_requests.max(1);
    let (cold, cold_calls) = count.during(|| drive(1, searches, |_| caller.availability(true)))?;
    // One search fills the cache for the timed ones.
    caller.availability(false)?;
    let (cached, cached_calls) =
        count.during(|| drive(1, searches, |_| caller.availability(false)))?;
    let availability = Availability::new(cold, cached);
    let (simple, composite) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let booked_ids = Mutex::new(Vec::new());
    let mut bookings = Vec::new();
    let mut booking_calls = 0;
    for &clients in &config.clients {
        tracing::info!(clients, requests, "booking over HTTP");
        let health = drive(clients, requests, |_| caller.health())?;
        let ((haircut, colour), calls) = count.during(|| {
            let haircut = drive(clients, requests, |_| {
                caller.book(&simple_booking(take(&simple))).map(drop)
            })?;
            let colour = drive(clients, requests, |_| {
                let id = caller.book(&composite_booking(take(&composite)))?;
                lock(&booked_ids).push(id);
                Ok(())
            })?;
            Ok((haircut, colour))
        })?;
        booking_calls += calls;
        bookings.push((health, haircut, colour));
    }
    let segments_booked = simple.load(Ordering::Relaxed) + 2 * composite.load(Ordering::Relaxed);
    let to_cancel: Vec<String> = lock(&booked_ids)
        .iter()
        .take(CANCELS_MAX)
        .cloned()
        .collect();
    tracing::info!(bookings = to_cancel.len(), "cancelling over HTTP");
    let (_, cancel_calls) = count.during(|| {
        drive(1, to_cancel.len().max(1), |k| match to_cancel.get(k) {
            Some(id) => caller.cancel(id),
            None => Ok(()),
        })
    })?;
    tracing::info!(
        bookings = SEARCHED_BOOKINGS,
        "booking what a search offered"
    );
    let mut searched_calls = 0;
    for n in 0..SEARCHED_BOOKINGS {
        let start = caller.first_offered(&searched_day(n))?;
        let body = booking(COMPOSITE, &start, json!({}));
        searched_calls += count.during(|| caller.book(&body))?.1;
    }
    let budget = CalcomBudget {
        per_booked_segment: per(booking_calls, segments_booked),
        per_booked_segment_after_search: per(searched_calls, 2 * SEARCHED_BOOKINGS),
        per_cancelled_segment: per(cancel_calls, 2 * to_cancel.len()),
        per_cold_search: per(cold_calls, searches),
        per_warm_search: per(cached_calls, searches),
        by_route: stack.calcom.requests(),
    };
    let raw = |dir| raw_commit_rate(dir, config.raw_commits);
    let before = raw(scratch)?;
    let run = Uuid::new_v4();
    let sent = AtomicUsize::new(0);
    let mut webhooks = Vec::new();
    for &clients in &config.clients {
        tracing::info!(clients, requests, "delivering webhooks");
        webhooks.push(drive(clients, requests, |_| {
            caller.webhook(&webhook_body(run, take(&sent)))
        })?);
    }
    let after = raw(scratch)?;
    let levels = bookings
        .into_iter()
        .zip(webhooks)
        .map(|((health, haircut, colour), hooks)| Level::new(health, haircut, colour, hooks))
        .collect();
    Ok(HttpBenchReport::new(
        config,
        Machine::probe(&config.dir),
        HttpConfig::new(stack.addr).workers,
        [before, after],
        levels,
        availability,
        budget,
    ))
}

/// Composite bookings cancelled for the Cal.com budget of a cancel.
const CANCELS_MAX: usize = 50;
/// Composite bookings made as a front end makes them: search a day, book
/// the first start offered.
const SEARCHED_BOOKINGS: usize = 10;
/// Their days come this many booking days after the first, past any day
/// the timed phases book.
const SEARCHED_FIRST_DAY: usize = 2_000;

/// The `n`-th day searched and booked for the budget, as `YYYY-MM-DD`.
fn searched_day(n: usize) -> String {
    let noon = NaiveTime::from_hms_opt(12, 0, 0).unwrap_or_default();
    at(SEARCHED_FIRST_DAY + n, chrono_tz::Europe::Berlin, noon)
        .with_timezone(&chrono_tz::Europe::Berlin)
        .format("%Y-%m-%d")
        .to_string()
}

/// Counts the mock's API requests around a phase.
struct Counter<'a>(&'a Mock);

impl Counter<'_> {
    fn total(&self) -> u64 {
        self.0.requests().values().sum()
    }

    /// `phase`'s result and the Cal.com requests made while it ran.
    fn during<T>(
        &self,
        phase: impl FnOnce() -> Result<T, HttpBenchError>,
    ) -> Result<(T, u64), HttpBenchError> {
        let before = self.total();
        let result = phase()?;
        Ok((result, self.total() - before))
    }
}

fn per(calls: u64, operations: usize) -> f64 {
    calls as f64 / operations.max(1) as f64
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn raw_commit_rate(dir: &std::path::Path, commits: u32) -> Result<f64, HttpBenchError> {
    tracing::info!(commits, "timing raw commits");
    store::raw_commit_rate(dir, commits, 1.0).map_err(|source| {
        BenchError::Store {
            phase: "raw commits",
            source,
        }
        .into()
    })
}

/// The mock, the engine and the HTTP server, wired as `serve` wires them.
struct Stack {
    mock: MockServer,
    /// The same mock, for its request counts.
    calcom: Arc<Mock>,
    runtime: Runtime,
    engine: Engine,
    server: HttpServer,
    addr: SocketAddr,
    token: String,
}

impl Stack {
    fn start(catalog: Arc<Catalog>, db: &std::path::Path) -> Result<Stack, HttpBenchError> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut fixture = Fixture::salon();
        // Cal.com's 120 requests a minute would cap the run at two a second.
        fixture.rate_limit_per_minute = PER_MIN_UNLIMITED;
        // An empty diary: the schedule below owns every time it books.
        fixture.bookings.clear();
        let api_key = fixture.api_keys.first().map(|k| k.key.clone());
        let mock = Mock::new(fixture, clock.clone(), MockConfig::default())
            .map_err(|e| start_failed("the Cal.com mock", e))?;
        let calcom = Arc::new(mock);
        let mock = MockServer::start(Arc::clone(&calcom), loopback)
            .map_err(|e| start_failed("the Cal.com mock", e))?;
        let runtime = runtime()?;
        let client: Arc<dyn CalcomApi> = {
            let _guard = runtime.enter();
            let config = ClientConfig {
                base_url: mock.url(),
                api_key,
                requests_per_minute_max: PER_MIN_UNLIMITED,
                ..ClientConfig::default()
            };
            Arc::new(
                Client::http(config, clock.clone())
                    .map_err(|e| start_failed("the Cal.com client", e))?,
            )
        };
        let store =
            Store::open(db, StoreConfig::default()).map_err(|source| BenchError::Store {
                phase: "opening the database",
                source,
            })?;
        let token = http::create_token(&store, "bench", Scope::Booking, clock.now())
            .map_err(|e| start_failed("a token", e))?;
        let engine = Engine::new(
            store,
            Arc::clone(&client),
            clock.clone(),
            catalog,
            EngineConfig::default(),
        );
        runtime
            .block_on(async { engine.start() })
            .map_err(|source| BenchError::Engine {
                phase: "starting the engine",
                source,
            })?;
        let settings = HttpSettings {
            rate: Quota {
                per_min: PER_MIN_UNLIMITED,
                burst: PER_MIN_UNLIMITED,
            },
            webhook_secrets: vec![SECRET.into()],
            ..HttpSettings::default()
        };
        let app = App::new(engine.clone(), runtime.handle().clone(), clock, &settings)
            .map_err(|e| start_failed("the HTTP service", e))?;
        let server = HttpServer::start(HttpConfig::new(loopback), app)
            .map_err(|e| start_failed("the HTTP server", e))?;
        let addr = server.addr();
        Ok(Stack {
            mock,
            calcom,
            runtime,
            engine,
            server,
            addr,
            token,
        })
    }

    /// Stops in the order `serve` does, then the mock.
    fn stop(self) {
        self.engine.shutdown();
        self.server.shutdown();
        self.runtime.shutdown_timeout(RUNTIME_STOP);
        drop(self.mock);
    }
}

fn start_failed(what: &'static str, e: impl std::fmt::Display) -> HttpBenchError {
    HttpBenchError::Start {
        what,
        detail: e.to_string(),
    }
}

/// Runs `requests` calls of `send` from `clients` threads, each sending its
/// next request when the last is answered, and times every call.
fn drive<F>(clients: usize, requests: usize, send: F) -> Result<Load, HttpBenchError>
where
    F: Fn(usize) -> Result<(), HttpBenchError> + Sync,
{
    let clients = clients.clamp(1, requests.max(1));
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let latencies = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..clients)
            .map(|_| {
                scope.spawn(|| -> Result<Vec<Duration>, HttpBenchError> {
                    let mut mine = Vec::new();
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        if k >= requests {
                            return Ok(mine);
                        }
                        let sent = Instant::now();
                        send(k)?;
                        mine.push(sent.elapsed());
                    }
                })
            })
            .collect();
        let mut all = Vec::with_capacity(requests);
        for thread in threads {
            let joined = thread.join().map_err(|_| HttpBenchError::Request {
                phase: "a client thread",
                detail: "it panicked".into(),
            })?;
            all.extend(joined?);
        }
        Ok::<_, HttpBenchError>(all)
    })?;
    Ok(Load::new(clients, started.elapsed(), latencies))
}

/// Takes the next index of a sequence shared by all clients.
fn take(counter: &AtomicUsize) -> usize {
    counter.fetch_add(1, Ordering::Relaxed)
}

/// One blocking HTTP client for every thread. No connection is reused: the
/// server closes idle keep-alive connections when others wait, so a pooled
/// one could be closed under a request; a fresh connection per request
/// costs the same in the baseline as in the figures.
struct Caller {
    http: reqwest::blocking::Client,
    base: String,
    token: String,
}

impl Caller {
    fn new(addr: SocketAddr, token: String) -> Result<Caller, HttpBenchError> {
        let http = reqwest::blocking::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .pool_max_idle_per_host(0)
            .build()
            .map_err(|e| start_failed("the HTTP client", e))?;
        Ok(Caller {
            http,
            base: format!("http://{addr}"),
            token,
        })
    }

    fn health(&self) -> Result<(), HttpBenchError> {
        let request = self.http.get(format!("{}/api/health", self.base));
        expect("GET /api/health", request, 200).map(drop)
    }

    fn availability(&self, fresh: bool) -> Result<(), HttpBenchError> {
        let query = if fresh { "&fresh=true" } else { "" };
        let request = self
            .http
            .get(format!("{}{AVAILABILITY_QUERY}{query}", self.base))
            .bearer_auth(&self.token);
        expect("GET /api/v2/availability", request, 200).map(drop)
    }

    /// The first start a `colour-and-cut` search of `day` offers, as offered.
    fn first_offered(&self, day: &str) -> Result<String, HttpBenchError> {
        const PHASE: &str = "GET /api/v2/availability";
        let request = self
            .http
            .get(format!(
                "{}/api/v2/availability?service={COMPOSITE}&start={day}&end={day}&timeZone=Europe/Berlin",
                self.base
            ))
            .bearer_auth(&self.token);
        let answer = expect(PHASE, request, 200)?;
        serde_json::from_str::<Value>(&answer)
            .ok()
            .and_then(|v| v["slots"][0]["start"].as_str().map(str::to_string))
            .ok_or_else(|| HttpBenchError::Request {
                phase: PHASE,
                detail: format!("no start offered on {day}: {answer}"),
            })
    }

    /// Books and waits for `booked`; the booking's id.
    fn book(&self, body: &Value) -> Result<String, HttpBenchError> {
        const PHASE: &str = "POST /api/v2/bookings";
        let request = self
            .http
            .post(format!("{}/api/v2/bookings", self.base))
            .bearer_auth(&self.token)
            .header("Idempotency-Key", Uuid::new_v4().to_string())
            .header("Prefer", BOOKING_WAIT)
            .json(body);
        let answer = expect(PHASE, request, 201)?;
        serde_json::from_str::<Value>(&answer)
            .ok()
            .and_then(|v| v["id"].as_str().map(str::to_string))
            .ok_or_else(|| HttpBenchError::Request {
                phase: PHASE,
                detail: format!("the answer has no booking id: {answer}"),
            })
    }

    /// Cancels and waits for the cancellation to finish.
    fn cancel(&self, id: &str) -> Result<(), HttpBenchError> {
        let request = self
            .http
            .post(format!("{}/api/v2/bookings/{id}/cancel", self.base))
            .bearer_auth(&self.token)
            .header("Prefer", BOOKING_WAIT);
        expect("POST /api/v2/bookings/{id}/cancel", request, 200).map(drop)
    }

    fn webhook(&self, body: &str) -> Result<(), HttpBenchError> {
        let request = self
            .http
            .post(format!("{}/webhooks/calcom", self.base))
            .header("Content-Type", "application/json")
            .header(SIGNATURE_HEADER, sign(Some(SECRET), body.as_bytes()))
            .body(body.to_string());
        expect("POST /webhooks/calcom", request, 200).map(drop)
    }
}

/// Sends the request and reads the whole answer, which must have `status`;
/// its body.
fn expect(
    phase: &'static str,
    request: reqwest::blocking::RequestBuilder,
    status: u16,
) -> Result<String, HttpBenchError> {
    let failed = |e: reqwest::Error| HttpBenchError::Request {
        phase,
        detail: e.to_string(),
    };
    let response = request.send().map_err(failed)?;
    let got = response.status().as_u16();
    let body = response.text().map_err(failed)?;
    if got == status {
        return Ok(body);
    }
    Err(HttpBenchError::Status {
        phase,
        status: got,
        expected: status,
        body: body.chars().take(500).collect(),
    })
}

/// The `n`-th booking day (Tuesday to Friday, from `FIRST_DAY`) at `time`
/// in `zone`.
fn at(n: usize, zone: Tz, time: NaiveTime) -> DateTime<Utc> {
    let (y, m, d) = FIRST_DAY;
    let first = NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default();
    let weeks = i64::try_from(n / DAYS_PER_WEEK).unwrap_or(i64::MAX / 8);
    let day = first + chrono::Duration::days(weeks * 7 + (n % DAYS_PER_WEEK) as i64);
    zone.from_local_datetime(&day.and_time(time))
        .earliest()
        .map_or(DateTime::<Utc>::MAX_UTC, |t| t.to_utc())
}

fn minutes_after(hour: u32, minutes: usize) -> NaiveTime {
    let start = NaiveTime::from_hms_opt(hour, 0, 0).unwrap_or_default();
    start + chrono::Duration::minutes(i64::try_from(minutes).unwrap_or(0))
}

/// The `k`-th haircut: Dev (New York, 08:00-16:00) back to back, ten a day.
/// One host only, so haircuts never take time the composites need.
fn simple_booking(k: usize) -> Value {
    const PER_DAY: usize = 10;
    let time = minutes_after(8, 45 * (k % PER_DAY));
    booking(
        SIMPLE,
        &utc(at(k / PER_DAY, chrono_tz::America::New_York, time)),
        json!({ "host": 4 }),
    )
}

/// The `k`-th colour and cut: Anna's colour every 30 min from 09:00 Berlin,
/// fourteen a day; the cut 70 min later, by Chloe and Ben in turn, so each
/// cuts once an hour within their hours (Chloe to 17:00 London).
fn composite_booking(k: usize) -> Value {
    const PER_DAY: usize = 14;
    let slot = k % PER_DAY;
    let time = minutes_after(9, 30 * slot);
    let cutter = if slot.is_multiple_of(2) { 3 } else { 2 };
    booking(
        COMPOSITE,
        &utc(at(k / PER_DAY, chrono_tz::Europe::Berlin, time)),
        json!({ "hosts": { "1": cutter } }),
    )
}

fn utc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A booking request for `start` as the client has it: its own instant,
/// or the very string a search offered.
fn booking(service: &str, start: &str, staff: Value) -> Value {
    let mut body = json!({
        "service": service,
        "start": start,
        "timeZone": "Europe/Berlin",
        "attendee": {"name": "Bench Client", "email": "bench@example.com"},
    });
    if let (Some(body), Some(staff)) = (body.as_object_mut(), staff.as_object()) {
        body.extend(staff.clone());
    }
    body
}

/// A `BOOKING_CREATED` for a booking calsaga never made, created now; the
/// uid makes every body distinct, so none is a duplicate.
fn webhook_body(run: Uuid, n: usize) -> String {
    let created = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    json!({
        "triggerEvent": "BOOKING_CREATED",
        "createdAt": created,
        "payload": {
            "uid": format!("bench-{run}-{n}"),
            "startTime": "2030-03-05T10:00:00Z",
            "endTime": "2030-03-05T10:45:00Z",
            "status": "ACCEPTED",
            "eventTypeId": 402,
        },
    })
    .to_string()
}
