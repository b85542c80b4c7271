//! The state file: every change survives a restart, reset rewrites it, and
//! a broken file stops the start with a message that says what to do.

use std::sync::Arc;

use super::{Req, World, t};
use crate::clock::SimClock;
use crate::mock::{Fixture, Mock, MockConfig};

fn config(path: &std::path::Path) -> MockConfig {
    MockConfig {
        state_file: Some(path.to_path_buf()),
        ..Default::default()
    }
}

fn restart(path: &std::path::Path) -> Mock {
    let clock = Arc::new(SimClock::new(t("2030-03-01T00:00:00Z")));
    Mock::new(Fixture::salon(), clock, config(path)).expect("restarts from the file")
}

#[test]
fn state_survives_a_restart_and_reset_rewrites_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mock-state.json");
    let w = World::with(Fixture::salon(), config(&path));
    let uid = w.book(101, "2030-03-04T10:00:00Z").data()["uid"]
        .as_str()
        .unwrap()
        .to_string();
    w.send(Req::post(
        &format!("/v2/bookings/{uid}/cancel"),
        serde_json::json!({}),
    ));
    let again = restart(&path).view();
    let b = again
        .bookings
        .iter()
        .find(|b| b.uid == uid)
        .expect("the booking was persisted");
    assert_eq!(b.status, crate::calcom::wire::BookingStatus::Cancelled);
    assert_eq!(again.bookings.len(), 6);
    let restarted = World {
        mock: Arc::new(restart(&path)),
        clock: w.clock.clone(),
    };
    let next = restarted.book(101, "2030-03-04T12:00:00Z").data()["uid"].clone();
    assert_ne!(
        next,
        serde_json::json!(uid),
        "a restarted mock never repeats a uid"
    );
    assert_eq!(
        w.send(Req::post("/_mock/reset", serde_json::json!({})))
            .status,
        200
    );
    assert_eq!(
        restart(&path).view().bookings.len(),
        5,
        "back to the fixture's bookings"
    );
    assert!(
        !path.with_extension("tmp").exists(),
        "no temporary file left behind"
    );
}

#[test]
fn a_broken_state_file_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mock-state.json");
    std::fs::write(&path, "{ not json").unwrap();
    let clock = Arc::new(SimClock::new(t("2030-03-01T00:00:00Z")));
    let err = Mock::new(Fixture::salon(), clock, config(&path))
        .err()
        .expect("refused");
    let text = err.to_string();
    assert!(
        text.contains("mock-state.json") && text.contains("delete the file"),
        "{text}"
    );
}
