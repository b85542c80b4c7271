//! The smoke run's own arithmetic: the default day, the DST day, request
//! bodies and percentiles.

use chrono::NaiveDate;

use super::*;

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

#[test]
fn the_default_date_is_the_first_tuesday_two_weeks_ahead() {
    // 2026-11-25 is a Wednesday: +14 days is Wednesday 12-09, next Tuesday 12-15.
    assert_eq!(default_date(day(2026, 11, 25)), day(2026, 12, 15));
    // Exactly two weeks ahead on a Tuesday is taken as it is.
    assert_eq!(default_date(day(2030, 2, 19)), day(2030, 3, 5));
}

#[test]
fn the_next_dst_change_is_the_day_the_offset_moves() {
    let ny = chrono_tz::America::New_York;
    let berlin = chrono_tz::Europe::Berlin;
    assert_eq!(next_dst_change(ny, day(2030, 3, 1)), Some(day(2030, 3, 10)));
    assert_eq!(
        next_dst_change(berlin, day(2030, 3, 1)),
        Some(day(2030, 3, 31))
    );
    assert_eq!(
        next_dst_change(berlin, day(2030, 4, 1)),
        Some(day(2030, 10, 27))
    );
    // The change day itself is found when the search starts on it.
    assert_eq!(
        next_dst_change(ny, day(2030, 3, 10)),
        Some(day(2030, 3, 10))
    );
    // A zone without summer time has none.
    assert_eq!(
        next_dst_change(chrono_tz::Asia::Tokyo, day(2030, 1, 1)),
        None
    );
}

#[test]
fn a_booking_body_fixes_each_segments_host_in_the_zone_asked() {
    let start = day(2030, 3, 5).and_hms_opt(9, 0, 0).unwrap().and_utc();
    let body = booking_body("colour-and-cut", start, &[1, 3], chrono_tz::Europe::London);
    assert_eq!(body["hosts"], json!({"0": 1, "1": 3}));
    assert_eq!(body["start"], "2030-03-05T09:00:00Z");
    assert_eq!(body["timeZone"], "Europe/London");
    assert_eq!(body["service"], "colour-and-cut");
}

#[test]
fn percentiles_take_the_nearest_rank() {
    let ms: Vec<f64> = (1..=20).rev().map(f64::from).collect();
    assert_eq!(percentile_ms(&ms, 0.5), 10.0);
    assert_eq!(percentile_ms(&ms, 0.95), 19.0);
    assert_eq!(percentile_ms(&ms, 1.0), 20.0);
    assert_eq!(percentile_ms(&ms, 0.0), 1.0);
    assert_eq!(percentile_ms(&[], 0.95), 0.0);
    assert_eq!(percentile_ms(&[7.0], 0.99), 7.0);
}

#[test]
fn a_booking_id_is_read_from_a_body_or_from_an_errors_details() {
    let id = Uuid::new_v4();
    let answer = |body: Value| Answer {
        status: 409,
        body,
        replayed: false,
        retry_after: None,
        elapsed: Duration::ZERO,
    };
    assert_eq!(booking_id(&answer(json!({"id": id.to_string()}))), Some(id));
    let refused = json!({"error": {"code": "slot_unavailable", "details": {"booking": {"id": id.to_string()}}}});
    assert_eq!(booking_id(&answer(refused.clone())), Some(id));
    assert_eq!(answer(refused).code(), "slot_unavailable");
    assert_eq!(booking_id(&answer(json!({"error": {"code": "x"}}))), None);
}
