//! Integration tests: one binary, one module per area. They drive the real
//! `calsaga` binary or the real HTTP surface, on 127.0.0.1 only.

mod bench;
mod calcom;
mod cli;
mod crash;
mod http;
mod mock_cli;
mod smoke;
mod support;
