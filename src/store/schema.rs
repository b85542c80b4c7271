//! Schema versions: numbered migration files applied in order, each in its
//! own IMMEDIATE transaction together with the `PRAGMA user_version` bump,
//! so a crash mid-upgrade leaves the previous version intact. A database
//! from a newer build is refused, never "fixed". Migrations are append-only:
//! never edit a shipped file, add the next number.

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;

/// `migrations/000N_*.sql` is entry N-1; the schema version is the count.
pub(super) const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_http.sql"),
    include_str!("migrations/0003_admin_requests.sql"),
    include_str!("migrations/0004_orphans.sql"),
    include_str!("migrations/0005_token_use.sql"),
    include_str!("migrations/0006_step_costs.sql"),
    include_str!("migrations/0007_event_keys.sql"),
    include_str!("migrations/0008_mirror_keys.sql"),
];

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

fn version(conn: &Connection, path: &str) -> Result<u32, StoreError> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(|e| StoreError::Open {
            path: path.to_string(),
            detail: format!("reading the schema version: {e}"),
        })
}

/// Bring the database up to `SCHEMA_VERSION`; refuse a newer one.
pub(super) fn migrate(conn: &mut Connection, path: &str) -> Result<(), StoreError> {
    let found = version(conn, path)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let target = index as u32 + 1;
        let step = |conn: &mut Connection| -> rusqlite::Result<()> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", target)?;
            tx.commit()
        };
        step(conn).map_err(|e| StoreError::Migration {
            version: target,
            detail: e.to_string(),
        })?;
    }
    Ok(())
}

/// For read-only opens, which must not migrate: the version must match.
pub(super) fn require_current(conn: &Connection, path: &str) -> Result<(), StoreError> {
    let found = version(conn, path)?;
    match found.cmp(&SCHEMA_VERSION) {
        std::cmp::Ordering::Equal => Ok(()),
        std::cmp::Ordering::Greater => Err(StoreError::SchemaTooNew {
            found,
            known: SCHEMA_VERSION,
        }),
        std::cmp::Ordering::Less => Err(StoreError::SchemaTooOld {
            found,
            known: SCHEMA_VERSION,
        }),
    }
}
