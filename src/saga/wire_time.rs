//! How a saga writes an instant: exactly as chrono's serde does (RFC 3339
//! in UTC with `Z`, "2030-03-04T09:00:00Z", a fraction only when there is
//! one), but a whole second without going through `core::fmt`, which
//! chrono's writer feeds one character at a time. A projection holds a
//! dozen instants and is written at every step; their formatting was most
//! of the time spent serialising it. Reading stays chrono's.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Serialize, Serializer};

/// For `#[serde(serialize_with = "wire_time::serialize")]`.
pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    match whole_second(at) {
        Some(text) => {
            serializer.serialize_str(std::str::from_utf8(&text).map_err(serde::ser::Error::custom)?)
        }
        None => at.serialize(serializer),
    }
}

/// "YYYY-MM-DDTHH:MM:SSZ" for an instant of the years 0 to 9999 with no
/// fraction of a second (a leap second has one in chrono).
fn whole_second(at: &DateTime<Utc>) -> Option<[u8; 20]> {
    let year = u32::try_from(at.year()).ok().filter(|y| *y <= 9999)?;
    if at.nanosecond() != 0 {
        return None;
    }
    let mut text = *b"0000-00-00T00:00:00Z";
    for (range, n) in [
        (0..4, year),
        (5..7, at.month()),
        (8..10, at.day()),
        (11..13, at.hour()),
        (14..16, at.minute()),
        (17..19, at.second()),
    ] {
        let mut n = n;
        for digit in text[range].iter_mut().rev() {
            *digit = b'0' + (n % 10) as u8;
            n /= 10;
        }
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Serialize)]
    struct Ours(#[serde(serialize_with = "serialize")] DateTime<Utc>);

    fn same_as_chrono(at: DateTime<Utc>) {
        let ours = serde_json::to_string(&Ours(at)).unwrap();
        assert_eq!(ours, serde_json::to_string(&at).unwrap(), "{at:?}");
    }

    #[test]
    fn whole_seconds_fractions_and_the_years_at_the_edges_are_written_as_chrono_writes_them() {
        for text in [
            "2030-03-04T09:00:00Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "2030-03-04T09:00:00.5Z",
            "2030-03-04T09:00:00.000001Z",
            "-0001-12-31T23:59:59Z",
            "+10000-01-01T00:00:00Z",
        ] {
            same_as_chrono(text.parse().unwrap());
        }
    }

    proptest! {
        #[test]
        fn any_instant_is_written_as_chrono_writes_it(
            secs in -70_000_000_000i64..260_000_000_000,
            nanos in prop_oneof![Just(0u32), 0u32..1_000_000_000],
        ) {
            same_as_chrono(DateTime::from_timestamp(secs, nanos).unwrap());
        }
    }
}
