//! (to be written)
use std::net::SocketAddr;
use std::path::PathBuf;

pub struct MockOptions {
    pub fixture: PathBuf,
    pub bind: SocketAddr,
    pub scenario: Option<String>,
    pub fault_seed: u64,
    pub state_file: Option<PathBuf>,
}

pub fn run(_opts: MockOptions) -> Result<(), std::io::Error> {
    Err(std::io::Error::other("the mock is not built yet"))
}
