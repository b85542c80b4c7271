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
    for var in ["RUST_LOG", "CALCOM_API_KEY", "CALCOM_API_URL", "CALSAGA_DB", "CALSAGA_BIND"] {
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
