//! Fixture loading: the salon is valid, and every mistake names the file,
//! the field and the fix.

use std::net::TcpListener;
use std::path::Path;

use serde_json::{Value, json};

use crate::mock::{Fixture, MockError};

fn salon_json() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/mock/salon.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn problem(edit: impl FnOnce(&mut Value)) -> String {
    let mut v = salon_json();
    edit(&mut v);
    Fixture::parse(&v.to_string(), Path::new("x/bad.json"))
        .unwrap_err()
        .to_string()
}

#[test]
fn the_salon_fixture_is_the_shared_test_world() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/mock/salon.json");
    let f = Fixture::load(&path).unwrap();
    assert_eq!(f.users.len(), 4);
    assert_eq!(f.event_types.len(), 10);
    assert_eq!(f.bookings.len(), 5);
    assert_eq!(f.rate_limit_per_minute, 120);
    assert_eq!(f.api_keys[0].key, "cal_test_calsaga_mock");
    assert_eq!(f.user(4).unwrap().time_zone, chrono_tz::America::New_York);
    assert_eq!(f.user(2).unwrap().week[0], vec![], "Ben is off on Mondays");
}

#[test]
fn fixture_mistakes_name_file_field_and_fix() {
    type Edit = Box<dyn FnOnce(&mut Value)>;
    let cases: [(Edit, &[&str]); 5] = [
        (
            Box::new(|v| v["users"][2]["timeZone"] = json!("Europe/Londn")),
            &[
                "x/bad.json",
                "users[2].timeZone",
                "Europe/Londn",
                "Europe/Berlin",
            ],
        ),
        (
            Box::new(|v| v["users"][0]["schedule"][0]["days"] = json!(["Funday"])),
            &["users[0].schedule[0].days", "Mon, Tue"],
        ),
        (
            Box::new(|v| v["users"][0]["schedule"][0]["endTime"] = json!("08:00")),
            &["users[0].schedule[0]", "endTime"],
        ),
        (
            Box::new(|v| v["bookings"][0]["eventTypeId"] = json!(999)),
            &["bookings[0].eventTypeId", "999"],
        ),
        (
            Box::new(|v| v["eventTypes"][0]["ownerId"] = json!(9)),
            &["eventTypes[0].ownerId", "listed user"],
        ),
    ];
    for (edit, expected) in cases {
        let text = problem(edit);
        for part in expected {
            assert!(text.contains(part), "{text:?} should mention {part:?}");
        }
    }
    assert!(
        problem(|v| v["users"][0]["nickname"] = json!("A"))
            .contains("compare it with fixtures/mock/salon.json")
    );
}

#[test]
fn missing_fixture_and_busy_port_say_what_to_do() {
    let err = Fixture::load(Path::new("/nonexistent/salon.json")).unwrap_err();
    assert!(err.to_string().contains("--fixture"), "{err}");
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap();
    let io = TcpListener::bind(addr).unwrap_err();
    let text = MockError::bind(addr, io).to_string();
    assert!(text.contains("pick another with --port"), "{text}");
}
