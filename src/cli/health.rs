//! `calsaga health`: the eight checks from the command line, against the
//! database file (opened read-only, so it works while `serve` runs) and the
//! Cal.com given by flags or environment, else the one the `serve` on that
//! database announced (its embedded mock, or a real Cal.com's address for
//! which only the key is then needed). It prints the report as a table or
//! JSON; the exit code is main's business. It never writes to the database,
//! and as a one-off run it has no earlier status to alert or log a change of.

use super::{CalcomArgs, CliResult, DbArg, WorkflowsArg};
use calsaga::calcom::{Client, ClientConfig, RetryPolicy};
use calsaga::catalog::Catalog;
use calsaga::clock::{Clock, SystemClock};
use calsaga::health::{Check, Health, HealthConfig, Report, Sources, Status};
use calsaga::store::Store;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args)]
pub struct HealthArgs {
    #[command(flatten)]
    pub db: DbArg,
    #[command(flatten)]
    pub workflows: WorkflowsArg,
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
    let options = CliOptions {
        db: args.db.db,
        workflows: args.workflows.workflows,
        calcom_url: args.calcom.calcom_url,
        calcom_api_key: args.calcom.calcom_api_key,
        calcom_timeout: std::time::Duration::from_secs(args.calcom_timeout_s),
        json: args.json,
    };
    let report = run(&options, &mut std::io::stdout().lock())?;
    if fails(report.status, args.strict) {
        return Err(format!(
            "Cal.com health is {}; each check above says what to do",
            report.status.as_str()
        )
        .into());
    }
    Ok(())
}

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
    let target = target(opts)?;
    if !opts.json
        && let Some(line) = target.say(&opts.db)
    {
        writeln!(out, "{line}")?;
    }
    let calcom = {
        let _guard = runtime.enter();
        client(opts, target, &clock)?
    };
    let sources = Sources {
        store,
        calcom,
        catalog,
        clock,
    };
    let health = Health::new(sources, HealthConfig::default(), None);
    let report = runtime.block_on(health.run_once());
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

/// Which Cal.com the checks talk to.
enum Target {
    Given {
        url: String,
        key: String,
    },
    /// The embedded mock of the `serve` on this database.
    Announced {
        url: String,
        key: String,
    },
    /// The `serve` on this database talks to this Cal.com; its key is
    /// never written down, so it has to be given.
    KeyMissing {
        url: String,
    },
    None,
}

impl Target {
    /// The one line that says which Cal.com is checked, or why none is.
    fn say(&self, db: &std::path::Path) -> Option<String> {
        let db = db.display();
        match self {
            Target::Given { .. } => None,
            Target::Announced { url, .. } => Some(format!(
                "checking the embedded Cal.com mock of the serve on {db} at {url} (pass --calcom-url and --calcom-api-key to check another)"
            )),
            Target::KeyMissing { url } => Some(format!(
                "the serve on {db} uses Cal.com at {url}: checks 1-3 and 8 are skipped; give its key with CALCOM_API_KEY or --calcom-api-key"
            )),
            Target::None => Some(format!(
                "no Cal.com configured and no running serve announced one for {db}: checks 1-3 and 8 are skipped; pass --calcom-url and --calcom-api-key (or CALCOM_API_URL/CALCOM_API_KEY)"
            )),
        }
    }
}

/// The flags first; else what the serve on this database announced.
fn target(opts: &CliOptions) -> Result<Target, CliError> {
    let key = opts.calcom_api_key.clone().filter(|k| !k.is_empty());
    let announced = Store::announced(&opts.db);
    Ok(match (opts.calcom_url.clone(), key, announced) {
        (Some(_), None, _) => return Err(CliError::UrlWithoutKey),
        (Some(url), Some(key), _) => Target::Given { url, key },
        (None, Some(key), announced) => Target::Given {
            // A key alone is for a real Cal.com: serve's, else the default.
            url: announced
                .filter(|h| h.mock_api_key.is_none())
                .map_or_else(|| ClientConfig::default().base_url, |h| h.calcom_url),
            key,
        },
        (None, None, Some(h)) => match h.mock_api_key {
            Some(key) => Target::Announced {
                url: h.calcom_url,
                key,
            },
            None => Target::KeyMissing { url: h.calcom_url },
        },
        (None, None, None) => Target::None,
    })
}

/// A client that tries each call twice at most: a health check should
/// report a failing Cal.com, not wait it out.
fn client(
    opts: &CliOptions,
    target: Target,
    clock: &Arc<dyn Clock>,
) -> Result<Option<Arc<Client>>, CliError> {
    let (url, api_key) = match target {
        Target::Given { url, key } | Target::Announced { url, key } => (url, key),
        Target::KeyMissing { .. } | Target::None => return Ok(None),
    };
    let config = ClientConfig {
        base_url: url.trim_end_matches('/').to_string(),
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
