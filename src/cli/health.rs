//! `calsaga health`.

use super::{CalcomArgs, CliResult, DbArg};
use calsaga::health;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct HealthArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// Folder of service files (the event types to check).
    #[arg(long, default_value = "workflows", env = "CALSAGA_WORKFLOWS")]
    pub workflows: PathBuf,
    /// Without an API key the Cal.com checks are skipped; for serve's
    /// embedded mock give the mock URL serve printed.
    #[command(flatten)]
    pub calcom: CalcomArgs,
    /// Deadline of one Cal.com request, in seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub calcom_timeout_s: u64,
    /// Print the report as JSON (the shape of GET /api/health/calcom/detailed).
    #[arg(long)]
    pub json: bool,
    /// Exit 1 on warning too, not only on critical.
    #[arg(long)]
    pub strict: bool,
}

pub fn run_health(args: HealthArgs) -> CliResult {
    let options = health::cli::CliOptions {
        db: args.db.db,
        workflows: args.workflows,
        calcom_url: args.calcom.calcom_url,
        calcom_api_key: args.calcom.calcom_api_key,
        calcom_timeout: std::time::Duration::from_secs(args.calcom_timeout_s),
        json: args.json,
    };
    let report = health::cli::run(&options, &mut std::io::stdout().lock())?;
    if health::cli::fails(report.status, args.strict) {
        return Err(format!(
            "Cal.com health is {}; each check above says what to do",
            report.status.as_str()
        )
        .into());
    }
    Ok(())
}
