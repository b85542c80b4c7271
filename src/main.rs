//! The calsaga command line. Arguments are parsed once into typed values and
//! dispatched with one `match`; each command group's arguments and runner
//! are in `src/cli/`, and the work itself lives in the library. Exit codes:
//! 0 ok, 1 error, 2 usage (clap).

mod cli;

use calsaga::tools::smoke;
use clap::{Parser, Subcommand, ValueEnum};
use cli::DbArg;
use cli::bench::{BenchCommand, run_bench_all, run_bench_engine, run_bench_http};
use cli::catalog::{CatalogCommand, run_catalog_check, run_catalog_sync};
use cli::health::{HealthArgs, run_health};
use cli::mock::{MockArgs, run_mock};
use cli::reconcile::{ReconcileCommand, run_reconcile_orphans};
use cli::serve::{ServeArgs, run_serve};
use cli::simulate::{SimulateArgs, run_simulate};
use cli::smoke::{LoadArgs, SmokeCommand, run_load, run_smoke};
use cli::token::{TokenCommand, run_token_create, run_token_list, run_token_revoke};
use cli::webhooks::{WebhooksCommand, run_webhooks};
use cli::workflows::{WorkflowsCommand, run_backup, run_workflows};
use std::path::PathBuf;
use std::process::ExitCode;

const EXIT_ERROR: u8 = 1;

#[derive(Parser)]
#[command(
    name = "calsaga",
    version,
    about = "Durable sagas that book composite services through Cal.com API v2",
    after_help = "Exit codes: 0 success, 1 error (the message says what to do), 2 usage error.\n\
                  Logging: RUST_LOG (e.g. RUST_LOG=calsaga=debug) and --log-format."
)]
struct Cli {
    /// How log lines on stderr are written.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "CALSAGA_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run calsaga: the booking engine and its HTTP API, on an SQLite file,
    /// against Cal.com when CALCOM_API_KEY is set, else the embedded mock.
    Serve(Box<ServeArgs>),
    /// Start a standalone Cal.com API v2 mock (slots, reservations, bookings,
    /// event types, webhooks) loaded from a fixture, with scenarios and faults.
    Mock(MockArgs),
    /// Check and show the service catalogue (workflows/*.json).
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// Manage the Bearer tokens of the HTTP API, offline or beside a running
    /// `serve` (which counts a change from its next request).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Measure calsaga on this machine (see docs/PERFORMANCE.md).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Inspect, check and repair sagas on the database file; works while
    /// `serve` runs (reads are read-only; resume and compensate queue a
    /// request that the running engine, or the next start, applies).
    #[command(subcommand)]
    Workflows(WorkflowsCommand),
    /// Manage the Cal.com webhook subscriptions that deliver booking changes
    /// to calsaga's /webhooks/calcom.
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
    /// Copy the database consistently to a new file, also while `serve`
    /// runs, and verify the copy (integrity check, workflow count).
    Backup {
        #[command(flatten)]
        db: DbArg,
        /// The new file; an existing one is never overwritten.
        path: PathBuf,
    },
    /// Run the eight Cal.com health checks once (docs/HEALTH.md) against the
    /// database (read-only; works while serve runs) and Cal.com.
    #[command(
        after_help = "Exit codes: 0 ok or warning (warning is 1 with --strict), 1 critical or an error, 2 usage error."
    )]
    Health(HealthArgs),
    /// Deterministic simulation: the real engine against the in-process mock
    /// with seeded faults and crashes; checks the invariants after every run
    /// (see docs/SIMULATION.md). Exit 1 on any violation.
    Simulate(SimulateArgs),
    /// Bring Cal.com and the database back in line (stop `serve` first).
    #[command(subcommand)]
    Reconcile(ReconcileCommand),
    /// Check a running calsaga through its API: ten scenarios, a PASS/FAIL
    /// table, exit 1 on any failure (see docs/SMOKE.md).
    #[command(subcommand)]
    Smoke(SmokeCommand),
    /// Load a running calsaga (loopback only unless --allow-remote) with a
    /// mix of bookings, searches and cancels, then check that no two live
    /// bookings of one host overlap; exit 1 if any do.
    Load(LoadArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A simulation restarts engines by the thousand: their info lines
    // would bury its summary.
    let quiet = matches!(cli.command, Command::Simulate(_));
    init_logging(cli.log_format, if quiet { "warn" } else { "info" });
    let result = match cli.command {
        Command::Serve(args) => run_serve(*args),
        Command::Mock(args) => run_mock(args),
        Command::Catalog(CatalogCommand::Check { workflows }) => {
            run_catalog_check(&workflows.workflows)
        }
        Command::Token(TokenCommand::Create { db, name, scope }) => {
            run_token_create(&db, &name, &scope)
        }
        Command::Token(TokenCommand::List { db }) => run_token_list(&db.db),
        Command::Token(TokenCommand::Revoke { name, db }) => run_token_revoke(&db, &name),
        Command::Bench(BenchCommand::Engine(args)) => run_bench_engine(args),
        Command::Bench(BenchCommand::Http(args)) => run_bench_http(args),
        Command::Workflows(cmd) => run_workflows(cmd),
        Command::Catalog(CatalogCommand::Sync {
            workflows,
            apply,
            calcom,
        }) => run_catalog_sync(&workflows.workflows, apply, &calcom),
        Command::Webhooks(command) => run_webhooks(command),
        Command::Backup { db, path } => run_backup(&db.db, &path),
        Command::Health(args) => run_health(args),
        Command::Simulate(args) => run_simulate(args),
        Command::Reconcile(ReconcileCommand::Orphans(args)) => run_reconcile_orphans(args),
        Command::Bench(BenchCommand::All(args)) => run_bench_all(args),
        Command::Smoke(SmokeCommand::Availability(args)) => {
            run_smoke(smoke::Suite::Availability, args)
        }
        Command::Smoke(SmokeCommand::Booking(args)) => run_smoke(smoke::Suite::Booking, args),
        Command::Load(args) => run_load(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn init_logging(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    // Colours only for a person at a terminal, never in files or journals.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
