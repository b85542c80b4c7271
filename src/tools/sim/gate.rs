//! The simulator's hold on concurrency and time. Every Cal.com request the
//! engine makes and every wait it sleeps through stops here until the
//! simulation answers it, so exactly one saga moves at a time and the
//! simulated clock moves only when the simulation says: that is what makes a
//! seed repeat exactly. This module only parks and releases; it decides
//! nothing (the scheduler in `world` does).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::{oneshot, watch};

use crate::calcom::{ApiRequest, ApiResponse, Transport, TransportError};
use crate::clock::{Clock, SimClock};

pub type Reply = Result<ApiResponse, TransportError>;

/// A request parked at the gate with the way to answer it.
pub struct ParkedCall {
    pub request: ApiRequest,
    pub reply: oneshot::Sender<Reply>,
}

/// A sleep parked at the gate until the clock reaches `until`.
struct ParkedSleep {
    until: DateTime<Utc>,
    wake: oneshot::Sender<()>,
}

/// What is parked right now; one gate per engine life.
pub struct Gate {
    clock: Arc<SimClock>,
    calls: Mutex<Vec<ParkedCall>>,
    sleeps: Mutex<Vec<ParkedSleep>>,
    arrived: watch::Sender<u64>,
}

impl Gate {
    pub fn new(clock: Arc<SimClock>) -> Gate {
        Gate {
            clock,
            calls: Mutex::new(Vec::new()),
            sleeps: Mutex::new(Vec::new()),
            arrived: watch::channel(0).0,
        }
    }

    /// Ticks whenever something parks.
    pub fn arrivals(&self) -> watch::Receiver<u64> {
        self.arrived.subscribe()
    }

    pub fn parked(&self) -> usize {
        self.calls.lock().expect("gate lock").len() + self.sleeps.lock().expect("gate lock").len()
    }

    pub fn calls_parked(&self) -> usize {
        self.calls.lock().expect("gate lock").len()
    }

    /// Takes one parked call. Calls are ordered by their bytes first, so the
    /// choice does not depend on which task happened to park first.
    pub fn take_call(&self, pick: impl FnOnce(usize) -> usize) -> Option<ParkedCall> {
        let mut calls = self.calls.lock().expect("gate lock");
        if calls.is_empty() {
            return None;
        }
        calls.sort_by(|a, b| call_key(&a.request).cmp(&call_key(&b.request)));
        let i = pick(calls.len()).min(calls.len() - 1);
        Some(calls.remove(i))
    }

    /// The earliest instant a parked sleep waits for.
    pub fn next_wake(&self) -> Option<DateTime<Utc>> {
        let sleeps = self.sleeps.lock().expect("gate lock");
        sleeps.iter().map(|s| s.until).min()
    }

    /// Moves the clock to the earliest parked sleep (never backwards) and
    /// wakes every sleep due by then.
    pub fn wake_earliest(&self) {
        let Some(until) = self.next_wake() else {
            return;
        };
        if until > self.clock.now() {
            self.clock.set(until);
        }
        let mut sleeps = self.sleeps.lock().expect("gate lock");
        let (due, rest): (Vec<_>, Vec<_>) = sleeps.drain(..).partition(|s| s.until <= until);
        *sleeps = rest;
        for s in due {
            // A sleeper whose task is gone needs no waking.
            let _ = s.wake.send(());
        }
    }

    fn park_call(&self, call: ParkedCall) {
        self.calls.lock().expect("gate lock").push(call);
        self.arrived.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn park_sleep(&self, sleep: ParkedSleep) {
        self.sleeps.lock().expect("gate lock").push(sleep);
        self.arrived.send_modify(|n| *n = n.wrapping_add(1));
    }
}

fn call_key(r: &ApiRequest) -> (&'static str, &str, Option<&[u8]>) {
    (r.method.as_str(), r.path.as_str(), r.body.as_deref())
}

/// The engine's transport in a simulation: parks every request.
pub struct GatedTransport(pub Arc<Gate>);

#[async_trait]
impl Transport for GatedTransport {
    async fn send(&self, request: ApiRequest) -> Reply {
        let (reply, answer) = oneshot::channel();
        self.0.park_call(ParkedCall { request, reply });
        match answer.await {
            Ok(reply) => reply,
            // The simulation "crashed" the process mid-call: nothing answers.
            Err(_) => std::future::pending().await,
        }
    }
}

/// The engine's clock in a simulation: reads the shared `SimClock`, parks
/// every sleep until the simulation moves time to its end.
pub struct GatedClock(pub Arc<Gate>);

#[async_trait]
impl Clock for GatedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0.clock.now()
    }

    async fn sleep(&self, d: std::time::Duration) {
        let Ok(step) = chrono::Duration::from_std(d) else {
            return std::future::pending().await;
        };
        if step.is_zero() {
            return;
        }
        let (wake, woken) = oneshot::channel();
        self.0.park_sleep(ParkedSleep {
            until: self.now() + step,
            wake,
        });
        if woken.await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
