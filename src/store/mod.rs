//! The durable store: the only place with SQL, and the only module that
//! imports rusqlite or r2d2 (I8). It keeps the event log, workflows and
//! their projections, timers, idempotency keys, the webhook inbox, the
//! booking mirror, slot claims and call stats in one SQLite file (WAL,
//! synchronous=FULL). One writer thread commits batches with group commit;
//! reads go through a pool of read-only connections. The store knows nothing
//! of saga types: events are (kind, JSON payload) and projections are JSON
//! text. It must never call Cal.com, read a clock (callers pass every
//! instant) or decide what a failure means for a saga.
//!
//! Files: `mod.rs` opening and the public face, `connection.rs` PRAGMAs and
//! connections, `schema.rs` migrations, `lock.rs` one process per database,
//! `writer.rs` group commit, `batch.rs` the write ops, `sql.rs` statement
//! helpers, `codec.rs` column encodings, then one file per
//! area (`log`, `claims`, `timers`, `idempotency`, `inbox`, `mirror`,
//! `stats`, `counts` (totals for metrics and backups), `health` (the health
//! checks' reads), `orphans`, and for the HTTP API `tokens`, `flags`,
//! `bookings`, and for the admin CLI `admin_requests`) holding that area's
//! SQL, and `bench.rs` the disk baseline.

mod admin_requests;
mod batch;
mod bench;
mod bookings;
mod claims;
mod codec;
mod connection;
mod counts;
mod error;
mod flags;
mod health;
mod idempotency;
mod inbox;
mod lock;
mod log;
mod mirror;
mod orphans;
mod schema;
mod sql;
mod stats;
mod timers;
mod tokens;
mod writer;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use admin_requests::{
    AdminRequestRow, AdminRequestState, NewAdminRequest, queue_admin_request,
};
pub use batch::{PRUNE_ROWS_MAX, WriteBatch, WriteOp};
pub use bench::raw_commit_rate;
pub use bookings::{AroundRows, BookingCursor, BookingListRow, BookingQuery};
pub use claims::{Claim, ClaimRow};
pub use connection::checkpoint_pages;
pub use counts::{InboxCount, StateCount};
pub use error::StoreError;
pub use flags::BookingFlag;
pub use health::{ActivityCounts, InboxSummary};
pub use idempotency::IdempotencyRow;
pub use inbox::{InboxRow, InboxState, body_sha256};
pub use log::{
    EventRow, LIST_ROWS_MAX, NewEvent, Projection, WorkflowCursor, WorkflowFilter, WorkflowRow,
};
pub use mirror::MirrorEntry;
pub use orphans::{OrphanBooking, OrphanRow, OrphanState};
pub use schema::SCHEMA_VERSION;
pub use stats::CallStat;
pub use timers::TimerRow;
pub use tokens::{TokenChange, TokenRow, change_tokens};
pub use writer::{CommitObserver, CommitStats};

use connection::ReadPool;
use error::read_error;
use lock::DbLock;
pub use lock::Holder;
use writer::Writer;

/// Tuning of one `Store`. Every wait has a deadline and every queue a bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// How long a connection waits for a lock held by another connection.
    pub busy_timeout_ms: u64,
    /// Read-only connections in the pool.
    pub read_pool_max: u32,
    /// How long a read waits for a free pooled connection.
    pub read_wait_ms: u64,
    /// Batches that may wait for the writer; senders beyond it wait for room.
    pub write_queue_max: usize,
    /// Most batches committed in one transaction.
    pub group_batches_max: usize,
    /// Deadline for a commit (queueing + writing); past it the outcome is
    /// unknown and the store is poisoned.
    pub commit_timeout_ms: u64,
    /// `PruneExpired` drops call stats older than this.
    pub call_stats_keep_days: u32,
    /// `PruneExpired` drops processed/failed inbox entries older than this.
    pub inbox_keep_days: u32,
    /// Test hook: SQL run on the write connection after opening, e.g. to
    /// cap its size and make the disk "full".
    #[cfg(test)]
    pub(crate) writer_test_sql: &'static str,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            busy_timeout_ms: 5_000,
            read_pool_max: 8,
            read_wait_ms: 5_000,
            write_queue_max: 1_024,
            group_batches_max: 256,
            commit_timeout_ms: 30_000,
            call_stats_keep_days: 7,
            inbox_keep_days: 30,
            #[cfg(test)]
            writer_test_sql: "",
        }
    }
}

impl StoreConfig {
    fn busy_timeout(&self) -> Duration {
        Duration::from_millis(self.busy_timeout_ms)
    }
}

/// Handle to the database; cheap to clone, all clones share one writer. The
/// lock on the file is released when the last clone is dropped.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

/// Field order is drop order: the writer (and its connection) goes before
/// the lock, so a second process can never open while we still write.
struct Inner {
    path: PathBuf,
    config: StoreConfig,
    readers: ReadPool,
    writer: Option<Writer>,
    lock: Option<DbLock>,
}

impl Store {
    /// Open (creating if needed) the database at `path` for this process:
    /// take the one-process lock, set PRAGMAs, migrate, start the writer.
    pub fn open(path: impl AsRef<Path>, config: StoreConfig) -> Result<Store, StoreError> {
        let path = path.as_ref();
        let lock = lock::acquire(path)?;
        let mut conn = connection::open_writer(path, &config)?;
        #[cfg(test)]
        conn.execute_batch(config.writer_test_sql)
            .map_err(error::write_error)?;
        schema::migrate(&mut conn, &path.display().to_string())?;
        let readers = connection::open_readers(path, &config)?;
        let writer = Writer::spawn(conn, &config).map_err(|e| StoreError::Open {
            path: path.display().to_string(),
            detail: format!("starting the writer thread: {e}"),
        })?;
        Ok(Store::from_parts(
            path,
            config,
            readers,
            Some(writer),
            Some(lock),
        ))
    }

    /// Says in the lock file where this process serves and which Cal.com it
    /// uses, for admin commands on the same database (`Store::announced`).
    /// A read-only store holds no lock and says nothing.
    pub fn announce(&self, holder: &Holder) -> std::io::Result<()> {
        match &self.inner.lock {
            Some(lock) => lock.describe(holder),
            None => Ok(()),
        }
    }

    /// What the `serve` running on `db` announced, if one did (a crashed one
    /// leaves its line until the next start: try it, do not trust it).
    pub fn announced(db: impl AsRef<Path>) -> Option<Holder> {
        lock::announced(db.as_ref())
    }

    /// Open an existing database for reading only (admin tools): no lock, no
    /// writer, no migration, so it works while calsaga runs. Commits fail
    /// with `StoreError::ReadOnly`.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let path = path.as_ref();
        let config = StoreConfig::default();
        let probe = connection::open_reader(path, &config)?;
        schema::require_current(&probe, &path.display().to_string())?;
        drop(probe);
        let readers = connection::open_readers(path, &config)?;
        Ok(Store::from_parts(path, config, readers, None, None))
    }

    fn from_parts(
        path: &Path,
        config: StoreConfig,
        readers: ReadPool,
        writer: Option<Writer>,
        lock: Option<DbLock>,
    ) -> Store {
        Store {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                config,
                readers,
                writer,
                lock,
            }),
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn writer(&self) -> Result<&Writer, StoreError> {
        self.inner.writer.as_ref().ok_or(StoreError::ReadOnly)
    }

    /// Commit `batch` atomically; returns after COMMIT (durable), or with the
    /// batch's own error (nothing of it stored), or with `WriteFailed` (the
    /// store is poisoned). Needs a tokio runtime with timers.
    pub async fn commit(&self, batch: WriteBatch) -> Result<(), StoreError> {
        self.writer()?.commit(batch).await
    }

    /// `commit` for threads outside async code (it blocks the thread).
    pub fn commit_blocking(&self, batch: WriteBatch) -> Result<(), StoreError> {
        self.writer()?.commit_blocking(batch)
    }

    /// True after a write failure of the database itself: no further write
    /// is accepted; restart calsaga (recovery) once the disk is fixed.
    pub fn is_poisoned(&self) -> bool {
        self.inner
            .writer
            .as_ref()
            .is_some_and(|w| w.poisoned().is_some())
    }

    /// Commits and batches so far (zero for a read-only store).
    pub fn commit_stats(&self) -> CommitStats {
        self.inner
            .writer
            .as_ref()
            .map(Writer::stats)
            .unwrap_or_default()
    }

    /// Reports the duration of every later commit to `observer` (metrics).
    /// False when the store is read-only or an observer is already set.
    pub fn observe_commits(&self, observer: Arc<dyn CommitObserver>) -> bool {
        self.inner
            .writer
            .as_ref()
            .is_some_and(|w| w.observe(observer))
    }

    /// Run `query` on a pooled read-only connection.
    fn read<T>(
        &self,
        query: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let conn = self
            .inner
            .readers
            .get()
            .map_err(|e| StoreError::ReadFailed {
                detail: format!(
                    "no read connection free within {} ms ({e}); reads are piling up",
                    self.inner.config.read_wait_ms
                ),
            })?;
        query(&conn).map_err(read_error)
    }

    /// `PRAGMA integrity_check`: "ok", or SQLite's list of problems.
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        self.read(|conn| {
            let lines: Vec<String> = conn
                .prepare("PRAGMA integrity_check")?
                .query_map([], |row| row.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(lines.join("\n"))
        })
    }

    /// Write a consistent copy of the database to `path` (`VACUUM INTO`),
    /// which must not exist yet. Safe while calsaga runs.
    pub fn backup_to(&self, path: impl AsRef<Path>) -> Result<(), StoreError> {
        let target = path.as_ref();
        let failed = |detail: String| StoreError::Backup {
            path: target.display().to_string(),
            detail,
        };
        let target_text = target
            .to_str()
            .ok_or_else(|| failed("the path is not valid UTF-8".into()))?;
        let conn = connection::open_reader(&self.inner.path, &self.inner.config)?;
        conn.execute("VACUUM INTO ?1", [target_text])
            .map_err(|e| failed(e.to_string()))?;
        Ok(())
    }
}
