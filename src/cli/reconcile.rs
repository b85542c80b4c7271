//! `calsaga reconcile orphans`.

use super::{CalcomArgs, CliResult, DbArg, WorkflowsArg};
use calsaga::calcom::Client;
use calsaga::catalog::Catalog;
use calsaga::clock::{Clock, SystemClock};
use calsaga::runtime::{Engine, EngineConfig};
use calsaga::store::{Store, StoreConfig};
use clap::Subcommand;
use std::sync::Arc;

#[derive(Subcommand)]
pub enum ReconcileCommand {
    /// List upcoming Cal.com bookings with calsaga's metadata that no saga
    /// holds (e.g. after restoring the database from a backup); with
    /// --apply cancel them. `serve` does the same on every start.
    Orphans(OrphansArgs),
}

#[derive(clap::Args)]
pub struct OrphansArgs {
    #[command(flatten)]
    pub db: DbArg,
    #[command(flatten)]
    pub workflows: WorkflowsArg,
    #[command(flatten)]
    pub calcom: CalcomArgs,
    /// Requests per minute Cal.com allows this key.
    #[arg(long, default_value_t = 120, env = "CALCOM_REQUESTS_PER_MINUTE")]
    pub calcom_requests_per_minute: u32,
    /// Cancel the orphans found (default: only list them).
    #[arg(long)]
    pub apply: bool,
}

/// One scan outside `serve` (stopped: one process per file). Strays handed
/// to their saga are recorded in its log now and cancelled by the next
/// `serve`, which resumes the saga.
pub fn run_reconcile_orphans(args: OrphansArgs) -> CliResult {
    let calcom = calsaga::calcom_admin::client_config(
        args.calcom.calcom_api_key.as_deref(),
        args.calcom.calcom_url.as_deref(),
        args.calcom_requests_per_minute,
    )?;
    let catalog = Catalog::load_dir(&args.workflows.workflows)?;
    let store = Store::open(&args.db.db, StoreConfig::default())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let client = {
        let _inside = runtime.enter();
        Client::http(calcom, clock.clone())?
    };
    let engine = Engine::new(
        store,
        Arc::new(client),
        clock,
        Arc::new(catalog),
        EngineConfig {
            orphan_scan_on_start: false,
            ..EngineConfig::default()
        },
    );
    let report = runtime.block_on(engine.repair_orphans(args.apply))?;
    for o in &report.orphans {
        println!(
            "{}\tworkflow {} segment {}\t{} .. {}\t{}",
            o.calcom_uid, o.workflow_ref, o.segment_ref, o.start, o.end, o.why
        );
    }
    println!(
        "{} upcoming bookings, {} of calsaga, {} orphaned ({} cancelled, {} handed to their saga, {} failed, {} already gone); {} left to running or flagged sagas{}",
        report.scanned,
        report.ours,
        report.orphans.len() + report.gone,
        report.cancelled,
        report.handed_to_saga,
        report.failed,
        report.gone,
        report.deferred,
        if report.truncated {
            "; stopped at the page limit, run again"
        } else {
            ""
        }
    );
    Ok(())
}
