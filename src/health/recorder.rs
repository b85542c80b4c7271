//! Call statistics in: a `CallObserver` on the Cal.com client that keeps
//! every attempt (route, status, latency, outcome class) in a bounded
//! buffer, and a flush loop that commits the buffer to the store as one
//! `RecordCalls` batch and prunes old rows now and then. The observer never
//! blocks the calling task and never touches the database itself; when the
//! buffer is full, calls are counted as dropped rather than queued.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::evaluate::{CLASS_OK, CLASS_REFUSED};
use crate::calcom::{CallObserver, CallOutcome, CallRecord};
use crate::clock::Clock;
use crate::store::{CallStat, Store, StoreError, WriteOp};

/// Calls held between two flushes; more are dropped (and counted).
pub const RECORDER_BUFFER_MAX: usize = 10_000;
/// Flushes between two prunes of old call stats and inbox entries.
const FLUSHES_PER_PRUNE: u64 = 360;

/// Records Cal.com calls for the error-rate and response-time checks.
pub struct CallRecorder {
    store: Store,
    clock: Arc<dyn Clock>,
    buffer: Mutex<Vec<CallStat>>,
    dropped: AtomicU64,
}

/// The class the checks count errors by (`evaluate::is_error`).
pub fn class_of(outcome: CallOutcome) -> &'static str {
    match outcome {
        CallOutcome::Status(200..=299) => CLASS_OK,
        // Cal.com's considered answers about the request itself.
        CallOutcome::Status(400 | 404 | 409 | 422) => CLASS_REFUSED,
        CallOutcome::Status(401 | 403) => "auth",
        CallOutcome::Status(429) => "rate_limited",
        CallOutcome::Status(500..=599) => "server_error",
        CallOutcome::Status(_) => "unexpected",
        CallOutcome::NotSent => "not_sent",
        CallOutcome::MaybeSent => "no_reply",
        CallOutcome::ReplyTooLarge => "too_large",
    }
}

impl CallRecorder {
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> CallRecorder {
        CallRecorder {
            store,
            clock,
            buffer: Mutex::new(Vec::new()),
            dropped: AtomicU64::new(0),
        }
    }

    /// Calls dropped because the buffer was full, since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Commits the buffered calls; returns how many.
    pub async fn flush(&self) -> Result<usize, StoreError> {
        let calls = std::mem::take(&mut *self.buffer.lock().unwrap_or_else(|e| e.into_inner()));
        let n = calls.len();
        if n > 0 {
            self.store.commit(vec![WriteOp::RecordCalls(calls)]).await?;
        }
        Ok(n)
    }

    /// Flushes every `interval` until `stop` turns true (and once more
    /// then), pruning expired rows every `FLUSHES_PER_PRUNE` flushes.
    pub async fn run(&self, interval: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut flushes: u64 = 0;
        loop {
            let stopping = tokio::select! {
                _ = self.clock.sleep(interval) => false,
                _ = stop.wait_for(|s| *s) => true,
            };
            if let Err(e) = self.flush().await {
                tracing::warn!(error = %e, "could not store Cal.com call statistics; the error-rate and response-time checks miss them");
            }
            flushes += 1;
            if flushes.is_multiple_of(FLUSHES_PER_PRUNE) {
                let prune = WriteOp::PruneExpired {
                    now: self.clock.now(),
                };
                if let Err(e) = self.store.commit(vec![prune]).await {
                    tracing::warn!(error = %e, "could not prune old call statistics");
                }
            }
            if stopping {
                return;
            }
        }
    }
}

impl CallObserver for CallRecorder {
    fn record(&self, call: &CallRecord) {
        let stat = CallStat {
            at: self.clock.now(),
            route: call.route.to_string(),
            status: match call.outcome {
                CallOutcome::Status(s) => Some(s),
                _ => None,
            },
            class: class_of(call.outcome).to_string(),
            latency_ms: call.latency_ms,
        };
        let mut buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        if buffer.len() >= RECORDER_BUFFER_MAX {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        buffer.push(stat);
    }
}
