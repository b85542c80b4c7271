//! The socket side of calsaga's HTTP API: hyper's HTTP/1.1 on the engine's
//! tokio runtime. Every connection is a task, so idle or trickling clients
//! cost a little memory, never a worker: only a request whose head (and
//! then body) has fully arrived takes one of `workers` handler slots, on a
//! blocking thread, since handlers wait on the engine. hyper owns the
//! framing (conflicting or duplicate Content-Length, Content-Length with
//! Transfer-Encoding, obs-fold and bare CR are refused with 400, pipelined
//! requests are answered in order); this file adds calsaga's own limits and
//! answers. Per request: head limits (431), route, admit (auth + rate
//! limit), authorise, refuse an oversized body from its Content-Length
//! before reading it (413) or a chunked one (411), check the content type
//! (415), read the body within the read timeout, run the handler (a panic
//! becomes a 500), answer with an `X-Request-Id` and log one access line.
//! It never interprets a body; handlers do.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Semaphore, watch};

use super::call::Call;
use super::reply::{ApiError, Reply};
use super::router::{self, BodyRule, Found, Route};
use super::{App, HttpConfig, HttpError};
use crate::httpwire::{self, Head, WireError};

/// Open connections at most; one more is answered 503 and closed. Far
/// above any front end's need, and below a file-descriptor limit.
const CONNECTIONS_MAX: usize = 10_000;
/// hyper's read buffer: heads up to here are parsed so our own limit
/// (`httpwire::HEAD_BYTES_MAX`) can answer with a reason.
const HEAD_BUFFER_BYTES: usize = 64 * 1024;
const HYPER_HEADERS_MAX: usize = 2 * httpwire::HEADERS_MAX;
/// How long a complete request waits for a free handler before a 503.
const BUSY_WAIT: Duration = Duration::from_secs(5);
/// Pause after a failed accept (e.g. out of descriptors) so the loop cannot spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(10);
/// How long a stop waits for the answers in progress (a long-poll waits 30 s).
const SHUTDOWN_WAIT: Duration = Duration::from_secs(35);
/// A client-sent `X-Request-Id` longer than this is replaced by our own.
const REQUEST_ID_CHARS_MAX: usize = 64;

pub(super) struct Running {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    accept: tokio::task::JoinHandle<()>,
    runtime: tokio::runtime::Handle,
}

struct Shared {
    app: App,
    config: HttpConfig,
    /// Requests being handled; a request waits for one before its handler runs.
    handlers: Arc<Semaphore>,
    connections: Arc<Semaphore>,
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
    let runtime = app.runtime.clone();
    let serve_error = |e: std::io::Error| HttpError::Bind {
        addr,
        reason: e.to_string(),
    };
    listener.set_nonblocking(true).map_err(serve_error)?;
    let listener = {
        let _inside = runtime.enter();
        tokio::net::TcpListener::from_std(listener).map_err(serve_error)?
    };
    let shared = Arc::new(Shared {
        app,
        config: config.clone(),
        handlers: Arc::new(Semaphore::new(config.workers.max(1))),
        connections: Arc::new(Semaphore::new(CONNECTIONS_MAX)),
    });
    let (stop, stopped) = watch::channel(false);
    let accept = runtime.spawn(accept_loop(listener, shared, stopped));
    Ok(Running {
        addr,
        stop,
        accept,
        runtime,
    })
}

impl Running {
    /// Stops accepting, closes idle connections and waits (bounded) for the
    /// answers in progress.
    pub fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.runtime.block_on(self.accept);
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => connection(&shared, &graceful, stream, peer.ip()),
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
            _ = stopped.changed() => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_WAIT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            wait_s = SHUTDOWN_WAIT.as_secs(),
            "some HTTP answers were still running at shutdown"
        );
    }
}

/// Serves one connection in a task of its own.
fn connection(
    shared: &Arc<Shared>,
    graceful: &GracefulShutdown,
    stream: tokio::net::TcpStream,
    peer: IpAddr,
) {
    let Ok(permit) = Arc::clone(&shared.connections).try_acquire_owned() else {
        tokio::spawn(refuse_busy(stream));
        return;
    };
    let _ = stream.set_nodelay(true);
    let for_requests = Arc::clone(shared);
    let service = hyper::service::service_fn(move |request| {
        let shared = Arc::clone(&for_requests);
        async move { Ok::<_, Infallible>(answer(&shared, peer, request).await) }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        // Also closes a keep-alive connection that sends nothing more.
        .header_read_timeout(shared.config.read_timeout)
        .max_buf_size(HEAD_BUFFER_BYTES)
        .max_headers(HYPER_HEADERS_MAX)
        .serve_connection(
            TokioIo::new(WriteDeadline::new(stream, shared.config.write_timeout)),
            service,
        );
    let served = graceful.watch(served);
    tokio::spawn(async move {
        let _ = served.await;
        drop(permit);
    });
}

/// A socket whose writes fail once one has waited `timeout` for the client
/// to take the bytes: a client that stops reading frees its connection.
struct WriteDeadline {
    stream: tokio::net::TcpStream,
    timeout: Duration,
    waiting: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl WriteDeadline {
    fn new(stream: tokio::net::TcpStream, timeout: Duration) -> WriteDeadline {
        WriteDeadline {
            stream,
            timeout,
            waiting: None,
        }
    }

    /// A write made no progress: pending until the deadline, then an error.
    fn stalled<T>(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<T>> {
        let timeout = self.timeout;
        let waiting = self
            .waiting
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match waiting.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client did not read the answer in time",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progressed<T>(
        &mut self,
        done: Poll<std::io::Result<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<T>> {
        match done {
            Poll::Ready(r) => {
                self.waiting = None;
                Poll::Ready(r)
            }
            Poll::Pending => self.stalled(cx),
        }
    }
}

impl AsyncRead for WriteDeadline {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for WriteDeadline {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let done = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.progressed(done, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let done = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.progressed(done, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let done = Pin::new(&mut this.stream).poll_flush(cx);
        this.progressed(done, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// Answers 503 to a connection over `CONNECTIONS_MAX`, then closes it.
async fn refuse_busy(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    tracing::warn!(
        connections_max = CONNECTIONS_MAX,
        "too many open HTTP connections; answering 503"
    );
    let reply: Reply = ApiError::unavailable(
        "calsaga is answering as many connections as it can; retry in a second",
    )
    .with_header("Retry-After", "1")
    .into();
    let mut bytes = Vec::new();
    if httpwire::write_response(&mut bytes, reply.status, &reply.headers, &reply.body, false)
        .is_ok()
    {
        let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&bytes)).await;
    }
}

/// One request, from its head to the answer and the access line.
async fn answer(
    shared: &Arc<Shared>,
    peer: IpAddr,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let head = head_of(&parts);
    let request_id = request_id(&head);
    let exchange = exchange(shared, &head, peer, &request_id, body).await;
    let route = exchange.route.map(|r| (r.method, r.pattern));
    let mut reply = exchange.reply;
    reply.headers.push(("X-Request-Id", request_id.clone()));
    if !exchange.body_consumed {
        reply.headers.push(("Connection", "close".into()));
    }
    shared
        .app
        .metrics
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
    response(reply)
}

fn head_of(parts: &hyper::http::request::Parts) -> Head {
    let target = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.to_string(), |p| p.as_str().to_string());
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    Head::new(
        parts.method.as_str().to_string(),
        target,
        headers,
        parts.version == hyper::Version::HTTP_10,
    )
}

fn response(reply: Reply) -> Response<Full<Bytes>> {
    let mut builder = Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        builder = builder.header(*name, value.as_str());
    }
    builder
        .body(Full::new(Bytes::from(reply.body)))
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "an answer could not be framed");
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
            r
        })
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

impl Exchange {
    fn refused(
        e: ApiError,
        route: Option<&'static Route>,
        who: Option<String>,
        head: &Head,
    ) -> Exchange {
        Exchange {
            reply: e.into(),
            route,
            who,
            body_consumed: matches!(head.content_length(), Ok(0)),
        }
    }
}

/// What the head allowed: the route, its parameters and the body's length.
struct Admitted {
    route: &'static Route,
    params: Vec<String>,
    who: Option<String>,
}

async fn exchange(
    shared: &Arc<Shared>,
    head: &Head,
    peer: IpAddr,
    request_id: &str,
    body: Incoming,
) -> Exchange {
    if let Err(e) = head_limits(head) {
        return Exchange::refused(framing_error(&e), None, None, head);
    }
    let Ok(Ok(_slot)) =
        tokio::time::timeout(BUSY_WAIT, Arc::clone(&shared.handlers).acquire_owned()).await
    else {
        tracing::warn!(
            workers = shared.config.workers,
            "every HTTP handler is busy; answering 503"
        );
        let busy = ApiError::unavailable(
            "calsaga is answering as many requests as it can; retry in a second",
        )
        .with_header("Retry-After", "1");
        return Exchange::refused(busy, None, None, head);
    };
    let admitted = {
        let (shared, head) = (Arc::clone(shared), head.clone());
        blocking(move || check_head(&shared.app, &head, peer)).await
    };
    let admitted = match admitted {
        Some(Ok(admitted)) => admitted,
        Some(Err(refused)) => return refused,
        None => return Exchange::refused(panicked(request_id), None, None, head),
    };
    let read = tokio::time::timeout(shared.config.read_timeout, body.collect()).await;
    let body = match read {
        Ok(Ok(collected)) => collected.to_bytes().to_vec(),
        Ok(Err(_)) | Err(_) => {
            return Exchange {
                reply: framing_error(&WireError::Io).into(),
                route: Some(admitted.route),
                who: admitted.who,
                body_consumed: false,
            };
        }
    };
    let Admitted { route, params, who } = admitted;
    let reply = {
        let (shared, head, request_id) = (Arc::clone(shared), head.clone(), request_id.to_string());
        blocking(move || {
            let (path, query) = head.target.split_once('?').unwrap_or((&head.target, ""));
            let call = Call {
                head: &head,
                path,
                query,
                params: params.iter().map(String::as_str).collect(),
                body,
                peer,
                request_id: &request_id,
            };
            (route.handler)(&shared.app, &call).unwrap_or_else(Reply::from)
        })
        .await
    };
    Exchange {
        reply: reply.unwrap_or_else(|| {
            tracing::error!(id = %request_id, route = route.pattern, "handler panicked");
            panicked(request_id).into()
        }),
        route: Some(route),
        who,
        body_consumed: true,
    }
}

/// `work` on a blocking thread (handlers wait on the engine); None if it
/// panicked.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(move || std::panic::catch_unwind(AssertUnwindSafe(work)).ok())
        .await
        .ok()
        .flatten()
}

fn panicked(request_id: &str) -> ApiError {
    ApiError::internal(format!(
        "calsaga failed answering this request (request id {request_id}); nothing may have been stored, retry with the same Idempotency-Key"
    ))
}

/// Our own limits on a head hyper has parsed, so a refusal says why.
/// hyper refuses conflicting Content-Length values, and drops a
/// Content-Length sent beside a Transfer-Encoding; calsaga takes no
/// transfer-coded body at all, so any Transfer-Encoding is refused here,
/// before routing, with the connection closed and the body unread (RFC
/// 9112, 6.1): nothing is left for a proxy in front to read another way.
fn head_limits(head: &Head) -> Result<(), WireError> {
    head.content_length()?;
    let bytes = head.method.len()
        + head.target.len()
        + head
            .headers
            .iter()
            .map(|(k, v)| k.len() + v.len() + 4)
            .sum::<usize>();
    if bytes > httpwire::HEAD_BYTES_MAX || head.headers.len() > httpwire::HEADERS_MAX {
        return Err(WireError::HeadTooLarge);
    }
    Ok(())
}

/// Route, admission and authorisation from the head alone, then the body's
/// declared size and type, before a byte of the body is read.
fn check_head(app: &App, head: &Head, peer: IpAddr) -> Result<Admitted, Exchange> {
    let refuse = |e: ApiError, route, who| Exchange::refused(e, route, who, head);
    let path = head.target.split('?').next().unwrap_or_default();
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
            return Err(refuse(e, None, None));
        }
        Found::Unknown => {
            let e = ApiError::not_found(format!(
                "there is no route {path}; see GET /api/v2/openapi.json for the API"
            ));
            return Err(refuse(e, None, None));
        }
    };
    let principal =
        super::admit(app, route, head, peer).map_err(|e| refuse(e, Some(route), None))?;
    let who = principal.as_ref().map(|p| p.name.clone());
    if let Err(e) = super::authorize(route, principal.as_ref()) {
        return Err(refuse(e, Some(route), who));
    }
    let length = match head.content_length() {
        Ok(n) => n,
        Err(e) => return Err(refuse(framing_error(&e), Some(route), who)),
    };
    if let Err(e) = check_body(route, head, length) {
        return Err(refuse(e, Some(route), who));
    }
    Ok(Admitted {
        route,
        params: params.into_iter().map(str::to_string).collect(),
        who,
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
