//! API tokens: a name, a scope and the SHA-256 of the token. The token
//! itself never reaches the database (it is shown once by whoever created
//! it), so a copy of the file grants nothing. This module stores and lists;
//! it never hashes, compares or judges scopes (the HTTP layer does).
//! Admin commands change tokens beside a running `serve` (a short
//! transaction of their own, like queued admin requests): the table is not
//! the engine's, and `serve` notices a change by `token_changes`.

use std::path::Path;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, TransactionBehavior, params};
use uuid::Uuid;

use super::codec::{self, Id, Ms};
use super::sql::{execute, row, rows};
use super::{Store, StoreConfig, StoreError, WriteOp, batch, connection, schema};

/// What `calsaga token create|revoke` changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenChange {
    /// A new token (its hash); a taken name fails with `TokenNameTaken`.
    Put(TokenRow),
    /// An unknown name fails with `UnknownToken`.
    Revoke { name: String },
}

/// Commits `change` to the database at `path` whether or not `serve` runs
/// on it: under the one-process lock when that is free (a new file is
/// created and migrated), else beside the running `serve`.
pub fn change_tokens(path: &Path, change: TokenChange) -> Result<(), StoreError> {
    let op = match change {
        TokenChange::Put(row) => WriteOp::PutToken(row),
        TokenChange::Revoke { name } => WriteOp::RevokeToken { name },
    };
    match Store::open(path, StoreConfig::default()) {
        Ok(store) => store.commit_blocking(vec![op]),
        Err(StoreError::Locked { .. }) => commit_beside(path, op),
        Err(e) => Err(e),
    }
}

fn commit_beside(path: &Path, op: WriteOp) -> Result<(), StoreError> {
    let config = StoreConfig::default();
    let mut conn = connection::open_existing_writer(path, &config)?;
    let failed = |e: rusqlite::Error| StoreError::TokenChange {
        path: path.display().to_string(),
        detail: e.to_string(),
    };
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(failed)?;
    schema::require_current(&tx, &path.display().to_string())?;
    batch::apply(&tx, &[op], &config)?;
    tx.commit().map_err(failed)
}

/// One stored token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub id: Uuid,
    /// Unique; shown in logs instead of the token.
    pub name: String,
    /// `booking` or `admin`.
    pub scope: String,
    /// Lower-case hex SHA-256 of the token.
    pub token_sha256: String,
    pub created_at: DateTime<Utc>,
    /// When a request last came with it (written by `serve` in batches).
    pub last_used_at: Option<DateTime<Utc>>,
}

pub(super) fn put(conn: &Connection, token: &TokenRow) -> Result<(), StoreError> {
    let inserted = execute(
        conn,
        "INSERT INTO api_tokens (id, name, scope, token_sha256, created_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (name) DO NOTHING",
        params![
            Id(token.id),
            token.name,
            token.scope,
            token.token_sha256,
            Ms(token.created_at)
        ],
    )?;
    if inserted == 0 {
        return Err(StoreError::TokenNameTaken {
            name: token.name.clone(),
        });
    }
    Ok(())
}

pub(super) fn revoke(conn: &Connection, name: &str) -> Result<(), StoreError> {
    if execute(
        conn,
        "DELETE FROM api_tokens WHERE name = ?1",
        params![name],
    )? == 0
    {
        return Err(StoreError::UnknownToken {
            name: name.to_string(),
        });
    }
    Ok(())
}

pub(super) fn touch(conn: &Connection, uses: &[(String, DateTime<Utc>)]) -> Result<(), StoreError> {
    for (name, at) in uses {
        execute(
            conn,
            "UPDATE api_tokens SET last_used_ms = max(coalesce(last_used_ms, 0), ?2) WHERE name = ?1",
            params![name, Ms(*at)],
        )?;
    }
    Ok(())
}

impl Store {
    /// How many times a token was created or revoked, ever: a cheap read
    /// that tells a server its loaded set is stale.
    pub fn token_changes(&self) -> Result<i64, StoreError> {
        self.read(|conn| {
            row(conn, "SELECT n FROM api_token_changes", [], |r| r.get(0))
                .map(Option::unwrap_or_default)
        })
    }

    /// Every token, oldest first.
    pub fn tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        self.read(|conn| {
            rows(
                conn,
                "SELECT id, name, scope, token_sha256, created_at_ms, last_used_ms
                 FROM api_tokens ORDER BY created_at_ms, name",
                [],
                |row| {
                    Ok(TokenRow {
                        id: codec::id(row, 0)?,
                        name: row.get(1)?,
                        scope: row.get(2)?,
                        token_sha256: row.get(3)?,
                        created_at: codec::time(row, 4)?,
                        last_used_at: row.get::<_, Option<Ms>>(5)?.map(|m| m.0),
                    })
                },
            )
        })
    }
}
