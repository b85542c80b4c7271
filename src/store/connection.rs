//! Opening SQLite connections: the PRAGMA table, the one read-write
//! connection (handed to the writer thread) and the read pool. Readers open
//! the file with SQLITE_OPEN_READ_ONLY, so "readers never write" is enforced
//! by SQLite, not by convention. This module must never run application SQL.

use std::path::Path;
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::{StoreConfig, StoreError};

/// Pool of read-only connections.
pub(super) type ReadPool = r2d2::Pool<SqliteConnectionManager>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Only on the read-write connection (persistent settings of the file).
    Writer,
    /// On every connection.
    Every,
}

/// Every PRAGMA calsaga sets. When SQLite answers a PRAGMA, the answer must
/// equal what we asked (e.g. `journal_mode` answers the mode in force; a
/// file system without shared memory answers `delete`, and we refuse).
/// `busy_timeout` comes from `StoreConfig` and is set through the API.
const PRAGMAS: &[(&str, &str, Scope)] = &[
    // Readers do not block the writer and vice versa; one fsync per commit.
    ("journal_mode", "wal", Scope::Writer),
    // FULL: we act on Cal.com after committing an intent, so a commit lost
    // to a power cut would leave a booking we know nothing about.
    ("synchronous", "FULL", Scope::Every),
    ("foreign_keys", "ON", Scope::Every),
    // Checkpoint every 4,000 log pages (16 MiB) rather than SQLite's 1,000:
    // a busy store rewrites the same hot pages many times over, and a
    // longer log copies each of them to the database file once per
    // checkpoint instead of four times.
    ("wal_autocheckpoint", "4000", Scope::Writer),
    // The writer's page cache (2 MiB): the pages a step touches again soon
    // (right edges, rows being worked on) stay in memory, and the rest is
    // one read from the OS's cache away. Not larger: a commit whose page
    // split reordered pages makes SQLite scan its whole cache at the end,
    // 12 % of the writer's CPU with 32 MiB in a mass recovery
    // (docs/PERFORMANCE.md, fifth round).
    ("cache_size", "-2048", Scope::Writer),
    // Truncate the WAL back to 64 MiB after checkpoints.
    ("journal_size_limit", "67108864", Scope::Every),
];

/// Log pages after which the writer checkpoints (its `wal_autocheckpoint`).
pub fn checkpoint_pages() -> u64 {
    PRAGMAS
        .iter()
        .find(|(name, ..)| *name == "wal_autocheckpoint")
        .and_then(|(_, pages, _)| pages.parse().ok())
        .unwrap_or(1000)
}

fn refused(detail: String) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
        Some(detail),
    )
}

fn apply_pragmas(conn: &Connection, writer: bool, busy_timeout: Duration) -> rusqlite::Result<()> {
    conn.busy_timeout(busy_timeout)?;
    for (name, value, scope) in PRAGMAS {
        if *scope == Scope::Writer && !writer {
            continue;
        }
        let answer: Option<Value> = conn
            .query_row(&format!("PRAGMA {name} = {value}"), [], |row| row.get(0))
            .optional()?;
        let answer = match answer {
            None => continue,
            Some(Value::Text(text)) => text,
            Some(Value::Integer(n)) => n.to_string(),
            Some(other) => format!("{other:?}"),
        };
        if !answer.eq_ignore_ascii_case(value) {
            return Err(refused(format!(
                "PRAGMA {name} = {value} was answered with {answer:?} (WAL needs a local disk with shared memory; network file systems do not work)"
            )));
        }
    }
    Ok(())
}

fn open_error(path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Open {
        path: path.display().to_string(),
        detail: e.to_string(),
    }
}

/// The read-write connection; creates the file if needed.
pub(super) fn open_writer(path: &Path, config: &StoreConfig) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| open_error(path, e))?;
    apply_pragmas(&conn, true, config.busy_timeout()).map_err(|e| open_error(path, e))?;
    Ok(conn)
}

/// A read-write connection to an existing database that another process
/// may hold (the admin CLI's queue): never creates the file and leaves the
/// file's persistent settings (`journal_mode`) to the owning process.
pub(super) fn open_existing_writer(
    path: &Path,
    config: &StoreConfig,
) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| open_error(path, e))?;
    apply_pragmas(&conn, false, config.busy_timeout()).map_err(|e| open_error(path, e))?;
    Ok(conn)
}

/// One read-only connection outside the pool: to check a file before
/// building the pool (r2d2 would only report a timeout) and for backups.
pub(super) fn open_reader(path: &Path, config: &StoreConfig) -> Result<Connection, StoreError> {
    let conn =
        Connection::open_with_flags(path, reader_flags()).map_err(|e| open_error(path, e))?;
    apply_pragmas(&conn, false, config.busy_timeout()).map_err(|e| open_error(path, e))?;
    Ok(conn)
}

fn reader_flags() -> OpenFlags {
    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
}

/// The read pool; every connection is opened read-only. Opens
/// `read_pool_max` connections now, so a bad path fails here, not later.
pub(super) fn open_readers(path: &Path, config: &StoreConfig) -> Result<ReadPool, StoreError> {
    let busy_timeout = config.busy_timeout();
    let manager = SqliteConnectionManager::file(path)
        .with_flags(reader_flags())
        .with_init(move |conn| apply_pragmas(conn, false, busy_timeout));
    r2d2::Pool::builder()
        .max_size(config.read_pool_max.max(1))
        .connection_timeout(Duration::from_millis(config.read_wait_ms.max(1)))
        .build(manager)
        .map_err(|e| open_error(path, e))
}
