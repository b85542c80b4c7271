//! calsaga's own HTTP API: the booking API for front ends, the admin API
//! and Cal.com's webhook receiver. It validates, authenticates, rate-limits
//! and hands work to the engine, which appends to the log; it never calls
//! Cal.com itself (I8) and answers 2xx only after a commit (I5).
//!
//! Files: `server.rs` sockets, workers, limits and the access log (its
//! HTTP/1.1 framing is the crate's shared `httpwire`); `router.rs` the
//! route table; `reply.rs` responses and the one error writer; `input.rs`
//! body and query parsing; `calls.rs` engine calls and their errors; `view.rs` the booking shape;
//! `outcome.rs` idempotency keys and the answers of saga-starting requests;
//! `auth.rs` tokens; `ratelimit.rs` quotas; then one file per area
//! (`bookings`, `batch`, `holds`, `availability`, `admin`, `health`,
//! `webhooks`, which stores deliveries for the inbox worker in
//! `runtime::inbox`); `admin_page` serves the `/admin` page.

mod admin;
mod admin_page;
mod auth;
mod availability;
mod batch;
mod bookings;
mod call;
mod calls;
mod health;
mod holds;
mod input;
pub use input::time_zone;
mod metrics;
mod outcome;
mod ratelimit;
mod reply;
mod router;
mod server;
mod view;
mod webhooks;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::availability::Availability;
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::runtime::Engine;
use crate::runtime::inbox::{self, Inbox};

use crate::httpwire::Head;
pub use crate::runtime::BrokenPolicy;
pub use auth::{
    Auth, AuthError, FIRST_ADMIN_NAME as FIRST_ADMIN_TOKEN_NAME, Principal, Scope, create_token,
    first_admin_token, new_token,
};
pub use ratelimit::Quota;
use ratelimit::{Caller, RateLimiter};
use reply::ApiError;
use router::{Access, Route};
pub use webhooks::CREATED_AT_WINDOW;

/// What the handlers work with; cheap to clone.
#[derive(Clone)]
pub struct App {
    pub engine: Engine,
    /// The engine's runtime: handlers run on plain threads and `block_on` it.
    pub runtime: tokio::runtime::Handle,
    pub clock: Arc<dyn Clock>,
    auth: Arc<Auth>,
    limiter: Arc<RateLimiter>,
    settings: Arc<HttpSettings>,
    availability: Arc<Availability>,
    /// Wakes the inbox task when a webhook was stored.
    inbox: Arc<tokio::sync::Notify>,
    /// Request figures for `GET /metrics`.
    metrics: Arc<Metrics>,
    /// The Cal.com health checks (`with_health`); None: their routes say 503.
    health: Option<crate::health::Health>,
}

/// What `serve` configures beyond sockets.
#[derive(Debug, Clone, Default)]
pub struct HttpSettings {
    /// Requests per caller (token, or IP address without one).
    pub rate: Quota,
    /// Secrets a Cal.com webhook may be signed with: the current one and,
    /// during a rotation, the previous one. None: every webhook is refused.
    pub webhook_secrets: Vec<String>,
    /// What a segment cancelled in Cal.com does to the rest of its booking.
    pub broken_policy: BrokenPolicy,
}

impl App {
    /// Loads the API tokens from the engine's store.
    pub fn new(
        engine: Engine,
        runtime: tokio::runtime::Handle,
        clock: Arc<dyn Clock>,
        settings: &HttpSettings,
    ) -> Result<App, AuthError> {
        let auth = Auth::load(engine.store(), clock.clone())?;
        if settings.webhook_secrets.is_empty() {
            tracing::warn!(
                "no webhook secret: POST /webhooks/calcom refuses every delivery; set --webhook-secret to receive Cal.com's changes"
            );
        }
        let availability = Arc::clone(engine.availability());
        Ok(App {
            availability,
            engine,
            runtime,
            clock,
            auth,
            limiter: Arc::new(RateLimiter::new(settings.rate)),
            settings: Arc::new(settings.clone()),
            inbox: Arc::new(tokio::sync::Notify::new()),
            metrics: Arc::new(Metrics::default()),
            health: None,
        })
    }

    /// The tokens it accepts, for `serve` to keep current (`Auth::maintain`).
    pub fn auth(&self) -> Arc<Auth> {
        Arc::clone(&self.auth)
    }

    /// Records requests in `metrics`, the same figures the Cal.com client
    /// and the store report to (`serve` shares one); without it the app
    /// keeps its own, which sees HTTP requests only.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> App {
        self.metrics = metrics;
        self
    }

    /// Serves the Cal.com health routes from `health`.
    pub fn with_health(mut self, health: crate::health::Health) -> App {
        self.health = Some(health);
        self
    }

    /// Counts one request against `caller`'s quota (429 when spent).
    fn limit(&self, caller: Caller) -> Result<(), ApiError> {
        self.limiter
            .check(caller.clone(), std::time::Instant::now())
            .map_err(|limited| {
                let quota = self.limiter.quota();
                let retry_s = limited.retry_after.as_secs_f64().ceil().max(1.0) as u64;
                let whom = match caller {
                    Caller::Token(name) => format!("token {name:?}"),
                    Caller::Address(ip) | Caller::Webhook(ip) => format!("address {ip}"),
                };
                ApiError::new(
                    429,
                    "rate_limited",
                    format!(
                        "too many requests from {whom}: the limit is {} per minute in bursts of up to {}; retry after {retry_s} s",
                        quota.per_min, quota.burst
                    ),
                )
                .details(serde_json::json!({ "retryAfterSeconds": retry_s }))
                .with_header("Retry-After", retry_s.to_string())
            })
    }
}

/// Socket-level limits of the server. Every wait has a bound.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub bind: SocketAddr,
    /// Requests handled at once (each on a blocking thread while its
    /// handler waits on the engine); a request waits up to 5 s for one.
    /// Open connections do not count: they cost a task each.
    pub workers: usize,
    /// The kernel's accept backlog.
    pub queue_max: usize,
    /// Time to receive one request head (or, on a kept-alive connection,
    /// the next one), and again its body.
    pub read_timeout: Duration,
    /// How long a write may wait for the client to read.
    pub write_timeout: Duration,
}

impl HttpConfig {
    pub fn new(bind: SocketAddr) -> HttpConfig {
        HttpConfig {
            bind,
            workers: 16,
            queue_max: 1024,
            read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot listen on {addr}: {reason}; pick another address with --bind")]
    Bind { addr: SocketAddr, reason: String },
}

/// The running server and its webhook inbox task.
pub struct HttpServer {
    running: server::Running,
    runtime: tokio::runtime::Handle,
    stop_inbox: tokio::sync::watch::Sender<bool>,
    inbox: tokio::task::JoinHandle<()>,
}

/// A port taken but not yet served: connections wait in its backlog.
pub struct Bound {
    config: HttpConfig,
    socket: (std::net::TcpListener, SocketAddr),
}

impl Bound {
    pub fn addr(&self) -> SocketAddr {
        self.socket.1
    }

    pub fn serve(self, app: App) -> Result<HttpServer, HttpError> {
        let (stop_inbox, stopped) = tokio::sync::watch::channel(false);
        let runtime = app.runtime.clone();
        let worker = Inbox::new(
            app.engine.clone(),
            app.clock.clone(),
            app.settings.broken_policy,
            Arc::clone(&app.inbox),
        );
        let inbox = runtime.spawn(inbox::run(worker, stopped));
        let running =
            server::start(&self.config, self.socket, app).inspect_err(|_| inbox.abort())?;
        Ok(HttpServer {
            running,
            runtime,
            stop_inbox,
            inbox,
        })
    }
}

impl HttpServer {
    /// Takes the port first, so a start that cannot listen stops before it
    /// changes anything.
    pub fn bind(config: HttpConfig) -> Result<Bound, HttpError> {
        let socket = server::bind(&config)?;
        Ok(Bound { config, socket })
    }

    pub fn start(config: HttpConfig, app: App) -> Result<HttpServer, HttpError> {
        HttpServer::bind(config)?.serve(app)
    }

    pub fn addr(&self) -> SocketAddr {
        self.running.addr
    }

    /// Stops accepting requests, waits for the workers to finish theirs,
    /// then stops the inbox task after its current entry.
    pub fn shutdown(self) {
        self.running.shutdown();
        let _ = self.stop_inbox.send(true);
        let _ = self.runtime.block_on(self.inbox);
    }
}

/// Who may go on: authentication and rate limiting of one request, from
/// its head alone (before any body is read). Authenticated requests count
/// against their token, others against their address.
fn admit(
    app: &App,
    route: &Route,
    head: &Head,
    peer: IpAddr,
) -> Result<Option<Principal>, ApiError> {
    match route.access {
        Access::Public => return app.limit(Caller::Address(peer)).map(|()| None),
        Access::Signed => return app.limit(Caller::Webhook(peer)).map(|()| None),
        Access::Booking | Access::Admin => {}
    }
    let who = match app.auth.authenticate(head.header("authorization")) {
        Ok(who) => who,
        Err(refusal) => {
            // Failed attempts count against the address, so guessing is slow.
            app.limit(Caller::Address(peer))?;
            tracing::info!(peer = %peer, reason = refusal.as_str(), "request not authenticated");
            return Err(ApiError::unauthorized(
                "send a valid token as Authorization: Bearer <token>; create one with `calsaga token create`",
            ));
        }
    };
    app.limit(Caller::Token(who.name.clone()))?;
    Ok(Some(who))
}

/// Whether the caller's scope allows the route (403 if not).
fn authorize(route: &Route, who: Option<&Principal>) -> Result<(), ApiError> {
    match who {
        Some(who) if route.access == Access::Admin && who.scope != Scope::Admin => {
            Err(ApiError::new(
                403,
                "forbidden",
                format!(
                    "token {:?} has the {} scope; {} {} needs an admin token",
                    who.name,
                    who.scope.as_str(),
                    route.method,
                    route.pattern
                ),
            ))
        }
        _ => Ok(()),
    }
}
