//! `calsaga serve`: wires one process together. It loads the catalogue,
//! opens the database (one process per file), connects to Cal.com (or starts
//! the embedded mock on a loopback port), resumes every unfinished saga and
//! then serves HTTP until SIGINT or SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::calcom::{CalcomApi, Client, ClientConfig, HttpPoster};
use crate::catalog::Catalog;
use crate::clock::{Clock, SystemClock};
use crate::config::{CalcomTarget, HealthSettings, ServeConfig};
use crate::health::alerts::Alerts;
use crate::health::{CallRecorder, Check, Health, HealthConfig, Sources, Status};
use crate::http::{App, FIRST_ADMIN_TOKEN_NAME, HttpConfig, HttpServer, first_admin_token};
use crate::metrics::Metrics;
use crate::mock::{Fixture, Mock, MockConfig, MockServer};
use crate::runtime::{Engine, StartScan};
use crate::store::{Holder, Store, StoreConfig};

/// Requests handled at once: they mostly wait on the engine (a long-poll up
/// to 30 s), not the CPU, and idle connections take none.
const HTTP_WORKERS: usize = 16;

/// How often recorded Cal.com calls are written to the database.
const CALL_STATS_FLUSH: std::time::Duration = std::time::Duration::from_secs(5);
/// How long start-up waits for the orphan scan before serving anyway (the
/// scan then finishes in the background).
const ORPHAN_SCAN_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

pub type ServeResult = Result<(), Box<dyn std::error::Error>>;

pub fn run(config: ServeConfig) -> ServeResult {
    raise_open_files_limit();
    let catalog = Arc::new(Catalog::load_dir(&config.workflows)?);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // Before the database: the guard keeps the embedded mock alive for as
    // long as we serve.
    let (mut client_config, mock) = calcom(&config.calcom, &clock)?;
    // The port too: a busy port (or a bad fixture) leaves no new files
    // and uses up no once-only token.
    let bound = HttpServer::bind(HttpConfig {
        workers: HTTP_WORKERS,
        ..HttpConfig::new(config.bind)
    })?;
    let store = Store::open(&config.db, StoreConfig::default())?;
    // One set of figures for /metrics, fed by the store, the Cal.com client
    // and the HTTP server.
    let metrics = Arc::new(Metrics::default());
    store.observe_commits(metrics.clone());
    client_config.request_timeout = config.calcom_timeout;
    let calcom_url = client_config.base_url.clone();
    let mock_api_key = mock.as_ref().and(client_config.api_key.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("calsaga-engine")
        .build()?;
    let recorder = Arc::new(CallRecorder::new(store.clone(), clock.clone()));
    // One client (and one outbound rate limit) for the engine, availability
    // searches and the health checks; every call it makes is recorded.
    let calcom: Arc<Client> = {
        let _guard = runtime.enter();
        Arc::new(
            Client::http(client_config, clock.clone())?
                .with_observer(recorder.clone())
                .with_observer(metrics.clone()),
        )
    };
    let client: Arc<dyn CalcomApi> = calcom.clone();
    let health = health(&store, calcom, &catalog, &clock, &config.health)?;
    let engine = Engine::new(
        store,
        Arc::clone(&client),
        clock.clone(),
        catalog,
        config.engine.clone(),
    );
    let report = runtime.block_on(async { engine.start() })?;
    // Orphans from a restored database are cancelled before new requests
    // come in, so nobody books into a slot an orphan still blocks.
    if runtime.block_on(engine.start_scan_settled(ORPHAN_SCAN_WAIT)) == StartScan::Running {
        tracing::warn!(
            wait_s = ORPHAN_SCAN_WAIT.as_secs(),
            "the orphan scan is still running; serving anyway, it finishes in the background"
        );
    }
    // The port is ours by now, so this start will serve the token it shows.
    if let Some(token) = first_admin_token(engine.store(), clock.now())? {
        println!(
            "calsaga serve: created the admin token {FIRST_ADMIN_TOKEN_NAME:?}; it is shown only this once, store it now: {token}"
        );
    }
    let app = App::new(
        engine.clone(),
        runtime.handle().clone(),
        clock.clone(),
        &config.http,
    )?
    .with_metrics(metrics)
    .with_health(health.clone());
    let (stop_tasks, stopped) = tokio::sync::watch::channel(false);
    let recording = {
        let (recorder, stopped) = (recorder.clone(), stopped.clone());
        runtime.spawn(async move { recorder.run(CALL_STATS_FLUSH, stopped).await })
    };
    let token_uses = {
        let (auth, stopped) = (app.auth(), stopped.clone());
        runtime.spawn(async move { auth.record_uses(stopped).await })
    };
    if let Some(interval) = config.health.interval {
        let health = health.clone();
        runtime.spawn(async move { health.run_every(interval, stopped).await });
    }
    let server = bound.serve(app)?;
    announce(server.addr(), &config, &calcom_url, report.resumed)?;
    let holder = Holder {
        http: format!("http://{}", server.addr()),
        calcom_url: calcom_url.clone(),
        mock_api_key,
    };
    if let Err(e) = engine.store().announce(&holder) {
        tracing::warn!(error = %e, "could not say in the lock file where serve runs; `calsaga health` will not find the embedded mock by itself");
    }
    {
        let (health, calcom_url) = (health.clone(), calcom_url.clone());
        runtime.spawn(async move { first_contact(&health, &calcom_url).await });
    }
    runtime.block_on(shutdown_signal());
    tracing::info!(
        "shutting down: no new requests; running steps finish or resume on the next start"
    );
    engine.shutdown();
    server.shutdown();
    // The recorder and the token uses flush once more when told to stop.
    let _ = stop_tasks.send(true);
    let _ = runtime.block_on(recording);
    let _ = runtime.block_on(token_uses);
    Ok(())
}

/// The health checks over the engine's store, client and catalogue, with
/// alerts to the configured URLs.
fn health(
    store: &Store,
    calcom: Arc<Client>,
    catalog: &Arc<Catalog>,
    clock: &Arc<dyn Clock>,
    settings: &HealthSettings,
) -> Result<Health, Box<dyn std::error::Error>> {
    let poster = HttpPoster::new(ClientConfig::default().http_limits())?;
    let alerts = Alerts::new(settings.alerts.clone(), Arc::new(poster), clock.clone());
    let config = HealthConfig {
        cache_ttl: settings.cache_ttl,
        ..HealthConfig::default()
    };
    let sources = Sources {
        store: store.clone(),
        calcom: Some(calcom),
        catalog: catalog.clone(),
        clock: clock.clone(),
    };
    Ok(Health::new(sources, config, Some(alerts)))
}

/// The client settings for the configured Cal.com, starting the embedded
/// mock first when there is no real one.
fn calcom(
    target: &CalcomTarget,
    clock: &Arc<dyn Clock>,
) -> Result<(ClientConfig, Option<MockServer>), Box<dyn std::error::Error>> {
    match target {
        CalcomTarget::Remote {
            base_url,
            api_key,
            requests_per_minute_max,
        } => Ok((
            ClientConfig {
                base_url: base_url.clone(),
                api_key: Some(api_key.clone()),
                requests_per_minute_max: *requests_per_minute_max,
                ..ClientConfig::default()
            },
            None,
        )),
        CalcomTarget::Embedded {
            fixture,
            port,
            scenario,
            state_file,
        } => {
            let fixture = Fixture::load(fixture)?;
            let api_key = fixture.api_keys.first().map(|k| k.key.clone());
            // The embedded mock's request budget is known exactly: keep under it.
            let requests_per_minute_max = fixture.rate_limit_per_minute;
            let mock_config = MockConfig {
                scenario: scenario.as_deref().unwrap_or("healthy").parse()?,
                state_file: state_file.clone(),
                poster: Some(Arc::new(HttpPoster::new(
                    ClientConfig::default().http_limits(),
                )?)),
                ..MockConfig::default()
            };
            let mock = Arc::new(Mock::new(fixture, clock.clone(), mock_config)?);
            let server = MockServer::start(mock, SocketAddr::from(([127, 0, 0, 1], *port)))?;
            let config = ClientConfig {
                base_url: server.url(),
                api_key,
                requests_per_minute_max,
                ..ClientConfig::default()
            };
            Ok((config, Some(server)))
        }
    }
}

fn announce(
    addr: SocketAddr,
    config: &ServeConfig,
    calcom_url: &str,
    resumed: usize,
) -> std::io::Result<()> {
    let calcom = match config.calcom {
        CalcomTarget::Embedded { .. } => format!("embedded Cal.com mock at {calcom_url}"),
        CalcomTarget::Remote { .. } => format!("Cal.com at {calcom_url}"),
    };
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "calsaga serve: listening on http://{addr} (database {}, {calcom}); resumed {resumed} unfinished sagas",
        config.db.display()
    )?;
    out.flush()
}

/// Says on the first screen when Cal.com does not answer, rather than
/// leaving it to the first booking to fail.
async fn first_contact(health: &Health, calcom_url: &str) {
    let report = health.cached().await;
    let Some(c) = report.check(Check::Connectivity) else {
        return;
    };
    if c.status == Status::Critical {
        println!(
            "calsaga serve: Cal.com at {calcom_url} is not reachable: {}; bookings fail until it answers; `calsaga health` shows every check",
            c.message
        );
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler installs");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Lifts this process's open-files soft limit to its hard limit: every
/// connection, idle ones too, holds a descriptor, and many systems start a
/// process at 1,024. Returns the limit now in force.
pub fn raise_open_files_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, getrlimit, setrlimit};
        // "Unlimited" is not a value the kernel takes for descriptors.
        const UNLIMITED_AS: u64 = 65_536;
        let limit = getrlimit(Resource::Nofile);
        let wanted = limit.maximum.unwrap_or(UNLIMITED_AS);
        if limit.current >= Some(wanted) {
            return limit.current;
        }
        let raised = rustix::process::Rlimit {
            current: Some(wanted),
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => Some(wanted),
            Err(_) => limit.current,
        }
    }
    #[cfg(not(unix))]
    None
}
