//! The baseline `calsaga bench engine` compares group commit against: how
//! many FULL-sync commits per second this disk sustains with exactly the
//! store's settings (the same PRAGMA table, WAL, synchronous=FULL, one
//! `BEGIN IMMEDIATE` transaction per commit), on a log laid out as a
//! running store's is, each commit writing a given number of pages: one
//! (a single-row commit, the floor the aims are set against) or as many as
//! a saga's step writes (the floor for a step of that size). Works on a
//! scratch database of its own and never touches the store's file.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rusqlite::{Connection, TransactionBehavior};

use super::connection::open_writer;
use super::error::write_error;
use super::{StoreConfig, StoreError};

/// Measure FULL-sync commits per second on the disk holding `dir` (pass
/// the database's directory to measure the same disk), writing `pages`
/// pages to the log per commit on average (at least 1; 1 is a single-row
/// commit; 9.75 is three commits of 10 pages to one of 9).
/// Creates a uniquely named scratch database in `dir`, lays its log out
/// (untimed), commits `commits` transactions (at least 1), removes the
/// scratch files and returns commits/s.
pub fn raw_commit_rate(dir: &Path, commits: u32, pages: f64) -> Result<f64, StoreError> {
    let scratch = dir.join(format!(".calsaga-bench-{}.db", uuid::Uuid::new_v4()));
    let measured = open_writer(&scratch, &StoreConfig::default())
        .and_then(|mut conn| measure(&mut conn, commits.max(1), pages.max(1.0)));
    for suffix in ["", "-wal", "-shm"] {
        let mut name = scratch.clone().into_os_string();
        name.push(suffix);
        // Gone already is fine; anything else leaves a small scratch file.
        let _ = std::fs::remove_file(PathBuf::from(name));
    }
    measured
}

/// Commit `n` updates rows in place, as many as take the pages written so
/// far to `pages` x `n` (rounded down). A row fills most of a page, so
/// each sits on a leaf of its own and a row updated is a page written: no
/// page splits, and the file never grows once laid out.
pub(super) fn measure(conn: &mut Connection, commits: u32, pages: f64) -> Result<f64, StoreError> {
    let page_size: i64 = conn
        .query_row("PRAGMA page_size", [], |row| row.get(0))
        .map_err(write_error)?;
    conn.execute_batch("CREATE TABLE bench (n INTEGER NOT NULL, fill BLOB NOT NULL) STRICT")
        .map_err(write_error)?;
    for _ in 0..pages.ceil() as u32 {
        conn.execute(
            "INSERT INTO bench (n, fill) VALUES (0, zeroblob(?1))",
            [page_size * 3 / 4],
        )
        .map_err(write_error)?;
    }
    lay_out_log(conn).map_err(write_error)?;
    let written_by = |n: u32| (f64::from(n) * pages).floor() as i64;
    let started = Instant::now();
    for n in 0..commits {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(write_error)?;
        tx.execute(
            "UPDATE bench SET n = n + 1 WHERE rowid <= ?1",
            [written_by(n + 1) - written_by(n)],
        )
        .map_err(write_error)?;
        tx.commit().map_err(write_error)?;
    }
    Ok(f64::from(commits) / started.elapsed().as_secs_f64().max(1e-9))
}

/// Grows the scratch log to the size it is checkpointed at, then
/// checkpoints it, so the next commit starts the log again from its
/// beginning. A store that has run for a few seconds writes every commit
/// over blocks its log file already has; a new file grows with each commit
/// instead, and on ext4 each growth adds a journal commit to the fsync
/// (single-row commits take about twice as long: docs/PERFORMANCE.md). The
/// baseline is what a running store's commits pay.
pub(super) fn lay_out_log(conn: &Connection) -> rusqlite::Result<()> {
    let pages: i64 = conn.query_row("PRAGMA wal_autocheckpoint", [], |row| row.get(0))?;
    let page_size: i64 = conn.query_row("PRAGMA page_size", [], |row| row.get(0))?;
    conn.execute_batch("CREATE TABLE layout (fill BLOB NOT NULL) STRICT")?;
    conn.execute(
        "INSERT INTO layout (fill) VALUES (zeroblob(?1))",
        [pages.max(1).saturating_mul(page_size)],
    )?;
    conn.execute_batch("DROP TABLE layout")?;
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
}
