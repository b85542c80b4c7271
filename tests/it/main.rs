//! Integration tests: one binary, one module per area. They drive the real
//! `calsaga` binary or the real HTTP surface, on 127.0.0.1 only.

mod admin_page;
mod bench;
mod calcom;
mod cli;
mod crash;
mod health;
mod http;
mod mock_cli;
mod operate;
mod readme;
mod restore;
mod server;
mod simulate;
mod smoke;
mod support;
mod workflows;
