//! `MockServer`: the mock on a real socket. One accept thread hands each
//! connection to its own worker thread, at most `CONNECTIONS_MAX` at once
//! (more are refused with 503). Workers read requests with the crate's
//! shared HTTP/1.1 codec (`httpwire`; body cap 1 MiB -> 413 before the body
//! is read), call `Mock::handle_from`, sleep any fault latency on their own
//! thread, and either answer or - for a lost reply - close the connection
//! without a byte. It never decides an API answer itself.

use std::collections::HashMap;
use std::io::BufReader;
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::engine::{Mock, lock, method_from};
use super::reply::bare_response;
use crate::calcom::{ApiRequest, ApiResponse};
use crate::httpwire::{self, Deadline, Head, WireError};

/// Open connections (one worker thread each); more are answered 503.
pub const CONNECTIONS_MAX: usize = 256;
/// Workers run short handlers; a small stack keeps 256 of them cheap.
const WORKER_STACK_BYTES: usize = 512 * 1024;
/// Pause after a failed accept (e.g. out of descriptors) so the loop
/// cannot spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(10);
pub const BODY_BYTES_MAX: usize = 1024 * 1024;
/// An idle keep-alive connection is closed after this long; a request's
/// head, and then its body, must each arrive within it too.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `shutdown` waits for workers to finish their current request.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(2);
const WAKE_TIMEOUT: Duration = Duration::from_secs(1);

pub struct MockServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    next_id: AtomicU64,
    /// Open connections, so shutdown can close them.
    open: Mutex<HashMap<u64, TcpStream>>,
    drained: Condvar,
}

impl MockServer {
    /// Listens on `bind` (port 0 picks a free port) and serves `mock`.
    pub fn start(mock: Arc<Mock>, bind: SocketAddr) -> std::io::Result<MockServer> {
        let listener = TcpListener::bind(bind)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let accept = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("mock-accept".into())
                .spawn(move || accept_loop(listener, mock, shared))?
        };
        Ok(MockServer {
            addr,
            shared,
            accept: Some(accept),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL, e.g. `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.loopback())
    }

    fn loopback(&self) -> SocketAddr {
        match self.addr.ip() {
            ip if ip.is_unspecified() => {
                SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), self.addr.port())
            }
            _ => self.addr,
        }
    }

    /// Stops accepting, closes open connections and waits (bounded) for
    /// workers to finish. Safe to call twice.
    pub fn shutdown(&mut self) {
        let Some(accept) = self.accept.take() else {
            return;
        };
        self.shared.stop.store(true, Ordering::SeqCst);
        // accept() blocks; a connection of our own wakes it to see the flag.
        let _ = TcpStream::connect_timeout(&self.loopback(), WAKE_TIMEOUT);
        let _ = accept.join();
        let mut open = lock(&self.shared.open);
        for stream in open.values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        let deadline = Instant::now() + SHUTDOWN_WAIT;
        while !open.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            open = self
                .shared
                .drained
                .wait_timeout(open, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop(listener: TcpListener, mock: Arc<Mock>, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else {
            // Out of descriptors or an aborted handshake: keep serving others.
            std::thread::sleep(ACCEPT_ERROR_PAUSE);
            continue;
        };
        let Some(id) = register(&shared, &stream) else {
            refuse(stream, 503, "Service Unavailable");
            continue;
        };
        let (mock, worker_shared) = (mock.clone(), shared.clone());
        let spawned = std::thread::Builder::new()
            .name("mock-conn".into())
            .stack_size(WORKER_STACK_BYTES)
            .spawn(move || {
                serve_connection(&mock, stream);
                unregister(&worker_shared, id);
            });
        if spawned.is_err() {
            unregister(&shared, id);
        }
    }
}

fn register(shared: &Shared, stream: &TcpStream) -> Option<u64> {
    let mut open = lock(&shared.open);
    if open.len() >= CONNECTIONS_MAX {
        return None;
    }
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    open.insert(id, stream.try_clone().ok()?);
    Some(id)
}

fn unregister(shared: &Shared, id: u64) {
    lock(&shared.open).remove(&id);
    shared.drained.notify_all();
}

/// Answers a request that never reached the mock, then closes.
fn refuse(mut stream: TcpStream, status: u16, message: &str) {
    let r = bare_response(status, message);
    let _ = httpwire::write_response(&mut stream, r.status, &r.headers, &r.body, false);
}

fn serve_connection(mock: &Mock, mut stream: TcpStream) {
    let peer = stream
        .peer_addr()
        .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |a| a.ip());
    let _ = stream.set_nodelay(true);
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(Deadline::new(read_half));
    loop {
        let (head, body) = match read_request(&mut reader, &mut stream) {
            Ok(request) => request,
            Err(Some((status, message))) => return refuse(stream, status, message),
            Err(None) => return,
        };
        let keep_alive = head.keep_alive();
        let (response, latency) = answer(mock, head, body, peer);
        if !latency.is_zero() {
            // Fault latency is real time on this worker, like a slow server.
            std::thread::sleep(latency);
        }
        let Some(r) = response else {
            // A lost reply: close without sending a single byte.
            let _ = stream.shutdown(Shutdown::Both);
            return;
        };
        if httpwire::write_response(&mut stream, r.status, &r.headers, &r.body, keep_alive).is_err()
            || !keep_alive
        {
            return;
        }
    }
}

/// Why a connection ends before a request reached the mock: the bare
/// status and message to answer first, or None to close without one.
type Refusal = Option<(u16, &'static str)>;

/// One request with its body. `writer` gets `100 Continue` when asked.
fn read_request(
    reader: &mut BufReader<Deadline>,
    writer: &mut TcpStream,
) -> Result<(Head, Vec<u8>), Refusal> {
    reader.get_mut().reset(READ_TIMEOUT);
    let head = httpwire::read_head(reader).map_err(refusal)?;
    let length = head.content_length().map_err(refusal)?;
    if length > BODY_BYTES_MAX {
        return Err(Some((413, "request entity too large")));
    }
    reader.get_mut().reset(READ_TIMEOUT);
    let body = httpwire::read_body(reader, writer, &head, length).map_err(refusal)?;
    Ok((head, body))
}

fn refusal(e: WireError) -> Refusal {
    match e {
        WireError::Closed | WireError::Io => None,
        WireError::LengthRequired => Some((411, "Length Required")),
        WireError::HeadTooLarge => Some((431, "Request Header Fields Too Large")),
        WireError::Malformed(why) => Some((400, why)),
    }
}

fn answer(mock: &Mock, head: Head, body: Vec<u8>, peer: IpAddr) -> (Option<ApiResponse>, Duration) {
    let Some(method) = method_from(&head.method) else {
        return (
            Some(mock.no_route(&head.method, &head.target)),
            Duration::ZERO,
        );
    };
    let request = ApiRequest {
        method,
        path: head.target,
        headers: head.headers,
        body: (!body.is_empty()).then_some(body),
    };
    let reply = mock.handle_from(&request, peer);
    (reply.response, reply.latency)
}
