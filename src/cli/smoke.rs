//! `calsaga smoke ...` and `calsaga load`: a running calsaga checked and
//! loaded through its API.

use super::{CliResult, print_report};
use calsaga::tools::load;
use calsaga::tools::smoke;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum SmokeCommand {
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
pub struct TargetArgs {
    /// calsaga's API base URL.
    #[arg(long, env = "API_BASE", default_value = smoke::API_BASE_DEFAULT)]
    pub api_base: String,
    /// A calsaga token with the booking scope (`calsaga token create`).
    #[arg(long, env = "API_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Service booked and searched [default: the first one-segment service
    /// of GET /services].
    #[arg(long, env = "SERVICE_ID")]
    pub service: Option<String>,
    /// Day to search and book, YYYY-MM-DD: a working day of the staff with
    /// free time [default: the first Tuesday at least 14 days from today].
    #[arg(long)]
    pub date: Option<chrono::NaiveDate>,
    /// IANA time zone days are searched in.
    #[arg(long, default_value = "Europe/Berlin", value_parser = calsaga::http::time_zone)]
    pub time_zone: chrono_tz::Tz,
    /// Deadline of one request, in seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout_s: u64,
}

#[derive(clap::Args)]
pub struct SmokeArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Composite service [default: the first with more than one segment].
    #[arg(long, env = "COMPOSITE_SERVICE_ID")]
    pub composite_service: Option<String>,
    /// Availability p95 must stay under this many milliseconds.
    #[arg(long, default_value_t = 500)]
    pub availability_p95_ms: u64,
    /// Booking (request to booked) p95 must stay under this many milliseconds.
    #[arg(long, default_value_t = 5_000)]
    pub booking_p95_ms: u64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

pub fn run_smoke(suite: smoke::Suite, args: SmokeArgs) -> CliResult {
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

#[derive(clap::Args)]
pub struct LoadArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Client threads, each sending its next request when the last is answered.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: u32,
    /// How long to send, e.g. 30s, 2m.
    #[arg(long, default_value = "30s", value_parser = load::parse_duration)]
    pub duration: std::time::Duration,
    /// Weights of the operations.
    #[arg(long, default_value = "book=50,availability=40,cancel=10")]
    pub mix: load::Mix,
    /// Days from --date that bookings and searches spread over.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=31))]
    pub days: u32,
    /// Seed of the operation picks, to repeat a run.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Allow a target that is not this machine.
    #[arg(long)]
    pub allow_remote: bool,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

pub fn run_load(args: LoadArgs) -> CliResult {
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
