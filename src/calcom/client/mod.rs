//! `Client`: Cal.com API v2 as calsaga calls it. It builds each request
//! (route, percent-encoded query, the `cal-api-version` of the route's
//! family, bearer auth, JSON body), passes it through the outbound limiter
//! and the transport, classifies the reply (`retry::classify`), parses the
//! envelope, retries only what is `Retryable`, and reports every attempt to
//! tracing and to an optional `CallObserver`.
//! It never logs or reports the API key, and never repeats a request whose
//! outcome is unknown: a create is sent again only after reconciliation, by
//! the caller.

mod admin;
mod request;

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rand::SeedableRng;
use rand::rngs::SmallRng;

use self::request::{Ack, Call, Query, Reply, booking_path, parse, reservation_path};
use super::http::{HttpLimits, HttpSetupError, HttpTransport};
use super::limiter::Limiter;
use super::retry::{self, RetryPolicy};
use super::wire::{
    self, Booking, BookingFilter, BookingPage, CancelBooking, CreateBooking, Envelope,
    PagedEnvelope, RescheduleBooking, Reservation, ReserveSlot, ReservedSlot, SlotsByDay,
    SlotsQuery,
};
use super::{ApiResponse, CalcomApi, CalcomError, Method, Transport, TransportError};
use crate::clock::Clock;

/// Everything a `Client` needs to know. `Debug` hides the API key.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Scheme and host (and optional path prefix) without `/v2`, e.g.
    /// `https://api.cal.com` or the embedded mock's `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// Sent as `Authorization: Bearer <key>`; `None` sends no auth (public
    /// routes only).
    pub api_key: Option<String>,
    pub connect_timeout: Duration,
    /// The whole exchange, reply included.
    pub request_timeout: Duration,
    pub reply_bytes_max: usize,
    pub retry: RetryPolicy,
    /// Sends per minute this client allows itself (Cal.com: 120 per API key;
    /// 0 is treated as 1).
    pub requests_per_minute_max: u32,
}

impl Default for ClientConfig {
    fn default() -> Self {
        let limits = HttpLimits::default();
        Self {
            base_url: "https://api.cal.com".into(),
            api_key: None,
            connect_timeout: limits.connect_timeout,
            request_timeout: limits.request_timeout,
            reply_bytes_max: limits.reply_bytes_max,
            retry: RetryPolicy::default(),
            requests_per_minute_max: 120,
        }
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("reply_bytes_max", &self.reply_bytes_max)
            .field("retry", &self.retry)
            .field("requests_per_minute_max", &self.requests_per_minute_max)
            .finish()
    }
}

impl ClientConfig {
    pub fn http_limits(&self) -> HttpLimits {
        HttpLimits {
            connect_timeout: self.connect_timeout,
            request_timeout: self.request_timeout,
            reply_bytes_max: self.reply_bytes_max,
        }
    }
}

/// Receives one record per HTTP attempt (health checks, metrics, call stats).
/// Called inline on the calling task: keep it quick and non-blocking.
pub trait CallObserver: Send + Sync {
    fn record(&self, call: &CallRecord);
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    /// Method and route pattern, e.g. `POST /v2/bookings/{uid}/cancel`.
    pub route: &'static str,
    pub outcome: CallOutcome,
    pub latency_ms: u64,
    /// 1 for the first send of a call.
    pub attempt: u32,
}

/// What one attempt got back: a status, or which transport failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    Status(u16),
    NotSent,
    MaybeSent,
    ReplyTooLarge,
}

impl CallOutcome {
    fn of(exchange: &Result<ApiResponse, TransportError>) -> Self {
        match exchange {
            Ok(reply) => CallOutcome::Status(reply.status),
            Err(TransportError::NotSent { .. }) => CallOutcome::NotSent,
            Err(TransportError::MaybeSent { .. }) => CallOutcome::MaybeSent,
            Err(TransportError::ReplyTooLarge { .. }) => CallOutcome::ReplyTooLarge,
        }
    }
}

/// The Cal.com API v2 client. Cheap to share behind an `Arc`; all state
/// (limiter, jitter generator) is internal and synchronised.
pub struct Client {
    api_key: Option<String>,
    retry: RetryPolicy,
    transport: Arc<dyn Transport>,
    clock: Arc<dyn Clock>,
    rng: Mutex<SmallRng>,
    limiter: Limiter,
    observers: Vec<Arc<dyn CallObserver>>,
}

impl Client {
    /// A client over any transport (HTTP, the in-process mock, a script).
    /// `rng_seed` makes the retry jitter reproducible.
    pub fn new(
        config: ClientConfig,
        transport: Arc<dyn Transport>,
        clock: Arc<dyn Clock>,
        rng_seed: u64,
    ) -> Self {
        Self {
            limiter: Limiter::per_minute(config.requests_per_minute_max),
            api_key: config.api_key,
            retry: config.retry,
            transport,
            clock,
            rng: Mutex::new(SmallRng::seed_from_u64(rng_seed)),
            observers: Vec::new(),
        }
    }

    /// A client that talks HTTP to `config.base_url`, with a random seed.
    pub fn http(config: ClientConfig, clock: Arc<dyn Clock>) -> Result<Self, HttpSetupError> {
        let transport = HttpTransport::new(&config.base_url, config.http_limits())?;
        Ok(Self::new(
            config,
            Arc::new(transport),
            clock,
            rand::random(),
        ))
    }

    /// Also reports every attempt to `observer` (call statistics for the
    /// health checks, figures for /metrics).
    pub fn with_observer(mut self, observer: Arc<dyn CallObserver>) -> Self {
        self.observers.push(observer);
        self
    }

    /// `GET /v2/slots/reservations/{uid}`: `None` when Cal.com does not know
    /// the uid (it answers 200 with `data: null`, e.g. once it expired).
    pub async fn get_reservation(&self, uid: &str) -> Result<Option<ReservedSlot>, CalcomError> {
        let path = reservation_path(uid);
        let call = Call::slots("GET /v2/slots/reservations/{uid}", Method::Get, path);
        self.send::<Envelope<Option<ReservedSlot>>>(call).await
    }

    /// The whole call: attempts, waits and retries (see `retry`).
    async fn send<R: Reply>(&self, call: Call) -> Result<R::Data, CalcomError> {
        let clock = self.clock.as_ref();
        retry::with_retries(&self.retry, clock, &self.rng, |n| {
            self.attempt::<R>(&call, n)
        })
        .await
    }

    /// One send: limiter, transport, report, classify, parse.
    async fn attempt<R: Reply>(&self, call: &Call, attempt: u32) -> Result<R::Data, CalcomError> {
        self.limiter.acquire(self.clock.as_ref()).await;
        let started = Instant::now();
        let exchange = self
            .transport
            .send(call.to_request(self.api_key.as_deref()))
            .await;
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.report(call, attempt, &exchange, latency_ms);
        let now = self.clock.now();
        let result = retry::classify(call.route, call.repeat_safe, exchange, now)
            .and_then(|reply| parse::<R>(call, &reply));
        if let Err(CalcomError::Retryable {
            after: Some(after), ..
        }) = &result
        {
            // The server said the key is blocked: nobody sends until then.
            let after = chrono::Duration::from_std(*after).unwrap_or_default();
            self.limiter.pause_until(now, now + after);
        }
        result
    }

    fn report(
        &self,
        call: &Call,
        attempt: u32,
        exchange: &Result<ApiResponse, TransportError>,
        latency_ms: u64,
    ) {
        let outcome = CallOutcome::of(exchange);
        tracing::debug!(
            route = call.route,
            attempt,
            ?outcome,
            latency_ms,
            "Cal.com call"
        );
        let record = CallRecord {
            route: call.route,
            outcome,
            latency_ms,
            attempt,
        };
        for observer in &self.observers {
            observer.record(&record);
        }
    }
}

#[async_trait]
impl CalcomApi for Client {
    async fn slots(&self, query: &SlotsQuery) -> Result<SlotsByDay, CalcomError> {
        let path = Query::new("/v2/slots")
            .add("eventTypeId", query.event_type_id)
            .add("start", &query.start)
            .add("end", &query.end)
            .opt("timeZone", query.time_zone.as_deref())
            .opt("duration", query.duration_min)
            .opt("format", query.range.then_some("range"))
            .opt(
                "bookingUidToReschedule",
                query.booking_uid_to_reschedule.as_deref(),
            )
            .finish();
        let call = Call::slots("GET /v2/slots", Method::Get, path);
        self.send::<Envelope<SlotsByDay>>(call).await
    }

    async fn reserve_slot(&self, input: &ReserveSlot) -> Result<Reservation, CalcomError> {
        let path = "/v2/slots/reservations".to_string();
        let call = Call::slots("POST /v2/slots/reservations", Method::Post, path).json(input);
        self.send::<Envelope<Reservation>>(call).await
    }

    async fn release_reservation(&self, reservation_uid: &str) -> Result<(), CalcomError> {
        let path = reservation_path(reservation_uid);
        let call = Call::slots("DELETE /v2/slots/reservations/{uid}", Method::Delete, path);
        self.send::<Ack>(call).await
    }

    async fn create_booking(&self, input: &CreateBooking) -> Result<Booking, CalcomError> {
        let path = "/v2/bookings".to_string();
        let call = Call::bookings("POST /v2/bookings", Method::Post, path).json(input);
        self.send::<Envelope<Booking>>(call).await
    }

    async fn list_bookings(&self, filter: &BookingFilter) -> Result<BookingPage, CalcomError> {
        let path = Query::new("/v2/bookings")
            .list("status", &filter.status)
            .opt("attendeeEmail", filter.attendee_email.as_deref())
            .opt("bookingUid", filter.booking_uid.as_deref())
            .list("eventTypeIds", &filter.event_type_ids)
            .opt(
                "afterStart",
                filter.after_start.as_ref().map(wire::ts::format),
            )
            .opt(
                "beforeEnd",
                filter.before_end.as_ref().map(wire::ts::format),
            )
            .opt("take", filter.take)
            .opt("skip", filter.skip)
            .opt("sortStart", filter.sort_start.as_deref())
            .finish();
        let call = Call::bookings("GET /v2/bookings", Method::Get, path);
        self.send::<PagedEnvelope<Booking>>(call).await
    }

    async fn get_booking(&self, uid: &str) -> Result<Booking, CalcomError> {
        let call = Call::bookings("GET /v2/bookings/{uid}", Method::Get, booking_path(uid, ""));
        self.send::<Envelope<Booking>>(call).await
    }

    async fn reschedule_booking(
        &self,
        uid: &str,
        input: &RescheduleBooking,
    ) -> Result<Booking, CalcomError> {
        let route = "POST /v2/bookings/{uid}/reschedule";
        let path = booking_path(uid, "/reschedule");
        let call = Call::bookings(route, Method::Post, path).json(input);
        self.send::<Envelope<Booking>>(call).await
    }

    async fn cancel_booking(
        &self,
        uid: &str,
        input: &CancelBooking,
    ) -> Result<Booking, CalcomError> {
        let route = "POST /v2/bookings/{uid}/cancel";
        let path = booking_path(uid, "/cancel");
        // Repeating a cancel cannot cancel anything twice: a repeat after a
        // lost reply gets the recognisable "cancelled already" 400.
        let call = Call::bookings(route, Method::Post, path)
            .json(input)
            .repeat_safe();
        self.send::<Envelope<Booking>>(call).await
    }
}

#[cfg(test)]
mod tests;
