//! Tests of the saga core, through one door: `Run` drives a saga the way the
//! runner will (advance, commit, call, advance with the outcome) and checks
//! after every commit that folding the log gives the same state and that the
//! state survives a serde round trip (I7). Fixtures use the salon world.

mod flows;
mod golden;
mod sim;
mod transitions;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::*;

pub const WF: Uuid = Uuid::from_u128(0x5a6a_0001);
pub const ORIGINAL_WF: Uuid = Uuid::from_u128(0x5a6a_0002);

pub fn t(s: &str) -> DateTime<Utc> {
    s.parse().expect("test time")
}

pub fn now0() -> DateTime<Utc> {
    t("2030-03-01T08:00:00Z")
}

/// Segments of the salon's services: (name, host, event type, minutes, pause).
const SEGMENTS: [(&str, u64, u64, i64, i64); 3] = [
    ("highlights", 1, 102, 60, 30),
    ("toner", 1, 103, 20, 0),
    ("blow-dry", 2, 202, 30, 0),
];

/// A plan of the first `n` segments of highlights-toner-blowdry, on
/// Tuesday 2030-03-05 from `start`.
pub fn plan_at(n: usize, start: &str) -> Plan {
    let mut at = t(start);
    let segments = SEGMENTS[..n]
        .iter()
        .enumerate()
        .map(|(k, (name, host, event_type_id, min, pause))| {
            let s = PlannedSegment {
                index: k as u16,
                name: (*name).into(),
                host: *host,
                event_type_id: *event_type_id,
                start: at,
                end: at + Duration::minutes(*min),
                pause_after_min: *pause as u32,
                alternatives: Vec::new(),
                host_change: None,
                moves: None,
            };
            at = s.end + Duration::minutes(*pause);
            s
        })
        .collect();
    Plan {
        service_id: "highlights-toner-blowdry".into(),
        service_name: "Highlights, toner and blow-dry".into(),
        segments,
    }
}

pub fn request(n: usize) -> BookingRequest {
    BookingRequest {
        plan: plan_at(n, "2030-03-05T09:00:00Z"),
        attendee: Attendee {
            name: "Mia Kunde".into(),
            email: Some("mia@example.com".into()),
            phone: None,
            time_zone: "Europe/Berlin".into(),
        },
        notes: Some("allergic to ammonia".into()),
    }
}

pub fn book(n: usize, reserve_min: Option<u32>) -> Event {
    Event::Requested {
        workflow: WF,
        request: request(n),
        reserve_min,
    }
}

pub fn hold(n: usize, hold_min: u32) -> Event {
    Event::HoldRequested {
        workflow: WF,
        request: request(n),
        hold_min,
    }
}

/// The booked original of `n` segments on Monday 2030-03-04.
pub fn original(n: usize) -> OriginalBooking {
    let plan = plan_at(n, "2030-03-04T09:00:00Z");
    OriginalBooking {
        workflow: ORIGINAL_WF,
        segments: plan
            .segments
            .iter()
            .map(|p| BookedSegment {
                calcom_uid: format!("old-{}", p.index),
                segment: p.clone(),
            })
            .collect(),
    }
}

pub fn reschedule(n: usize) -> Event {
    Event::RescheduleRequested {
        workflow: WF,
        original: original(n),
        request: request(n),
        reserve_min: None,
    }
}

pub fn cancel(n: usize) -> Event {
    Event::CancelRequested {
        workflow: WF,
        original: original(n),
        reason: "customer cancelled".into(),
    }
}

pub fn retryable(reason: &str, retry_at: Option<DateTime<Utc>>) -> Failure {
    Failure::Retryable {
        reason: reason.into(),
        retry_at,
    }
}

pub fn permanent(reason: &str) -> Failure {
    Failure::Permanent {
        reason: reason.into(),
    }
}

/// Checks I7 after a commit: folding the whole log gives the state, and the
/// state and the new events survive JSON (as the store keeps them).
pub fn check_projection(log: &[Event], new: usize, saga: &Saga) {
    assert_eq!(
        &fold(log).expect("the log folds"),
        saga,
        "fold(log) != state"
    );
    let json = serde_json::to_string(saga).expect("state serialises");
    let back: Saga = serde_json::from_str(&json).expect("state deserialises");
    assert_eq!(&back, saga, "state changed through JSON: {json}");
    for e in &log[log.len() - new..] {
        let json = serde_json::to_string(e).expect("event serialises");
        assert_eq!(&serde_json::from_str::<Event>(&json).unwrap(), e, "{json}");
    }
}

/// A saga driven like the runner drives it.
pub struct Run {
    pub log: Vec<Event>,
    pub saga: Saga,
    pub now: DateTime<Utc>,
    pub then: Then,
    pub commits: usize,
    pub claims: Vec<ClaimChange>,
}

impl Run {
    /// The API's commit of the first event, then the runner's first batch.
    pub fn start(first: Event) -> Run {
        let saga = Saga::start(&first).expect("a valid first event");
        let claims = claim_change(&saga, &first).into_iter().collect();
        let mut run = Run {
            log: vec![first],
            saga,
            now: now0(),
            then: Then::Idle,
            commits: 1,
            claims,
        };
        run.reply(Vec::new());
        run
    }

    /// Advances with `outcomes` and commits the batch.
    pub fn reply(&mut self, outcomes: Vec<Event>) -> &Then {
        let batch = advance(&self.saga, outcomes, self.now).expect("advance");
        let new = batch.events.len();
        if new > 0 {
            self.commits += 1;
        }
        self.log.extend(batch.events);
        self.claims.extend(batch.claims);
        self.saga = batch.saga;
        self.then = batch.then;
        check_projection(&self.log, new, &self.saga);
        &self.then
    }

    /// A crash and restart: the state comes back from the log alone.
    pub fn restart(&mut self) -> &Then {
        self.saga = fold(&self.log).expect("the log folds");
        self.reply(Vec::new())
    }

    /// An event from outside the runner (API or admin CLI).
    pub fn append(&mut self, event: Event) -> Result<(), TransitionError> {
        self.saga.apply(&event)?;
        self.claims.extend(claim_change(&self.saga, &event));
        self.log.push(event);
        self.commits += 1;
        Ok(())
    }

    pub fn call(&self) -> &Call {
        match &self.then {
            Then::Call(c) => c,
            other => panic!("expected a call, got {other:?}; log: {:#?}", self.log),
        }
    }

    pub fn create(&self, segment: u16, attempt: u32) -> CreateCall {
        match self.call() {
            Call::Create(c) if c.segment.index == segment && c.attempt == attempt => (**c).clone(),
            other => panic!("expected create {segment}/{attempt}, got {other:?}"),
        }
    }

    pub fn reserve(&self, segment: u16, attempt: u32) -> ReserveCall {
        match self.call() {
            Call::Reserve(c) if c.segment.index == segment && c.attempt == attempt => c.clone(),
            other => panic!("expected reserve {segment}/{attempt}, got {other:?}"),
        }
    }

    pub fn reconcile(&self, segment: u16) -> ReconcileCall {
        match self.call() {
            Call::Reconcile(c) if c.segment.index == segment => c.clone(),
            other => panic!("expected reconcile {segment}, got {other:?}"),
        }
    }

    pub fn release(&self, segment: u16) -> ReleaseCall {
        match self.call() {
            Call::Release(c) if c.segment == segment => c.clone(),
            other => panic!("expected release {segment}, got {other:?}"),
        }
    }

    pub fn cancel(&self, target: &CancelTarget) -> CancelCall {
        match self.call() {
            Call::Cancel(c) if c.target == *target => c.clone(),
            other => panic!("expected cancel {target:?}, got {other:?}"),
        }
    }

    /// Books segment k at its planned time (attempt 1) with uid `new-k`.
    pub fn book_segment(&mut self, segment: u16) {
        let c = self.create(segment, 1);
        self.reply(vec![c.booked(
            format!("new-{segment}"),
            c.segment.start,
            c.segment.end,
        )]);
    }

    pub fn reserve_segment(&mut self, segment: u16) {
        let c = self.reserve(segment, 1);
        let until = self.now + Duration::minutes(i64::from(c.reservation_min));
        self.reply(vec![c.made(format!("res-{segment}"), until)]);
    }

    pub fn release_segment(&mut self, segment: u16) {
        let c = self.release(segment);
        self.reply(vec![c.released()]);
    }

    pub fn cancel_target(&mut self, target: CancelTarget) {
        let c = self.cancel(&target);
        self.reply(vec![c.cancelled()]);
    }

    /// The kinds of the events appended so far, for order assertions.
    pub fn kinds(&self) -> Vec<&'static str> {
        self.log.iter().map(Event::kind).collect()
    }
}
