//! calsaga: durable sagas that book composite services through Cal.com API v2.
//!
//! The binary (`src/main.rs`) is a thin CLI over this library; integration
//! tests and benchmarks use the same modules. See docs/ARCHITECTURE.md for the
//! codemap and the invariants every module keeps.

pub mod admin;
pub mod availability;
pub mod calcom;
pub mod calcom_admin;
pub mod catalog;
pub mod clock;
pub mod config;
pub mod cpu_time;
pub mod health;
pub mod http;
mod httpwire;
pub mod metrics;
pub mod mock;
pub mod runtime;
pub mod saga;
pub mod serve;
pub mod status;
pub mod store;
pub mod tools;
