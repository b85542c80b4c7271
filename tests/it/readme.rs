//! The README's five-minute tour, executed as written: every `sh` block
//! between `<!-- tour:begin -->` and `<!-- tour:end -->` runs, in order, in
//! one bash with `set -euo pipefail`. Only the path of the release binary is
//! swapped for the binary under test, and `PORT=0` keeps it off fixed ports.
//! If the README's commands stop working, this test fails.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use crate::support::repo_root;

const BEGIN: &str = "<!-- tour:begin -->";
const END: &str = "<!-- tour:end -->";
/// The binary the tour names; the test runs the one cargo built for it.
const RELEASE_BINARY: &str = "$OLDPWD/target/release/calsaga";
/// The tour includes a kill, a restart and a wait of up to 30 s.
const TOUR_DEADLINE: Duration = Duration::from_secs(120);

/// The shell blocks of the tour, joined in order.
fn tour_script(readme: &str) -> String {
    let begin = readme.find(BEGIN).expect("README has a tour:begin marker");
    let end = readme.find(END).expect("README has a tour:end marker");
    let mut script = String::new();
    let mut in_block = false;
    for line in readme[begin..end].lines() {
        match (in_block, line.trim()) {
            (false, "```sh") => in_block = true,
            (true, "```") => in_block = false,
            (true, _) => {
                script.push_str(line);
                script.push('\n');
            }
            _ => {}
        }
    }
    assert!(!script.is_empty(), "the tour has no sh blocks");
    script
}

/// Runs the tour in bash with a deadline; returns (exit code, stdout, stderr).
fn run_tour(script: &str, tmp: &Path) -> (i32, String, String) {
    let script = script.replace(RELEASE_BINARY, env!("CARGO_BIN_EXE_calsaga"));
    let mut cmd = Command::new("bash");
    cmd.args(["-euo", "pipefail", "-c", &script])
        .current_dir(repo_root())
        .env("PORT", "0")
        .env("TMPDIR", tmp)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in ["RUST_LOG", "CALCOM_API_KEY", "CALCOM_API_URL", "CALSAGA_DB"] {
        cmd.env_remove(var);
    }
    let child = cmd.spawn().expect("bash runs");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(TOUR_DEADLINE) {
        Ok(out) => out.expect("the tour's output is read"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("the README tour did not finish within {TOUR_DEADLINE:?}");
        }
    };
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The JSON object printed on the first stdout line that starts with `prefix`.
fn json_line(stdout: &str, prefix: &str) -> Value {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting {prefix:?} in:\n{stdout}"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?} is not JSON: {e}"))
}

/// The mock's calendar the tour left in its temporary folder.
fn mock_bookings(tmp: &Path) -> Vec<Value> {
    let dir = std::fs::read_dir(tmp)
        .expect("the tour's temp root")
        .flatten()
        .find(|e| e.path().join("mock.json").exists())
        .expect("the tour made a folder with mock.json");
    let state: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("mock.json")).unwrap()).unwrap();
    state["bookings"].as_array().cloned().unwrap_or_default()
}

#[test]
fn the_readme_tour_books_survives_a_kill_and_resumes() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = run_tour(&tour_script(&readme), tmp.path());
    assert_eq!(
        code, 0,
        "the tour failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );

    let accepted = json_line(&stdout, "{\"id\"");
    assert_eq!(
        accepted["status"], "pending",
        "answered at once: {accepted}"
    );
    let id = accepted["id"].as_str().unwrap().to_string();
    assert!(
        stdout.contains("resumed 1 unfinished saga"),
        "the restart resumes the killed booking:\n{stdout}"
    );
    let booked = stdout
        .lines()
        .filter(|l| l.starts_with("{\"id\""))
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|b| b["status"] == "booked")
        .unwrap_or_else(|| panic!("the booking ends booked:\n{stdout}"));
    let segments = booked["segments"].as_array().unwrap();
    assert_eq!(segments.len(), 2, "colour and cut: {booked}");

    // Cal.com (the mock's persisted calendar) holds exactly one live booking
    // per segment of this saga: the kill booked nothing twice.
    let ours: Vec<Value> = mock_bookings(tmp.path())
        .into_iter()
        .filter(|b| b["metadata"]["calsaga_workflow"] == id.as_str())
        .filter(|b| b["status"] == "accepted")
        .collect();
    assert_eq!(
        ours.len(),
        2,
        "one live Cal.com booking per segment: {ours:?}"
    );
    // `calsaga workflows show` prints the timeline read from the log.
    let timeline = stdout
        .split(&format!("workflow {id} (book colour-and-cut): booked"))
        .nth(1)
        .unwrap_or_else(|| panic!("the workflow's timeline is shown:\n{stdout}"));
    for step in ["requested", "segment_booking_intended", "booked"] {
        assert!(timeline.contains(step), "{step} missing:\n{timeline}");
    }
}
