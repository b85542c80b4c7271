//! The ten availability scenarios of `calsaga smoke availability`. Each
//! checks what a front end relies on: starts lie on the asked local days
//! with the right UTC offsets (also across a DST change), a week contains
//! its days, zones agree on the instants they share, composite plans keep
//! the catalogue's offsets, pauses and staff, bad requests are refused with
//! a code, the cache answers faster than Cal.com, concurrent answers agree,
//! and latency stays under a bound. Read-only: it books nothing.

use std::collections::BTreeSet;

use chrono::{DateTime, Days, NaiveDate, Offset, TimeZone, Utc};
use chrono_tz::Tz;

use super::shapes::{Found, ServiceInfo};
use super::{Ctx, Search, Step, at_once, ensure, next_dst_change, percentile_ms, scenario};
use crate::tools::smoke::Outcome;

/// Requests of the concurrency scenario, all at once.
const CONCURRENT_REQUESTS: usize = 50;
/// Requests timed for the p95 scenario.
const LATENCY_REQUESTS: usize = 20;
/// Cold and cached requests timed in the cache scenario, each.
const CACHE_SAMPLES: usize = 7;
/// Zones searched for one day besides the run's own.
const OTHER_ZONES: [Tz; 2] = [chrono_tz::Europe::London, chrono_tz::America::New_York];
/// Zones whose next DST change is searched (US and EU rules).
const DST_ZONES: [Tz; 2] = [chrono_tz::America::New_York, chrono_tz::Europe::Berlin];
/// A range longer than the server's 31-day bound.
const TOO_LONG_DAYS: u64 = 40;

pub fn run(ctx: &Ctx) -> Vec<Outcome> {
    vec![
        scenario("daily: one day of starts", || daily(ctx)),
        scenario("weekly: seven days contain the day", || weekly(ctx)),
        scenario("three time zones and a DST change", || zones(ctx)),
        scenario("composite: offsets, pauses, hosts", || composite(ctx)),
        scenario("past date refused", || past(ctx)),
        scenario("invalid ranges refused", || invalid(ctx)),
        scenario("cached repeat faster than cold", || cache(ctx)),
        scenario("50 concurrent requests agree", || concurrent(ctx)),
        scenario("p95 latency under the bound", || latency(ctx)),
        scenario("unknown service and bad token refused", || errors(ctx)),
    ]
}

fn day_of(ctx: &Ctx, zone: Tz) -> Step<Found> {
    let (_, found) = ctx.search(&Search::day(&ctx.service.id, ctx.date, zone))?;
    local_days(&found, zone, ctx.date, ctx.date)?;
    Ok(found)
}

fn daily(ctx: &Ctx) -> Step<String> {
    let found = day_of(ctx, ctx.zone)?;
    let (Some(first), Some(last)) = (found.slots.first(), found.slots.last()) else {
        return Err(format!(
            "no free start for {} on {}; pass --date with a working day",
            ctx.service.id, ctx.date
        ));
    };
    let starts: Vec<_> = found.slots.iter().map(|s| s.start_utc()).collect();
    ensure(starts.windows(2).all(|w| w[0] < w[1]), || {
        "the starts are not in strictly rising order".into()
    })?;
    plans_fit(&found, &ctx.service)?;
    Ok(format!(
        "{} starts from {} to {}",
        starts.len(),
        first.start.format("%H:%M"),
        last.start.format("%H:%M")
    ))
}

fn weekly(ctx: &Ctx) -> Step<String> {
    let end = ctx.date + Days::new(6);
    let (_, week) = ctx.search(&Search {
        end,
        ..ctx.day(&ctx.service.id)
    })?;
    local_days(&week, ctx.zone, ctx.date, end)?;
    let day = instants(&day_of(ctx, ctx.zone)?);
    let all = instants(&week);
    let missing = day.difference(&all).count();
    ensure(missing == 0, || {
        format!("{missing} starts of {} are missing from its week", ctx.date)
    })?;
    let days: BTreeSet<NaiveDate> = week.slots.iter().map(|s| s.start.date_naive()).collect();
    Ok(format!(
        "{} starts over {} days; the day's {} all among them",
        all.len(),
        days.len(),
        day.len()
    ))
}

fn zones(ctx: &Ctx) -> Step<String> {
    let mut zones = vec![ctx.zone];
    zones.extend(OTHER_ZONES.iter().filter(|z| **z != ctx.zone));
    let mut seen = Vec::new();
    for zone in &zones {
        let found = day_of(ctx, *zone)?;
        seen.push((*zone, window(*zone, ctx.date, ctx.date)?, instants(&found)));
    }
    for (a, wa, sa) in &seen {
        for (b, wb, sb) in &seen {
            let shared = |t: &&DateTime<Utc>| **t >= wa.0.max(wb.0) && **t < wa.1.min(wb.1);
            let only_a = sa.iter().filter(shared).filter(|t| !sb.contains(t)).count();
            ensure(only_a == 0, || {
                format!("{only_a} starts in both days' windows are offered in {a} but not in {b}")
            })?;
        }
    }
    let dst = dst(ctx)?;
    let counts: Vec<String> = seen
        .iter()
        .map(|(z, _, s)| format!("{z} {}", s.len()))
        .collect();
    Ok(format!("{}; {dst}", counts.join(", ")))
}

/// The days around the next DST change of the US or EU rules: starts on
/// both sides, each with its own side's offset.
fn dst(ctx: &Ctx) -> Step<String> {
    let (zone, day) = DST_ZONES
        .iter()
        .filter_map(|z| next_dst_change(*z, ctx.date).map(|d| (*z, d)))
        .min_by_key(|(_, d)| *d)
        .ok_or("no DST change found in the coming year")?;
    let (first, last) = (day - Days::new(1), day + Days::new(1));
    let (_, found) = ctx.search(&Search {
        start: first,
        end: last,
        ..Search::day(&ctx.service.id, day, zone)
    })?;
    local_days(&found, zone, first, last)?;
    let offsets: BTreeSet<i32> = found
        .slots
        .iter()
        .map(|s| s.start.offset().local_minus_utc())
        .collect();
    ensure(offsets.len() == 2, || {
        format!(
            "the starts from {first} to {last} in {zone} show offsets {offsets:?}, not both sides of the change on {day}; pass --service with one staffed on those days"
        )
    })?;
    Ok(format!(
        "{zone} {first}..{last} across the change on {day}: {} starts, both offsets",
        found.slots.len()
    ))
}

fn composite(ctx: &Ctx) -> Step<String> {
    let service = ctx.composite()?;
    let (_, found) = ctx.search(&ctx.day(&service.id))?;
    ensure(!found.slots.is_empty(), || {
        format!("no free start for {} on {}", service.id, ctx.date)
    })?;
    plans_fit(&found, service)?;
    let hosts: BTreeSet<u64> = found.slots.iter().flat_map(|s| s.hosts()).collect();
    Ok(format!(
        "{} starts of {} segments, hosts {hosts:?}, every offset and pause as the catalogue says",
        found.slots.len(),
        service.segments.len()
    ))
}

fn past(ctx: &Ctx) -> Step<String> {
    let day = Utc::now().date_naive() - Days::new(7);
    let answer = ctx
        .api
        .availability(&Search::day(&ctx.service.id, day, ctx.zone))
        .map_err(|e| e.to_string())?;
    match answer.status {
        400..=499 => Ok(format!("{day} refused: {}", answer.describe())),
        _ => Err(format!(
            "{day}, a week ago, answered {} instead of being refused",
            answer.describe()
        )),
    }
}

fn invalid(ctx: &Ctx) -> Step<String> {
    let cases = [
        ("end before start", ctx.date, ctx.date - Days::new(1)),
        (
            "range over 31 days",
            ctx.date,
            ctx.date + Days::new(TOO_LONG_DAYS),
        ),
    ];
    let mut seen = Vec::new();
    for (what, start, end) in cases {
        let answer = ctx
            .api
            .availability(&Search {
                start,
                end,
                ..ctx.day(&ctx.service.id)
            })
            .map_err(|e| e.to_string())?;
        ensure(
            matches!(answer.status, 400 | 422) && !answer.code().is_empty(),
            || {
                format!(
                    "{what}: expected 400/422 with an error code, got {}",
                    answer.describe()
                )
            },
        )?;
        seen.push(format!("{what}: {} {}", answer.status, answer.code()));
    }
    Ok(seen.join("; "))
}

/// Timings, cached flags and the starts of the last answer of a few searches.
struct Timed {
    ms: Vec<f64>,
    cached: Vec<bool>,
    starts: BTreeSet<DateTime<Utc>>,
}

/// Searched with the composite service when there is one: it asks Cal.com
/// for the most event types, so a cold search costs the most.
fn cache(ctx: &Ctx) -> Step<String> {
    let service = ctx.composite.as_ref().unwrap_or(&ctx.service);
    let timed = |fresh: bool| -> Step<Timed> {
        let mut t = Timed {
            ms: Vec::new(),
            cached: Vec::new(),
            starts: BTreeSet::new(),
        };
        for _ in 0..CACHE_SAMPLES {
            let (answer, found) = ctx.search(&Search {
                fresh,
                ..ctx.day(&service.id)
            })?;
            t.ms.push(answer.elapsed.as_secs_f64() * 1e3);
            t.cached.push(found.cached);
            t.starts = instants(&found);
        }
        Ok(t)
    };
    let (cold, warm) = (timed(true)?, timed(false)?);
    ensure(cold.cached.iter().all(|c| !c), || {
        "a fresh=true answer says it came from the cache".into()
    })?;
    ensure(warm.cached.iter().all(|c| *c), || {
        "a repeated search was not answered from the cache".into()
    })?;
    ensure(cold.starts == warm.starts, || {
        "the cached answer differs from the fresh one".into()
    })?;
    let (cold_p50, warm_p50) = (percentile_ms(&cold.ms, 0.5), percentile_ms(&warm.ms, 0.5));
    ensure(warm_p50 < cold_p50, || {
        format!("cached p50 {warm_p50:.1} ms is not below cold p50 {cold_p50:.1} ms")
    })?;
    Ok(format!(
        "{}: cold p50 {cold_p50:.1} ms, cached p50 {warm_p50:.1} ms ({:.1}x faster)",
        service.id,
        cold_p50 / warm_p50.max(1e-3)
    ))
}

fn concurrent(ctx: &Ctx) -> Step<String> {
    let answers = at_once(CONCURRENT_REQUESTS, || {
        let (answer, _) = ctx.search(&ctx.day(&ctx.service.id))?;
        Ok((
            answer.elapsed.as_secs_f64() * 1e3,
            answer.body["slots"].to_string(),
        ))
    })?;
    let distinct: BTreeSet<&String> = answers.iter().map(|(_, s)| s).collect();
    ensure(distinct.len() == 1, || {
        format!(
            "{} different slot lists among {CONCURRENT_REQUESTS} answers",
            distinct.len()
        )
    })?;
    let slowest = answers.iter().map(|(ms, _)| *ms).fold(0.0, f64::max);
    Ok(format!(
        "{CONCURRENT_REQUESTS} answers 200 and identical; slowest {slowest:.1} ms"
    ))
}

fn latency(ctx: &Ctx) -> Step<String> {
    let mut ms = Vec::with_capacity(LATENCY_REQUESTS);
    for _ in 0..LATENCY_REQUESTS {
        let (answer, _) = ctx.search(&ctx.day(&ctx.service.id))?;
        ms.push(answer.elapsed.as_secs_f64() * 1e3);
    }
    let (p50, p95) = (percentile_ms(&ms, 0.5), percentile_ms(&ms, 0.95));
    let bound = ctx.availability_p95_ms_max as f64;
    ensure(p95 < bound, || {
        format!("p95 {p95:.1} ms is over the bound of {bound} ms (--availability-p95-ms)")
    })?;
    Ok(format!(
        "{LATENCY_REQUESTS} requests: p50 {p50:.1} ms, p95 {p95:.1} ms < {bound} ms"
    ))
}

fn errors(ctx: &Ctx) -> Step<String> {
    let unknown_service = ctx.day("no-such-service-smoke");
    let unknown = ctx
        .api
        .availability(&unknown_service)
        .map_err(|e| e.to_string())?;
    ensure(
        unknown.status == 422 && unknown.code() == "unknown_service",
        || {
            format!(
                "an unknown service: expected 422 unknown_service, got {}",
                unknown.describe()
            )
        },
    )?;
    let bad = ctx
        .api
        .with_token("not-a-calsaga-token")
        .availability(&unknown_service)
        .map_err(|e| e.to_string())?;
    ensure(bad.status == 401, || {
        format!("a bad token: expected 401, got {}", bad.describe())
    })?;
    Ok(format!(
        "unknown service: 422 {}; bad token: 401 {}",
        unknown.code(),
        bad.code()
    ))
}

/// The UTC instants of the starts.
fn instants(found: &Found) -> BTreeSet<DateTime<Utc>> {
    found.slots.iter().map(|s| s.start_utc()).collect()
}

/// `[first local midnight, midnight after last)` in `zone`.
fn window(zone: Tz, first: NaiveDate, last: NaiveDate) -> Step<(DateTime<Utc>, DateTime<Utc>)> {
    let midnight = |d: NaiveDate| {
        zone.from_local_datetime(&d.and_time(chrono::NaiveTime::MIN))
            .earliest()
            .map(|t| t.to_utc())
            .ok_or_else(|| format!("{d} has no midnight in {zone}"))
    };
    Ok((midnight(first)?, midnight(last + Days::new(1))?))
}

/// Every start lies on one of the local days `first..=last` and carries
/// the zone's offset at that instant.
fn local_days(found: &Found, zone: Tz, first: NaiveDate, last: NaiveDate) -> Step<()> {
    let (from, to) = window(zone, first, last)?;
    for slot in &found.slots {
        let at = slot.start_utc();
        ensure(at >= from && at < to, || {
            format!(
                "start {} lies outside {first}..={last} in {zone}",
                slot.start
            )
        })?;
        let offset = zone.offset_from_utc_datetime(&at.naive_utc()).fix();
        ensure(*slot.start.offset() == offset, || {
            format!("start {} should carry {zone}'s offset {offset}", slot.start)
        })?;
    }
    Ok(())
}

/// Each plan has the service's segments at their offsets and lengths, the
/// pauses between them, and hosts the segment allows.
fn plans_fit(found: &Found, service: &ServiceInfo) -> Step<()> {
    for slot in &found.slots {
        ensure(slot.segments.len() == service.segments.len(), || {
            format!(
                "the plan at {} has {} segments, the service {}",
                slot.start,
                slot.segments.len(),
                service.segments.len()
            )
        })?;
        let pairs = slot.segments.iter().zip(&service.segments);
        for (i, (planned, wanted)) in pairs.enumerate() {
            let minutes = |a: DateTime<chrono::FixedOffset>, b: DateTime<chrono::FixedOffset>| {
                (b - a).num_minutes()
            };
            ensure(
                minutes(slot.start, planned.start) == i64::from(wanted.offset_min)
                    && minutes(planned.start, planned.end) == i64::from(wanted.duration_min)
                    && wanted.allows(planned.host),
                || {
                    format!(
                        "segment {i} of the plan at {} is {}..{} with host {}; the catalogue says +{} min, {} min, hosts {:?}",
                        slot.start,
                        planned.start,
                        planned.end,
                        planned.host,
                        wanted.offset_min,
                        wanted.duration_min,
                        wanted.hosts.iter().map(|s| s.host).collect::<Vec<_>>()
                    )
                },
            )?;
            if let Some(next) = slot.segments.get(i + 1) {
                ensure(
                    minutes(planned.end, next.start) == i64::from(wanted.pause_after_min),
                    || {
                        format!(
                            "the pause after segment {i} at {} is not {} min",
                            slot.start, wanted.pause_after_min
                        )
                    },
                )?;
            }
        }
    }
    Ok(())
}
