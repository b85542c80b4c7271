//! `calsaga mock`: the Cal.com API v2 mock on its own.

use super::CliResult;
use calsaga::calcom::{ClientConfig, HttpPoster};
use calsaga::mock::{self, MockOptions};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct MockArgs {
    /// TCP port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 5555)]
    pub port: u16,
    /// Address to bind; keep the loopback default unless you know why not.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Fixture with users, working hours, event types and existing bookings.
    #[arg(long, default_value = "fixtures/mock/salon.json")]
    pub fixture: PathBuf,
    /// Preset fault scenario: healthy, flaky, slow, rate-limited, reply-lost, outage.
    #[arg(long)]
    pub scenario: Option<String>,
    /// Seed of the fault RNG, so a faulty run can be repeated exactly.
    #[arg(long, default_value_t = 0)]
    pub fault_seed: u64,
    /// Persist the mock's state here after every change and load it on start.
    #[arg(long)]
    pub state_file: Option<PathBuf>,
}

pub fn run_mock(args: MockArgs) -> CliResult {
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
