//! `calsaga smoke availability|booking`: ten scenarios each, run against a
//! live calsaga through its public booking API only (`API_BASE`, a booking
//! token), printed as a PASS/FAIL table with timings. Scenarios find their
//! times through `GET /availability` instead of assuming a calendar, so the
//! same run works against the embedded mock and a staging calsaga on a real
//! Cal.com; every booking a run makes is cancelled at its end. This module
//! owns the shared pieces (configuration, the catalogue and slot shapes it
//! reads, the scenario runner); it never reads calsaga's database and never
//! calls Cal.com.

mod availability;
mod booking;
pub mod client;
mod report;
pub mod shapes;

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, NaiveDate, Offset, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde_json::{Value, json};
use uuid::Uuid;

pub use client::{API_BASE_DEFAULT, Answer, Api, ClientError, Search};
pub use report::{Outcome, SmokeReport};
use shapes::{BookingView, Found, ServiceInfo, Slot};

/// How far ahead of today the default date lies: clear of notice periods.
const DEFAULT_DATE_AHEAD_DAYS: u64 = 14;
/// A 429 is retried this often (after its Retry-After): a smoke run tests
/// calsaga, not the caller's quota.
const RATE_LIMIT_RETRIES: u32 = 6;
/// Longest a scenario's booking request asks calsaga to wait for its saga.
pub const PREFER_WAIT: &str = "wait=30";
/// A saga still running after `PREFER_WAIT` is asked about this often
/// more: calsaga keeps under Cal.com's request budget, so once a run has
/// spent it (a minute's worth) its sagas wait for the next minute.
const SETTLE_ASKS_MAX: u32 = 4;
/// Days searched for a DST change after the run's date.
const DST_SEARCH_DAYS: u64 = 400;

/// Which ten scenarios to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Suite {
    Availability,
    Booking,
}

impl Suite {
    pub fn name(self) -> &'static str {
        match self {
            Suite::Availability => "availability",
            Suite::Booking => "booking",
        }
    }
}

/// What to run against.
#[derive(Debug, Clone)]
pub struct SmokeConfig {
    /// e.g. `http://127.0.0.1:8080/api/v2`.
    pub api_base: String,
    /// A token with the `booking` (or `admin`) scope.
    pub token: String,
    /// The service of the simple scenarios; None: the first one-segment
    /// service of `GET /services`.
    pub service: Option<String>,
    /// The composite service; None: the first with more than one segment.
    pub composite: Option<String>,
    /// The day searched and booked; a working day of the staff.
    pub date: NaiveDate,
    /// The time zone days are searched in.
    pub time_zone: Tz,
    /// Availability p95 must stay under this.
    pub availability_p95_ms_max: u64,
    /// Booking p95 must stay under this.
    pub booking_p95_ms_max: u64,
    /// Deadline of one request.
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum SmokeError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(
        "GET {base}/services answered {answer}; check the token (API_TOKEN or --token needs the booking scope) and API_BASE"
    )]
    Services { base: String, answer: String },
    #[error(
        "the catalogue has no service {id:?} (it has: {known}); pass --service / SERVICE_ID with one of them"
    )]
    UnknownService { id: String, known: String },
}

/// Runs the ten scenarios of `suite`, then cancels what they booked.
pub fn run(suite: Suite, config: &SmokeConfig) -> Result<SmokeReport, SmokeError> {
    let ctx = Ctx::new(config)?;
    let started = Instant::now();
    let mut outcomes = match suite {
        Suite::Availability => availability::run(&ctx),
        Suite::Booking => booking::run(&ctx),
    };
    if suite == Suite::Booking {
        outcomes.push(scenario("cleanup: cancel what the run booked", || {
            ctx.cleanup()
        }));
    }
    Ok(SmokeReport {
        suite,
        api_base: ctx.api.base().to_string(),
        service: ctx.service.id.clone(),
        composite: ctx.composite.as_ref().map(|c| c.id.clone()),
        date: config.date,
        time_zone: config.time_zone.name().to_string(),
        seconds: started.elapsed().as_secs_f64(),
        outcomes,
    })
}

/// The first Tuesday at least two weeks from `today`: far enough ahead for
/// any notice period, and a day every host of the shipped salon works.
pub fn default_date(today: NaiveDate) -> NaiveDate {
    let mut day = today + chrono::Days::new(DEFAULT_DATE_AHEAD_DAYS);
    while day.weekday() != Weekday::Tue {
        day = day.succ_opt().unwrap_or(day);
    }
    day
}

/// The first local day on or after `from` at whose noon `zone`'s UTC
/// offset differs from the day before's: the day it changes to or from
/// summer time.
pub fn next_dst_change(zone: Tz, from: NaiveDate) -> Option<NaiveDate> {
    let offset_at = |day: NaiveDate| {
        let noon = day.and_hms_opt(12, 0, 0)?;
        let at = zone.from_local_datetime(&noon).earliest()?;
        Some(at.offset().fix().local_minus_utc())
    };
    (0..DST_SEARCH_DAYS)
        .map(|d| from + chrono::Days::new(d))
        .find(|day| {
            let before = day.pred_opt().and_then(offset_at);
            before.is_some() && before != offset_at(*day)
        })
}

/// What a scenario finds: a detail line on success, the reason on failure.
pub type Step<T> = Result<T, String>;

/// `Err(message)` unless `ok`.
pub fn ensure(ok: bool, message: impl FnOnce() -> String) -> Step<()> {
    if ok { Ok(()) } else { Err(message()) }
}

/// Runs `f` on `n` threads at once; every result, or the first failure.
pub fn at_once<T: Send>(n: usize, f: impl Fn() -> Step<T> + Sync) -> Step<Vec<T>> {
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..n).map(|_| scope.spawn(&f)).collect();
        threads
            .into_iter()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|_| Err("a client thread panicked".into()))
            })
            .collect()
    })
}

/// Runs one scenario and times it.
pub fn scenario(name: &'static str, f: impl FnOnce() -> Step<String>) -> Outcome {
    let started = Instant::now();
    let result = f();
    Outcome {
        name,
        passed: result.is_ok(),
        detail: result.unwrap_or_else(|e| e),
        ms: started.elapsed().as_secs_f64() * 1e3,
    }
}

/// Everything the scenarios share: the API, the services under test, the
/// day, and the bookings to cancel at the end.
pub struct Ctx {
    pub api: Api,
    pub service: ServiceInfo,
    pub composite: Option<ServiceInfo>,
    pub date: NaiveDate,
    pub zone: Tz,
    pub availability_p95_ms_max: u64,
    pub booking_p95_ms_max: u64,
    made: Mutex<Vec<Uuid>>,
    /// Time spent waiting for sagas past `PREFER_WAIT`.
    settling: Mutex<Duration>,
}

impl Ctx {
    fn new(config: &SmokeConfig) -> Result<Ctx, SmokeError> {
        let api = Api::new(
            &config.api_base,
            &config.token,
            config.timeout,
            RATE_LIMIT_RETRIES,
        )?;
        let services = services(&api)?;
        let service = simple_service(&api, &services, config.service.as_deref())?;
        let composite = choose_service(&services, config.composite.as_deref(), true)?;
        Ok(Ctx {
            api,
            service,
            composite,
            date: config.date,
            zone: config.time_zone,
            availability_p95_ms_max: config.availability_p95_ms_max,
            booking_p95_ms_max: config.booking_p95_ms_max,
            made: Mutex::new(Vec::new()),
            settling: Mutex::new(Duration::ZERO),
        })
    }

    /// The composite service, or why the scenario cannot run.
    pub fn composite(&self) -> Step<&ServiceInfo> {
        self.composite.as_ref().ok_or_else(|| {
            "the catalogue has no service with more than one segment; pass --composite-service"
                .into()
        })
    }

    /// `GET /availability`, expecting 200 and a body that parses.
    pub fn search(&self, search: &Search<'_>) -> Step<(Answer, Found)> {
        let answer = self.api.availability(search).map_err(|e| e.to_string())?;
        ensure(answer.status == 200, || {
            format!(
                "availability of {} answered {}",
                search.service,
                answer.describe()
            )
        })?;
        let found: Found = serde_json::from_value(answer.body.clone())
            .map_err(|e| format!("the availability answer does not parse ({e})"))?;
        Ok((answer, found))
    }

    /// The run's day in its zone, cache allowed.
    pub fn day<'a>(&self, service: &'a str) -> Search<'a> {
        Search::day(service, self.date, self.zone)
    }

    /// Free starts of `service` on the run's day, asked fresh.
    pub fn free_slots(&self, service: &ServiceInfo) -> Step<Vec<Slot>> {
        let (_, found) = self.search(&Search {
            fresh: true,
            ..self.day(&service.id)
        })?;
        ensure(!found.slots.is_empty(), || {
            format!(
                "no free start for {} on {}; pass --date with a working day that has free time",
                service.id, self.date
            )
        })?;
        Ok(found.slots)
    }

    /// The first free start of `service` on the run's day.
    pub fn free_slot(&self, service: &ServiceInfo) -> Step<Slot> {
        self.free_slots(service)?
            .into_iter()
            .next()
            .ok_or_else(|| "no free start".into())
    }

    /// `POST /bookings` of `service` at `start` with each segment's host
    /// fixed, under `key`; a booking it makes is remembered for cleanup.
    pub fn book(
        &self,
        service: &str,
        start: DateTime<Utc>,
        hosts: &[u64],
        key: &str,
    ) -> Step<Answer> {
        self.start_saga(
            "/bookings",
            &booking_body(service, start, hosts, self.zone),
            key,
        )
    }

    /// `POST <path>` of a booking-shaped body; remembers what it starts.
    pub fn start_saga(&self, path: &str, body: &Value, key: &str) -> Step<Answer> {
        let post = || {
            self.api.post(
                path,
                body,
                &[("Idempotency-Key", key), ("Prefer", PREFER_WAIT)],
            )
        };
        let answer = post().map_err(|e| e.to_string())?;
        let id = booking_id(&answer);
        if let Some(id) = id {
            self.remember(id);
        }
        // Long-polls the saga, then the same key gets its stored answer.
        self.settle(answer, |_| {
            if let Some(id) = id {
                self.api
                    .get_waiting(&format!("/bookings/{id}"), PREFER_WAIT)?;
            }
            post()
        })
    }

    /// Asks `again` while `answer` says its saga is still running (202, or
    /// 409 `request_in_progress` to a retry under the same key), at most
    /// `SETTLE_ASKS_MAX` times, and counts the time it took.
    fn settle(
        &self,
        mut answer: Answer,
        again: impl Fn(&Answer) -> Result<Answer, ClientError>,
    ) -> Step<Answer> {
        let started = Instant::now();
        for _ in 0..SETTLE_ASKS_MAX {
            if answer.status != 202 && answer.code() != "request_in_progress" {
                break;
            }
            answer = again(&answer).map_err(|e| e.to_string())?;
        }
        *self.settling.lock().unwrap_or_else(PoisonError::into_inner) += started.elapsed();
        Ok(answer)
    }

    /// Books the slot's plan and expects 201 `booked`.
    pub fn book_slot(&self, service: &str, slot: &Slot) -> Step<BookingView> {
        let answer = self.book(service, slot.start_utc(), &slot.hosts(), &fresh_key())?;
        expect_booking(&answer, 201, "booked")
    }

    pub fn remember(&self, id: Uuid) {
        let mut made = self.made.lock().unwrap_or_else(PoisonError::into_inner);
        if !made.contains(&id) {
            made.push(id);
        }
    }

    /// `GET /bookings/{id}`.
    pub fn booking(&self, id: Uuid) -> Step<BookingView> {
        let answer = self
            .api
            .get(&format!("/bookings/{id}"), &[])
            .map_err(|e| e.to_string())?;
        ensure(answer.status == 200, || {
            format!("GET booking {id} answered {}", answer.describe())
        })?;
        view(&answer)
    }

    /// `POST /bookings/{id}/cancel`, expecting 200 `cancelled`.
    pub fn cancel(&self, id: Uuid) -> Step<BookingView> {
        let answer = self
            .api
            .post(
                &format!("/bookings/{id}/cancel"),
                &json!({"reason": "calsaga smoke run"}),
                &[("Prefer", PREFER_WAIT)],
            )
            .map_err(|e| e.to_string())?;
        // Long-polls the cancel saga, then shows the booking it cancelled.
        let answer = self.settle(answer, |last| {
            let change = last.body["changeInProgress"].as_str().unwrap_or_default();
            let polled = self
                .api
                .get_waiting(&format!("/bookings/{change}"), PREFER_WAIT)?;
            let path = format!("/bookings/{id}");
            match polled.body["status"].as_str() {
                Some("pending") => Ok(Answer {
                    status: 202,
                    ..last.clone()
                }),
                _ => self.api.get(&path, &[]),
            }
        })?;
        expect_booking(&answer, 200, "cancelled")
    }

    /// Cancels every booking of the run that is still booked.
    fn cleanup(&self) -> Step<String> {
        let made = self
            .made
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut cancelled = 0;
        let mut failures = Vec::new();
        for id in &made {
            let live = match self.booking(*id) {
                Ok(view) => view.status == "booked" || view.status == "broken",
                Err(e) => {
                    failures.push(e);
                    continue;
                }
            };
            if live {
                match self.cancel(*id) {
                    Ok(_) => cancelled += 1,
                    Err(e) => failures.push(e),
                }
            }
        }
        ensure(failures.is_empty(), || {
            format!(
                "{} of the run's bookings could not be cancelled: {}; cancel them with POST /bookings/{{id}}/cancel",
                failures.len(),
                failures.join("; ")
            )
        })?;
        let settling = *self.settling.lock().unwrap_or_else(PoisonError::into_inner);
        let waited = match settling.as_secs() {
            0 => String::new(),
            s => format!(
                "; waited {s} s for sagas past their first answers (calsaga keeps under Cal.com's request budget)"
            ),
        };
        Ok(format!(
            "{cancelled} still-booked of {} workflows cancelled{waited}",
            made.len()
        ))
    }
}

/// The catalogue as `GET /services` shows it.
pub fn services(api: &Api) -> Result<Vec<ServiceInfo>, SmokeError> {
    let answer = api.get("/services", &[])?;
    let failed = |answer: String| SmokeError::Services {
        base: api.base().to_string(),
        answer,
    };
    if answer.status != 200 {
        return Err(failed(answer.describe()));
    }
    serde_json::from_value(answer.body["services"].clone())
        .map_err(|e| failed(format!("a catalogue that does not parse ({e})")))
}

/// The service of the simple scenarios: `wanted`, else the first with one
/// segment, else the first.
pub fn simple_service(
    api: &Api,
    services: &[ServiceInfo],
    wanted: Option<&str>,
) -> Result<ServiceInfo, SmokeError> {
    choose_service(services, wanted, false)?
        .or_else(|| services.first().cloned())
        .ok_or_else(|| SmokeError::Services {
            base: api.base().to_string(),
            answer: "an empty catalogue".into(),
        })
}

/// The service named `wanted`, which must exist; else the first with
/// more than one segment (`composite`) or with one.
pub fn choose_service(
    services: &[ServiceInfo],
    wanted: Option<&str>,
    composite: bool,
) -> Result<Option<ServiceInfo>, SmokeError> {
    let found = match wanted {
        Some(id) => Some(services.iter().find(|s| s.id == id).ok_or_else(|| {
            SmokeError::UnknownService {
                id: id.to_string(),
                known: services
                    .iter()
                    .map(|s| s.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }
        })?),
        None => services
            .iter()
            .find(|s| (s.segments.len() > 1) == composite),
    };
    Ok(found.cloned())
}

/// A booking request: each segment's host fixed, so a scenario knows who.
pub fn booking_body(service: &str, start: DateTime<Utc>, hosts: &[u64], zone: Tz) -> Value {
    let hosts: serde_json::Map<String, Value> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (i.to_string(), json!(h)))
        .collect();
    json!({
        "service": service,
        "start": start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "timeZone": zone.name(),
        "attendee": {"name": "Smoke Test", "email": "smoke@example.com"},
        "hosts": hosts,
        "notes": "calsaga smoke run; cancelled at its end",
    })
}

pub fn fresh_key() -> String {
    format!("smoke-{}", Uuid::new_v4())
}

/// The booking id of an answer, whether a booking body or an error with
/// `details.booking`.
pub fn booking_id(answer: &Answer) -> Option<Uuid> {
    let body = &answer.body;
    let id = body["id"]
        .as_str()
        .or_else(|| body["error"]["details"]["booking"]["id"].as_str())?;
    Uuid::parse_str(id).ok()
}

pub fn view(answer: &Answer) -> Step<BookingView> {
    serde_json::from_value(answer.body.clone())
        .map_err(|e| format!("the booking answer does not parse ({e}): {}", answer.body))
}

/// The answer must have `status` and show the booking `want`.
pub fn expect_booking(answer: &Answer, status: u16, want: &str) -> Step<BookingView> {
    ensure(answer.status == status, || {
        format!("expected {status} {want}, got {}", answer.describe())
    })?;
    let view = view(answer)?;
    ensure(view.status == want, || {
        format!("booking {} is {}, expected {want}", view.id, view.status)
    })?;
    Ok(view)
}

/// Milliseconds of `q` (0..=1) of `ms`, nearest rank.
pub fn percentile_ms(ms: &[f64], q: f64) -> f64 {
    crate::tools::bench::nearest_rank(ms, q)
}

#[cfg(test)]
mod tests;
