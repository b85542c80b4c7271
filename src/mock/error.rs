//! The mock's own failures: starting it (fixture, scenario, state file, port)
//! and keeping its state file. Every message names what failed and what to do.
//! Nothing here describes an API answer: those are `reply::ApiError`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Why the mock could not start or keep its state.
#[derive(Debug, thiserror::Error)]
pub enum MockError {
    #[error(
        "cannot read fixture {path}: {source}; pass the path of an existing fixture file (`--mock-fixture` for serve, `--fixture` for `calsaga mock`)"
    )]
    FixtureRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "fixture {path} is not valid fixture JSON: {detail}; compare it with fixtures/mock/salon.json"
    )]
    FixtureSyntax { path: PathBuf, detail: String },
    #[error("fixture {path}: {field}: {problem}; {fix}")]
    FixtureField {
        path: PathBuf,
        field: String,
        problem: String,
        fix: String,
    },
    #[error(
        "unknown mock scenario {name:?}; use one of healthy, flaky, slow, rate-limited, reply-lost, outage"
    )]
    UnknownScenario { name: String },
    #[error(
        "state file {path}: {detail}; fix or delete the file to start again from the fixture's bookings"
    )]
    StateFile { path: PathBuf, detail: String },
    #[error("cannot listen on {addr}: the port is in use; pick another with --port")]
    PortInUse { addr: SocketAddr },
    #[error(
        "cannot listen on {addr}: {source}; check the bind address, or pick another port with --port"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot write the start-up line to stdout: {source}; check that stdout is open")]
    Stdout { source: std::io::Error },
}

impl MockError {
    pub(crate) fn field(
        path: &Path,
        field: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        MockError::FixtureField {
            path: path.to_path_buf(),
            field: field.into(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    pub(crate) fn bind(addr: SocketAddr, source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            MockError::PortInUse { addr }
        } else {
            MockError::Bind { addr, source }
        }
    }
}
