//! The load generator's checks that need no server: the loopback guard and
//! the overlap check.

use chrono::{TimeZone, Utc};
use serde_json::json;

use super::*;

fn booking(status: &str, segments: &[(u64, u32, u32, &str)]) -> BookingView {
    let at = |h: u32| {
        Utc.with_ymd_and_hms(2030, 3, 5, h / 100, h % 100, 0)
            .unwrap()
    };
    let segments: Vec<_> = segments
        .iter()
        .map(|(host, start, end, st)| {
            json!({"host": host, "start": at(*start), "end": at(*end), "status": st,
                   "calcomUid": "u", "calcomStatus": "accepted"})
        })
        .collect();
    serde_json::from_value(json!({"id": Uuid::new_v4(), "status": status, "segments": segments}))
        .unwrap()
}

#[test]
fn live_segments_of_one_host_must_not_overlap() {
    let fine = [
        booking(
            "booked",
            &[(1, 900, 930, "booked"), (2, 1010, 1055, "booked")],
        ),
        // Back to back with the first, and another host at the same time.
        booking(
            "booked",
            &[(1, 930, 1000, "booked"), (2, 900, 945, "booked")],
        ),
        // Cancelled or compensated ones hold nothing, whatever their times.
        booking("cancelled", &[(1, 900, 930, "cancelled")]),
        booking("compensated", &[(1, 900, 930, "booked")]),
        booking("pending", &[(1, 1000, 1030, "failed")]),
    ];
    let ok = overlaps(&fine);
    assert_eq!(
        (ok.bookings_checked, ok.live_segments, ok.violations),
        (5, 4, 0)
    );

    let long = booking("booked", &[(3, 900, 1200, "booked")]);
    let a = booking("pending", &[(3, 1000, 1030, "booked")]);
    let b = booking("broken", &[(3, 1100, 1130, "booked")]);
    let bad = overlaps(&[long.clone(), a.clone(), b.clone()]);
    assert_eq!(bad.violations, 2, "the long one overlaps both: {bad:?}");
    assert!(
        bad.overlaps
            .iter()
            .all(|o| o.host == 3 && o.first == long.id)
    );
    assert_eq!(bad.overlaps[1].second, b.id);
}

#[test]
fn only_loopback_targets_unless_allowed() {
    for ok in [
        "http://127.0.0.1:8080/api/v2",
        "http://[::1]:1/api/v2",
        "http://localhost:8080/api/v2",
    ] {
        assert!(check_target(ok, false).is_ok(), "{ok}");
    }
    let err = check_target("http://192.0.2.7:8080/api/v2", false).unwrap_err();
    assert!(
        matches!(&err, LoadError::Remote { host } if host == "192.0.2.7"),
        "{err}"
    );
    assert!(err.to_string().contains("--allow-remote"));
    assert!(check_target("http://192.0.2.7:8080/api/v2", true).is_ok());
    assert!(matches!(
        check_target("not a url", true),
        Err(LoadError::BadUrl(_))
    ));
}

#[test]
fn durations_take_a_unit_and_stay_bounded() {
    assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("3m"), Ok(Duration::from_secs(180)));
    assert_eq!(parse_duration(" 7 "), Ok(Duration::from_secs(7)));
    for bad in ["0s", "", "2h", "-1s", "1.5s", "25000m"] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
}
