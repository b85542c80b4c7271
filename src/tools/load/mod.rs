//! `calsaga load`: a bounded load generator against a running calsaga's
//! booking API. `concurrency` client threads send a weighted mix of
//! bookings (at free starts found when the run begins, so they race each
//! other), availability searches and cancels of the run's own bookings for
//! `duration`, with a progress line on stderr; then it lists the bookings
//! over the run's days and checks that no two live bookings of one host
//! overlap. It refuses a target off this machine unless told
//! (`--allow-remote`): a load run against production is never an accident.
//! It never reads calsaga's database and never calls Cal.com.

mod mix;
mod report;

use std::net::{IpAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Days, NaiveDate, Utc};
use chrono_tz::Tz;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

pub use mix::{Mix, MixError, Op};
pub use report::{Invariant, LoadReport, OpStats, Overlap, Sample, Setup};

use crate::tools::smoke::shapes::{BookingView, Slot};
use crate::tools::smoke::{self, Api, ClientError, Search, SmokeError, booking_body, booking_id};

/// Requests recorded per client thread at most; a client stops there.
const SAMPLES_PER_CLIENT_MAX: usize = 1_000_000;
/// Booked ids kept for cancels at most.
const BOOKED_MAX: usize = 10_000;
/// Pages of `GET /bookings` read for the invariant check at most.
const PAGES_MAX: usize = 1_000;
const PAGE_LIMIT: &str = "100";
/// Times a 429 of the invariant check is retried after its Retry-After.
const INVARIANT_RATE_LIMIT_RETRIES: u32 = 6;
/// Overlaps listed in the report (all are counted).
const OVERLAPS_LISTED_MAX: usize = 20;
/// How often the progress line is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// A client's pause after a 429 without Retry-After.
const BACK_PRESSURE_PAUSE: Duration = Duration::from_secs(1);
/// How long a booking asks calsaga to wait for its saga.
const PREFER_WAIT: &str = "wait=10";
/// Booking statuses whose live segments hold a host's time.
const HOLDING: [&str; 4] = ["booked", "broken", "pending", "failed"];

#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub api_base: String,
    pub token: String,
    /// None: the first service of `GET /services`.
    pub service: Option<String>,
    pub concurrency: usize,
    pub duration: Duration,
    pub mix: Mix,
    pub allow_remote: bool,
    /// First day booked and searched.
    pub date: NaiveDate,
    /// Days booked and searched, from `date`.
    pub days: u32,
    pub time_zone: Tz,
    /// Deadline of one request.
    pub timeout: Duration,
    /// Seed of the operation picks, so a run can be repeated.
    pub seed: u64,
    /// Draw the progress line on stderr.
    pub progress: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "{host} is not this machine; a load run is for loopback targets, pass --allow-remote if you really mean to load {host}"
    )]
    Remote { host: String },
    #[error("{0:?} is not a URL; pass --api-base like http://127.0.0.1:8080/api/v2")]
    BadUrl(String),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Setup(#[from] SmokeError),
    #[error(
        "no free start for {service} from {first} to {last}; pass --date with working days or another --service"
    )]
    NoSlots {
        service: String,
        first: NaiveDate,
        last: NaiveDate,
    },
    #[error("{what} answered {answer}; the run stops since its figures would mean nothing")]
    Answer { what: String, answer: String },
}

/// Runs the load, then the invariant check.
pub fn run(config: &LoadConfig) -> Result<LoadReport, LoadError> {
    check_target(&config.api_base, config.allow_remote)?;
    let api = Api::new(&config.api_base, &config.token, config.timeout, 0)?;
    let services = smoke::services(&api)?;
    let service = smoke::simple_service(&api, &services, config.service.as_deref())?;
    let last = config.date + Days::new(u64::from(config.days.max(1)) - 1);
    let slots = candidates(&api, &service.id, config, last)?;
    let run = Run {
        api: &api,
        config,
        service: &service.id,
        slots: &slots,
        booked: Mutex::new(Vec::new()),
        sent: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        cancels_skipped: AtomicUsize::new(0),
    };
    let started = Instant::now();
    let samples = run.drive();
    let seconds = started.elapsed().as_secs_f64();
    // The check must not fail on the quota the load itself used up.
    let patient = api.with_rate_limit_retries(INVARIANT_RATE_LIMIT_RETRIES);
    let invariant = check_invariant(&patient, config.date, last)?;
    let setup = Setup {
        api_base: api.base().to_string(),
        service: service.id.clone(),
        concurrency: config.concurrency.max(1),
        duration_s: config.duration.as_secs_f64(),
        mix: config.mix,
        candidate_starts: slots.len(),
    };
    Ok(LoadReport::new(
        setup,
        seconds,
        &samples,
        run.cancels_skipped.load(Ordering::Relaxed),
        invariant,
    ))
}

/// The longest run `--duration` takes.
const DURATION_MAX: Duration = Duration::from_secs(24 * 3600);

/// `500ms`, `30s`, `2m`, or plain seconds; more than 0, at most a day.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit_ms) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1_000)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000)
    } else {
        (s, 1_000)
    };
    number
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit_ms))
        .map(Duration::from_millis)
        .filter(|d| !d.is_zero() && *d <= DURATION_MAX)
        .ok_or_else(|| {
            format!("{s:?} is not a duration from 1ms to 24h; write e.g. 500ms, 30s or 2m")
        })
}

/// Refuses anything but loopback addresses unless `allow_remote`.
pub fn check_target(api_base: &str, allow_remote: bool) -> Result<(), LoadError> {
    let (host, port) =
        smoke::client::host_port(api_base).ok_or_else(|| LoadError::BadUrl(api_base.into()))?;
    if allow_remote {
        return Ok(());
    }
    let loopback = match host.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        // A name counts only if every address it resolves to is loopback.
        Err(_) => (host.as_str(), port)
            .to_socket_addrs()
            .map(|mut addrs| addrs.all(|a| a.ip().is_loopback()))
            .unwrap_or(false),
    };
    if loopback {
        Ok(())
    } else {
        Err(LoadError::Remote { host })
    }
}

/// The free starts of the run's days when it begins.
fn candidates(
    api: &Api,
    service: &str,
    config: &LoadConfig,
    last: NaiveDate,
) -> Result<Vec<Slot>, LoadError> {
    let answer = api.availability(&Search {
        end: last,
        fresh: true,
        ..Search::day(service, config.date, config.time_zone)
    })?;
    if answer.status != 200 {
        return Err(LoadError::Answer {
            what: format!("availability of {service}"),
            answer: answer.describe(),
        });
    }
    let slots: Vec<Slot> =
        serde_json::from_value(answer.body["slots"].clone()).map_err(|e| LoadError::Answer {
            what: format!("availability of {service}"),
            answer: format!("slots that do not parse ({e})"),
        })?;
    if slots.is_empty() {
        return Err(LoadError::NoSlots {
            service: service.into(),
            first: config.date,
            last,
        });
    }
    Ok(slots)
}

/// The shared state of one run's clients.
struct Run<'a> {
    api: &'a Api,
    config: &'a LoadConfig,
    service: &'a str,
    slots: &'a [Slot],
    booked: Mutex<Vec<Uuid>>,
    sent: AtomicUsize,
    failed: AtomicUsize,
    cancels_skipped: AtomicUsize,
}

impl Run<'_> {
    /// Every client until the deadline, with the progress line beside them.
    fn drive(&self) -> Vec<Sample> {
        let deadline = Instant::now() + self.config.duration;
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::scope(|scope| {
            if self.config.progress {
                scope.spawn(|| self.progress(stopped, deadline));
            }
            let clients: Vec<_> = (0..self.config.concurrency.max(1))
                .map(|i| scope.spawn(move || self.client(i as u64, deadline)))
                .collect();
            let samples = clients
                .into_iter()
                .flat_map(|c| c.join().unwrap_or_default())
                .collect();
            drop(stop);
            samples
        })
    }

    fn client(&self, index: u64, deadline: Instant) -> Vec<Sample> {
        let mut rng = SmallRng::seed_from_u64(self.config.seed.wrapping_add(index));
        let mut samples = Vec::new();
        while Instant::now() < deadline && samples.len() < SAMPLES_PER_CLIENT_MAX {
            let op = self.config.mix.pick(rng.r#gen());
            let started = Instant::now();
            let Some((kind, pause)) = self.send(op, &mut rng) else {
                self.cancels_skipped.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            self.sent.fetch_add(1, Ordering::Relaxed);
            if kind != report::OK && kind != report::BACK_PRESSURE {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
            samples.push(Sample {
                op,
                kind,
                ms: started.elapsed().as_secs_f64() * 1e3,
            });
            if let Some(pause) = pause {
                // The server set the pace: come back when it said, not sooner.
                std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
            }
        }
        samples
    }

    /// One request; what came of it and how long the server asked us to
    /// wait, or None for a cancel with nothing to cancel.
    fn send(&self, op: Op, rng: &mut SmallRng) -> Option<(String, Option<Duration>)> {
        let answer = match op {
            Op::Book => {
                let slot = &self.slots[rng.gen_range(0..self.slots.len())];
                let body = booking_body(
                    self.service,
                    slot.start_utc(),
                    &slot.hosts(),
                    self.config.time_zone,
                );
                let key = format!("load-{}", Uuid::new_v4());
                let headers = [("Idempotency-Key", key.as_str()), ("Prefer", PREFER_WAIT)];
                self.api.post("/bookings", &body, &headers)
            }
            Op::Availability => {
                let offset = rng.gen_range(0..self.config.days.max(1));
                let day = self.config.date + Days::new(u64::from(offset));
                self.api
                    .availability(&Search::day(self.service, day, self.config.time_zone))
            }
            Op::Cancel => {
                let id = self.take_booked(rng)?;
                let body = serde_json::json!({"reason": "calsaga load run"});
                self.api.post(
                    &format!("/bookings/{id}/cancel"),
                    &body,
                    &[("Prefer", PREFER_WAIT)],
                )
            }
        };
        Some(match answer {
            Ok(a) if matches!(a.status, 200 | 201) => {
                if op == Op::Book {
                    self.keep_booked(booking_id(&a));
                }
                (report::OK.to_string(), None)
            }
            // "Not now": calsaga's own limit, or Cal.com's budget spent.
            Ok(a) if a.status == 429 || (a.status == 503 && a.retry_after.is_some()) => {
                let pause = a.retry_after.unwrap_or(BACK_PRESSURE_PAUSE);
                (report::BACK_PRESSURE.to_string(), Some(pause))
            }
            Ok(a) if a.code().is_empty() => (a.status.to_string(), None),
            Ok(a) => (format!("{} {}", a.status, a.code()), None),
            Err(_) => ("transport error".into(), None),
        })
    }

    fn keep_booked(&self, id: Option<Uuid>) {
        let mut booked = self.booked.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(id) = id
            && booked.len() < BOOKED_MAX
        {
            booked.push(id);
        }
    }

    fn take_booked(&self, rng: &mut SmallRng) -> Option<Uuid> {
        let mut booked = self.booked.lock().unwrap_or_else(PoisonError::into_inner);
        if booked.is_empty() {
            return None;
        }
        let i = rng.gen_range(0..booked.len());
        Some(booked.swap_remove(i))
    }

    /// Redraws one stderr line each second until the clients are done.
    fn progress(&self, stopped: mpsc::Receiver<()>, deadline: Instant) {
        let started = Instant::now();
        let total_s = self.config.duration.as_secs_f64();
        while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(PROGRESS_EVERY) {
            let elapsed = started.elapsed().as_secs_f64();
            let sent = self.sent.load(Ordering::Relaxed);
            eprint!(
                "\rload: {:>5.1} of {total_s:.0} s, {sent} requests, {:.1}/s, {} not ok ",
                elapsed.min(total_s),
                sent as f64 / elapsed.max(1e-9),
                self.failed.load(Ordering::Relaxed)
            );
            if Instant::now() >= deadline {
                eprint!("(finishing requests in flight)");
            }
        }
        eprintln!();
    }
}

/// Lists every booking over the run's days (a day of margin each side for
/// time zones) and checks that no two live segments of one host overlap.
fn check_invariant(api: &Api, first: NaiveDate, last: NaiveDate) -> Result<Invariant, LoadError> {
    let (from, to) = (
        (first - Days::new(1)).to_string(),
        (last + Days::new(2)).to_string(),
    );
    let mut bookings = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..PAGES_MAX {
        let mut query = vec![
            ("from", from.as_str()),
            ("to", to.as_str()),
            ("limit", PAGE_LIMIT),
        ];
        if let Some(c) = &cursor {
            query.push(("cursor", c.as_str()));
        }
        let answer = api.get("/bookings", &query)?;
        let failed = |answer: String| LoadError::Answer {
            what: "listing the bookings for the invariant check".into(),
            answer,
        };
        if answer.status != 200 {
            return Err(failed(answer.describe()));
        }
        let page: Vec<BookingView> = serde_json::from_value(answer.body["bookings"].clone())
            .map_err(|e| failed(format!("bookings that do not parse ({e})")))?;
        bookings.extend(page);
        cursor = answer.body["nextCursor"].as_str().map(str::to_string);
        if cursor.is_none() {
            break;
        }
    }
    Ok(overlaps(&bookings))
}

/// Live segments per host, sorted by start; each must end before the next starts.
pub fn overlaps(bookings: &[BookingView]) -> Invariant {
    let mut live: Vec<(u64, DateTime<Utc>, DateTime<Utc>, Uuid)> = bookings
        .iter()
        .filter(|b| HOLDING.contains(&b.status.as_str()))
        .flat_map(|b| {
            b.segments
                .iter()
                .filter(|s| s.is_live())
                .map(move |s| (s.host, s.start, s.end, b.id))
        })
        .collect();
    live.sort();
    let mut invariant = Invariant {
        bookings_checked: bookings.len(),
        live_segments: live.len(),
        ..Invariant::default()
    };
    // The segment reaching furthest so far on this host: a long one can
    // overlap several later ones that do not overlap each other.
    let mut reach: Option<(u64, DateTime<Utc>, Uuid)> = None;
    for (host, start, end, id) in live {
        if let Some((h, far_end, far_id)) = reach
            && h == host
            && start < far_end
        {
            invariant.violations += 1;
            if invariant.overlaps.len() < OVERLAPS_LISTED_MAX {
                invariant.overlaps.push(Overlap {
                    host,
                    first: far_id,
                    second: id,
                    first_end: far_end,
                    second_start: start,
                });
            }
        }
        reach = match reach {
            Some((h, far_end, far_id)) if h == host && far_end >= end => Some((h, far_end, far_id)),
            _ => Some((host, end, id)),
        };
    }
    invariant
}

#[cfg(test)]
mod tests;
