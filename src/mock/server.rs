//! `MockServer`: the mock on a real socket. One accept thread hands each
//! connection to its own worker thread, at most `CONNECTIONS_MAX` at once
//! (more are refused with 503). Workers read requests (body cap 1 MiB -> 413),
//! call `Mock::handle_from`, sleep any fault latency on their own thread, and
//! either answer or - for a lost reply - close the connection without a byte.
//! It never decides an API answer itself.

use std::collections::HashMap;
use std::io::BufReader;
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::engine::{Mock, lock, method_from};
use super::http1::{self, RawRequest, ReadError};
use super::reply::bare_response;
use crate::calcom::{ApiRequest, ApiResponse};

/// Open connections (one worker thread each); more are answered 503.
pub const CONNECTIONS_MAX: usize = 256;
/// Workers run short handlers; a small stack keeps 256 of them cheap.
const WORKER_STACK_BYTES: usize = 512 * 1024;
/// Pause after a failed accept (e.g. out of descriptors) so the loop
/// cannot spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(10);
pub const BODY_BYTES_MAX: usize = 1024 * 1024;
/// An idle keep-alive connection is closed after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
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
    let _ = http1::write_response(&mut stream, r.status, &r.headers, &r.body, false);
}

fn serve_connection(mock: &Mock, mut stream: TcpStream) {
    let peer = stream
        .peer_addr()
        .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |a| a.ip());
    let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    loop {
        let req = match http1::read_request(&mut reader, &mut stream, BODY_BYTES_MAX) {
            Ok(req) => req,
            Err(ReadError::Closed | ReadError::Io) => return,
            Err(ReadError::BodyTooLarge) => return refuse(stream, 413, "request entity too large"),
            Err(ReadError::LengthRequired) => return refuse(stream, 411, "Length Required"),
            Err(ReadError::HeadTooLarge) => {
                return refuse(stream, 431, "Request Header Fields Too Large");
            }
            Err(ReadError::Malformed(why)) => return refuse(stream, 400, why),
        };
        let keep_alive = req.keep_alive;
        let (response, latency) = answer(mock, req, peer);
        if !latency.is_zero() {
            // Fault latency is real time on this worker, like a slow server.
            std::thread::sleep(latency);
        }
        let Some(r) = response else {
            // A lost reply: close without sending a single byte.
            let _ = stream.shutdown(Shutdown::Both);
            return;
        };
        if http1::write_response(&mut stream, r.status, &r.headers, &r.body, keep_alive).is_err()
            || !keep_alive
        {
            return;
        }
    }
}

fn answer(mock: &Mock, req: RawRequest, peer: IpAddr) -> (Option<ApiResponse>, Duration) {
    let Some(method) = method_from(&req.method) else {
        return (
            Some(mock.no_route(&req.method, &req.target)),
            Duration::ZERO,
        );
    };
    let request = ApiRequest {
        method,
        path: req.target,
        headers: req.headers,
        body: (!req.body.is_empty()).then_some(req.body),
    };
    let reply = mock.handle_from(&request, peer);
    (reply.response, reply.latency)
}
