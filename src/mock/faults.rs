//! Injected faults: rules that pick requests by route and by count or chance
//! (from a seeded RNG, so a run repeats exactly given `fault_seed` and the
//! same request order), and the named start-up scenarios. A rule can answer
//! with the real error body for a status, add latency, apply the request and
//! drop its reply, or make the booking list ignore its date filters (#18010).
//! This module only decides; the engine carries the decision out.

use std::str::FromStr;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::error::MockError;
use super::reply::ApiError;
use super::route::Route;

/// Statuses a rule may answer with; each has the real body for its route.
const STATUSES: [u16; 5] = [400, 409, 429, 500, 503];
/// Latency above this is refused: a test that wants a lost reply has `replyLost`.
const LATENCY_MS_MAX: u64 = 60_000;
/// Rules kept at once (bounds the work per request).
pub const RULES_MAX: usize = 64;

/// One fault rule, as `/_mock/faults` takes and shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultRule {
    /// `METHOD /pattern` (e.g. `POST /v2/bookings/{uid}/cancel`) or `*`.
    pub route: String,
    /// Fire on the n-th matching request only (1-based).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nth: Option<u64>,
    /// Fire on every n-th matching request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<u64>,
    /// Fire with this probability (0..=1) per matching request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Stop after firing this many times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Apply the request, then drop the reply.
    #[serde(default, skip_serializing_if = "is_false")]
    pub reply_lost: bool,
    /// `GET /v2/bookings` ignores `afterStart`/`beforeEnd`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub ignore_list_filters: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl FaultRule {
    /// A rule for `route` that does nothing yet; set the fields you need.
    pub fn on(route: &str) -> FaultRule {
        FaultRule {
            route: route.to_string(),
            nth: None,
            every: None,
            rate: None,
            times: None,
            status: None,
            latency_ms: None,
            reply_lost: false,
            ignore_list_filters: false,
        }
    }

    /// Why the rule cannot be used, if it cannot.
    pub fn problem(&self) -> Option<String> {
        let triggers = [
            self.nth.is_some(),
            self.every.is_some(),
            self.rate.is_some(),
        ];
        if self.route != "*" && !Route::all().any(|r| r.key() == self.route) {
            return Some(format!(
                "route {:?} is not a mock route; write METHOD and pattern like \"POST /v2/bookings/{{uid}}/cancel\", or \"*\"",
                self.route
            ));
        }
        if triggers.iter().filter(|t| **t).count() > 1 {
            return Some("give at most one of nth, every, rate".into());
        }
        if self.nth == Some(0) || self.every == Some(0) {
            return Some("nth and every count from 1".into());
        }
        if self.rate.is_some_and(|r| !(0.0..=1.0).contains(&r)) {
            return Some("rate is a probability between 0 and 1".into());
        }
        if self.status.is_some_and(|s| !STATUSES.contains(&s)) {
            return Some("status must be one of 400, 409, 429, 500, 503".into());
        }
        if self.latency_ms.is_some_and(|l| l > LATENCY_MS_MAX) {
            return Some(format!("latencyMs is at most {LATENCY_MS_MAX}"));
        }
        None
    }
}

/// Named fault set chosen at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scenario {
    #[default]
    Healthy,
    /// 10 % of all requests answer 503.
    Flaky,
    /// Every request takes 300 ms more.
    Slow,
    /// The rate limit drops to 10 per minute.
    RateLimited,
    /// 20 % of `POST /v2/bookings` are applied and their replies dropped.
    ReplyLost,
    /// Every request answers 503.
    Outage,
}

impl FromStr for Scenario {
    type Err = MockError;
    fn from_str(s: &str) -> Result<Self, MockError> {
        Ok(match s {
            "healthy" => Scenario::Healthy,
            "flaky" => Scenario::Flaky,
            "slow" => Scenario::Slow,
            "rate-limited" => Scenario::RateLimited,
            "reply-lost" => Scenario::ReplyLost,
            "outage" => Scenario::Outage,
            other => {
                return Err(MockError::UnknownScenario {
                    name: other.to_string(),
                });
            }
        })
    }
}

impl Scenario {
    pub fn rules(self) -> Vec<FaultRule> {
        let rule = |route: &str, f: &dyn Fn(&mut FaultRule)| {
            let mut r = FaultRule::on(route);
            f(&mut r);
            vec![r]
        };
        match self {
            Scenario::Healthy | Scenario::RateLimited => vec![],
            Scenario::Flaky => rule("*", &|r| {
                r.rate = Some(0.1);
                r.status = Some(503);
            }),
            Scenario::Slow => rule("*", &|r| r.latency_ms = Some(300)),
            Scenario::ReplyLost => rule("POST /v2/bookings", &|r| {
                r.rate = Some(0.2);
                r.reply_lost = true;
            }),
            Scenario::Outage => rule("*", &|r| r.status = Some(503)),
        }
    }

    /// The rate limit this scenario imposes, if it changes it.
    pub fn rate_limit_per_minute(self) -> Option<u32> {
        (self == Scenario::RateLimited).then_some(10)
    }
}

/// What the rules decided for one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Effect {
    pub status: Option<u16>,
    pub latency: Duration,
    pub reply_lost: bool,
    pub ignore_list_filters: bool,
}

/// A rule with its counters, as `GET /_mock/faults` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActiveRule {
    #[serde(flatten)]
    pub rule: FaultRule,
    pub matched: u64,
    pub fired: u64,
}

#[derive(Debug)]
pub struct FaultPlan {
    rules: Vec<ActiveRule>,
    rng: SmallRng,
}

impl FaultPlan {
    /// A plan from trusted rules (a scenario's); use `add` for outside input.
    pub fn new(seed: u64, rules: Vec<FaultRule>) -> Self {
        Self {
            rules: rules.into_iter().map(ActiveRule::from).collect(),
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    pub fn rules(&self) -> Vec<ActiveRule> {
        self.rules.clone()
    }

    /// Adds rules after checking them all; nothing is added on a problem.
    pub fn add(&mut self, rules: Vec<FaultRule>) -> Result<(), String> {
        if let Some(p) = rules.iter().find_map(FaultRule::problem) {
            return Err(p);
        }
        if self.rules.len() + rules.len() > RULES_MAX {
            return Err(format!(
                "at most {RULES_MAX} rules; DELETE /_mock/faults first"
            ));
        }
        self.rules.extend(rules.into_iter().map(ActiveRule::from));
        Ok(())
    }

    pub fn clear(&mut self) {
        self.rules.clear();
    }

    /// Counts the request against every rule for its route and merges what
    /// fires: the first status wins, latencies add up, flags combine.
    pub fn decide(&mut self, route: Route) -> Effect {
        let key = route.key();
        let mut effect = Effect::default();
        for active in &mut self.rules {
            if active.rule.route != "*" && active.rule.route != key {
                continue;
            }
            active.matched += 1;
            if !fires(active, &mut self.rng) {
                continue;
            }
            active.fired += 1;
            let r = &active.rule;
            effect.status = effect.status.or(r.status);
            effect.latency += Duration::from_millis(r.latency_ms.unwrap_or(0));
            effect.reply_lost |= r.reply_lost;
            effect.ignore_list_filters |= r.ignore_list_filters;
        }
        effect
    }
}

impl From<FaultRule> for ActiveRule {
    fn from(rule: FaultRule) -> Self {
        ActiveRule {
            rule,
            matched: 0,
            fired: 0,
        }
    }
}

fn fires(active: &ActiveRule, rng: &mut SmallRng) -> bool {
    let r = &active.rule;
    if r.times.is_some_and(|t| active.fired >= t) {
        return false;
    }
    match (r.nth, r.every, r.rate) {
        (Some(n), _, _) => active.matched == n,
        (_, Some(e), _) => active.matched.is_multiple_of(e),
        // The RNG is drawn only for rate rules, so adding a count rule does
        // not shift the random sequence of the others.
        (_, _, Some(p)) => rng.r#gen::<f64>() < p,
        _ => true,
    }
}

/// The real body for a canned status on a route.
pub fn canned(status: u16, route: Route, param: Option<&str>) -> ApiError {
    use Route::*;
    match (status, route) {
        (400, BookingCreate | BookingReschedule) => {
            ApiError::bad_request(super::bookings::SLOT_TAKEN)
        }
        (400, BookingCancel) => {
            ApiError::bad_request(super::bookings::already_cancelled(param.unwrap_or("")))
        }
        (409, BookingCreate | BookingReschedule) => ApiError::bare(409, super::bookings::CONFLICT),
        (409, WebhookCreate) => ApiError::nest(409, super::admin::WEBHOOK_DUPLICATE),
        (400, _) => ApiError::bad_request("Bad Request"),
        (409, _) => ApiError::nest(409, "Conflict"),
        (429, _) => ApiError::Throttled,
        (503, _) => ApiError::bare(503, "Service Unavailable"),
        _ => ApiError::internal(),
    }
}
