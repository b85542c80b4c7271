//! The `/admin` page in a real browser: `calsaga serve` on its embedded mock
//! with one booked and one compensated colour-and-cut, opened in headless
//! Chromium (Debian's `chromium`) with the admin token in the URL fragment.
//! The rendered DOM must show the state counts, the workflows and the
//! compensated timeline; the screenshot is kept in
//! `<target>/test-artifacts/admin.png` for a person to look at.
//!
//! Without chromium the tests say so and pass, unless CALSAGA_REQUIRE_BROWSER
//! is set (CI sets it), where a missing browser fails them.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{Resp, Served};

const BROWSER: &str = "chromium";
const INSTALL: &str = "apt-get install -y --no-install-recommends chromium fonts-liberation";
/// One Chromium run (start, load, render, exit); killed after this.
const BROWSER_WAIT: Duration = Duration::from_secs(90);
/// Colour 11:00-11:30 Berlin, pause 40 min, cut 12:10-12:55 with Ben.
const COMPENSATED_START: &str = "2030-03-05T10:00:00Z";
const BOOKED_START: &str = "2030-03-06T10:00:00Z";
/// Ben's cut of the compensated booking (Ben pinned), taken in Cal.com after the search.
const BENS_TAKEN_CUT: &str = "2030-03-05T11:10:00Z";
/// The search a client makes first; its cached answer still offers Ben.
const SEARCH: &str = "/api/v2/availability?service=colour-and-cut&start=2030-03-05&end=2030-03-05&timeZone=Europe/Berlin";

#[test]
fn the_admin_page_shows_counts_workflows_and_a_compensated_timeline() {
    let Some(browser) = browser() else { return };
    // The page and this test must read the same cached health report.
    let s = Served::start(&["--health-cache-ttl-s", "3600"]);
    let offered = s.get(SEARCH, &s.booking);
    assert_eq!(offered.status, 200, "{}", offered.body);
    s.take_in_calcom(201, BENS_TAKEN_CUT);
    let refused = book(&s, "undone", COMPENSATED_START, json!({"1": 2}));
    assert_eq!(refused.status, 409, "{}", refused.body);
    let undone = refused.json()["error"]["details"]["booking"]["id"]
        .as_str()
        .expect("the refused booking's id")
        .to_string();
    let booked = book(&s, "kept", BOOKED_START, json!({}));
    assert_eq!(booked.status, 201, "{}", booked.body);
    let kept = booked.json()["id"].as_str().expect("an id").to_string();

    let url = format!(
        "http://{}/admin#token={}&workflow={undone}",
        s.addr, s.admin
    );
    let artifacts = artifacts_dir();
    let png = artifacts.join("admin.png");
    let _ = std::fs::remove_file(&png);
    chromium(&browser, &format!("--screenshot={}", png.display()), &url);
    assert_eq!(
        png_size(&png),
        (1280, 900),
        "the screenshot {png:?} is the window"
    );
    let dom = chromium(&browser, "--dump-dom", &url);
    std::fs::write(artifacts.join("admin.html"), &dom).expect("keep the DOM");

    assert!(dom.contains(r#"data-loaded="yes""#), "not loaded:\n{dom}");
    for (state, count) in [("booked", 1), ("compensated", 1), ("failed", 0)] {
        let tile = format!(
            r#"data-state="{state}" data-count="{count}"><span class="n">{count}</span>{state}</button>"#
        );
        assert!(dom.contains(&tile), "{tile} missing:\n{dom}");
    }
    for id in [&undone, &kept] {
        assert!(dom.contains(&format!(r#"data-workflow="{id}""#)), "{id}");
    }
    let timeline = section(&dom, "timeline");
    for shown in [
        undone.as_str(),
        // Bars with segment, host and Berlin wall-clock times.
        r#"class="bar compensated""#,
        "colour · Anna Colourist · 11:00–11:30",
        r#"class="bar failed""#,
        "cut · Ben Stylist · 12:10–12:55",
        ">COMPENSATED<",
        ">FAILED<",
        "pause 40 min",
        r#"data-kind="segment_booking_failed""#,
        r#"data-kind="compensated""#,
    ] {
        assert!(timeline.contains(shown), "{shown:?} not in:\n{timeline}");
    }
    let health = section(&dom, "health");
    let report = s.get("/api/health/calcom/detailed", &s.admin);
    assert_eq!(report.status, 200, "{}", report.body);
    let report = report.json();
    let rolled = report["status"].as_str().expect("a roll-up status");
    assert!(
        health.contains(&format!(r#"data-calcom="{rolled}""#)),
        "{health}"
    );
    let checks = report["checks"].as_array().expect("the checks");
    assert_eq!(checks.len(), 8, "{report}");
    for c in checks {
        // Each check's line as a person reads it: status, name, message.
        let (check, status) = (c["check"].as_str(), c["status"].as_str());
        let line = format!(
            r#"<li><span class="badge {0}">{0}</span> <strong>{1}</strong>: {2}"#,
            status.expect("a status"),
            check.expect("a check name"),
            html(c["message"].as_str().expect("a message")),
        );
        assert!(health.contains(&line), "{line:?} not in:\n{health}");
    }
    assert!(!health.contains("<strong>?</strong>"), "{health}");
    assert!(!dom.contains(&s.admin), "the page shows the token");
    let log = s.log();
    assert!(log.contains(r#""path":"/admin","status":200"#), "{log}");
    assert!(!log.contains(&s.admin), "a token reached the log");
}

#[test]
fn the_shell_is_public_holds_no_data_and_a_booking_token_gets_the_form_back() {
    let s = Served::start(&[]);
    let shell = s.call("GET", "/admin", &[], b"");
    assert_eq!(shell.status, 200, "{}", shell.body);
    assert_eq!(
        shell.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(shell.header("cache-control"), Some("no-store"));
    let csp = shell.header("content-security-policy").unwrap_or_default();
    assert!(csp.starts_with("default-src 'none';"), "{csp}");
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    let Some(browser) = browser() else { return };
    let url = format!("http://{}/admin#token={}", s.addr, s.booking);
    let dom = chromium(&browser, "--dump-dom", &url);
    assert!(
        dom.contains(r#"<section id="login">"#),
        "the form is shown:\n{dom}"
    );
    assert!(dom.contains("needs an admin token"), "{dom}");
    assert!(dom.contains(r#"data-loaded="no""#), "{dom}");
}

/// Books `colour-and-cut` at `start` with the booking token; `hosts` pins
/// segments (a pinned host is refused rather than failed over).
fn book(s: &Served, key: &str, start: &str, hosts: serde_json::Value) -> Resp {
    let body = json!({
        "service": "colour-and-cut",
        "start": start,
        "hosts": hosts,
        "timeZone": "Europe/Berlin",
        "attendee": {"name": "Jo Client", "email": "jo@example.com"},
    });
    s.send(
        "POST",
        "/api/v2/bookings",
        &s.booking,
        &[("Idempotency-Key", key)],
        Some(&body),
    )
}

/// Chromium on PATH; None (with a notice) when missing and not required.
fn browser() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(BROWSER))
            .find(|p| p.is_file())
    });
    let required =
        std::env::var("CALSAGA_REQUIRE_BROWSER").is_ok_and(|v| !v.is_empty() && v != "0");
    match (&found, required) {
        (None, true) => panic!(
            "CALSAGA_REQUIRE_BROWSER is set but {BROWSER} is not on PATH; install it with `{INSTALL}`"
        ),
        (None, false) => {
            eprintln!("admin page browser test skipped: install chromium (`{INSTALL}`)")
        }
        _ => {}
    }
    found
}

/// Runs headless Chromium once on `url` with `mode` (`--dump-dom`, or
/// `--screenshot=<file>`) and returns its stdout. Bounded: the browser's
/// whole process group is killed after BROWSER_WAIT.
fn chromium(browser: &Path, mode: &str, url: &str) -> String {
    use std::os::unix::process::CommandExt;
    let profile = tempfile::tempdir().expect("a browser profile dir");
    let mut child = Command::new(browser)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--virtual-time-budget=5000",
            "--window-size=1280,900",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(mode)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group, so a stuck run is killed with its helpers.
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "{} does not start ({e}); reinstall it with `{INSTALL}`",
                browser.display()
            )
        });
    let stdout = read_all(child.stdout.take());
    let stderr = read_all(child.stderr.take());
    let deadline = Instant::now() + BROWSER_WAIT;
    let left = || deadline.saturating_duration_since(Instant::now());
    let (Ok(out), Ok(err)) = (stdout.recv_timeout(left()), stderr.recv_timeout(left())) else {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", child.id())])
            .status();
        let _ = child.wait();
        panic!("{BROWSER} {mode} did not finish within {BROWSER_WAIT:?} on {url}");
    };
    let status = child.wait().expect("chromium is reaped");
    assert!(
        status.success(),
        "{BROWSER} {mode} failed ({status}):\n{err}"
    );
    out
}

/// Reads a pipe to its end on a thread, so the wait for it has a deadline.
fn read_all(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    if let Some(mut pipe) = pipe {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            let _ = tx.send(text);
        });
    }
    rx
}

/// `<target>/test-artifacts`, wherever CARGO_TARGET_DIR puts the target:
/// this test binary is `<target>/<profile>/deps/it-<hash>`.
fn artifacts_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let target = exe.ancestors().nth(3).expect("the target dir");
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("create test-artifacts");
    dir
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("no screenshot {path:?}: {e}"));
    assert!(
        bytes.len() > 24 && bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{path:?} is not a PNG"
    );
    let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    (be(16), be(20))
}

/// The `<section id="{id}" ...>...</section>` of the page.
fn section<'d>(dom: &'d str, id: &str) -> &'d str {
    let start = dom
        .find(&format!(r#"<section id="{id}""#))
        .unwrap_or_else(|| panic!("no section {id}:\n{dom}"));
    let len = dom[start..].find("</section>").unwrap_or(dom.len() - start);
    &dom[start..start + len]
}

/// Text as the DOM serialises it inside an element.
fn html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
