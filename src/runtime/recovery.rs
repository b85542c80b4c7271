//! Coming back after a crash, and waking sagas on time. On start every
//! unfinished saga is folded from its log and driven again: an intent
//! without an outcome becomes a reconcile (never a second create) and the
//! saga then finishes or compensates (I3). The timer loop wakes sagas parked
//! on a durable timer (a long retry backoff, a hold's expiry); the timers
//! live in the database, so they survive restarts too. The same loop applies
//! the admin CLI's queued requests (`admin.rs`), the first round at start.

use std::sync::atomic::Ordering;

use super::{Engine, EngineError};
use crate::saga::TERMINAL_STATES;

/// Timers woken per poll; the rest wait for the next poll.
const TIMERS_PER_POLL: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RecoveryReport {
    /// Unfinished sagas found in the log and handed to drivers.
    pub resumed: usize,
}

pub fn resume_all(engine: &Engine) -> Result<RecoveryReport, EngineError> {
    let unfinished = engine.inner.store.unfinished_workflows(TERMINAL_STATES)?;
    for row in &unfinished {
        engine.spawn_drive(row.id);
    }
    if !unfinished.is_empty() {
        tracing::info!(resumed = unfinished.len(), "resuming unfinished sagas");
    }
    Ok(RecoveryReport {
        resumed: unfinished.len(),
    })
}

/// Polls for due timers and admin requests until the engine shuts down or stops.
pub fn spawn_timer_loop(engine: Engine) {
    tokio::spawn(async move {
        let inner = &engine.inner;
        while !inner.shutting_down.load(Ordering::SeqCst) && inner.check_running().is_ok() {
            match inner.store.due_timers(inner.clock.now(), TIMERS_PER_POLL) {
                Ok(due) => due.iter().for_each(|t| engine.spawn_drive(t.workflow)),
                Err(e) => tracing::warn!(error = %e, "reading due timers failed; trying again"),
            }
            // The first round runs at start, so requests queued while calsaga
            // was down are applied by recovery.
            if let Err(e) = super::admin::apply_pending(&engine).await {
                tracing::warn!(error = %e, "applying admin requests failed; trying again");
            }
            // Real time on purpose: the poll cadence must not move a simulated clock.
            tokio::time::sleep(inner.config.timer_poll).await;
        }
    });
}
