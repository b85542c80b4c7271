//! The Cal.com connection of the admin commands (`catalog sync`,
//! `webhooks ...`): the target checked as `serve` checks it, a `Client`
//! with the same limits, and a small runtime to drive it from the CLI.
//! It never falls back to the embedded mock: an admin command changes a
//! real account, so the key must be given. The commands themselves:
//! `catalog_sync` (the catalogue's event types against Cal.com's) and
//! `subscriptions` (calsaga's webhook subscription).

pub mod catalog_sync;
pub mod subscriptions;

use std::future::Future;

use crate::calcom::{CalcomError, Client, ClientConfig, HttpSetupError};
use crate::clock::SystemClock;
use crate::config::{CalcomTarget, ConfigError, remote_calcom};

/// Cal.com's own limit per API key; admin commands send a handful of calls.
const REQUESTS_PER_MINUTE: u32 = 120;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(
        "no Cal.com API key: pass --calcom-api-key or set CALCOM_API_KEY (and --calcom-url / CALCOM_API_URL for a Cal.com other than https://api.cal.com)"
    )]
    NoApiKey,
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Setup(#[from] HttpSetupError),
    #[error("cannot start the async runtime: {0}; raise this process's thread limit")]
    Runtime(String),
    #[error("{doing}: {source}")]
    Calcom {
        doing: String,
        #[source]
        source: CalcomError,
    },
}

/// Wraps a failed call with what the command was doing.
pub fn failed(doing: impl Into<String>) -> impl FnOnce(CalcomError) -> AdminError {
    let doing = doing.into();
    move |source| AdminError::Calcom { doing, source }
}

/// A Cal.com client and the runtime its calls run on.
pub struct AdminCalcom {
    runtime: tokio::runtime::Runtime,
    client: Client,
}

/// The client settings for a real Cal.com at `calcom_url` (default
/// https://api.cal.com) with `api_key`: a missing key is refused with what
/// to pass.
pub fn client_config(
    api_key: Option<&str>,
    calcom_url: Option<&str>,
    requests_per_minute: u32,
) -> Result<ClientConfig, AdminError> {
    let api_key = api_key
        .filter(|k| !k.is_empty())
        .ok_or(AdminError::NoApiKey)?;
    let CalcomTarget::Remote {
        base_url,
        api_key,
        requests_per_minute_max,
    } = remote_calcom(api_key, calcom_url, requests_per_minute)?
    else {
        // remote_calcom never answers the embedded mock; treat it as
        // what it would mean: no real Cal.com to talk to.
        return Err(AdminError::NoApiKey);
    };
    Ok(ClientConfig {
        base_url,
        api_key: Some(api_key),
        requests_per_minute_max,
        ..ClientConfig::default()
    })
}

impl AdminCalcom {
    /// Connects to Cal.com at `calcom_url` (default https://api.cal.com)
    /// with `api_key`; nothing is sent yet.
    pub fn connect(
        api_key: Option<&str>,
        calcom_url: Option<&str>,
    ) -> Result<AdminCalcom, AdminError> {
        let config = client_config(api_key, calcom_url, REQUESTS_PER_MINUTE)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| AdminError::Runtime(e.to_string()))?;
        let client = {
            let _guard = runtime.enter();
            Client::http(config, std::sync::Arc::new(SystemClock))?
        };
        Ok(AdminCalcom { runtime, client })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Runs `work` (calls on `client()`) to completion.
    pub fn block_on<F: Future>(&self, work: F) -> F::Output {
        self.runtime.block_on(work)
    }
}
