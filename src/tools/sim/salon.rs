//! The one test world every engine-level test builds on: the salon fixture
//! in the in-process Cal.com mock, on a simulated clock at `SIM_START`, the
//! shipped catalogue, and clients that talk to that mock (through any
//! transport: the plain mock, a gate, a fault). The simulation, the runtime
//! tests and the health tests add their own store and engine settings on
//! top; none sets these up a second time.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::calcom::{Client, ClientConfig, RetryPolicy, Transport};
use crate::catalog::Catalog;
use crate::clock::{Clock, SimClock};
use crate::mock::{Fixture, Mock, MockConfig, MockError, MockTransport};

/// Where simulated time starts: before every request of the plans and tests.
pub const SIM_START: &str = "2030-03-01T08:00:00Z";
/// The salon fixture's API key.
pub const KEY: &str = "cal_test_calsaga_mock";

/// A UTC instant from RFC 3339 text the caller wrote (panics otherwise).
pub fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s:?} is not RFC 3339: {e}"))
        .to_utc()
}

/// The shipped catalogue, `workflows/`.
pub fn catalog() -> Arc<Catalog> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows");
    Arc::new(Catalog::load_dir(&dir).unwrap_or_else(|e| panic!("{e}")))
}

/// The salon mock on a simulated clock.
pub struct Salon {
    pub mock: Arc<Mock>,
    pub clock: Arc<SimClock>,
}

impl Salon {
    pub fn new() -> Salon {
        Salon::with(MockConfig::default()).unwrap_or_else(|e| panic!("the salon mock: {e}"))
    }

    pub fn with(config: MockConfig) -> Result<Salon, MockError> {
        let clock = Arc::new(SimClock::new(at(SIM_START)));
        let mock = Mock::new(Fixture::salon(), clock.clone(), config)?;
        Ok(Salon {
            mock: Arc::new(mock),
            clock,
        })
    }

    /// The plain in-process mock as a transport.
    pub fn transport(&self) -> Arc<dyn Transport> {
        Arc::new(MockTransport::new(self.mock.clone()))
    }

    /// A client with `key` over `transport`, on `clock`, retrying as `retry`.
    pub fn client_over(
        transport: Arc<dyn Transport>,
        key: &str,
        retry: RetryPolicy,
        clock: Arc<dyn Clock>,
        seed: u64,
    ) -> Client {
        let config = ClientConfig {
            api_key: Some(key.into()),
            retry,
            ..ClientConfig::default()
        };
        Client::new(config, transport, clock, seed)
    }

    /// The salon's client over `transport`, on this world's clock.
    pub fn client(&self, transport: Arc<dyn Transport>) -> Client {
        Salon::client_over(
            transport,
            KEY,
            RetryPolicy::default(),
            self.clock.clone(),
            7,
        )
    }
}

impl Default for Salon {
    fn default() -> Self {
        Salon::new()
    }
}
