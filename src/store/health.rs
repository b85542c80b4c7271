//! The reads the health checks need beyond the other areas' own: saga
//! activity per time window, the webhook inbox's backlog and failures, and
//! the upcoming mirror rows believed live at Cal.com. Each is one bounded
//! query over existing tables (no new index, no write). This module counts
//! and lists; it never judges what a count means (that is `health`).

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::codec::{self, Ms};
use super::mirror::{MIRROR_COLUMNS, mirror_entry};
use super::sql::{row, rows};
use super::{MirrorEntry, Store, StoreError};

/// Sagas of one time window: started, and ended in each terminal state.
/// "Ended in the window" is the last update of a workflow now in that state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivityCounts {
    /// Book and hold sagas created in the window.
    pub started: u64,
    pub booked: u64,
    pub rescheduled: u64,
    pub cancelled: u64,
    pub compensated: u64,
    pub failed: u64,
}

/// The webhook inbox at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InboxSummary {
    pub last_received_at: Option<DateTime<Utc>>,
    /// Entries still waiting to be processed.
    pub pending: u64,
    pub oldest_pending_at: Option<DateTime<Utc>>,
    /// Received since the window's start.
    pub received: u64,
    /// Of those: given up on, or pending after a failed attempt.
    pub failing: u64,
}

const ACTIVITY_SQL: &str = "SELECT
    coalesce(sum(kind IN ('book', 'hold') AND created_at_ms >= ?1), 0),
    coalesce(sum(state = 'booked' AND updated_at_ms >= ?1), 0),
    coalesce(sum(state = 'rescheduled' AND updated_at_ms >= ?1), 0),
    coalesce(sum(state = 'cancelled' AND updated_at_ms >= ?1), 0),
    coalesce(sum(state = 'compensated' AND updated_at_ms >= ?1), 0),
    coalesce(sum(state = 'failed' AND updated_at_ms >= ?1), 0)
  FROM workflows WHERE created_at_ms >= ?1 OR updated_at_ms >= ?1";

const INBOX_SQL: &str = "SELECT
    max(received_at_ms),
    coalesce(sum(state = 'pending'), 0),
    min(CASE WHEN state = 'pending' THEN received_at_ms END),
    coalesce(sum(received_at_ms >= ?1), 0),
    coalesce(sum(received_at_ms >= ?1
        AND (state = 'failed' OR (state = 'pending' AND last_error IS NOT NULL))), 0)
  FROM webhook_inbox";

impl Store {
    /// Sagas started or ended at or after `since`.
    pub fn activity_since(&self, since: DateTime<Utc>) -> Result<ActivityCounts, StoreError> {
        self.read(|conn| {
            let counts = row(conn, ACTIVITY_SQL, [Ms(since)], |r| {
                Ok(ActivityCounts {
                    started: r.get(0)?,
                    booked: r.get(1)?,
                    rescheduled: r.get(2)?,
                    cancelled: r.get(3)?,
                    compensated: r.get(4)?,
                    failed: r.get(5)?,
                })
            })?;
            Ok(counts.unwrap_or_default())
        })
    }

    /// Workflows waiting for an admin (state `failed`), at most `limit`,
    /// longest waiting first, and how many there are in all.
    pub fn failed_workflows(&self, limit: usize) -> Result<(u64, Vec<uuid::Uuid>), StoreError> {
        self.read(|conn| {
            let total = row(
                conn,
                "SELECT count(*) FROM workflows WHERE state = 'failed'",
                [],
                |r| r.get(0),
            )?
            .unwrap_or(0);
            let ids = rows(
                conn,
                "SELECT id FROM workflows WHERE state = 'failed' ORDER BY created_at_ms, id LIMIT ?1",
                [limit],
                |r| codec::id(r, 0),
            )?;
            Ok((total, ids))
        })
    }

    /// The inbox now; `received`/`failing` count entries since `since`.
    pub fn inbox_summary(&self, since: DateTime<Utc>) -> Result<InboxSummary, StoreError> {
        self.read(|conn| {
            let summary = row(conn, INBOX_SQL, [Ms(since)], |r| {
                Ok(InboxSummary {
                    last_received_at: r.get::<_, Option<Ms>>(0)?.map(|m| m.0),
                    pending: r.get(1)?,
                    oldest_pending_at: r.get::<_, Option<Ms>>(2)?.map(|m| m.0),
                    received: r.get(3)?,
                    failing: r.get(4)?,
                })
            })?;
            Ok(summary.unwrap_or_default())
        })
    }

    /// Mirror rows believed live at Cal.com (`accepted`) that start at or
    /// after `from`, soonest first, at most `limit`.
    pub fn mirror_upcoming(
        &self,
        from: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<MirrorEntry>, StoreError> {
        self.read(|conn| {
            rows(
                conn,
                &format!(
                    "SELECT {MIRROR_COLUMNS} FROM booking_mirror
                     WHERE status = 'accepted' AND start_ms >= ?1 ORDER BY start_ms, calcom_uid LIMIT ?2"
                ),
                params![Ms(from), limit],
                mirror_entry,
            )
        })
    }
}
