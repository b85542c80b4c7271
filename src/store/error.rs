//! `StoreError`: every way the store can fail, each with a message that says
//! what happened and what to do. This file is also the one place where
//! rusqlite errors are translated, so no rusqlite type leaks out of `store/`.
//! It must never decide policy (retry, stop): it only classifies, and the
//! writer and callers act on the class.

use chrono::{DateTime, Utc};
use rusqlite::ErrorCode;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error(
        "could not open the database {path}: {detail}; check the path, its permissions and free disk space"
    )]
    Open { path: String, detail: String },

    #[error(
        "the database {path} is already in use by another calsaga process{}; stop that process first (only one calsaga may run on a database; read-only admin commands do not need the lock)",
        holder.as_ref().map(|h| format!(" ({h})")).unwrap_or_default()
    )]
    Locked {
        path: String,
        holder: Option<String>,
    },

    #[error(
        "the database was written by a newer calsaga (schema {found}, this build knows {known}); upgrade calsaga or restore a backup"
    )]
    SchemaTooNew { found: u32, known: u32 },

    #[error(
        "the database has schema {found} but this build needs {known}; start calsaga once (it upgrades the schema on open) before using read-only tools"
    )]
    SchemaTooOld { found: u32, known: u32 },

    #[error(
        "upgrading the database to schema {version} failed: {detail}; nothing of that step was applied; restore a backup or report this"
    )]
    Migration { version: u32, detail: String },

    #[error(
        "workflow {workflow}: the append expected the next event to be #{expected} but the log is at #{actual}; a bug or a second engine is writing this database: stop calsaga and inspect the workflow"
    )]
    SequenceConflict {
        workflow: Uuid,
        expected: u64,
        actual: u64,
    },

    #[error(
        "workflow {workflow} does not exist; create it in the same batch (before its other writes) or check the id"
    )]
    UnknownWorkflow { workflow: Uuid },

    #[error("workflow {workflow} already exists; use a fresh id")]
    WorkflowExists { workflow: Uuid },

    #[error(
        "host {host} is already claimed from {start} to {end} by workflow {holder}; choose another time or staff member"
    )]
    SlotClaimed {
        host: u64,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        holder: Uuid,
    },

    #[error(
        "idempotency key {key:?} is already in use by workflow {workflow} (request fingerprint {fingerprint}); replay that workflow's answer, or send a new key for a different request"
    )]
    IdempotencyKeyExists {
        key: String,
        workflow: Uuid,
        fingerprint: String,
    },

    #[error(
        "idempotency key {key:?} does not exist (expired or never stored); store the key before its response"
    )]
    IdempotencyKeyMissing { key: String },

    #[error(
        "this webhook body (sha256 {body_sha256}) is already in the inbox; acknowledge it, it will be processed once"
    )]
    InboxDuplicate { body_sha256: String },

    #[error("an API token named {name:?} already exists; choose another name")]
    TokenNameTaken { name: String },

    #[error("there is no API token named {name:?}; `calsaga token list` shows the names")]
    UnknownToken { name: String },

    #[error("webhook inbox entry {id} does not exist; check the id")]
    InboxMissing { id: i64 },

    #[error(
        "timer {id} is not pending any more (fired, cleared or replaced); reload the workflow's timers"
    )]
    TimerNotPending { id: i64 },

    #[error(
        "Cal.com booking {calcom_uid} is mirrored for workflow {holder}, not {workflow}; a booking belongs to one workflow, reconcile before reassigning it"
    )]
    MirrorOwnedByOther {
        calcom_uid: String,
        workflow: Uuid,
        holder: Uuid,
    },

    #[error(
        "could not queue the admin request in {path}: {detail}; nothing was queued; retry, and check the file's permissions if it persists"
    )]
    AdminQueue { path: String, detail: String },

    #[error(
        "could not change the tokens in {path}: {detail}; nothing was changed; retry, and check the file's permissions if it persists"
    )]
    TokenChange { path: String, detail: String },

    #[error(
        "admin request {id} is not pending any more (applied or refused already); read it again to see its outcome"
    )]
    AdminRequestNotPending { id: i64 },

    #[error("a write was refused: {detail}; this is a bug in calsaga, please report it")]
    Invalid { detail: String },

    #[error(
        "the database write failed: {detail}; calsaga stopped taking work; free disk space / fix permissions and restart"
    )]
    WriteFailed { detail: String },

    #[error("this store was opened read-only; writes go through the running calsaga process")]
    ReadOnly,

    #[error(
        "reading the database failed: {detail}; retry, and if it persists run the integrity check"
    )]
    ReadFailed { detail: String },

    #[error(
        "the database holds a value this build cannot read ({detail}); run the integrity check and restore a backup if it fails"
    )]
    Corrupt { detail: String },

    #[error(
        "backup to {path} failed: {detail}; choose a path that does not exist yet, on a disk with room"
    )]
    Backup { path: String, detail: String },
}

impl StoreError {
    /// True when the database itself is in doubt (I/O, full disk, lost
    /// lock): the whole group is rolled back and the store stops writing.
    pub fn is_fatal(&self) -> bool {
        matches!(self, StoreError::WriteFailed { .. })
    }
}

/// SQLite result codes that mean "the file or the disk is in doubt", as
/// opposed to "this one batch broke a rule".
fn is_fatal_code(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::SystemIoFailure
            | ErrorCode::DiskFull
            | ErrorCode::ReadOnly
            | ErrorCode::PermissionDenied
            | ErrorCode::DatabaseCorrupt
            | ErrorCode::NotADatabase
            | ErrorCode::CannotOpen
            | ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::FileLockingProtocolFailed
            | ErrorCode::OutOfMemory
            | ErrorCode::NoLargeFileSupport
            | ErrorCode::InternalMalfunction
    )
}

/// Translate an error met while writing: disk-level codes become the fatal
/// `WriteFailed`, everything else (constraints, bad values) fails one batch.
pub(super) fn write_error(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(code) if is_fatal_code(code) => StoreError::WriteFailed {
            detail: e.to_string(),
        },
        _ => StoreError::Invalid {
            detail: e.to_string(),
        },
    }
}

/// Translate an error met while reading: a value we cannot decode is
/// corruption; anything else is a failed read.
pub(super) fn read_error(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::IntegralValueOutOfRange(..) => StoreError::Corrupt {
            detail: e.to_string(),
        },
        _ => StoreError::ReadFailed {
            detail: e.to_string(),
        },
    }
}
