//! Call statistics: one row per Cal.com call (route, outcome, latency) for
//! the health checks. Bounded by `PruneExpired`, which drops rows older than
//! `call_stats_keep_days`. This module records and returns rows; it never
//! computes rates or decides health.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use super::codec::{self, Ms};
use super::sql::{execute, rows};
use super::{Store, StoreError};

/// One Cal.com call. `status` is the HTTP status, `None` when no response
/// arrived; `class` is how the caller classified the outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallStat {
    pub at: DateTime<Utc>,
    pub route: String,
    pub status: Option<u16>,
    pub class: String,
    pub latency_ms: u64,
}

pub(super) fn record(conn: &Connection, calls: &[CallStat]) -> Result<(), StoreError> {
    for call in calls {
        execute(
            conn,
            "INSERT INTO call_stats (at_ms, route, status, class, latency_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                Ms(call.at),
                call.route,
                call.status,
                call.class,
                call.latency_ms
            ],
        )?;
    }
    Ok(())
}

impl Store {
    /// Calls at or after `since`, oldest first, at most `limit`.
    pub fn call_stats(
        &self,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<CallStat>, StoreError> {
        self.read(|conn| {
            rows(
                conn,
                "SELECT at_ms, route, status, class, latency_ms FROM call_stats
                 WHERE at_ms >= ?1 ORDER BY at_ms, id LIMIT ?2",
                params![Ms(since), limit],
                |row| {
                    Ok(CallStat {
                        at: codec::time(row, 0)?,
                        route: row.get(1)?,
                        status: row.get(2)?,
                        class: row.get(3)?,
                        latency_ms: row.get(4)?,
                    })
                },
            )
        })
    }
}
