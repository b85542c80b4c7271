//! The webhook inbox: Cal.com webhook bodies stored (after the HTTP layer
//! checked their signature) before they are acknowledged (I5), then worked
//! off by the runner with retries. The same body delivered twice is
//! recognised by its SHA-256 and stored once. This module never parses a
//! body; it only keeps it and its processing state.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use sha2::{Digest, Sha256};

use super::codec::{self, Ms, text_states};
use super::sql::{execute, rows};
use super::{Store, StoreError};

/// Where an inbox entry is in its processing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxState {
    /// Waiting for (another) attempt at `next_attempt_at`.
    Pending,
    /// Turned into events; kept until pruned, for deduplication.
    Processed,
    /// Given up on; needs an admin.
    Failed,
}

text_states!(InboxState, "inbox state", {
    Pending => "pending",
    Processed => "processed",
    Failed => "failed",
});

/// A stored webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxRow {
    pub id: i64,
    /// Lower-case hex SHA-256 of `body`.
    pub body_sha256: String,
    pub body: String,
    pub received_at: DateTime<Utc>,
    pub state: InboxState,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
}

/// The dedupe key of a webhook body.
pub fn body_sha256(body: &str) -> String {
    hex::encode(Sha256::digest(body.as_bytes()))
}

pub(super) fn insert(
    conn: &Connection,
    body: &str,
    received_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let sha = body_sha256(body);
    let inserted = execute(
        conn,
        "INSERT INTO webhook_inbox (body_sha256, body, received_at_ms, state, attempts, next_attempt_at_ms)
         VALUES (?1, ?2, ?3, 'pending', 0, ?3) ON CONFLICT (body_sha256) DO NOTHING",
        params![sha, body, Ms(received_at)],
    )?;
    if inserted == 0 {
        return Err(StoreError::InboxDuplicate { body_sha256: sha });
    }
    Ok(())
}

pub(super) fn update(
    conn: &Connection,
    id: i64,
    state: InboxState,
    attempts: u32,
    next_attempt_at: DateTime<Utc>,
    last_error: Option<&str>,
) -> Result<(), StoreError> {
    let updated = execute(
        conn,
        "UPDATE webhook_inbox SET state = ?2, attempts = ?3, next_attempt_at_ms = ?4, last_error = ?5
         WHERE id = ?1",
        params![id, state, attempts, Ms(next_attempt_at), last_error],
    )?;
    if updated == 0 {
        return Err(StoreError::InboxMissing { id });
    }
    Ok(())
}

impl Store {
    /// Pending entries whose next attempt is due at `now`, oldest due first.
    pub fn inbox_due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<InboxRow>, StoreError> {
        self.read(|conn| {
            rows(
                conn,
                "SELECT id, body_sha256, body, received_at_ms, state, attempts, next_attempt_at_ms, last_error
                 FROM webhook_inbox WHERE state = 'pending' AND next_attempt_at_ms <= ?1
                 ORDER BY next_attempt_at_ms, id LIMIT ?2",
                params![Ms(now), limit],
                |row| {
                    Ok(InboxRow {
                        id: row.get(0)?,
                        body_sha256: row.get(1)?,
                        body: row.get(2)?,
                        received_at: codec::time(row, 3)?,
                        state: row.get(4)?,
                        attempts: row.get(5)?,
                        next_attempt_at: codec::time(row, 6)?,
                        last_error: row.get(7)?,
                    })
                },
            )
        })
    }
}
