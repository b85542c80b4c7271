//! `calsaga serve`: every setting as a flag and an environment variable.

use super::{CliResult, WorkflowsArg};
use calsaga::config::{ServeConfig, ServeInputs};
use calsaga::serve;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// SQLite database file (created if missing; one calsaga process per file).
    #[arg(long, default_value = "calsaga.db", env = "CALSAGA_DB")]
    pub db: PathBuf,
    /// Address of calsaga's HTTP API; put a TLS proxy in front to expose it.
    #[arg(long, default_value = "127.0.0.1:8080", env = "CALSAGA_BIND")]
    pub bind: SocketAddr,
    #[command(flatten)]
    pub workflows: WorkflowsArg,
    /// Cal.com API base URL; used only with an API key.
    #[arg(long, env = "CALCOM_API_URL")]
    pub calcom_url: Option<String>,
    /// Cal.com API key; without one calsaga runs against the embedded mock.
    #[arg(long, env = "CALCOM_API_KEY", hide_env_values = true)]
    pub calcom_api_key: Option<String>,
    /// Requests per minute Cal.com allows this key (120 unless Cal.com raised
    /// it); calsaga stays under it.
    #[arg(long, default_value_t = 120, env = "CALCOM_REQUESTS_PER_MINUTE")]
    pub calcom_requests_per_minute: u32,
    /// Deadline of one Cal.com request, in seconds; a reconcile that finds
    /// nothing trusts it only twice this long after the request was sent.
    #[arg(long, default_value_t = 30, env = "CALCOM_TIMEOUT_S")]
    pub calcom_timeout_s: u64,
    /// Fixture of the embedded mock.
    #[arg(
        long,
        default_value = "fixtures/mock/salon.json",
        env = "CALSAGA_MOCK_FIXTURE"
    )]
    pub mock_fixture: PathBuf,
    /// Port of the embedded mock on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0, env = "CALSAGA_MOCK_PORT")]
    pub mock_port: u16,
    /// Fault scenario of the embedded mock (see `calsaga mock --help`).
    #[arg(long, env = "CALSAGA_MOCK_SCENARIO")]
    pub mock_scenario: Option<String>,
    /// Persist the embedded mock's state here.
    #[arg(long, env = "CALSAGA_MOCK_STATE_FILE")]
    pub mock_state_file: Option<PathBuf>,
    /// Sagas driven at once.
    #[arg(long, default_value_t = 64, env = "CALSAGA_SAGAS_MAX")]
    pub sagas_max: usize,
    /// Reserve every segment's slot for this many minutes before booking.
    #[arg(long, env = "CALSAGA_RESERVE_MIN")]
    pub reserve_min: Option<u32>,
    /// Slot interval (minutes) of the catalogue's Cal.com event types.
    #[arg(long, default_value_t = 15, env = "CALSAGA_SLOT_INTERVAL_MIN")]
    pub slot_interval_min: u32,
    /// Requests per minute per API token (or per IP address without one).
    #[arg(long, default_value_t = 600, env = "CALSAGA_RATE_LIMIT_PER_MIN")]
    pub rate_limit_per_min: u32,
    /// Requests a caller may send at once after a quiet spell.
    #[arg(long, default_value_t = 100, env = "CALSAGA_RATE_LIMIT_BURST")]
    pub rate_limit_burst: u32,
    /// Secret of the Cal.com webhook that posts to /webhooks/calcom
    /// (required with a real Cal.com; without one every webhook is refused).
    #[arg(long, env = "CALSAGA_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// The previous webhook secret, still accepted during a rotation.
    #[arg(long, env = "CALSAGA_WEBHOOK_SECRET_PREVIOUS", hide_env_values = true)]
    pub webhook_secret_previous: Option<String>,
    /// When a segment of a composite booking is cancelled in Cal.com:
    /// cancel-rest (cancel the other segments) or flag (leave them for an admin).
    #[arg(long, default_value = "cancel-rest", value_parser = ["cancel-rest", "flag"], env = "CALSAGA_BROKEN_POLICY")]
    pub broken_policy: String,
    /// GET /api/health/calcom reuses a health report younger than this (seconds).
    #[arg(long, default_value_t = 30, env = "CALSAGA_HEALTH_CACHE_TTL_S")]
    pub health_cache_ttl_s: u64,
    /// Run the health checks every this many seconds and alert on changes (0: off).
    #[arg(long, default_value_t = 60, env = "CALSAGA_HEALTH_INTERVAL_S")]
    pub health_interval_s: u64,
    /// Slack-compatible incoming-webhook URL for health alerts (repeatable).
    #[arg(
        long = "alert-slack-url",
        env = "CALSAGA_ALERT_SLACK_URLS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub alert_slack_urls: Vec<String>,
    /// URL that receives health alerts as structured JSON (repeatable).
    #[arg(
        long = "alert-webhook-url",
        env = "CALSAGA_ALERT_WEBHOOK_URLS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub alert_webhook_urls: Vec<String>,
    /// On start, cancel Cal.com bookings with calsaga's metadata that no saga
    /// in the database holds (orphans after a restore from a backup). Turn
    /// off when several calsaga databases book through one Cal.com account.
    #[arg(long, default_value = "on", value_parser = ["on", "off"], env = "CALSAGA_ORPHAN_SCAN")]
    pub orphan_scan: String,
}

pub fn run_serve(args: ServeArgs) -> CliResult {
    let config = ServeConfig::from_inputs(ServeInputs {
        db: args.db,
        bind: args.bind,
        workflows: args.workflows.workflows,
        calcom_url: args.calcom_url,
        calcom_api_key: args.calcom_api_key,
        calcom_requests_per_minute: args.calcom_requests_per_minute,
        calcom_timeout_s: args.calcom_timeout_s,
        mock_fixture: args.mock_fixture,
        mock_port: args.mock_port,
        mock_scenario: args.mock_scenario,
        mock_state_file: args.mock_state_file,
        sagas_concurrent_max: args.sagas_max,
        reserve_min: args.reserve_min,
        slot_interval_min: args.slot_interval_min,
        rate_limit_per_min: args.rate_limit_per_min,
        rate_limit_burst: args.rate_limit_burst,
        webhook_secret: args.webhook_secret,
        webhook_secret_previous: args.webhook_secret_previous,
        broken_policy: args.broken_policy,
        health_cache_ttl_s: args.health_cache_ttl_s,
        health_interval_s: args.health_interval_s,
        alert_slack_urls: args.alert_slack_urls,
        alert_webhook_urls: args.alert_webhook_urls,
        orphan_scan: args.orphan_scan == "on",
    })?;
    serve::run(config)
}
