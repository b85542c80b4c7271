//! `calsaga bench engine|http|all`.

use super::{CliResult, print_report};
use calsaga::tools::bench;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum BenchCommand {
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
pub struct BenchAllArgs {
    /// Print one JSON object instead of the tables.
    #[arg(long)]
    pub json: bool,
    /// Sagas in each engine throughput phase.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub sagas: u32,
    /// Sagas at once in the engine's concurrent and recovery phases.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,
    /// Interrupted sagas recovered.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub recover: u32,
    /// Requests in each HTTP phase at each client count.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub requests: u32,
    /// HTTP client counts, run in turn.
    #[arg(long, value_delimiter = ',', default_values_t = [1u32, 8], value_parser = clap::value_parser!(u32).range(1..))]
    pub clients: Vec<u32>,
    /// Availability searches timed cold, and again cached.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub availability_requests: u32,
    /// Single-row commits timed in each sample of the disk baseline.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    pub raw_commits: u32,
    /// Folder for the scratch databases; a scratch folder is made in it and removed.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Folder of service files.
    #[arg(long, default_value = "workflows", env = "CALSAGA_WORKFLOWS")]
    pub workflows: PathBuf,
}

#[derive(clap::Args)]
pub struct BenchHttpArgs {
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Requests in each phase (health, haircut, colour-and-cut, webhooks) at
    /// each client count.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    pub requests: u32,
    /// Client counts, run in turn.
    #[arg(long, value_delimiter = ',', default_values_t = [1u32, 16, 64], value_parser = clap::value_parser!(u32).range(1..))]
    pub clients: Vec<u32>,
    /// Availability searches timed cold, and again cached.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    pub availability_requests: u32,
    /// Single-row commits timed in each sample of the disk baseline.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub raw_commits: u32,
    /// Folder for the scratch database; a scratch folder is made in it and removed.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Folder of service files (must hold haircut and colour-and-cut).
    #[arg(long, default_value = "workflows", env = "CALSAGA_WORKFLOWS")]
    pub workflows: PathBuf,
}

#[derive(clap::Args)]
pub struct BenchEngineArgs {
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Sagas booked one at a time, and again many at once.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    pub sagas: u32,
    /// Sagas at once in the concurrent and recovery runs.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,
    /// Interrupted sagas to recover.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub recover: u32,
    /// Single-row commits timed in each sample of the disk baseline.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub raw_commits: u32,
    /// Book each saga later than the last (as bookings accumulate) instead of
    /// earlier; shows what the slot-claim check costs as claims pile up.
    #[arg(long)]
    pub earliest_first: bool,
    /// Folder on the disk to measure; a scratch folder is made in it and removed.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Folder of service files (must hold highlights-toner-blowdry).
    #[arg(long, default_value = "workflows", env = "CALSAGA_WORKFLOWS")]
    pub workflows: PathBuf,
}

pub fn run_bench_engine(args: BenchEngineArgs) -> CliResult {
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

pub fn run_bench_http(args: BenchHttpArgs) -> CliResult {
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

pub fn run_bench_all(args: BenchAllArgs) -> CliResult {
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
