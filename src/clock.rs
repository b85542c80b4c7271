//! Time as a dependency. Everything that needs "now" or wants to wait takes a
//! `Clock`, so tests and the simulator can step time instead of sleeping, and
//! the pure saga core never reads a clock at all (it is handed `now`).

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// A source of the current instant and of waiting.
#[async_trait]
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
    /// Wait for `d`. Real clocks sleep; simulated clocks advance and return.
    async fn sleep(&self, d: Duration);
}

/// Wall-clock time and tokio timers.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }
}

/// Simulated time: starts where it is told and moves only when stepped or
/// slept on, so a test that "waits" 60 s for a rate limit takes no time and
/// can assert exactly how long the code chose to wait.
#[derive(Debug)]
pub struct SimClock {
    now: Mutex<DateTime<Utc>>,
    slept: Mutex<Vec<Duration>>,
}

impl SimClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Mutex::new(start),
            slept: Mutex::new(Vec::new()),
        }
    }

    pub fn advance(&self, d: Duration) {
        let step =
            chrono::Duration::from_std(d).expect("a simulated step fits in chrono::Duration");
        *self.now.lock().expect("clock lock") += step;
    }

    pub fn set(&self, t: DateTime<Utc>) {
        *self.now.lock().expect("clock lock") = t;
    }

    /// Every duration passed to `sleep`, in order: what the code chose to wait.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.slept.lock().expect("clock lock").clone()
    }
}

#[async_trait]
impl Clock for SimClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().expect("clock lock")
    }
    async fn sleep(&self, d: Duration) {
        self.slept.lock().expect("clock lock").push(d);
        self.advance(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sim_clock_sleep_advances_time_and_records_the_wait() {
        let t0 = DateTime::parse_from_rfc3339("2050-09-05T07:00:00Z")
            .unwrap()
            .to_utc();
        let clock = SimClock::new(t0);
        clock.sleep(Duration::from_secs(61)).await;
        assert_eq!(clock.now(), t0 + chrono::Duration::seconds(61));
        assert_eq!(clock.sleeps(), vec![Duration::from_secs(61)]);
    }
}
