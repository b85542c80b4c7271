//! Totals over whole tables, for `/metrics` and for verifying a backup:
//! workflows by kind and state, webhook inbox entries by state, and events
//! of chosen kinds. Each is one aggregate query on a read connection; the
//! event count scans the log, so callers ask for it at scrape pace, not per
//! request. Nothing here writes or interprets a state.

use rusqlite::params_from_iter;

use super::sql::rows;
use super::{InboxState, Store, StoreError};

/// How many workflows of `kind` are in `state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateCount {
    pub kind: String,
    pub state: String,
    pub count: u64,
}

/// How many webhook inbox entries are in `state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboxCount {
    pub state: InboxState,
    pub count: u64,
}

impl Store {
    /// Workflows grouped by kind and state, sorted.
    pub fn workflow_counts(&self) -> Result<Vec<StateCount>, StoreError> {
        self.read(|conn| {
            rows(
                conn,
                "SELECT kind, state, COUNT(*) FROM workflows GROUP BY kind, state ORDER BY kind, state",
                [],
                |row| {
                    Ok(StateCount {
                        kind: row.get(0)?,
                        state: row.get(1)?,
                        count: row.get(2)?,
                    })
                },
            )
        })
    }

    /// Webhook inbox entries grouped by state (states with none are absent).
    pub fn inbox_counts(&self) -> Result<Vec<InboxCount>, StoreError> {
        self.read(|conn| {
            rows(
                conn,
                "SELECT state, COUNT(*) FROM webhook_inbox GROUP BY state ORDER BY state",
                [],
                |row| {
                    Ok(InboxCount {
                        state: row.get(0)?,
                        count: row.get(1)?,
                    })
                },
            )
        })
    }

    /// How many events of each of `kinds` the log holds, in the order of
    /// `kinds` (zero for a kind never logged).
    pub fn event_counts(&self, kinds: &[&str]) -> Result<Vec<u64>, StoreError> {
        if kinds.is_empty() {
            return Ok(Vec::new());
        }
        let marks = vec!["?"; kinds.len()].join(", ");
        // Only placeholders are formatted in; the kinds go in as parameters.
        let sql =
            format!("SELECT kind, COUNT(*) FROM events WHERE kind IN ({marks}) GROUP BY kind");
        let found: Vec<(String, u64)> = self.read(|conn| {
            rows(conn, &sql, params_from_iter(kinds.iter()), |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
        })?;
        Ok(kinds
            .iter()
            .map(|k| {
                found
                    .iter()
                    .find(|(kind, _)| kind == k)
                    .map_or(0, |(_, n)| *n)
            })
            .collect())
    }
}
