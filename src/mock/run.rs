//! `calsaga mock`: load the fixture, start the server, print one line, and
//! serve until the process is stopped by a signal. The CLI calls `run`; it
//! owns nothing but this start-up sequence.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use super::engine::{Mock, MockConfig};
use super::error::MockError;
use super::fixture::Fixture;
use super::server::MockServer;
use crate::calcom::Poster;
use crate::clock::SystemClock;

/// What `calsaga mock` takes from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockOptions {
    pub fixture: PathBuf,
    pub bind: SocketAddr,
    /// healthy (default), flaky, slow, rate-limited, reply-lost, outage.
    pub scenario: Option<String>,
    pub fault_seed: u64,
    pub state_file: Option<PathBuf>,
}

/// Runs the mock with webhook deliveries recorded only.
pub fn run(opts: MockOptions) -> Result<(), MockError> {
    run_with(opts, None)
}

/// Runs the mock; `poster` delivers webhooks to their subscribers.
pub fn run_with(opts: MockOptions, poster: Option<Arc<dyn Poster>>) -> Result<(), MockError> {
    let fixture = Fixture::load(&opts.fixture)?;
    let key = fixture.api_keys[0].key.clone();
    let config = MockConfig {
        scenario: opts.scenario.as_deref().unwrap_or("healthy").parse()?,
        fault_seed: opts.fault_seed,
        state_file: opts.state_file,
        poster,
    };
    let mock = Arc::new(Mock::new(fixture, Arc::new(SystemClock), config)?);
    let server = MockServer::start(mock, opts.bind).map_err(|e| MockError::bind(opts.bind, e))?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "calsaga mock: Cal.com API v2 mock on {} (fixture {}, API key {key})",
        server.url(),
        opts.fixture.display()
    )
    .and_then(|()| out.flush())
    .map_err(|source| MockError::Stdout { source })?;
    drop(out);
    // Serve until a signal ends the process; park may wake spuriously.
    loop {
        std::thread::park();
    }
}
