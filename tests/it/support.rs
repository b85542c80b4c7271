//! The one door through which integration tests start things: the real
//! binary, with its output captured.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn calsaga() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_calsaga"));
    cmd.current_dir(repo_root()).env_remove("RUST_LOG");
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
