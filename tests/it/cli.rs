//! The command line as a user meets it: help, exit codes, and clear errors.

use crate::support::run;

#[test]
fn help_names_every_subcommand_and_the_exit_codes() {
    let (code, out, _) = run(&["--help"], None);
    assert_eq!(code, 0);
    for word in [
        "serve",
        "mock",
        "catalog",
        "token",
        "workflows",
        "health",
        "webhooks",
        "backup",
        "reconcile",
        "simulate",
        "smoke",
        "load",
        "bench",
        "Exit codes: 0 success, 1 error",
        "RUST_LOG",
    ] {
        assert!(out.contains(word), "{word:?} missing from --help:\n{out}");
    }
    for sub in [&["mock", "--help"][..], &["catalog", "check", "--help"]] {
        let (code, out, _) = run(sub, None);
        assert_eq!(code, 0, "{sub:?}");
        assert!(out.len() > 80, "{sub:?} --help says what it does:\n{out}");
    }
}

#[test]
fn an_unknown_subcommand_is_a_usage_error_with_exit_code_2() {
    let (code, _, err) = run(&["frobnicate"], None);
    assert_eq!(code, 2);
    assert!(
        err.contains("unrecognized subcommand 'frobnicate'"),
        "{err}"
    );
}

#[test]
fn catalog_check_lists_the_shipped_services_with_offsets() {
    let (code, out, err) = run(&["catalog", "check"], None);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("colour-and-cut (Colour and cut): 115 min"),
        "{out}"
    );
    assert!(out.contains("1. cut 45 min at +70 min"), "{out}");
}

#[test]
fn a_broken_service_file_is_named_with_its_field_and_exit_code_1() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.json"),
        r#"{"id":"x","name":"X","segments":[{"name":"s","duration_min":0,"staff":[{"host":1,"event_type_id":2}]}]}"#,
    )
    .unwrap();
    let (code, _, err) = run(
        &[
            "catalog",
            "check",
            "--workflows",
            dir.path().to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("bad.json: segments[0] (\"s\").duration_min"),
        "{err}"
    );
}

#[test]
fn a_second_calsaga_on_the_same_database_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("calsaga.db");
    let db = db.to_str().unwrap();
    // With a token already made, serve's first line says where it listens.
    crate::support::create_token(db, "ops", "admin");
    let first = crate::support::spawn(&["serve", "--db", db, "--bind", "127.0.0.1:0"]);
    assert!(
        first
            .first_line
            .contains("calsaga serve: listening on http://127.0.0.1:"),
        "{}",
        first.first_line
    );
    let (code, _, err) = run(&["serve", "--db", db, "--bind", "127.0.0.1:0"], None);
    assert_eq!(code, 1);
    assert!(
        err.contains("already in use by another calsaga process"),
        "{err}"
    );
}

#[test]
fn the_cal_com_commands_without_an_api_key_say_what_to_pass() {
    for command in [["reconcile", "orphans"], ["catalog", "sync"]] {
        let (code, _, err) = run(&command, None);
        assert_eq!(code, 1, "{command:?}: {err}");
        assert!(
            err.contains("pass --calcom-api-key or set CALCOM_API_KEY"),
            "{command:?}: {err}"
        );
    }
}

#[test]
fn serve_refuses_a_remote_cal_com_without_an_api_key() {
    let (code, _, err) = run(&["serve", "--calcom-url", "http://127.0.0.1:9"], None);
    assert_eq!(code, 1);
    assert!(err.contains("CALCOM_API_KEY: is not set"), "{err}");
}

/// The settings table of docs/CALCOM_V2_INTEGRATION.md names every flag of
/// `calsaga serve`, with its environment variable (every flag has one) and
/// default, and nothing the binary does not have.
#[test]
fn the_integration_guide_lists_every_serve_setting_as_the_binary_has_it() {
    let (code, help, _) = run(&["serve", "--help"], None);
    assert_eq!(code, 0);
    let doc =
        std::fs::read_to_string(crate::support::repo_root().join("docs/CALCOM_V2_INTEGRATION.md"))
            .unwrap();
    let table = doc
        .split("<!-- serve-settings:start -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- serve-settings:end -->").next())
        .expect("the guide has the serve-settings markers");
    let lines: Vec<&str> = help.lines().collect();
    let mut flags = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(flag) = line.trim().split([' ', ',']).find(|w| w.starts_with("--")) else {
            continue;
        };
        if flag == "--help" || !line.trim_start().starts_with('-') {
            continue;
        }
        let row = table
            .lines()
            .find(|r| r.starts_with(&format!("| `{flag}` |")))
            .unwrap_or_else(|| panic!("{flag} of `serve --help` is missing from the guide"));
        let detail = lines.get(i + 1).copied().unwrap_or_default();
        // The README promises an environment variable for every setting.
        assert!(
            detail.contains("[env: "),
            "{flag} has no environment variable: {detail}"
        );
        for (tag, end) in [("[env: ", ['=', ']']), ("[default: ", [']', ']'])] {
            if let Some(value) = detail.split(tag).nth(1).and_then(|v| v.split(end).next()) {
                assert!(
                    row.contains(&format!("`{value}`")),
                    "{flag}: {value} not in {row}"
                );
            }
        }
        flags.push(flag.to_string());
    }
    let rows = table.lines().filter(|r| r.starts_with("| `--")).count();
    assert_eq!(
        rows,
        flags.len(),
        "the guide lists flags serve does not have"
    );
}

#[test]
fn serve_says_on_its_first_screen_when_cal_com_is_unreachable() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("calsaga.db");
    // A loopback port nobody listens on: bound, then released.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut child = crate::support::calsaga()
        .args([
            "serve",
            "--db",
            db.to_str().unwrap(),
            "--bind",
            "127.0.0.1:0",
        ])
        .args([
            "--calcom-url",
            &url,
            "--calcom-api-key",
            "cal_test_unreachable",
        ])
        .args(["--webhook-secret", "whsec_x", "--orphan-scan", "off"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut seen = Vec::new();
    let said = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("is not reachable") => break Some(line),
            Ok(line) => seen.push(line),
            Err(_) => break None,
        }
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let said = said.unwrap_or_else(|| panic!("no word on Cal.com: {seen:?}"));
    assert!(seen.iter().any(|l| l.contains("listening on")), "{seen:?}");
    assert!(
        said.contains(&url) && said.contains("calsaga health"),
        "{said}"
    );
}

#[test]
fn tokens_are_created_listed_and_revoked_beside_a_running_serve_and_their_use_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("calsaga.db");
    let db = db.to_str().unwrap();
    let admin = crate::support::create_token(db, "ops", "admin");
    let web = crate::support::create_token(db, "web", "booking");
    let list = || {
        let (code, listed, err) = run(&["token", "list", "--db", db], None);
        assert_eq!(code, 0, "{err}");
        listed
    };
    let listed = list();
    for (name, scope) in [("ops", "admin"), ("web", "booking")] {
        let line = listed.lines().find(|l| l.starts_with(name)).expect(name);
        assert!(line.contains(scope) && line.ends_with("never"), "{line}");
    }
    assert!(listed.contains("2 token(s)"), "{listed}");
    assert!(!listed.contains(&web[3..]) && !listed.contains(&admin[3..]));

    let (mut child, lines) = crate::support::spawn_serve(db, dir.path(), &[]);
    let line = lines.last().unwrap();
    let rest = &line[line.find("http://").unwrap() + 7..];
    let addr = rest[..rest.find(' ').unwrap()].parse().unwrap();
    let call = |token: &str| {
        let auth = format!("Bearer {token}");
        crate::support::http(
            addr,
            "GET",
            "/api/v2/services",
            &[("Authorization", &auth)],
            b"",
        )
        .status
    };
    assert_eq!(call(&web), 200);
    // Beside the running serve: each change counts from its next request.
    let phone = crate::support::create_token(db, "phone", "booking");
    assert_eq!(call(&phone), 200, "a token created while serve runs");
    let (code, _, err) = run(&["token", "revoke", "web", "--db", db], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(call(&web), 401, "a token revoked while serve runs");
    assert_eq!(call(&admin), 200);
    let (code, _, err) = run(&["token", "revoke", "nobody", "--db", db], None);
    assert_eq!(code, 1);
    assert!(err.contains("calsaga token list"), "{err}");
    let listed = list();
    assert!(
        listed.contains("2 token(s)") && !listed.contains("web"),
        "{listed}"
    );

    // A clean stop writes the last uses.
    let stopped = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    assert!(child.wait().unwrap().success());
    let listed = list();
    for name in ["ops", "phone"] {
        let line = listed.lines().find(|l| l.starts_with(name)).expect(name);
        assert!(!line.ends_with("never"), "{line}");
    }
}
