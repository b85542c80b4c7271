//! calsaga's own HTTP surface (tiny_http): validates, authenticates and
//! appends through the engine; never calls Cal.com itself (I8).

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::clock::Clock;
use crate::runtime::Engine;

/// What the handlers work with.
#[derive(Clone)]
pub struct App {
    pub engine: Engine,
    pub runtime: tokio::runtime::Handle,
    pub clock: Arc<dyn Clock>,
}

#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub bind: SocketAddr,
    /// Worker threads answering requests.
    pub workers: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot listen on {addr}: {reason}; pick another address with --bind")]
    Bind { addr: SocketAddr, reason: String },
}

pub struct HttpServer {
    server: Arc<tiny_http::Server>,
    addr: SocketAddr,
    workers: Vec<JoinHandle<()>>,
}

impl HttpServer {
    pub fn start(config: HttpConfig, app: App) -> Result<HttpServer, HttpError> {
        let server = tiny_http::Server::http(config.bind).map_err(|e| HttpError::Bind {
            addr: config.bind,
            reason: e.to_string(),
        })?;
        let addr = server
            .server_addr()
            .to_ip()
            .expect("a TCP listener has an IP address");
        let server = Arc::new(server);
        let workers = (0..config.workers.max(1))
            .map(|_| {
                let server = Arc::clone(&server);
                let app = app.clone();
                std::thread::spawn(move || {
                    for request in server.incoming_requests() {
                        handle(&app, request);
                    }
                })
            })
            .collect();
        Ok(HttpServer {
            server,
            addr,
            workers,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting requests and waits for the workers to finish theirs.
    pub fn shutdown(self) {
        self.server.unblock();
        for _ in 1..self.workers.len() {
            self.server.unblock();
        }
        for worker in self.workers {
            let _ = worker.join();
        }
    }
}

fn handle(_app: &App, request: tiny_http::Request) {
    let response = match (request.method(), request.url()) {
        (tiny_http::Method::Get, "/api/health") => {
            tiny_http::Response::from_string(r#"{"status":"ok"}"#)
        }
        _ => tiny_http::Response::from_string(
            r#"{"error":{"code":"not_found","message":"no such route"}}"#,
        )
        .with_status_code(404),
    };
    let _ = request.respond(response);
}
