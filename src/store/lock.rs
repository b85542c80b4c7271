//! One calsaga per database: an exclusive `flock` on the sidecar file
//! `<db>.lock`, held through an open descriptor for the life of the `Store`.
//! The kernel drops the lock when the descriptor closes, including when the
//! process dies (kill -9), so a crash never leaves a stale lock behind. The
//! file's text (the holder's pid) is only a hint for the error message; this
//! module must never decide anything from it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::StoreError;

/// Held while it lives; dropping it closes the descriptor and releases the lock.
#[derive(Debug)]
pub(super) struct DbLock {
    _file: File,
}

/// `<db>.lock` next to the database file.
pub(super) fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Take the lock or say who holds it.
pub(super) fn acquire(db: &Path) -> Result<DbLock, StoreError> {
    let path = lock_path(db);
    let open_error = |detail: String| StoreError::Open {
        path: path.display().to_string(),
        detail,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| open_error(e.to_string()))?;
    match file.try_lock() {
        Ok(()) => {
            // Diagnostic only: a failure to record the pid does not matter.
            let _ = file
                .set_len(0)
                .and_then(|()| writeln!(file, "pid {}", std::process::id()));
            Ok(DbLock { _file: file })
        }
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            Err(StoreError::Locked {
                path: db.display().to_string(),
                holder: (!holder.is_empty()).then(|| holder.to_string()),
            })
        }
        Err(TryLockError::Error(e)) => Err(open_error(format!("could not lock it: {e}"))),
    }
}
