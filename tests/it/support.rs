//! The one door through which integration tests start things: the real
//! binary, run to completion with its output captured, or kept running
//! (`spawn`) and killed when the test is done.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub fn calsaga() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_calsaga"));
    // The user's own settings must not leak into what a test runs.
    cmd.current_dir(repo_root());
    for var in [
        "RUST_LOG",
        "CALCOM_API_KEY",
        "CALCOM_API_URL",
        "CALSAGA_DB",
        "CALSAGA_BIND",
        "CALSAGA_WEBHOOK_SECRET",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the binary to completion and returns (exit code, stdout, stderr).
pub fn run(args: &[&str], cwd: Option<&Path>) -> (i32, String, String) {
    let mut cmd = calsaga();
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.args(args).output().expect("the calsaga binary runs");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// How long a child may take to print its start-up line.
const START_WAIT: Duration = Duration::from_secs(20);

/// A long-running `calsaga` child with its first stdout line; killed (and
/// reaped) on drop, so a failing test never leaves it behind.
pub struct Running {
    child: Child,
    pub first_line: String,
}

/// Starts `calsaga args..` and waits (bounded) for its first stdout line.
/// A child that exits or stays silent fails the test with its stderr.
pub fn spawn(args: &[&str]) -> Running {
    let mut child = calsaga()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the calsaga binary starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    // Reading blocks; a thread lets the wait have a deadline.
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    match rx.recv_timeout(START_WAIT) {
        Ok(line) if !line.is_empty() => {
            drain(child.stderr.take());
            Running {
                child,
                first_line: line.trim_end().to_string(),
            }
        }
        _ => {
            let _ = child.kill();
            let out = child.wait_with_output().expect("the child is reaped");
            panic!(
                "calsaga {args:?} printed no start-up line within {START_WAIT:?}; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// Keeps reading a pipe so a chatty child never blocks on a full one.
fn drain(pipe: Option<impl Read + Send + 'static>) {
    if let Some(mut pipe) = pipe {
        std::thread::spawn(move || std::io::copy(&mut pipe, &mut std::io::sink()));
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `calsaga serve` on 127.0.0.1:0 against its embedded mock,
/// with a fresh database and two tokens made by `calsaga token create`
/// before it started. Killed when dropped.
pub struct Served {
    child: std::process::Child,
    pub addr: std::net::SocketAddr,
    /// Base URL of the embedded Cal.com mock.
    pub mock_url: String,
    /// A token with the admin scope.
    pub admin: String,
    /// A token with the booking scope.
    pub booking: String,
    args: Vec<String>,
    dir: tempfile::TempDir,
}

/// How long a server may take to say it is listening.
const START_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

impl Served {
    /// Starts `calsaga serve` with `args` added to the defaults.
    pub fn start(args: &[&str]) -> Served {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("calsaga.db");
        let db = db.to_str().expect("utf-8 temp path");
        let admin = create_token(db, "ops", "admin");
        let booking = create_token(db, "web", "booking");
        let (child, lines) = spawn_serve(db, dir.path(), args);
        let (addr, mock_url) = listening(&lines);
        Served {
            child,
            addr,
            mock_url,
            admin,
            booking,
            args: args.iter().map(|a| a.to_string()).collect(),
            dir,
        }
    }

    /// SIGKILLs the server and starts it again on the same database.
    pub fn kill_and_restart(&mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reaped");
        let db = self.dir.path().join("calsaga.db");
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let (child, lines) = spawn_serve(db.to_str().expect("utf-8"), self.dir.path(), &args);
        self.child = child;
        (self.addr, self.mock_url) = listening(&lines);
    }

    /// The server's database file.
    pub fn db(&self) -> PathBuf {
        self.dir.path().join("calsaga.db")
    }

    /// What the server wrote to stderr so far (its log).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    pub fn call(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        http(self.addr, method, path, headers, body)
    }

    /// A request with `token` and, when given, a JSON body and more headers.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        token: &str,
        headers: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> Resp {
        let auth = format!("Bearer {token}");
        let mut all = vec![("Authorization", auth.as_str())];
        all.extend_from_slice(headers);
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        if !body.is_empty() {
            all.push(("Content-Type", "application/json"));
        }
        http(self.addr, method, path, &all, body.as_bytes())
    }

    pub fn get(&self, path: &str, token: &str) -> Resp {
        self.send("GET", path, token, &[], None)
    }

    /// The embedded mock's address.
    pub fn mock(&self) -> std::net::SocketAddr {
        self.mock_url
            .trim_start_matches("http://")
            .parse()
            .expect("the mock's address")
    }

    /// Books `event_type` at `start` in the mock directly, as a walk-in
    /// booked in Cal.com's own UI would be (calsaga learns of it only by
    /// webhook, if subscribed).
    pub fn take_in_calcom(&self, event_type: u64, start: &str) {
        let body = serde_json::json!({
            "eventTypeId": event_type,
            "start": start,
            "attendee": {"name": "Walk In", "email": "walk.in@example.com", "timeZone": "Europe/Berlin"},
        })
        .to_string();
        let r = http(
            self.mock(),
            "POST",
            "/v2/bookings",
            &[
                ("cal-api-version", "2024-08-13"),
                ("Authorization", "Bearer cal_test_calsaga_mock"),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        );
        assert_eq!(r.status, 201, "{}", r.body);
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `calsaga token create`; the token is the first stdout line.
pub fn create_token(db: &str, name: &str, scope: &str) -> String {
    let (code, out, err) = run(
        &[
            "token", "create", "--db", db, "--name", name, "--scope", scope,
        ],
        None,
    );
    assert_eq!(code, 0, "token create failed: {err}");
    out.lines().next().expect("a token line").to_string()
}

/// Spawns `calsaga serve` on `db` and returns it with its stdout lines up to
/// and including the "listening" line.
pub fn spawn_serve(db: &str, dir: &Path, args: &[&str]) -> (std::process::Child, Vec<String>) {
    use std::io::BufRead;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("serve.log"))
        .expect("log file");
    let mut child = calsaga()
        .args(["serve", "--db", db, "--bind", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "info")
        .env("CALSAGA_LOG_FORMAT", "json")
        .stdout(std::process::Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("calsaga serve starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = std::time::Instant::now() + START_DEADLINE;
    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default();
            panic!("serve did not start; stdout {lines:?}; log:\n{log}");
        };
        let done = line.contains("listening on http://");
        lines.push(line);
        if done {
            return (child, lines);
        }
    }
}

/// Our address and the embedded mock's URL from serve's stdout.
fn listening(lines: &[String]) -> (std::net::SocketAddr, String) {
    let line = lines
        .iter()
        .find(|l| l.contains("listening on http://"))
        .expect("listening line");
    (
        between(line, "http://", " ").parse().expect("address"),
        between(line, "mock at ", ")").to_string(),
    )
}

fn between<'a>(s: &'a str, from: &str, to: &str) -> &'a str {
    let rest = &s[s.find(from).expect("marker") + from.len()..];
    &rest[..rest.find(to).unwrap_or(rest.len())]
}

/// One HTTP/1.1 response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }

    /// The `error.code` of an error body.
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// Sends one request on a new connection (`Connection: close`) and reads
/// the whole answer.
pub fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to calsaga");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("send head");
    stream.write_all(body).expect("send body");
    read_response(&mut stream)
}

/// Reads one response from a connection the server closes after it.
pub fn read_response(stream: &mut std::net::TcpStream) -> Resp {
    use std::io::Read;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .expect("read timeout");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the answer");
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("a full response");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Resp {
        status,
        headers,
        body: body.to_string(),
    }
}

/// Adds fault rules at the embedded mock at `mock` (no rules: clears them all).
pub fn mock_faults(mock: std::net::SocketAddr, rules: &serde_json::Value) {
    let (method, body) = match rules.as_array().is_some_and(Vec::is_empty) {
        true => ("DELETE", Vec::new()),
        false => ("POST", rules.to_string().into_bytes()),
    };
    let r = http(mock, method, "/_mock/faults", &[], &body);
    assert_eq!(r.status, 200, "{}", r.body);
}
