//! The command line, one file per command group: each holds its clap
//! arguments and what runs them. `main.rs` parses once and dispatches; the
//! arguments several groups share (the database, Cal.com, a workflow or all)
//! live here.

pub mod bench;
pub mod catalog;
pub mod health;
pub mod mock;
pub mod reconcile;
pub mod serve;
pub mod simulate;
pub mod smoke;
pub mod token;
pub mod webhooks;
pub mod workflows;

use calsaga::calcom_admin::{AdminCalcom, AdminError};
use std::path::PathBuf;

/// The database file the admin commands read.
#[derive(clap::Args)]
pub struct DbArg {
    /// SQLite database file of `calsaga serve`.
    #[arg(long, default_value = "calsaga.db", env = "CALSAGA_DB")]
    pub db: PathBuf,
}

/// The service catalogue the commands load.
#[derive(clap::Args)]
pub struct WorkflowsArg {
    /// Folder of service files (`*.json`, and `hosts.json` naming the hosts).
    #[arg(long, default_value = "workflows", env = "CALSAGA_WORKFLOWS")]
    pub workflows: PathBuf,
}

/// One workflow by id, or every workflow.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
pub struct Which {
    /// Workflow id (from `calsaga workflows list`).
    pub id: Option<uuid::Uuid>,
    /// Every workflow in the database.
    #[arg(long)]
    pub all: bool,
}

#[derive(clap::Args)]
pub struct WaitArg {
    /// Seconds to wait for the running calsaga to apply the request (0: do not wait).
    #[arg(long, default_value_t = 10)]
    pub wait_s: u64,
}

/// Where the Cal.com account of an admin command is.
#[derive(clap::Args)]
pub struct CalcomArgs {
    /// Cal.com API base URL (default https://api.cal.com).
    #[arg(long, env = "CALCOM_API_URL")]
    pub calcom_url: Option<String>,
    /// Cal.com API key (a key starting with cal_).
    #[arg(long, env = "CALCOM_API_KEY", hide_env_values = true)]
    pub calcom_api_key: Option<String>,
}

impl CalcomArgs {
    fn connect(&self) -> Result<AdminCalcom, AdminError> {
        AdminCalcom::connect(self.calcom_api_key.as_deref(), self.calcom_url.as_deref())
    }
}

pub type CliResult = Result<(), Box<dyn std::error::Error>>;

/// A benchmark's report: one JSON object, or the table for people.
pub fn print_report(
    json: bool,
    report: &impl serde::Serialize,
    table: impl FnOnce() -> String,
) -> CliResult {
    if json {
        println!("{}", serde_json::to_string(report)?);
    } else {
        print!("{}", table());
    }
    Ok(())
}
