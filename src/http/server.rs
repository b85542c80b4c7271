//! The socket side of calsaga's HTTP API. One accept thread hands each
//! connection to a bounded queue; a fixed pool of worker threads serves
//! connections from it (keep-alive, but a connection is closed after its
//! answer while others wait, so a few idle clients cannot starve the rest).
//! A full queue is answered 503 at once. Every read has a total deadline and
//! every write a timeout. Per request: route, admit (auth + rate limit),
//! refuse an oversized body from its Content-Length before reading it (413),
//! check the content type (415), read the body, run the handler (a panic
//! becomes a 500), answer with an `X-Request-Id` and log one access line.
//! It never interprets a body; handlers do.

use std::collections::HashMap;
use std::io::{BufReader, Read};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::json;

use super::reply::{ApiError, Reply};
use super::router::{self, BodyRule, Call, Found, Route};
use super::{App, HttpConfig, HttpError};
use crate::httpwire::{self, Deadline, Head, WireError};

/// Requests served on one connection before it is closed (spreads load).
const REQUESTS_PER_CONNECTION_MAX: usize = 1_000;
/// Pause after a failed accept (e.g. out of descriptors) so the loop cannot spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(10);
/// How long, and how much, a refused body is drained before closing.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES_MAX: usize = 8 * 1024 * 1024;
/// A client-sent `X-Request-Id` longer than this is replaced by our own.
const REQUEST_ID_CHARS_MAX: usize = 64;

pub(super) struct Running {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
}

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    /// Connections accepted and not yet picked up by a worker.
    waiting: AtomicUsize,
    next_connection: AtomicU64,
    /// Open connections, so shutdown can close idle keep-alives at once.
    open: Mutex<HashMap<u64, TcpStream>>,
}

impl Shared {
    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<u64, TcpStream>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The listening socket for `config` and its address.
pub(super) fn bind(config: &HttpConfig) -> Result<(TcpListener, SocketAddr), HttpError> {
    let bind_error = |e: std::io::Error| HttpError::Bind {
        addr: config.bind,
        reason: e.to_string(),
    };
    let listener = listen(config.bind, config.queue_max).map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    Ok((listener, addr))
}

pub(super) fn start(
    config: &HttpConfig,
    (listener, addr): (TcpListener, SocketAddr),
    app: App,
) -> Result<Running, HttpError> {
    let shared = Arc::new(Shared::default());
    let (tx, rx) = sync_channel::<TcpStream>(config.queue_max.max(1));
    let rx = Arc::new(Mutex::new(rx));
    let workers = (0..config.workers.max(1))
        .map(|i| {
            let (rx, shared, app, config) = (
                Arc::clone(&rx),
                Arc::clone(&shared),
                app.clone(),
                config.clone(),
            );
            std::thread::Builder::new()
                .name(format!("calsaga-http-{i}"))
                .spawn(move || work(&rx, &shared, &app, &config))
                .map_err(|e| HttpError::Thread(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let accept_shared = Arc::clone(&shared);
    let write_timeout = config.write_timeout;
    let accept = std::thread::Builder::new()
        .name("calsaga-http-accept".into())
        .spawn(move || {
            for stream in listener.incoming() {
                if accept_shared.stop.load(Ordering::SeqCst) {
                    break;
                }
                match stream {
                    Ok(stream) => {
                        accept_shared.waiting.fetch_add(1, Ordering::SeqCst);
                        match tx.try_send(stream) {
                            Ok(()) => {}
                            Err(TrySendError::Full(stream)) => {
                                accept_shared.waiting.fetch_sub(1, Ordering::SeqCst);
                                refuse_busy(stream, write_timeout);
                            }
                            Err(TrySendError::Disconnected(_)) => break,
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting a connection failed");
                        std::thread::sleep(ACCEPT_ERROR_PAUSE);
                    }
                }
            }
        })
        .map_err(|e| HttpError::Thread(e.to_string()))?;
    Ok(Running {
        addr,
        shared,
        accept: Some(accept),
        workers,
    })
}

/// A listening socket whose accept backlog matches our queue: std's fixed
/// backlog of 128 makes the kernel reset connections in a burst.
fn listen(addr: SocketAddr, backlog: usize) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(socket.into())
}

impl Running {
    /// Stops accepting, closes idle connections and waits for the workers
    /// to finish the requests they are answering.
    pub fn shutdown(mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept thread out of `accept`.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        for stream in self.shared.open().values() {
            let _ = stream.shutdown(Shutdown::Read);
        }
        for worker in self.workers {
            let _ = worker.join();
        }
    }
}

/// Answers 503 to a connection no worker can take now.
fn refuse_busy(mut stream: TcpStream, write_timeout: Duration) {
    tracing::warn!("every HTTP worker is busy and the connection queue is full; answering 503");
    let _ = stream.set_write_timeout(Some(write_timeout));
    let reply: Reply = ApiError::unavailable(
        "calsaga is answering as many connections as it can; retry in a second",
    )
    .with_header("Retry-After", "1")
    .into();
    let _ = httpwire::write_response(
        &mut stream,
        reply.status,
        &reply.headers,
        &reply.body,
        false,
    );
}

fn work(rx: &Mutex<Receiver<TcpStream>>, shared: &Shared, app: &App, config: &HttpConfig) {
    loop {
        let next = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(stream) = next else { return };
        shared.waiting.fetch_sub(1, Ordering::SeqCst);
        if shared.stop.load(Ordering::SeqCst) {
            continue;
        }
        let id = shared.next_connection.fetch_add(1, Ordering::Relaxed);
        if let Ok(clone) = stream.try_clone() {
            shared.open().insert(id, clone);
        }
        serve_connection(stream, shared, app, config);
        shared.open().remove(&id);
    }
}

fn serve_connection(stream: TcpStream, shared: &Shared, app: &App, config: &HttpConfig) {
    let peer = stream
        .peer_addr()
        .map(|a| a.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let _ = stream.set_nodelay(true);
    if stream
        .set_write_timeout(Some(config.write_timeout))
        .is_err()
    {
        return;
    }
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(Deadline::new(stream));
    for served in 0..REQUESTS_PER_CONNECTION_MAX {
        let budget = if served == 0 {
            config.read_timeout
        } else {
            config.idle_timeout
        };
        reader.get_mut().reset(budget);
        let head = match httpwire::read_head(&mut reader) {
            Ok(head) => head,
            Err(WireError::Closed | WireError::Io) => return,
            Err(e) => {
                let reply: Reply = framing_error(&e).into();
                let written = httpwire::write_response(
                    &mut writer,
                    reply.status,
                    &reply.headers,
                    &reply.body,
                    false,
                );
                if written.is_ok() {
                    linger(&writer, &mut reader);
                }
                return;
            }
        };
        let started = Instant::now();
        reader.get_mut().reset(config.read_timeout);
        let request_id = request_id(&head);
        let exchange = exchange(app, &head, peer, &request_id, &mut reader, &mut writer);
        let keep_alive = head.keep_alive()
            && exchange.body_consumed
            && !shared.stop.load(Ordering::SeqCst)
            && shared.waiting.load(Ordering::SeqCst) == 0
            && served + 1 < REQUESTS_PER_CONNECTION_MAX;
        let route = exchange.route.map(|r| (r.method, r.pattern));
        let mut reply = exchange.reply;
        reply.headers.push(("X-Request-Id", request_id.clone()));
        let written = httpwire::write_response(
            &mut writer,
            reply.status,
            &reply.headers,
            &reply.body,
            keep_alive,
        );
        app.metrics
            .observe_request(route, reply.status, started.elapsed());
        tracing::info!(
            target: "calsaga::access",
            id = %request_id,
            peer = %peer,
            method = %head.method,
            path = %head.target.split('?').next().unwrap_or_default(),
            status = reply.status,
            ms = started.elapsed().as_millis() as u64,
            who = exchange.who.as_deref().unwrap_or("-"),
            "request"
        );
        if written.is_ok() && !exchange.body_consumed {
            linger(&writer, &mut reader);
        }
        if written.is_err() || !keep_alive {
            return;
        }
    }
}

/// After refusing a request whose body was not read (413, 401...): stop
/// sending, then read and drop what the client still sends for a moment,
/// so closing does not reset the connection before the client has read
/// the answer.
fn linger(writer: &TcpStream, reader: &mut BufReader<Deadline>) {
    let _ = writer.shutdown(Shutdown::Write);
    reader.get_mut().reset(LINGER);
    let mut sink = [0u8; 16 * 1024];
    let mut left = LINGER_BYTES_MAX;
    while left > 0 {
        match reader.read(&mut sink) {
            Ok(0) | Err(_) => return,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}

fn framing_error(e: &WireError) -> ApiError {
    match e {
        WireError::HeadTooLarge => ApiError::new(
            431,
            "headers_too_large",
            format!(
                "the request line and headers exceed {} bytes or {} headers; send fewer or shorter headers",
                httpwire::HEAD_BYTES_MAX,
                httpwire::HEADERS_MAX
            ),
        ),
        WireError::LengthRequired => ApiError::new(
            411,
            "length_required",
            "chunked bodies are not accepted; send the body with a Content-Length",
        ),
        WireError::Malformed(what) => {
            ApiError::bad_request(format!("the request is not valid HTTP/1.1: {what}"))
        }
        WireError::Closed | WireError::Io => ApiError::new(
            408,
            "timeout",
            "the request was not received in time; send it again",
        ),
    }
}

/// The client's `X-Request-Id` when it is short and plain, else a new one.
fn request_id(head: &Head) -> String {
    head.header("x-request-id")
        .filter(|id| {
            (1..=REQUEST_ID_CHARS_MAX).contains(&id.len())
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())
}

/// The answer to one request and what the connection can do next.
struct Exchange {
    reply: Reply,
    /// The matched route (metrics label it by pattern), if any.
    route: Option<&'static Route>,
    /// The token's name, for the access log (never the token).
    who: Option<String>,
    /// False when the body was not read: the connection must close.
    body_consumed: bool,
}

fn exchange<R: std::io::Read, W: std::io::Write>(
    app: &App,
    head: &Head,
    peer: IpAddr,
    request_id: &str,
    reader: &mut R,
    writer: &mut W,
) -> Exchange {
    let declared = head.content_length();
    let no_body = matches!(declared, Ok(0));
    let refuse = |e: ApiError, who: Option<String>, route: Option<&'static Route>| Exchange {
        reply: e.into(),
        route,
        who,
        body_consumed: no_body,
    };
    let (path, query) = head.target.split_once('?').unwrap_or((&head.target, ""));
    let (route, params) = match router::find(&head.method, path) {
        Found::Route(route, params) => (route, params),
        Found::WrongMethod(allowed) => {
            let e = ApiError::new(
                405,
                "method_not_allowed",
                format!(
                    "{} is not allowed on {path}; use {}",
                    head.method,
                    allowed.join(" or ")
                ),
            )
            .with_header("Allow", allowed.join(", "));
            return refuse(e, None, None);
        }
        Found::Unknown => {
            let e = ApiError::not_found(format!(
                "there is no route {path}; see GET /api/v2/openapi.json for the API"
            ));
            return refuse(e, None, None);
        }
    };
    let principal = match super::admit(app, route, head, peer) {
        Ok(p) => p,
        Err(e) => return refuse(e, None, Some(route)),
    };
    let who = principal.as_ref().map(|p| p.name.clone());
    if let Err(e) = super::authorize(route, principal.as_ref()) {
        return refuse(e, who, Some(route));
    }
    let length = match declared {
        Ok(n) => n,
        Err(e) => return refuse(framing_error(&e), who, Some(route)),
    };
    if let Err(e) = check_body(route, head, length) {
        return refuse(e, who, Some(route));
    }
    let body = match httpwire::read_body(reader, writer, head, length) {
        Ok(body) => body,
        Err(e) => {
            return Exchange {
                reply: framing_error(&e).into(),
                route: Some(route),
                who,
                body_consumed: false,
            };
        }
    };
    let call = Call {
        head,
        path,
        query,
        params,
        body,
        peer,
        request_id,
    };
    let reply = std::panic::catch_unwind(AssertUnwindSafe(|| (route.handler)(app, &call)))
        .unwrap_or_else(|_| {
            tracing::error!(id = %request_id, route = route.pattern, "handler panicked");
            Err(ApiError::internal(format!(
                "calsaga failed answering this request (request id {request_id}); nothing may have been stored, retry with the same Idempotency-Key"
            )))
        })
        .unwrap_or_else(Reply::from);
    Exchange {
        reply,
        route: Some(route),
        who,
        body_consumed: true,
    }
}

/// Size (from Content-Length, before reading) and content type.
fn check_body(route: &Route, head: &Head, length: usize) -> Result<(), ApiError> {
    let bytes_max = route.body.bytes_max();
    if length > bytes_max {
        return Err(ApiError::new(
            413,
            "body_too_large",
            if bytes_max == 0 {
                format!(
                    "{} {} takes no body; send none",
                    route.method, route.pattern
                )
            } else {
                format!(
                    "the body is {length} bytes; this route takes at most {bytes_max}; send less"
                )
            },
        )
        .details(json!({ "bytes": length, "bytes_max": bytes_max })));
    }
    if length > 0 && matches!(route.body, BodyRule::Json { .. }) && !is_json(head) {
        return Err(ApiError::new(
            415,
            "unsupported_media_type",
            format!(
                "the body is {:?}; send it as Content-Type: application/json",
                head.header("content-type").unwrap_or("untyped")
            ),
        ));
    }
    Ok(())
}

fn is_json(head: &Head) -> bool {
    head.header("content-type").is_some_and(|t| {
        t.split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
    })
}
