//! Outbound webhooks as Cal.com sends them: the v2021-10-20 booking payload,
//! the HMAC-SHA256 signature over the exact body bytes, and asynchronous
//! delivery by one thread through a bounded queue and the `Poster` seam.
//! Requests never wait for a subscriber; a full queue drops (and counts) the
//! delivery instead of blocking the API.

use std::collections::VecDeque;
use std::str::FromStr;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Offset, SecondsFormat, TimeZone, Utc};
use chrono_tz::Tz;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::fixture::User;
use crate::calcom::wire::{
    self, Booking, BookingStatus, NO_SECRET_SIGNATURE, SIGNATURE_HEADER, WEBHOOK_VERSION,
    WEBHOOK_VERSION_HEADER, Webhook, WebhookBookingPayload, WebhookDelivery,
};
use crate::calcom::{Poster, TransportError};

/// Deliveries waiting for the delivery thread.
const QUEUE_LEN_MAX: usize = 256;
/// Deliveries kept for `/_mock/state` and tests.
const RECENT_MAX: usize = 1_000;

/// Cal.com's `WebhookTriggerEvents`.
const TRIGGERS: [&str; 19] = [
    "BOOKING_CREATED",
    "BOOKING_PAYMENT_INITIATED",
    "BOOKING_PAID",
    "BOOKING_RESCHEDULED",
    "BOOKING_REQUESTED",
    "BOOKING_CANCELLED",
    "BOOKING_REJECTED",
    "BOOKING_NO_SHOW_UPDATED",
    "FORM_SUBMITTED",
    "MEETING_ENDED",
    "MEETING_STARTED",
    "RECORDING_READY",
    "INSTANT_MEETING",
    "RECORDING_TRANSCRIPTION_GENERATED",
    "OOO_CREATED",
    "AFTER_HOSTS_CAL_VIDEO_NO_SHOW",
    "AFTER_GUESTS_CAL_VIDEO_NO_SHOW",
    "FORM_SUBMITTED_NO_EVENT",
    "DELEGATION_CREDENTIAL_ERROR",
];

pub fn is_trigger(name: &str) -> bool {
    TRIGGERS.contains(&name)
}

/// `X-Cal-Signature-256`: lowercase hex HMAC-SHA256 of `body` keyed by the
/// secret, or the literal `no-secret-provided` without one.
pub fn sign(secret: Option<&str>, body: &[u8]) -> String {
    match secret.filter(|s| !s.is_empty()) {
        None => NO_SECRET_SIGNATURE.to_string(),
        Some(secret) => {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
                .expect("HMAC takes keys of any length");
            mac.update(body);
            hex::encode(mac.finalize().into_bytes())
        }
    }
}

/// One outbound webhook call, exactly as posted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub trigger: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What happened to a booking, for the payload.
pub struct BookingEvent<'a> {
    pub trigger: &'static str,
    pub booking: &'a Booking,
    pub organizer: &'a User,
    /// On BOOKING_RESCHEDULED: the booking that was moved.
    pub previous: Option<&'a Booking>,
}

/// One signed delivery per active subscriber of the event's trigger.
pub fn deliveries(
    webhooks: &[Webhook],
    event: &BookingEvent<'_>,
    now: DateTime<Utc>,
) -> Vec<Delivery> {
    let subscribers: Vec<&Webhook> = webhooks
        .iter()
        .filter(|w| w.active && w.triggers.iter().any(|t| t == event.trigger))
        .collect();
    if subscribers.is_empty() {
        return Vec::new();
    }
    let body = serde_json::to_vec(&payload(event, now)).unwrap_or_default();
    subscribers
        .into_iter()
        .map(|w| Delivery {
            trigger: event.trigger.to_string(),
            url: w.subscriber_url.clone(),
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                (SIGNATURE_HEADER.into(), sign(w.secret.as_deref(), &body)),
                (WEBHOOK_VERSION_HEADER.into(), WEBHOOK_VERSION.into()),
            ],
            body: body.clone(),
        })
        .collect()
}

/// `{triggerEvent, createdAt, payload}` of webhook version 2021-10-20.
fn payload(event: &BookingEvent<'_>, now: DateTime<Utc>) -> Value {
    let b = event.booking;
    let status = match b.status {
        BookingStatus::Cancelled => "CANCELLED",
        BookingStatus::Rejected => "REJECTED",
        BookingStatus::Pending | BookingStatus::AwaitingHost => "PENDING",
        BookingStatus::Accepted => "ACCEPTED",
    };
    let o = event.organizer;
    let organizer = json!({
        "id": o.id, "name": o.name, "email": o.email, "username": o.username,
        "timeZone": o.time_zone.name(), "language": {"locale": "en"},
        "utcOffset": utc_offset_min(o.time_zone, b.start),
    });
    let attendees = b
        .attendees
        .iter()
        .map(|a| {
            let zone = Tz::from_str(&a.time_zone).unwrap_or(Tz::UTC);
            json!({"name": a.name, "email": a.email, "timeZone": a.time_zone,
                "language": {"locale": a.language}, "utcOffset": utc_offset_min(zone, b.start)})
        })
        .collect();
    let delivery = WebhookDelivery {
        trigger_event: event.trigger.to_string(),
        created_at: wire::ts::format(&now),
        payload: WebhookBookingPayload {
            event_slug: b
                .event_type
                .as_ref()
                .map(|e| e.slug.clone())
                .unwrap_or_default(),
            title: b.title.clone(),
            start_time: seconds(b.start),
            end_time: seconds(b.end),
            uid: b.uid.clone(),
            booking_id: Some(b.id),
            event_type_id: Some(b.event_type_id),
            status: status.into(),
            length: Some(b.duration),
            metadata: b.metadata.clone(),
            organizer: Some(organizer),
            attendees,
            cancellation_reason: b
                .cancellation_reason
                .clone()
                .filter(|_| status == "CANCELLED"),
            reschedule_uid: event.previous.map(|p| p.uid.clone()),
        },
    };
    let mut body = serde_json::to_value(delivery).unwrap_or(Value::Null);
    // Fields of the real payload that calsaga does not read.
    if let Some(p) = body.get_mut("payload").and_then(Value::as_object_mut) {
        p.insert("description".into(), json!(b.description));
        p.insert("location".into(), json!(b.location));
        if let Some(prev) = event.previous {
            p.insert("rescheduleId".into(), json!(prev.id));
            p.insert("rescheduleStartTime".into(), json!(seconds(prev.start)));
            p.insert("rescheduleEndTime".into(), json!(seconds(prev.end)));
        }
    }
    body
}

/// Webhook times carry no milliseconds: `2050-09-05T07:00:00Z`.
fn seconds(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn utc_offset_min(zone: Tz, at: DateTime<Utc>) -> i32 {
    zone.offset_from_utc_datetime(&at.naive_utc())
        .fix()
        .local_minus_utc()
        / 60
}

/// Queues deliveries for the delivery thread and remembers recent ones.
pub struct Deliverer {
    queue: Option<SyncSender<Delivery>>,
    log: Mutex<Log>,
}

#[derive(Default)]
struct Log {
    total: u64,
    dropped: u64,
    recent: VecDeque<Delivery>,
}

impl Deliverer {
    /// With a poster, a thread posts each delivery; without, they are only
    /// recorded.
    pub fn new(poster: Option<Arc<dyn Poster>>) -> Self {
        let queue = poster.map(|poster| {
            let (tx, rx) = sync_channel(QUEUE_LEN_MAX);
            std::thread::Builder::new()
                .name("mock-webhooks".into())
                .spawn(move || post_all(rx, poster))
                .map(|_| tx)
        });
        Self {
            // Without a thread (spawn failed) deliveries are recorded only.
            queue: queue.and_then(Result::ok),
            log: Mutex::new(Log::default()),
        }
    }

    pub fn send(&self, deliveries: Vec<Delivery>) {
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        for d in deliveries {
            log.total += 1;
            if log.recent.len() == RECENT_MAX {
                log.recent.pop_front();
            }
            log.recent.push_back(d.clone());
            if let Some(q) = &self.queue
                && let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = q.try_send(d)
            {
                log.dropped += 1;
            }
        }
    }

    /// Deliveries made since start (or the last reset), and how many of them
    /// were dropped because the queue was full.
    pub fn counts(&self) -> (u64, u64) {
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        (log.total, log.dropped)
    }

    pub fn recent(&self) -> Vec<Delivery> {
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        log.recent.iter().cloned().collect()
    }

    pub fn clear(&self) {
        *self.log.lock().unwrap_or_else(PoisonError::into_inner) = Log::default();
    }
}

/// Ends when the `Deliverer` (the only sender) is dropped. Cal.com does not
/// retry a failed delivery, so neither does the mock.
fn post_all(queue: Receiver<Delivery>, poster: Arc<dyn Poster>) {
    for d in queue {
        let _ = poster.post(&d.url, &d.headers, &d.body);
    }
}

/// A `Poster` that records what it is given and answers `status`; tests
/// wait on it with a deadline instead of sleeping.
pub struct RecordingPoster {
    status: u16,
    seen: Mutex<Vec<Delivery>>,
    arrived: Condvar,
}

impl RecordingPoster {
    pub fn new(status: u16) -> Arc<Self> {
        Arc::new(Self {
            status,
            seen: Mutex::new(Vec::new()),
            arrived: Condvar::new(),
        })
    }

    /// Waits until `count` posts arrived or `deadline` passed; returns all
    /// posts so far either way.
    pub fn wait_for(&self, count: usize, deadline: Duration) -> Vec<Delivery> {
        let until = Instant::now() + deadline;
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        while seen.len() < count {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            seen = self
                .arrived
                .wait_timeout(seen, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        seen.clone()
    }
}

impl Poster for RecordingPoster {
    fn post(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<u16, TransportError> {
        let trigger = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.get("triggerEvent")?.as_str().map(str::to_string))
            .unwrap_or_default();
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.push(Delivery {
            trigger,
            url: url.to_string(),
            headers: headers.to_vec(),
            body: body.to_vec(),
        });
        self.arrived.notify_all();
        Ok(self.status)
    }
}
