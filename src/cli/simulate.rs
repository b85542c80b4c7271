//! `calsaga simulate`: the deterministic simulation.

use super::{CliResult, print_report};

#[derive(clap::Args)]
pub struct SimulateArgs {
    /// Seed of the first run; run r uses seed + r.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Runs, each with its own seed.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub runs: u64,
    /// How rough Cal.com and the process are: none, light or heavy.
    #[arg(long, default_value = "light")]
    pub faults: calsaga::tools::sim::FaultLevel,
    /// Requests (book, hold, confirm, reschedule, cancel) per run.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub requests: u64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

pub fn run_simulate(args: SimulateArgs) -> CliResult {
    use calsaga::tools::sim;
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
