//! Slot maths, pure: a host's working hours (weekly wall-clock ranges in the
//! HOST's time zone, DST-correct through chrono-tz) become UTC spans; slots
//! step through them by the event type's interval and drop anything busy or
//! too soon; results are grouped by local date in the REQUESTED zone. No
//! clock, no state, no HTTP here: callers pass `now` and the busy spans.

use std::collections::BTreeMap;

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDateTime, SecondsFormat, TimeZone, Utc,
};
use chrono_tz::Tz;

use super::fixture::User;
use crate::calcom::wire::{Slot, SlotsByDay};

/// A half-open UTC interval `[start, end)`.
pub type Span = (DateTime<Utc>, DateTime<Utc>);

pub fn overlaps(a: Span, b: Span) -> bool {
    a.0 < b.1 && b.0 < a.1
}

/// The host's working spans touching `[from, to]`, in UTC.
pub fn working_spans(user: &User, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Span> {
    let tz = user.time_zone;
    // One local day either side covers every offset between UTC and the zone.
    let first = from.with_timezone(&tz).date_naive() - Duration::days(1);
    let last = to.with_timezone(&tz).date_naive() + Duration::days(1);
    first
        .iter_days()
        .take_while(|d| *d <= last)
        .flat_map(|day| {
            let ranges = &user.week[day.weekday().num_days_from_monday() as usize];
            ranges.iter().map(move |(s, e)| {
                (
                    local_to_utc(tz, day.and_time(*s)),
                    local_to_utc(tz, day.and_time(*e)),
                )
            })
        })
        .filter(|span| span.0 <= to && span.1 >= from)
        .collect()
}

/// Wall-clock time in `tz` as UTC. In the autumn overlap the earlier
/// instant wins; in the spring gap the time moves past the gap, as a clock
/// on the wall does.
fn local_to_utc(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.to_utc(),
        LocalResult::None => (1..=4)
            .find_map(|h| {
                tz.from_local_datetime(&(local + Duration::minutes(30 * h)))
                    .earliest()
            })
            .map_or_else(|| local.and_utc(), |t| t.to_utc()),
    }
}

/// What a slot search needs to know about one event type and its host.
pub struct SlotSearch<'a> {
    pub host: &'a User,
    pub length_min: u32,
    pub interval_min: u32,
    /// Slots must START inside this window (inclusive ends, like Cal.com).
    pub window: Span,
    /// No slot starts before this (now + minimum booking notice).
    pub earliest: DateTime<Utc>,
    pub busy: &'a [Span],
}

/// Free slot starts, ascending.
pub fn free_starts(q: &SlotSearch<'_>) -> Vec<DateTime<Utc>> {
    let length = Duration::minutes(i64::from(q.length_min));
    let step = Duration::minutes(i64::from(q.interval_min.max(1)));
    let mut starts = Vec::new();
    for (open, close) in working_spans(q.host, q.window.0, q.window.1) {
        let mut t = open;
        while t + length <= close {
            let free = !q.busy.iter().any(|b| overlaps(*b, (t, t + length)));
            if t >= q.window.0 && t <= q.window.1 && t >= q.earliest && free {
                starts.push(t);
            }
            t += step;
        }
    }
    starts.sort();
    starts.dedup();
    starts
}

/// Whether `[start, end)` lies inside one working span of the host.
pub fn within_working_hours(host: &User, span: Span) -> bool {
    working_spans(host, span.0, span.1)
        .iter()
        .any(|(open, close)| *open <= span.0 && span.1 <= *close)
}

/// Groups slot starts by local date in `zone` (`None` = UTC) and formats
/// them like Cal.com: `2030-03-05T09:00:00.000+01:00`, or `...Z` in UTC.
pub fn group_by_day(
    starts: &[DateTime<Utc>],
    zone: Option<Tz>,
    end_min: Option<u32>,
) -> SlotsByDay {
    let mut days: SlotsByDay = BTreeMap::new();
    for t in starts {
        let end = end_min.map(|m| format_in(*t + Duration::minutes(i64::from(m)), zone));
        let day = match zone {
            Some(tz) => t.with_timezone(&tz).date_naive(),
            None => t.date_naive(),
        };
        days.entry(day.format("%Y-%m-%d").to_string())
            .or_default()
            .push(Slot {
                start: format_in(*t, zone),
                end,
            });
    }
    days
}

fn format_in(t: DateTime<Utc>, zone: Option<Tz>) -> String {
    match zone {
        Some(tz) if !is_utc(tz) => t
            .with_timezone(&tz)
            .to_rfc3339_opts(SecondsFormat::Millis, false),
        _ => t.to_rfc3339_opts(SecondsFormat::Millis, true),
    }
}

fn is_utc(tz: Tz) -> bool {
    matches!(
        tz,
        Tz::UTC | Tz::Etc__UTC | Tz::Etc__GMT | Tz::GMT | Tz::Zulu
    )
}
