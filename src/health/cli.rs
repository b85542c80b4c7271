//! `calsaga health`: the eight checks from the command line, against the
//! database file (opened read-only, so it works while `serve` runs) and the
//! Cal.com given by flags or environment. It prints the report as a table
//! or JSON and says which status it ended in; the exit code is main's
//! business. It never writes to the database and never sends alerts.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{Check, Health, HealthConfig, Report, Sources, Status};
use crate::calcom::{Client, ClientConfig, RetryPolicy};
use crate::catalog::Catalog;
use crate::clock::{Clock, SystemClock};
use crate::store::Store;

/// What `calsaga health` was asked.
#[derive(Debug, Clone)]
pub struct CliOptions {
    pub db: PathBuf,
    pub workflows: PathBuf,
    pub calcom_url: Option<String>,
    pub calcom_api_key: Option<String>,
    pub calcom_timeout: Duration,
    pub json: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(
        "--calcom-url is set without --calcom-api-key (CALCOM_API_KEY); give the key of that Cal.com, e.g. cal_test_calsaga_mock for serve's embedded mock"
    )]
    UrlWithoutKey,
    #[error("health: {0}")]
    Setup(String),
    #[error("health: writing the report: {0}")]
    Write(#[from] std::io::Error),
}

fn setup(e: impl std::fmt::Display) -> CliError {
    CliError::Setup(e.to_string())
}

/// Runs every check once and writes the report to `out`.
pub fn run(opts: &CliOptions, out: &mut impl Write) -> Result<Report, CliError> {
    let store = Store::open_read_only(&opts.db).map_err(setup)?;
    let catalog = Arc::new(Catalog::load_dir(&opts.workflows).map_err(setup)?);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(setup)?;
    let calcom = {
        let _guard = runtime.enter();
        client(opts, &clock)?
    };
    if calcom.is_none() && !opts.json {
        writeln!(
            out,
            "no Cal.com configured: checks 1-3 and 8 are skipped; pass --calcom-url and --calcom-api-key (or CALCOM_API_URL/CALCOM_API_KEY)"
        )?;
    }
    let sources = Sources {
        store,
        calcom,
        catalog,
        clock,
    };
    let health = Health::new(sources, HealthConfig::default(), None);
    let report = runtime.block_on(health.run());
    if opts.json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&report).map_err(setup)?
        )?;
    } else {
        write!(out, "{}", table(&report))?;
    }
    Ok(report)
}

/// A client that tries each call twice at most: a health check should
/// report a failing Cal.com, not wait it out.
fn client(opts: &CliOptions, clock: &Arc<dyn Clock>) -> Result<Option<Arc<Client>>, CliError> {
    let key = opts.calcom_api_key.clone().filter(|k| !k.is_empty());
    let Some(api_key) = key else {
        return match opts.calcom_url {
            Some(_) => Err(CliError::UrlWithoutKey),
            None => Ok(None),
        };
    };
    let config = ClientConfig {
        base_url: opts
            .calcom_url
            .clone()
            .unwrap_or_else(|| "https://api.cal.com".into())
            .trim_end_matches('/')
            .to_string(),
        api_key: Some(api_key),
        request_timeout: opts.calcom_timeout,
        retry: RetryPolicy {
            attempts_max: 2,
            ..RetryPolicy::default()
        },
        ..ClientConfig::default()
    };
    let client = Client::http(config, clock.clone()).map_err(setup)?;
    Ok(Some(Arc::new(client)))
}

/// The report for people: one line per check, findings under check 8.
pub fn table(report: &Report) -> String {
    let mut text = format!(
        "calsaga health: {} (checked {}, {} ms)\n",
        report.status.as_str().to_uppercase(),
        report.checked_at.to_rfc3339(),
        report.duration_ms
    );
    for c in &report.checks {
        text.push_str(&format!(
            "  {:<9} {:<15} {}\n",
            c.status.as_str(),
            c.check.as_str(),
            c.message
        ));
        if c.check == Check::DatabaseSync {
            for f in c.figures["findings"].as_array().into_iter().flatten() {
                text.push_str(&format!(
                    "      {} {}: {}\n        fix: {}\n",
                    f["kind"].as_str().unwrap_or_default(),
                    f["workflow"].as_str().unwrap_or_default(),
                    f["detail"].as_str().unwrap_or_default(),
                    f["fix"].as_str().unwrap_or_default()
                ));
            }
        }
    }
    text
}

/// Whether `status` fails the command: critical always, warning with --strict.
pub fn fails(status: Status, strict: bool) -> bool {
    status == Status::Critical || (strict && status == Status::Warning)
}
