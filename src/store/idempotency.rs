//! Idempotency keys of the booking API: a key maps to the workflow it
//! started and the request's fingerprint, and later to the response to
//! replay. A key is taken in the same batch as its workflow, so a retried
//! request can never start a second saga. Expired keys may be reused and are
//! pruned by `PruneExpired`; this module never judges fingerprints (the HTTP
//! layer compares them).

use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use uuid::Uuid;

use super::codec::{self, Id, Ms};
use super::error::write_error;
use super::sql::{execute, row};
use super::{Store, StoreError};

/// A stored key. It may have expired: check `is_expired`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRow {
    pub key: String,
    pub fingerprint: String,
    pub workflow: Uuid,
    /// JSON of the response to replay, once there is one.
    pub response: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl IdempotencyRow {
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        now >= self.expires_at
    }
}

fn load(conn: &Connection, key: &str) -> rusqlite::Result<Option<IdempotencyRow>> {
    row(
        conn,
        "SELECT key, fingerprint, workflow_id, response, created_at_ms, expires_at_ms
         FROM idempotency_keys WHERE key = ?1",
        [key],
        |row| {
            Ok(IdempotencyRow {
                key: row.get(0)?,
                fingerprint: row.get(1)?,
                workflow: codec::id(row, 2)?,
                response: row.get(3)?,
                created_at: codec::time(row, 4)?,
                expires_at: codec::time(row, 5)?,
            })
        },
    )
}

pub(super) fn put(
    conn: &Connection,
    key: &str,
    fingerprint: &str,
    workflow: Uuid,
    at: DateTime<Utc>,
    ttl: Duration,
) -> Result<(), StoreError> {
    let expires_at = chrono::Duration::from_std(ttl)
        .ok()
        .and_then(|ttl| at.checked_add_signed(ttl))
        .ok_or_else(|| StoreError::Invalid {
            detail: format!("idempotency key ttl {ttl:?} is out of range"),
        })?;
    // Insert, or take over a key whose time is up; an unexpired key stays.
    let stored = execute(
        conn,
        "INSERT INTO idempotency_keys (key, fingerprint, workflow_id, response, created_at_ms, expires_at_ms)
         VALUES (?1, ?2, ?3, NULL, ?4, ?5)
         ON CONFLICT (key) DO UPDATE SET fingerprint = excluded.fingerprint,
             workflow_id = excluded.workflow_id, response = NULL,
             created_at_ms = excluded.created_at_ms, expires_at_ms = excluded.expires_at_ms
         WHERE idempotency_keys.expires_at_ms <= excluded.created_at_ms",
        params![key, fingerprint, Id(workflow), Ms(at), Ms(expires_at)],
    )?;
    if stored == 0 {
        let holder = load(conn, key).map_err(write_error)?;
        return Err(match holder {
            Some(row) => StoreError::IdempotencyKeyExists {
                key: key.to_string(),
                workflow: row.workflow,
                fingerprint: row.fingerprint,
            },
            None => StoreError::Invalid {
                detail: format!("idempotency key {key:?} was neither stored nor found"),
            },
        });
    }
    Ok(())
}

pub(super) fn set_response(conn: &Connection, key: &str, response: &str) -> Result<(), StoreError> {
    let updated = execute(
        conn,
        "UPDATE idempotency_keys SET response = ?2 WHERE key = ?1",
        params![key, response],
    )?;
    if updated == 0 {
        return Err(StoreError::IdempotencyKeyMissing {
            key: key.to_string(),
        });
    }
    Ok(())
}

impl Store {
    /// The stored key, expired or not.
    pub fn idempotency_key(&self, key: &str) -> Result<Option<IdempotencyRow>, StoreError> {
        self.read(|conn| load(conn, key))
    }
}
