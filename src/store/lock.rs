//! One calsaga per database: an exclusive `flock` on the sidecar file
//! `<db>.lock`, held through an open descriptor for the life of the `Store`.
//! The kernel drops the lock when the descriptor closes, including when the
//! process dies (kill -9), so a crash never leaves a stale lock behind. The
//! file's text is a hint: its first line (the holder's pid) goes into the
//! error message, and a running `serve` adds a line saying where it listens
//! and which Cal.com it talks to, so admin commands can find its embedded
//! mock. A clean stop empties the file; after a crash the line stays until
//! the next start, so a reader treats it as a lead to try, never as proof
//! that anything runs, and nothing decides who may open the database from it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::StoreError;

/// What a running `serve` says about itself in the lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// Base URL of its HTTP API.
    pub http: String,
    /// The Cal.com it talks to.
    pub calcom_url: String,
    /// The key of its embedded mock; `None` for a real Cal.com, whose key
    /// is never written anywhere.
    pub mock_api_key: Option<String>,
}

/// Held while it lives; dropping it closes the descriptor and releases the lock.
#[derive(Debug)]
pub(super) struct DbLock {
    file: File,
}

impl DbLock {
    /// Rewrites the hint: the pid line, then `holder` as one JSON line.
    pub(super) fn describe(&self, holder: &Holder) -> std::io::Result<()> {
        let mut file = &self.file;
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        let json = serde_json::to_string(holder).map_err(std::io::Error::other)?;
        write!(file, "pid {}\n{json}\n", std::process::id())?;
        file.sync_data()
    }
}

impl Drop for DbLock {
    fn drop(&mut self) {
        // Before the descriptor closes, so no reader finds our description
        // after we have gone. Probing the lock instead would take it, however
        // briefly, and could make a `serve` starting at that moment fail.
        let _ = self.file.set_len(0);
    }
}

/// What the last `serve` on `db` said about itself, unless it stopped cleanly.
pub(super) fn announced(db: &Path) -> Option<Holder> {
    let text = std::fs::read_to_string(lock_path(db)).ok()?;
    text.lines()
        .nth(1)
        .and_then(|l| serde_json::from_str(l).ok())
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
            Ok(DbLock { file })
        }
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.lines().next().unwrap_or_default().trim();
            Err(StoreError::Locked {
                path: db.display().to_string(),
                holder: (!holder.is_empty()).then(|| holder.to_string()),
            })
        }
        Err(TryLockError::Error(e)) => Err(open_error(format!("could not lock it: {e}"))),
    }
}
