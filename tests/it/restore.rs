//! The lost suffix: calsaga's database restored from an earlier backup (as
//! after a power cut or an operator's restore) while Cal.com keeps the
//! bookings made since. Real processes: the mock with a state file and
//! `calsaga serve`. A start with `--orphan-scan off` leaves those bookings
//! live (orphans), `calsaga reconcile orphans` lists them; after a normal
//! start the scan has cancelled the
//! bookings the restored log no longer knows (no orphans), the ones it
//! knows are intact, nothing is booked twice, and their slots can be
//! booked again.

use std::collections::BTreeSet;

use serde_json::Value;

use calsaga::store::{OrphanState, Store, StoreConfig};

use crate::crash::{API_KEY, Ack, Harness, Op, Reply, booking, check_invariants, send};
use crate::support::run;

/// Booked before the backup: the restored log knows these.
const KEPT: &[(&str, &str)] = &[
    ("colour-and-cut", "2030-03-05T09:00:00Z"),
    ("haircut", "2030-03-05T13:00:00Z"),
    ("highlights-toner-blowdry", "2030-03-06T09:00:00Z"),
];
/// Booked after the backup: lost with the suffix.
const LOST: &[(&str, &str)] = &[
    ("colour-and-cut", "2030-03-07T09:00:00Z"),
    ("haircut", "2030-03-07T13:00:00Z"),
    ("highlights-toner-blowdry", "2030-03-08T09:00:00Z"),
];

/// Serves, books each of `bookings` (waiting for Cal.com), and kills the
/// server; returns the acknowledgements.
fn serve_and_book(h: &Harness, tag: &str, bookings: &[(&str, &str)]) -> Vec<Ack> {
    let (server, url) = h.serve();
    let client = reqwest::blocking::Client::new();
    let acks = bookings
        .iter()
        .enumerate()
        .map(|(i, (service, start))| {
            let op = Op::Book(booking(service, start));
            let key = format!("restore-{tag}-{i}");
            match send(&client, (&url, &h.token), &key, "wait=20", &op) {
                Reply::Acked(ack) => ack,
                _ => panic!("booking {service} at {start} was not acknowledged"),
            }
        })
        .collect();
    drop(server); // SIGKILL
    acks
}

fn workflows(acks: &[Ack]) -> BTreeSet<String> {
    acks.iter()
        .filter_map(|a| match a {
            Ack::Booked(id) => Some(id.clone()),
            _ => None,
        })
        .collect()
}

/// Live bookings per workflow in the mock, by our metadata.
fn live_of(state: &Value, workflow: &str) -> usize {
    state["bookings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["metadata"]["calsaga_workflow"].as_str() == Some(workflow))
        .filter(|b| matches!(b["status"].as_str(), Some("accepted" | "pending")))
        .count()
}

#[test]
fn a_restored_database_leaves_no_orphans_and_no_duplicates() {
    let h = Harness::new(20300307, "healthy");
    let mut acks = serve_and_book(&h, "kept", KEPT);
    let backup = h.dir.path().join("backup.db");
    {
        // Copied while calsaga is stopped, as an operator's backup job would.
        let store = Store::open(h.db(), StoreConfig::default()).unwrap();
        store.backup_to(&backup).unwrap();
    }
    let lost = workflows(&serve_and_book(&h, "lost", LOST));
    let before = h.mock_state();
    assert!(lost.iter().all(|w| live_of(&before, w) > 0));

    // The restore: the database as it was at the backup.
    for side in ["calsaga.db-wal", "calsaga.db-shm"] {
        let _ = std::fs::remove_file(h.dir.path().join(side));
    }
    std::fs::copy(&backup, h.db()).unwrap();
    // Without the scan the lost bookings stay: orphans blocking their slots.
    let (unscanned, _) = h.serve_with(&["--orphan-scan", "off"]);
    drop(unscanned);
    let orphaned = h.mock_state();
    assert!(lost.iter().all(|w| live_of(&orphaned, w) > 0));
    // `calsaga reconcile orphans` without --apply lists them and cancels nothing.
    let db = h.db();
    let (code, out, err) = run(
        &[
            "reconcile",
            "orphans",
            "--db",
            db.to_str().unwrap(),
            "--calcom-url",
            &h.mock_url,
            "--calcom-api-key",
            API_KEY,
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(lost.iter().all(|w| out.contains(w.as_str())), "{out}");
    assert!(out.contains("6 orphaned (0 cancelled"), "{out}");
    let listed = h.mock_state();
    assert!(lost.iter().all(|w| live_of(&listed, w) > 0));
    // Serve says it listens only after the start scan; the freed slot of a
    // lost booking can then be booked again.
    acks.extend(serve_and_book(&h, "again", &LOST[..1]));

    let state = h.mock_state();
    for w in &lost {
        assert_eq!(
            live_of(&state, w),
            0,
            "lost workflow {w} still holds bookings (orphans)"
        );
    }
    for w in &workflows(&acks) {
        assert!(live_of(&state, w) > 0, "workflow {w} lost its bookings");
    }
    let store = Store::open(h.db(), StoreConfig::default()).unwrap();
    let orphans = store.orphans(100).unwrap();
    let lost_segments = 2 + 1 + 3;
    assert_eq!(orphans.len(), lost_segments, "{orphans:#?}");
    assert!(
        orphans
            .iter()
            .all(|o| o.state == OrphanState::Cancelled && lost.contains(&o.booking.workflow_ref)),
        "{orphans:#?}"
    );
    let figures = check_invariants(&store, &state, &acks);
    eprintln!("restore test:\n{figures}");
}
