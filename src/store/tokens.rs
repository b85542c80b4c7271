//! API tokens: a name, a scope and the SHA-256 of the token. The token
//! itself never reaches the database (it is shown once by whoever created
//! it), so a copy of the file grants nothing. This module stores and lists;
//! it never hashes, compares or judges scopes (the HTTP layer does).

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use uuid::Uuid;

use super::codec::{self, Id, Ms};
use super::sql::{execute, rows};
use super::{Store, StoreError};

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

impl Store {
    /// Every token, oldest first.
    pub fn tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        self.read(|conn| {
            rows(
                conn,
                "SELECT id, name, scope, token_sha256, created_at_ms FROM api_tokens ORDER BY created_at_ms, name",
                [],
                |row| {
                    Ok(TokenRow {
                        id: codec::id(row, 0)?,
                        name: row.get(1)?,
                        scope: row.get(2)?,
                        token_sha256: row.get(3)?,
                        created_at: codec::time(row, 4)?,
                    })
                },
            )
        })
    }
}
