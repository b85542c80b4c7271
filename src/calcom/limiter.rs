//! The outbound rate limit: keeps one client under N requests in any window
//! (Cal.com allows 120 per minute per API key and then blocks the key for a
//! minute), and holds every request back while Cal.com has said "wait" with
//! a 429. A sliding log of the last N grant times, not a token bucket: a
//! bucket of N allows N at once and N more a moment later, which is exactly
//! what trips a fixed 60 s window on Cal.com's side.
//! Time comes only from the injected `Clock`; this module never sleeps on its
//! own and never reads the system time.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::retry::SERVER_WAIT_MAX;
use crate::clock::Clock;

/// Cal.com counts per 60 s; one extra second absorbs the difference between
/// when we send and when Cal.com counts (latency, clock skew).
pub const CALCOM_WINDOW: Duration = Duration::from_secs(61);

#[derive(Debug)]
pub struct Limiter {
    requests_max: usize,
    window: chrono::Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Grant times of the last `requests_max` requests, oldest first; some
    /// may lie in the future (granted, still waiting). Never longer than
    /// `requests_max`.
    granted: VecDeque<DateTime<Utc>>,
    paused_until: Option<DateTime<Utc>>,
}

impl Limiter {
    /// At most `requests_max` (0 is treated as 1) grants in any `window`.
    pub fn new(requests_max: u32, window: Duration) -> Self {
        let requests_max = usize::try_from(requests_max.max(1)).unwrap_or(usize::MAX);
        Self {
            requests_max,
            window: chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX),
            state: Mutex::new(State {
                granted: VecDeque::with_capacity(requests_max.min(4096)),
                paused_until: None,
            }),
        }
    }

    /// The limiter for Cal.com's per-minute limit.
    pub fn per_minute(requests_max: u32) -> Self {
        Self::new(requests_max, CALCOM_WINDOW)
    }

    /// Waits (on `clock`) until this request may be sent.
    pub async fn acquire(&self, clock: &dyn Clock) {
        let wait = self.reserve(clock.now());
        if !wait.is_zero() {
            clock.sleep(wait).await;
        }
    }

    /// Books the earliest allowed send time at or after `now` and returns how
    /// long to wait for it. Booking before waiting keeps concurrent callers
    /// in order without a wake-up loop.
    pub fn reserve(&self, now: DateTime<Utc>) -> Duration {
        let mut state = self.lock();
        let mut at = now;
        if let Some(paused_until) = state.paused_until {
            at = at.max(paused_until);
        }
        if state.granted.len() >= self.requests_max
            && let Some(oldest) = state.granted.pop_front()
        {
            at = at.max(oldest + self.window);
        }
        state.granted.push_back(at);
        (at - now).to_std().unwrap_or_default()
    }

    /// Holds every request back until `until` (a 429 said the key is blocked
    /// until then). At most `SERVER_WAIT_MAX` from `now`.
    pub fn pause_until(&self, now: DateTime<Utc>, until: DateTime<Utc>) {
        let cap = now + chrono::Duration::from_std(SERVER_WAIT_MAX).unwrap_or_default();
        let until = until.min(cap);
        let mut state = self.lock();
        state.paused_until = Some(state.paused_until.map_or(until, |p| p.max(until)));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a list of instants; a panic elsewhere cannot leave it
        // inconsistent, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SimClock;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2030-03-04T09:00:00Z")
            .unwrap()
            .to_utc()
    }

    /// Runs `calls` acquisitions and returns the grant instants.
    async fn grants(limiter: &Limiter, clock: &SimClock, calls: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        for _ in 0..calls {
            limiter.acquire(clock).await;
            out.push(clock.now());
        }
        out
    }

    fn most_in_any_window(grants: &[DateTime<Utc>], window: Duration) -> usize {
        let window = chrono::Duration::from_std(window).unwrap();
        grants
            .iter()
            .map(|start| {
                grants
                    .iter()
                    .filter(|g| **g >= *start && **g < *start + window)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[tokio::test]
    async fn the_121st_call_in_a_minute_waits_for_the_window_to_slide() {
        let clock = SimClock::new(t0());
        let limiter = Limiter::per_minute(120);
        let granted = grants(&limiter, &clock, 130).await;
        assert_eq!(clock.sleeps(), vec![CALCOM_WINDOW]);
        assert_eq!(granted[119], t0());
        assert_eq!(granted[120], t0() + chrono::Duration::seconds(61));
        assert!(most_in_any_window(&granted, CALCOM_WINDOW) <= 120);
    }

    #[tokio::test]
    async fn calls_spread_over_time_never_wait() {
        let clock = SimClock::new(t0());
        let limiter = Limiter::new(3, Duration::from_secs(60));
        for _ in 0..10 {
            limiter.acquire(&clock).await;
            clock.advance(Duration::from_secs(20));
        }
        assert!(clock.sleeps().is_empty());
    }

    #[test]
    fn concurrent_reservations_queue_in_order_and_stay_under_the_limit() {
        let limiter = Limiter::new(2, Duration::from_secs(60));
        let waits: Vec<u64> = (0..6).map(|_| limiter.reserve(t0()).as_secs()).collect();
        assert_eq!(waits, vec![0, 0, 60, 60, 120, 120]);
    }

    #[tokio::test]
    async fn a_pause_holds_every_request_until_the_reset() {
        let clock = SimClock::new(t0());
        let limiter = Limiter::per_minute(120);
        limiter.pause_until(clock.now(), t0() + chrono::Duration::seconds(7));
        limiter.acquire(&clock).await;
        limiter.acquire(&clock).await;
        assert_eq!(clock.sleeps(), vec![Duration::from_secs(7)]);
    }

    #[test]
    fn a_pause_never_shortens_an_earlier_one_and_is_capped() {
        let limiter = Limiter::per_minute(120);
        limiter.pause_until(t0(), t0() + chrono::Duration::seconds(30));
        limiter.pause_until(t0(), t0() + chrono::Duration::seconds(5));
        assert_eq!(limiter.reserve(t0()), Duration::from_secs(30));
        let other = Limiter::per_minute(120);
        other.pause_until(t0(), t0() + chrono::Duration::days(2));
        assert_eq!(other.reserve(t0()), SERVER_WAIT_MAX);
    }
}
