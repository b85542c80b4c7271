//! What can go wrong, and who decides it. A `Fault` is what Cal.com does
//! with one call (answer, refuse the slot, throttle, fail, dawdle, time out,
//! apply it and lose the reply, let it land late, ignore a list's
//! filters); a `CrashPlan` is
//! whether the process dies around it. `Mode` is the policy: random from the seed at a fault level,
//! or one exact crash point for the exhaustive enumeration. Faults are
//! carried out through the mock's own fault rules.

use rand::Rng;
use rand::rngs::SmallRng;

use crate::calcom::{ApiRequest, Method};
use crate::mock::FaultRule;

/// How rough a random run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultLevel {
    None,
    Light,
    Heavy,
}

impl std::str::FromStr for FaultLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(FaultLevel::None),
            "light" => Ok(FaultLevel::Light),
            "heavy" => Ok(FaultLevel::Heavy),
            other => Err(format!(
                "unknown fault level {other:?}; use none, light or heavy"
            )),
        }
    }
}

impl FaultLevel {
    /// (chance a call is faulted, chance the process crashes at a call).
    fn chances(self) -> (f64, f64) {
        match self {
            FaultLevel::None => (0.0, 0.0),
            FaultLevel::Light => (0.08, 0.01),
            FaultLevel::Heavy => (0.35, 0.05),
        }
    }
}

/// What Cal.com does with one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Ok,
    /// 400 or 409 on a create (400 on a move): someone else has the slot.
    SlotTaken {
        status: u16,
    },
    RateLimited,
    ServerError {
        status: u16,
    },
    Latency {
        ms: u64,
    },
    /// No reply and the request never arrived.
    Timeout,
    /// Applied, and the reply lost on the way back.
    ReplyLost,
    /// A booking list that ignores its date filters (Cal.com #18010).
    FiltersIgnored,
    /// No reply, and the request lands at Cal.com a few steps later (but
    /// before simulated time moves, so within any settle window).
    LateLanding,
}

impl Fault {
    /// The name counted in the summary; None for `Ok`.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Fault::Ok => return None,
            Fault::SlotTaken { .. } => "slot_taken",
            Fault::RateLimited => "rate_limited",
            Fault::ServerError { .. } => "server_error",
            Fault::Latency { .. } => "latency",
            Fault::Timeout => "timeout",
            Fault::ReplyLost => "reply_lost",
            Fault::FiltersIgnored => "filters_ignored",
            Fault::LateLanding => "late_landing",
        })
    }

    /// The mock rule that makes the next request suffer this fault.
    pub fn rule(self) -> Option<FaultRule> {
        let mut rule = FaultRule::on("*");
        rule.times = Some(1);
        match self {
            Fault::Ok | Fault::Timeout | Fault::LateLanding => return None,
            Fault::SlotTaken { status } | Fault::ServerError { status } => {
                rule.status = Some(status)
            }
            Fault::RateLimited => rule.status = Some(429),
            Fault::Latency { ms } => rule.latency_ms = Some(ms),
            Fault::ReplyLost => rule.reply_lost = true,
            Fault::FiltersIgnored => rule.ignore_list_filters = true,
        }
        Some(rule)
    }

    fn random(request: &ApiRequest, rng: &mut SmallRng) -> Fault {
        let create = request.method == Method::Post && request.path == "/v2/bookings";
        let list = request.method == Method::Get && request.path.starts_with("/v2/bookings?");
        let moving = request.method == Method::Post && request.path.ends_with("/reschedule");
        match rng.gen_range(0..7) {
            6 if create => Fault::LateLanding,
            5 | 6 if list => Fault::FiltersIgnored,
            0 if create => Fault::SlotTaken {
                status: if rng.gen_bool(0.5) { 400 } else { 409 },
            },
            // Cal.com refuses a move into busy time with the create's 400.
            0 if moving => Fault::SlotTaken { status: 400 },
            0 | 1 => Fault::ServerError {
                status: if rng.gen_bool(0.5) { 500 } else { 503 },
            },
            2 => Fault::RateLimited,
            3 => Fault::Latency {
                ms: rng.gen_range(1..=5_000),
            },
            4 | 6 => Fault::Timeout,
            _ => Fault::ReplyLost,
        }
    }
}

/// Whether the process dies around a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPlan {
    No,
    /// The intent is committed; the request is never sent.
    BeforeSend,
    /// Cal.com handled the request; its outcome is never recorded.
    AfterCall,
}

/// What happens at the chosen step of an exhaustive crash point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Boundary {
    /// Crash after the step's intent commit, before its call.
    BeforeCall,
    /// The call succeeds at Cal.com; crash before the outcome is recorded.
    AfterOk,
    /// Cal.com refuses the call (400); crash before that is recorded.
    AfterRefused,
    /// Cal.com applies the call and the reply is lost; the engine records
    /// the uncertainty, and the crash comes before the next call.
    ReplyLostThenCrash,
}

impl Boundary {
    pub const ALL: [Boundary; 4] = [
        Boundary::BeforeCall,
        Boundary::AfterOk,
        Boundary::AfterRefused,
        Boundary::ReplyLostThenCrash,
    ];
}

/// One exhaustive crash point: step `k` (1-based, counted from the first
/// call after op number `from_op` was issued) meets `boundary`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashPoint {
    pub from_op: usize,
    pub k: u32,
    pub boundary: Boundary,
}

/// Progress of a crash-point run.
#[derive(Debug, Clone, Copy)]
pub struct PointState {
    point: CrashPoint,
    counting: bool,
    seen: u32,
    reached: bool,
    crash_next: bool,
}

/// The policy of a run.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    Random(FaultLevel),
    Point(PointState),
}

impl Mode {
    pub fn point(point: CrashPoint) -> Mode {
        Mode::Point(PointState {
            point,
            counting: point.from_op == 0,
            seen: 0,
            reached: false,
            crash_next: false,
        })
    }

    /// Whether the crash point's step was reached.
    pub fn reached(&self) -> bool {
        matches!(self, Mode::Point(s) if s.reached)
    }

    /// Random runs interleave requests with progress; crash points let
    /// each request settle first, so step k is the same step every time.
    pub fn prefers_op(&self, rng: &mut SmallRng) -> bool {
        match self {
            Mode::Random(_) => rng.gen_bool(0.35),
            Mode::Point(_) => false,
        }
    }

    /// Crash points issue the next request (a confirm) before a hold's
    /// expiry timer fires; random runs let either come first.
    pub fn ops_before_timers(&self) -> bool {
        matches!(self, Mode::Point(_))
    }

    pub fn op_issued(&mut self, issued: usize) {
        if let Mode::Point(s) = self {
            s.counting |= issued > s.point.from_op;
        }
    }

    /// The fault and crash for the next answered call.
    pub fn decide(
        &mut self,
        request: &ApiRequest,
        healed: bool,
        rng: &mut SmallRng,
    ) -> (Fault, CrashPlan) {
        match self {
            Mode::Random(level) => {
                let (fault_p, crash_p) = level.chances();
                if healed {
                    return (Fault::Ok, CrashPlan::No);
                }
                let fault = if rng.gen_bool(fault_p) {
                    Fault::random(request, rng)
                } else {
                    Fault::Ok
                };
                let crash = match rng.gen_bool(crash_p) {
                    false => CrashPlan::No,
                    true if rng.gen_bool(0.5) => CrashPlan::BeforeSend,
                    true => CrashPlan::AfterCall,
                };
                (fault, crash)
            }
            Mode::Point(s) => s.decide(),
        }
    }
}

impl PointState {
    fn decide(&mut self) -> (Fault, CrashPlan) {
        if self.crash_next {
            self.crash_next = false;
            return (Fault::Ok, CrashPlan::BeforeSend);
        }
        if !self.counting || self.reached {
            return (Fault::Ok, CrashPlan::No);
        }
        self.seen += 1;
        if self.seen < self.point.k {
            return (Fault::Ok, CrashPlan::No);
        }
        self.reached = true;
        match self.point.boundary {
            Boundary::BeforeCall => (Fault::Ok, CrashPlan::BeforeSend),
            Boundary::AfterOk => (Fault::Ok, CrashPlan::AfterCall),
            Boundary::AfterRefused => (Fault::SlotTaken { status: 400 }, CrashPlan::AfterCall),
            Boundary::ReplyLostThenCrash => {
                self.crash_next = true;
                (Fault::ReplyLost, CrashPlan::No)
            }
        }
    }
}
