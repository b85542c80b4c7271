//! The calsaga command line. Arguments are parsed once into typed values and
//! dispatched with one `match`; each subcommand lives in the library and this
//! file only wires flags to it. Exit codes: 0 ok, 1 error, 2 usage (clap).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use std::sync::Arc;

use calsaga::admin;
use calsaga::bench;
use calsaga::calcom::{ClientConfig, HttpPoster};
use calsaga::calcom_admin::{AdminCalcom, AdminError};
use calsaga::catalog::Catalog;
use calsaga::config::{ServeConfig, ServeInputs};
use calsaga::health;
use calsaga::http;
use calsaga::load;
use calsaga::mock::{self, MockOptions};
use calsaga::serve;
use calsaga::smoke;
use calsaga::store::{self, Store, StoreConfig, TokenChange};
use calsaga::{subscriptions, sync};

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

/// The database file the admin commands read.
#[derive(clap::Args)]
struct DbArg {
    /// SQLite database file of `calsaga serve`.
    #[arg(long, default_value = "calsaga.db", env = "CALSAGA_DB")]
    db: PathBuf,
}

/// One workflow by id, or every workflow.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct Which {
    /// Workflow id (from `calsaga workflows list`).
    id: Option<uuid::Uuid>,
    /// Every workflow in the database.
    #[arg(long)]
    all: bool,
}

#[derive(Subcommand)]
enum WorkflowsCommand {
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
    Show {
        id: uuid::Uuid,
        #[command(flatten)]
        db: DbArg,
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

#[derive(clap::Args)]
struct WaitArg {
    /// Seconds to wait for the running calsaga to apply the request (0: do not wait).
    #[arg(long, default_value_t = 10)]
    wait_s: u64,
}

/// Where the Cal.com account of an admin command is.
#[derive(clap::Args)]
struct CalcomArgs {
    /// Cal.com API base URL (default https://api.cal.com).
    #[arg(long, env = "CALCOM_API_URL")]
    calcom_url: Option<String>,
    /// Cal.com API key (a key starting with cal_).
    #[arg(long, env = "CALCOM_API_KEY", hide_env_values = true)]
    calcom_api_key: Option<String>,
}

impl CalcomArgs {
    fn connect(&self) -> Result<AdminCalcom, AdminError> {
        AdminCalcom::connect(self.calcom_api_key.as_deref(), self.calcom_url.as_deref())
    }
}

#[derive(Subcommand)]
enum WebhooksCommand {
    /// Subscribe URL to the booking triggers calsaga handles, with a new
    /// secret printed once for CALSAGA_WEBHOOK_SECRET.
    Register {
        /// Where Cal.com posts, e.g. https://calsaga.example.com/webhooks/calcom.
        #[arg(long)]
        url: String,
        #[command(flatten)]
        calcom: CalcomArgs,
    },
    /// Show every subscription of the API key's user.
    List {
        #[command(flatten)]
        calcom: CalcomArgs,
    },
    /// Remove the subscription ID (from `list`).
    Delete {
        id: String,
        #[command(flatten)]
        calcom: CalcomArgs,
    },
}

#[derive(clap::Args)]
struct HealthArgs {
    #[command(flatten)]
    db: DbArg,
    /// Folder of service files (the event types to check).
    #[arg(long, default_value = "workflows", env = "CALSAGA_WORKFLOWS")]
    workflows: PathBuf,
    /// Without an API key the Cal.com checks are skipped; for serve's
    /// embedded mock give the mock URL serve printed.
    #[command(flatten)]
    calcom: CalcomArgs,
    /// Deadline of one Cal.com request, in seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    calcom_timeout_s: u64,
    /// Print the report as JSON (the shape of GET /api/health/calcom/detailed).
    #[arg(long)]
    json: bool,
    /// Exit 1 on warning too, not only on critical.
    #[arg(long)]
    strict: bool,
}

#[derive(clap::Args)]
struct SimulateArgs {
    /// Seed of the first run; run r uses seed + r.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Runs, each with its own seed.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    runs: u64,
    /// How rough Cal.com and the process are: none, light or heavy.
    #[arg(long, default_value = "light")]
    faults: calsaga::sim::FaultLevel,
    /// Requests (book, hold, confirm, reschedule, cancel) per run.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=64))]
    requests: u64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum SmokeCommand {
    /// Daily and weekly searches, three time zones and a DST change, a
    /// composite service, refused ranges, cache, concurrency, p95, errors.
    Availability(SmokeArgs),
    /// Simple and composite bookings, reschedule, cancel, double booking,
    /// 20 racing bookings, idempotent retry, hold+confirm, compensation,
    /// latency. Every booking it makes is cancelled at the end.
    Booking(SmokeArgs),
}

/// Where calsaga is, and which days and services to use.
#[derive(clap::Args)]
struct TargetArgs {
    /// calsaga's API base URL.
    #[arg(long, env = "API_BASE", default_value = smoke::API_BASE_DEFAULT)]
    api_base: String,
    /// A calsaga token with the booking scope (`calsaga token create`).
    #[arg(long, env = "API_TOKEN", hide_env_values = true)]
    token: String,
    /// Service booked and searched [default: the first one-segment service
    /// of GET /services].
    #[arg(long, env = "SERVICE_ID")]
    service: Option<String>,
    /// Day to search and book, YYYY-MM-DD: a working day of the staff with
    /// free time [default: the first Tuesday at least 14 days from today].
    #[arg(long)]
    date: Option<chrono::NaiveDate>,
    /// IANA time zone days are searched in.
    #[arg(long, default_value = "Europe/Berlin", value_parser = parse_zone)]
    time_zone: chrono_tz::Tz,
    /// Deadline of one request, in seconds.
    #[arg(long, default_value_t = 60)]
    timeout_s: u64,
}

#[derive(clap::Args)]
struct SmokeArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Composite service [default: the first with more than one segment].
    #[arg(long, env = "COMPOSITE_SERVICE_ID")]
    composite_service: Option<String>,
    /// Availability p95 must stay under this many milliseconds.
    #[arg(long, default_value_t = 500)]
    availability_p95_ms: u64,
    /// Booking (request to booked) p95 must stay under this many milliseconds.
    #[arg(long, default_value_t = 5_000)]
    booking_p95_ms: u64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum ReconcileCommand {
    /// List upcoming Cal.com bookings with calsaga's metadata that no saga
    /// holds (e.g. after restoring the database from a backup); with
    /// --apply cancel them. `serve` does the same on every start.
    Orphans(OrphansArgs),
}

#[derive(clap::Args)]
struct OrphansArgs {
    #[command(flatten)]
    db: DbArg,
    /// Directory of the service catalogue.
    #[arg(long, default_value = "workflows", env = "CALSAGA_WORKFLOWS")]
    workflows: PathBuf,
    #[command(flatten)]
    calcom: CalcomArgs,
    /// Requests per minute Cal.com allows this key.
    #[arg(long, default_value_t = 120, env = "CALCOM_REQUESTS_PER_MINUTE")]
    calcom_requests_per_minute: u32,
    /// Cancel the orphans found (default: only list them).
    #[arg(long)]
    apply: bool,
}

#[derive(clap::Args)]
struct LoadArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Client threads, each sending its next request when the last is answered.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    concurrency: u32,
    /// How long to send, e.g. 30s, 2m.
    #[arg(long, default_value = "30s", value_parser = load::parse_duration)]
    duration: std::time::Duration,
    /// Weights of the operations.
    #[arg(long, default_value = "book=50,availability=40,cancel=10")]
    mix: load::Mix,
    /// Days from --date that bookings and searches spread over.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=31))]
    days: u32,
    /// Seed of the operation picks, to repeat a run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Allow a target that is not this machine.
    #[arg(long)]
    allow_remote: bool,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print it once: the token alone on the first line
    /// of stdout. Only its SHA-256 is stored.
    Create {
        /// SQLite database file of `calsaga serve`.
        #[arg(long, default_value = "calsaga.db", env = "CALSAGA_DB")]
        db: PathBuf,
        /// A name for the token, shown in logs instead of the token.
        #[arg(long)]
        name: String,
        /// booking (services, availability, bookings, holds) or admin (everything).
        #[arg(long, value_parser = ["booking", "admin"])]
        scope: String,
    },
    /// Every token's name, scope, creation and last use (never the token:
    /// only its hash is stored). Read-only; works while `serve` runs.
    List {
        #[command(flatten)]
        db: DbArg,
    },
    /// Delete the token named NAME; a running `serve` refuses it from its
    /// next request.
    Revoke {
        name: String,
        /// SQLite database file of `calsaga serve`.
        #[arg(long, default_value = "calsaga.db", env = "CALSAGA_DB")]
        db: PathBuf,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// SQLite database file (created if missing; one calsaga process per file).
    #[arg(long, default_value = "calsaga.db", env = "CALSAGA_DB")]
    db: PathBuf,
    /// Address of calsaga's HTTP API; put a TLS proxy in front to expose it.
    #[arg(long, default_value = "127.0.0.1:8080", env = "CALSAGA_BIND")]
    bind: SocketAddr,
    /// Folder of service files.
    #[arg(long, default_value = "workflows", env = "CALSAGA_WORKFLOWS")]
    workflows: PathBuf,
    /// Cal.com API base URL; used only with an API key.
    #[arg(long, env = "CALCOM_API_URL")]
    calcom_url: Option<String>,
    /// Cal.com API key; without one calsaga runs against the embedded mock.
    #[arg(long, env = "CALCOM_API_KEY", hide_env_values = true)]
    calcom_api_key: Option<String>,
    /// Requests per minute Cal.com allows this key (120 unless Cal.com raised
    /// it); calsaga stays under it.
    #[arg(long, default_value_t = 120, env = "CALCOM_REQUESTS_PER_MINUTE")]
    calcom_requests_per_minute: u32,
    /// Deadline of one Cal.com request, in seconds; a reconcile that finds
    /// nothing trusts it only twice this long after the request was sent.
    #[arg(long, default_value_t = 30, env = "CALCOM_TIMEOUT_S")]
    calcom_timeout_s: u64,
    /// Fixture of the embedded mock.
    #[arg(
        long,
        default_value = "fixtures/mock/salon.json",
        env = "CALSAGA_MOCK_FIXTURE"
    )]
    mock_fixture: PathBuf,
    /// Port of the embedded mock on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0, env = "CALSAGA_MOCK_PORT")]
    mock_port: u16,
    /// Fault scenario of the embedded mock (see `calsaga mock --help`).
    #[arg(long, env = "CALSAGA_MOCK_SCENARIO")]
    mock_scenario: Option<String>,
    /// Persist the embedded mock's state here.
    #[arg(long, env = "CALSAGA_MOCK_STATE_FILE")]
    mock_state_file: Option<PathBuf>,
    /// Sagas driven at once.
    #[arg(long, default_value_t = 64, env = "CALSAGA_SAGAS_MAX")]
    sagas_max: usize,
    /// Reserve every segment's slot for this many minutes before booking.
    #[arg(long, env = "CALSAGA_RESERVE_MIN")]
    reserve_min: Option<u32>,
    /// Slot interval (minutes) of the catalogue's Cal.com event types.
    #[arg(long, default_value_t = 15, env = "CALSAGA_SLOT_INTERVAL_MIN")]
    slot_interval_min: u32,
    /// Requests per minute per API token (or per IP address without one).
    #[arg(long, default_value_t = 600, env = "CALSAGA_RATE_LIMIT_PER_MIN")]
    rate_limit_per_min: u32,
    /// Requests a caller may send at once after a quiet spell.
    #[arg(long, default_value_t = 100, env = "CALSAGA_RATE_LIMIT_BURST")]
    rate_limit_burst: u32,
    /// Secret of the Cal.com webhook that posts to /webhooks/calcom
    /// (required with a real Cal.com; without one every webhook is refused).
    #[arg(long, env = "CALSAGA_WEBHOOK_SECRET", hide_env_values = true)]
    webhook_secret: Option<String>,
    /// The previous webhook secret, still accepted during a rotation.
    #[arg(long, env = "CALSAGA_WEBHOOK_SECRET_PREVIOUS", hide_env_values = true)]
    webhook_secret_previous: Option<String>,
    /// When a segment of a composite booking is cancelled in Cal.com:
    /// cancel-rest (cancel the other segments) or flag (leave them for an admin).
    #[arg(long, default_value = "cancel-rest", value_parser = ["cancel-rest", "flag"], env = "CALSAGA_BROKEN_POLICY")]
    broken_policy: String,
    /// GET /api/health/calcom reuses a health report younger than this (seconds).
    #[arg(long, default_value_t = 30, env = "CALSAGA_HEALTH_CACHE_TTL_S")]
    health_cache_ttl_s: u64,
    /// Run the health checks every this many seconds and alert on changes (0: off).
    #[arg(long, default_value_t = 60, env = "CALSAGA_HEALTH_INTERVAL_S")]
    health_interval_s: u64,
    /// Slack-compatible incoming-webhook URL for health alerts (repeatable).
    #[arg(
        long = "alert-slack-url",
        env = "CALSAGA_ALERT_SLACK_URLS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    alert_slack_urls: Vec<String>,
    /// URL that receives health alerts as structured JSON (repeatable).
    #[arg(
        long = "alert-webhook-url",
        env = "CALSAGA_ALERT_WEBHOOK_URLS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    alert_webhook_urls: Vec<String>,
    /// On start, cancel Cal.com bookings with calsaga's metadata that no saga
    /// in the database holds (orphans after a restore from a backup). Turn
    /// off when several calsaga databases book through one Cal.com account.
    #[arg(long, default_value = "on", value_parser = ["on", "off"], env = "CALSAGA_ORPHAN_SCAN")]
    orphan_scan: String,
}

#[derive(clap::Args)]
struct MockArgs {
    /// TCP port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 5555)]
    port: u16,
    /// Address to bind; keep the loopback default unless you know why not.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Fixture with users, working hours, event types and existing bookings.
    #[arg(long, default_value = "fixtures/mock/salon.json")]
    fixture: PathBuf,
    /// Preset fault scenario: healthy, flaky, slow, rate-limited, reply-lost, outage.
    #[arg(long)]
    scenario: Option<String>,
    /// Seed of the fault RNG, so a faulty run can be repeated exactly.
    #[arg(long, default_value_t = 0)]
    fault_seed: u64,
    /// Persist the mock's state here after every change and load it on start.
    #[arg(long)]
    state_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum CatalogCommand {
    /// Validate every service file and print the services with their segments.
    Check {
        /// Folder of service files.
        #[arg(long, default_value = "workflows", env = "CALSAGA_WORKFLOWS")]
        workflows: PathBuf,
    },
    /// Compare the event types the catalogue books with Cal.com's (owner,
    /// length, slug, title); exit 1 while any differ. With --apply, patch
    /// what differs and create what is missing (then print the catalogue
    /// line to change, as a new event type gets a new id).
    Sync {
        /// Folder of service files.
        #[arg(long, default_value = "workflows", env = "CALSAGA_WORKFLOWS")]
        workflows: PathBuf,
        /// Change Cal.com to match the catalogue.
        #[arg(long)]
        apply: bool,
        #[command(flatten)]
        calcom: CalcomArgs,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Raw disk commits, sequential and concurrent sagas, commits per saga and
    /// recovery of interrupted sagas, in one run, against an instant supplier.
    Engine(BenchEngineArgs),
    /// Simple and composite bookings, availability cold and cached, and webhook
    /// ingest through the HTTP server, against the embedded mock on loopback.
    Http(BenchHttpArgs),
    /// Engine, recovery, HTTP, webhooks and availability cache in one run
    /// with smaller sizes (a minute or two), each against its same-run baseline.
    All(BenchAllArgs),
}

#[derive(clap::Args)]
struct BenchAllArgs {
    /// Print one JSON object instead of the tables.
    #[arg(long)]
    json: bool,
    /// Sagas in each engine throughput phase.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    sagas: u32,
    /// Sagas at once in the engine's concurrent and recovery phases.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    concurrency: u32,
    /// Interrupted sagas recovered.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..))]
    recover: u32,
    /// Requests in each HTTP phase at each client count.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    requests: u32,
    /// HTTP client counts, run in turn.
    #[arg(long, value_delimiter = ',', default_values_t = [1u32, 8], value_parser = clap::value_parser!(u32).range(1..))]
    clients: Vec<u32>,
    /// Availability searches timed cold, and again cached.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    availability_requests: u32,
    /// Single-row commits timed in each sample of the disk baseline.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    raw_commits: u32,
    /// Folder for the scratch databases; a scratch folder is made in it and removed.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Folder of service files.
    #[arg(long, default_value = "workflows", env = "CALSAGA_WORKFLOWS")]
    workflows: PathBuf,
}

#[derive(clap::Args)]
struct BenchHttpArgs {
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Requests in each phase (health, haircut, colour-and-cut, webhooks) at
    /// each client count.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    requests: u32,
    /// Client counts, run in turn.
    #[arg(long, value_delimiter = ',', default_values_t = [1u32, 16, 64], value_parser = clap::value_parser!(u32).range(1..))]
    clients: Vec<u32>,
    /// Availability searches timed cold, and again cached.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    availability_requests: u32,
    /// Single-row commits timed in each sample of the disk baseline.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..))]
    raw_commits: u32,
    /// Folder for the scratch database; a scratch folder is made in it and removed.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Folder of service files (must hold haircut and colour-and-cut).
    #[arg(long, default_value = "workflows", env = "CALSAGA_WORKFLOWS")]
    workflows: PathBuf,
}

#[derive(clap::Args)]
struct BenchEngineArgs {
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Sagas booked one at a time, and again many at once.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    sagas: u32,
    /// Sagas at once in the concurrent and recovery runs.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    concurrency: u32,
    /// Interrupted sagas to recover.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    recover: u32,
    /// Single-row commits timed in each sample of the disk baseline.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..))]
    raw_commits: u32,
    /// Book each saga later than the last (as bookings accumulate) instead of
    /// earlier; shows what the slot-claim check costs as claims pile up.
    #[arg(long)]
    earliest_first: bool,
    /// Folder on the disk to measure; a scratch folder is made in it and removed.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Folder of service files (must hold highlights-toner-blowdry).
    #[arg(long, default_value = "workflows", env = "CALSAGA_WORKFLOWS")]
    workflows: PathBuf,
}

type CliResult = Result<(), Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A simulation restarts engines by the thousand: their info lines
    // would bury its summary.
    let quiet = matches!(cli.command, Command::Simulate(_));
    init_logging(cli.log_format, if quiet { "warn" } else { "info" });
    let result = match cli.command {
        Command::Serve(args) => run_serve(*args),
        Command::Mock(args) => run_mock(args),
        Command::Catalog(CatalogCommand::Check { workflows }) => run_catalog_check(&workflows),
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
        }) => run_catalog_sync(&workflows, apply, &calcom),
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

fn run_serve(args: ServeArgs) -> CliResult {
    let config = ServeConfig::from_inputs(ServeInputs {
        db: args.db,
        bind: args.bind,
        workflows: args.workflows,
        calcom_url: args.calcom_url,
        calcom_api_key: args.calcom_api_key,
        calcom_requests_per_minute: args.calcom_requests_per_minute,
        calcom_timeout_s: args.calcom_timeout_s,
        mock_fixture: args.mock_fixture,
        mock_port: args.mock_port,
        mock_scenario: args.mock_scenario,
        mock_state_file: args.mock_state_file,
        sagas_concurrent_max: args.sagas_max,
        reserve_min: args.reserve_min,
        slot_interval_min: args.slot_interval_min,
        rate_limit_per_min: args.rate_limit_per_min,
        rate_limit_burst: args.rate_limit_burst,
        webhook_secret: args.webhook_secret,
        webhook_secret_previous: args.webhook_secret_previous,
        broken_policy: args.broken_policy,
        health_cache_ttl_s: args.health_cache_ttl_s,
        health_interval_s: args.health_interval_s,
        alert_slack_urls: args.alert_slack_urls,
        alert_webhook_urls: args.alert_webhook_urls,
        orphan_scan: args.orphan_scan == "on",
    })?;
    serve::run(config)
}

fn run_health(args: HealthArgs) -> CliResult {
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

fn run_mock(args: MockArgs) -> CliResult {
    // Webhook deliveries to subscribers go out over real HTTP.
    let poster = HttpPoster::new(ClientConfig::default().http_limits())?;
    let options = MockOptions {
        fixture: args.fixture,
        bind: SocketAddr::new(args.bind, args.port),
        scenario: args.scenario,
        fault_seed: args.fault_seed,
        state_file: args.state_file,
    };
    mock::run_with(options, Some(Arc::new(poster)))?;
    Ok(())
}

fn run_reconcile_orphans(args: OrphansArgs) -> CliResult {
    let report = calsaga::runtime::scan_once(calsaga::runtime::ScanOnce {
        db: args.db.db,
        workflows: args.workflows,
        calcom: calsaga::calcom_admin::client_config(
            args.calcom.calcom_api_key.as_deref(),
            args.calcom.calcom_url.as_deref(),
            args.calcom_requests_per_minute,
        )?,
        apply: args.apply,
    })?;
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

fn run_token_create(db: &std::path::Path, name: &str, scope: &str) -> CliResult {
    let (token, row) = http::new_token(name, scope.parse()?, chrono::Utc::now())?;
    store::change_tokens(db, TokenChange::Put(row))?;
    println!("{token}");
    eprintln!(
        "created token {name:?} with the {scope} scope; it is shown only this once (a running serve accepts it within a second)"
    );
    Ok(())
}

fn run_token_list(db: &std::path::Path) -> CliResult {
    let store = admin::open(db)?;
    let tokens = store.tokens()?;
    let time =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    println!(
        "{:<32}  {:<8}  {:<20}  LAST USED",
        "NAME", "SCOPE", "CREATED"
    );
    for t in &tokens {
        println!(
            "{:<32}  {:<8}  {:<20}  {}",
            t.name,
            t.scope,
            time(t.created_at),
            t.last_used_at.map_or_else(|| "never".to_string(), time)
        );
    }
    println!("{} token(s)", tokens.len());
    Ok(())
}

fn run_token_revoke(db: &std::path::Path, name: &str) -> CliResult {
    store::change_tokens(
        db,
        TokenChange::Revoke {
            name: name.to_string(),
        },
    )?;
    eprintln!("revoked token {name:?}; a running serve refuses it within a second");
    Ok(())
}

fn run_bench_engine(args: BenchEngineArgs) -> CliResult {
    let report = bench::run_engine(&bench::BenchConfig {
        dir: args.dir,
        workflows: args.workflows,
        sagas: args.sagas as usize,
        concurrency: args.concurrency as usize,
        recover: args.recover as usize,
        raw_commits: args.raw_commits,
        order: if args.earliest_first {
            bench::StartOrder::EarliestFirst
        } else {
            bench::StartOrder::LatestFirst
        },
        command: std::env::args().collect::<Vec<_>>().join(" "),
    })?;
    print_report(args.json, &report, || report.table())
}

fn run_bench_http(args: BenchHttpArgs) -> CliResult {
    let report = bench::run_http(&bench::HttpBenchConfig {
        dir: args.dir,
        workflows: args.workflows,
        requests: args.requests as usize,
        clients: args.clients.iter().map(|&c| c as usize).collect(),
        availability_requests: args.availability_requests as usize,
        raw_commits: args.raw_commits,
        command: std::env::args().collect::<Vec<_>>().join(" "),
    })?;
    print_report(args.json, &report, || report.table())
}

fn run_bench_all(args: BenchAllArgs) -> CliResult {
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let report = bench::run_all(&bench::AllConfig {
        engine: bench::BenchConfig {
            dir: args.dir.clone(),
            workflows: args.workflows.clone(),
            sagas: args.sagas as usize,
            concurrency: args.concurrency as usize,
            recover: args.recover as usize,
            raw_commits: args.raw_commits,
            order: bench::StartOrder::LatestFirst,
            command: command.clone(),
        },
        http: bench::HttpBenchConfig {
            dir: args.dir,
            workflows: args.workflows,
            requests: args.requests as usize,
            clients: args.clients.iter().map(|&c| c as usize).collect(),
            availability_requests: args.availability_requests as usize,
            raw_commits: args.raw_commits,
            command,
        },
    })?;
    print_report(args.json, &report, || report.table())
}

fn run_smoke(suite: smoke::Suite, args: SmokeArgs) -> CliResult {
    let t = args.target;
    let report = smoke::run(
        suite,
        &smoke::SmokeConfig {
            api_base: t.api_base,
            token: t.token,
            service: t.service,
            composite: args.composite_service,
            date: t
                .date
                .unwrap_or_else(|| smoke::default_date(chrono::Utc::now().date_naive())),
            time_zone: t.time_zone,
            availability_p95_ms_max: args.availability_p95_ms,
            booking_p95_ms_max: args.booking_p95_ms,
            timeout: std::time::Duration::from_secs(t.timeout_s),
        },
    )?;
    print_report(args.json, &report, || report.table())?;
    if report.passed() {
        return Ok(());
    }
    Err(format!(
        "{} of {} smoke scenarios failed; each FAIL row says what was wrong",
        report.failed(),
        report.outcomes.len()
    )
    .into())
}

fn run_load(args: LoadArgs) -> CliResult {
    let t = args.target;
    let report = load::run(&load::LoadConfig {
        api_base: t.api_base,
        token: t.token,
        service: t.service,
        concurrency: args.concurrency as usize,
        duration: args.duration,
        mix: args.mix,
        allow_remote: args.allow_remote,
        date: t
            .date
            .unwrap_or_else(|| smoke::default_date(chrono::Utc::now().date_naive())),
        days: args.days,
        time_zone: t.time_zone,
        timeout: std::time::Duration::from_secs(t.timeout_s),
        seed: args.seed,
        progress: true,
    })?;
    print_report(args.json, &report, || report.table())?;
    match report.invariant.violations {
        0 => Ok(()),
        n => Err(format!(
            "{n} pairs of live bookings of one host overlap; look them up with GET /api/v2/bookings/{{id}}"
        )
        .into()),
    }
}

fn parse_zone(s: &str) -> Result<chrono_tz::Tz, String> {
    s.parse()
        .map_err(|_| format!("{s:?} is not an IANA time zone; e.g. Europe/Berlin"))
}

/// A benchmark's report: one JSON object, or the table for people.
fn print_report(
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

fn run_workflows(cmd: WorkflowsCommand) -> CliResult {
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
        WorkflowsCommand::Show { id, db, json } => {
            admin::show(&admin::open(&db.db)?, id, json, &mut out)?
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

fn run_admin_request(
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

fn run_simulate(args: SimulateArgs) -> CliResult {
    use calsaga::sim;
    let config = sim::SimulateConfig {
        seed: args.seed,
        runs: args.runs,
        faults: args.faults,
        requests: usize::try_from(args.requests)?,
    };
    // Progress on stderr: every run at a terminal, else every 100 runs.
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let summary = sim::simulate(&config, |done, s| {
        if tty || done % 100 == 0 {
            eprint!(
                "\rsimulate: {done}/{} runs, {} sagas, {} violations",
                args.runs, s.sagas, s.violations
            );
            if !tty || done == args.runs {
                eprintln!();
            }
        }
    });
    print_report(args.json, &summary, || summary.table())?;
    match summary.failures.first() {
        None => Ok(()),
        Some(f) => Err(format!(
            "{} invariant violations and {} unfinished runs; first failing seed {}: replay with `{}`",
            summary.violations, summary.errors, f.seed, f.replay
        )
        .into()),
    }
}

fn run_catalog_check(dir: &std::path::Path) -> CliResult {
    let catalog = Catalog::load_dir(dir)?;
    for service in catalog.services() {
        println!(
            "{} ({}): {} min",
            service.id,
            service.name,
            service.total_min()
        );
        for (i, seg) in service.segments.iter().enumerate() {
            let staff: Vec<String> = seg
                .staff
                .iter()
                .map(|o| {
                    let host = catalog.hosts().label(o.host);
                    format!("host {host} via event type {}", o.event_type_id)
                })
                .collect();
            println!(
                "  {i}. {} {} min at +{} min, pause {} min; hosts: {}",
                seg.name,
                seg.duration_min,
                service.offset_min(i),
                seg.pause_after_min,
                staff.join(", ")
            );
        }
    }
    Ok(())
}

fn run_catalog_sync(dir: &std::path::Path, apply: bool, calcom: &CalcomArgs) -> CliResult {
    let catalog = Catalog::load_dir(dir)?;
    let calcom = calcom.connect()?;
    sync::run(&calcom, &catalog, apply, &mut std::io::stdout().lock())?;
    Ok(())
}

fn run_webhooks(command: WebhooksCommand) -> CliResult {
    match command {
        WebhooksCommand::Register { url, calcom } => {
            let calcom = calcom.connect()?;
            let registered = calcom.block_on(subscriptions::register(calcom.client(), &url))?;
            print!("{}", subscriptions::registered_report(&registered));
        }
        WebhooksCommand::List { calcom } => {
            let calcom = calcom.connect()?;
            let webhooks = calcom.block_on(subscriptions::list(calcom.client()))?;
            print!("{}", subscriptions::table(&webhooks));
        }
        WebhooksCommand::Delete { id, calcom } => {
            let calcom = calcom.connect()?;
            let deleted = calcom.block_on(subscriptions::delete(calcom.client(), &id))?;
            println!(
                "deleted Cal.com webhook {} for {}",
                deleted.id, deleted.subscriber_url
            );
        }
    }
    Ok(())
}

/// Copies `db` to `path` with `VACUUM INTO` through a read-only handle (no
/// lock, so `serve` may run), then opens the copy and checks it.
fn run_backup(db: &std::path::Path, path: &std::path::Path) -> CliResult {
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
