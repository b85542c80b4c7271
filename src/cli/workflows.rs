//! `calsaga workflows ...` and `calsaga backup`: the admin commands on the
//! database file.

use super::{CliResult, DbArg, WaitArg, Which, WorkflowsArg};
use calsaga::admin;
use calsaga::catalog::Catalog;
use calsaga::store::{Store, StoreConfig};
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum WorkflowsCommand {
    /// Workflows newest first, as a table (or JSON lines).
    List {
        #[command(flatten)]
        db: DbArg,
        /// Only workflows whose saga is in this state.
        #[arg(long, value_parser = calsaga::saga::STATES)]
        state: Option<String>,
        /// Only this service id.
        #[arg(long)]
        service: Option<String>,
        /// Only workflows created at or after this time (2030-03-05 or RFC 3339).
        #[arg(long, value_parser = admin::parse_since)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// At most this many rows.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// One JSON object per line instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// One workflow's timeline: every event with time, segment, Cal.com uid,
    /// status, duration, retries and the state derived from the log.
    /// Hosts are named as the catalogue names them when its folder is
    /// there, and shown by Cal.com user id otherwise.
    Show {
        id: uuid::Uuid,
        #[command(flatten)]
        db: DbArg,
        #[command(flatten)]
        workflows: WorkflowsArg,
        /// One JSON object instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Fold each log with this calsaga and compare with the stored state;
    /// any difference exits 1. Read-only: safe on a copy of production.
    Replay {
        /// Workflow id (from `calsaga workflows list`).
        #[arg(required_unless_present_any = ["all", "file"])]
        id: Option<uuid::Uuid>,
        /// Every workflow in the database.
        #[arg(long, conflicts_with = "id")]
        all: bool,
        /// Replay a file written by `calsaga workflows export` instead.
        #[arg(long, conflicts_with_all = ["id", "all"])]
        file: Option<PathBuf>,
        #[command(flatten)]
        db: DbArg,
    },
    /// Retry the stuck steps of a failed saga (after fixing the cause).
    Resume {
        id: uuid::Uuid,
        #[command(flatten)]
        db: DbArg,
        #[command(flatten)]
        wait: WaitArg,
    },
    /// Undo what a saga made (cancel its bookings, release its reservations):
    /// a saga still reserving, held or booking is rolled back; a booked one
    /// (a broken composite too) is cancelled segment by segment.
    Compensate {
        id: uuid::Uuid,
        /// Why; recorded in the log and sent to Cal.com with the cancellations.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        db: DbArg,
        #[command(flatten)]
        wait: WaitArg,
    },
    /// Workflows with their events and admin requests as JSON lines, for
    /// support and audits.
    Export {
        #[command(flatten)]
        which: Which,
        /// Output format.
        #[arg(long, value_parser = ["jsonl"], default_value = "jsonl")]
        format: String,
        #[command(flatten)]
        db: DbArg,
    },
}

pub fn run_workflows(cmd: WorkflowsCommand) -> CliResult {
    let mut out = std::io::stdout().lock();
    match cmd {
        WorkflowsCommand::List {
            db,
            state,
            service,
            since,
            limit,
            json,
        } => {
            let query = admin::ListQuery {
                state,
                service,
                since,
                limit,
                json,
            };
            admin::list(&admin::open(&db.db)?, &query, &mut out)?
        }
        WorkflowsCommand::Show {
            id,
            db,
            workflows,
            json,
        } => {
            // The admin tools work on a copy of the database alone: without
            // the catalogue, no host has a name and each shows as its id.
            let hosts = Catalog::load_dir(&workflows.workflows)
                .map(|c| c.hosts().clone())
                .unwrap_or_default();
            admin::show(&admin::open(&db.db)?, id, json, &hosts, &mut out)?
        }
        WorkflowsCommand::Replay {
            file: Some(file), ..
        } => admin::replay_file(&file, &mut out)?,
        WorkflowsCommand::Replay { id, db, .. } => admin::replay(&db.db, id, &mut out)?,
        WorkflowsCommand::Resume { id, db, wait } => {
            run_admin_request(&db.db, id, calsaga::runtime::AdminAction::Resume, &wait)?
        }
        WorkflowsCommand::Compensate {
            id,
            reason,
            db,
            wait,
        } => run_admin_request(
            &db.db,
            id,
            calsaga::runtime::AdminAction::Compensate { reason },
            &wait,
        )?,
        WorkflowsCommand::Export { which, db, .. } => admin::export(&db.db, which.id, &mut out)?,
    }
    Ok(())
}

pub fn run_admin_request(
    db: &std::path::Path,
    id: uuid::Uuid,
    action: calsaga::runtime::AdminAction,
    wait: &WaitArg,
) -> CliResult {
    let options = admin::RequestOptions {
        wait: std::time::Duration::from_secs(wait.wait_s),
        busy_timeout_ms: StoreConfig::default().busy_timeout_ms,
    };
    admin::request(db, id, &action, &options, &mut std::io::stdout().lock())?;
    Ok(())
}

/// Copies `db` to `path` with `VACUUM INTO` through a read-only handle (no
/// lock, so `serve` may run), then opens the copy and checks it.
pub fn run_backup(db: &std::path::Path, path: &std::path::Path) -> CliResult {
    if path.exists() {
        return Err(format!(
            "backup: {} exists; a backup never overwrites a file: give a new path or move that file away",
            path.display()
        )
        .into());
    }
    let source = Store::open_read_only(db)?;
    source.backup_to(path)?;
    let copy = Store::open_read_only(path)?;
    let integrity = copy.integrity_check()?;
    if integrity != "ok" {
        return Err(format!(
            "backup: the copy {} fails SQLite's integrity check ({integrity}); keep the original and check the disk",
            path.display()
        )
        .into());
    }
    let total = |store: &Store| -> Result<u64, calsaga::store::StoreError> {
        Ok(store.workflow_counts()?.iter().map(|c| c.count).sum())
    };
    let workflows = total(&copy)?;
    println!(
        "backup: wrote {} from {}; integrity ok; {workflows} workflows (the source had {} when checked after the copy)",
        path.display(),
        db.display(),
        total(&source)?
    );
    Ok(())
}
