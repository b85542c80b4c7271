//! Composite availability: the start times at which EVERY segment of a
//! service fits. For each staff option of each segment it asks Cal.com for
//! that event type's free slots over the search window (one call per event
//! type, shared by all segments and services searching the same window).
//! A start is a slot of the first segment; each later segment, at its
//! offset, must lie inside the free time the host's slots cover (offsets
//! such as 70 minutes fall between 15-minute slots, so exact slot matches
//! would miss them), and hosts whose time calsaga itself has claimed for a
//! running or booked saga are skipped. Each start comes with its segment
//! plan (times and host), made by `saga::plan` with `FreeTime::is_free`:
//! the same function and the same data a booking is planned with
//! (`Availability::free_at`), so a start offered here books as offered.
//!
//! Slot sets are cached for a short TTL, bounded in size, and flushed when
//! bookings change (our own requests and Cal.com's webhooks). The search
//! range is whole local days in an IANA time zone (DST-aware), at most
//! `RANGE_DAYS_MAX` days. The engine owns the one `Availability` and
//! shares it with the HTTP layer (which never calls Cal.com itself); it
//! reads Cal.com's slots and calsaga's claims and writes nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Days, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::calcom::wire::SlotsQuery;
use crate::calcom::{CalcomApi, CalcomError};
use crate::catalog::{SERVICE_MINUTES_MAX, Service, StaffOption};
use crate::clock::Clock;
use crate::saga::{self, OriginalBooking, PlanRequest, PlannedSegment};
use crate::store::{ClaimRow, Store, StoreError};

/// The longest search, in local days.
pub const RANGE_DAYS_MAX: u64 = 31;
/// How long fetched slots are trusted.
pub const CACHE_TTL: Duration = Duration::from_secs(30);
/// Slot sets kept at once.
const CACHE_ENTRIES_MAX: usize = 1_024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AvailabilityError {
    #[error("the range ends ({end}) before it starts ({start}); send end on or after start")]
    Reversed { start: NaiveDate, end: NaiveDate },
    #[error("the range spans {days} days; search at most {RANGE_DAYS_MAX} days at a time")]
    TooLarge { days: u64 },
    #[error("{date} does not exist in {zone}; pick dates within the calendar")]
    NoSuchDay { date: NaiveDate, zone: Tz },
    #[error(
        "host {host} does no part of service {service:?}; choose one of {hosts:?} or leave host out"
    )]
    Staff {
        host: u64,
        service: String,
        hosts: Vec<u64>,
    },
    #[error("asking Cal.com for free slots failed: {0}")]
    Calcom(CalcomError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What to search.
#[derive(Debug, Clone)]
pub struct Search<'a> {
    pub service: &'a Service,
    /// First and last local day, inclusive.
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub zone: Tz,
    /// Only this host for every segment they can do.
    pub staff: Option<u64>,
    /// Ask Cal.com again instead of trusting the cache.
    pub fresh: bool,
}

/// One start time at which the whole service fits, with the plan a
/// booking at that time would get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    pub start: DateTime<Utc>,
    pub segments: Vec<PlannedSegment>,
}

/// The answer and whether Cal.com was asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub starts: Vec<Start>,
    /// Every slot set came from the cache.
    pub cached: bool,
}

/// One event type's free time: its slot starts, and the merged spans
/// `[start, end)` those slots cover.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Free {
    pub starts: BTreeSet<DateTime<Utc>>,
    spans: Vec<(DateTime<Utc>, DateTime<Utc>)>,
}

impl Free {
    /// From `(start, end)` slots in any order.
    pub fn from_slots(slots: impl IntoIterator<Item = (DateTime<Utc>, DateTime<Utc>)>) -> Free {
        let mut slots: Vec<_> = slots.into_iter().filter(|(s, e)| s < e).collect();
        slots.sort();
        let mut spans: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
        for (start, end) in &slots {
            match spans.last_mut() {
                Some(last) if *start <= last.1 => last.1 = last.1.max(*end),
                _ => spans.push((*start, *end)),
            }
        }
        Free {
            starts: slots.iter().map(|(s, _)| *s).collect(),
            spans,
        }
    }

    /// The same slot starts with `extra` intervals counted as free too.
    fn with_spans(&self, extra: impl IntoIterator<Item = (DateTime<Utc>, DateTime<Utc>)>) -> Free {
        let merged = Free::from_slots(self.spans.iter().copied().chain(extra));
        Free {
            starts: self.starts.clone(),
            spans: merged.spans,
        }
    }

    /// Whether `[start, end)` is free time.
    pub fn covers(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
        let i = self.spans.partition_point(|(s, _)| *s <= start);
        i > 0 && self.spans[i - 1].1 >= end
    }
}

type Slots = Arc<Free>;

/// (event type, window start, window end).
type CacheKey = (u64, DateTime<Utc>, DateTime<Utc>);

/// Who is free, as far as calsaga can tell: Cal.com's slots per event type
/// and the live claims of sagas. `is_free` is the one answer to "can this
/// staff option take this interval?" for the availability search and for
/// planning a booking, a hold or a reschedule.
#[derive(Debug, Clone, Default)]
pub struct FreeTime {
    /// Free time per event type; None: Cal.com's view is not known (it did
    /// not answer in time, or planning from claims only), so only claims
    /// count and Cal.com itself refuses a time that is not free.
    slots: Option<HashMap<u64, Slots>>,
    claims: Vec<ClaimRow>,
    /// The booking a reschedule replaces: its claims do not block.
    replacing: Option<uuid::Uuid>,
}

impl FreeTime {
    /// Free unless Cal.com's slots say otherwise or another saga holds a
    /// claim on the host then.
    pub fn is_free(&self, o: &StaffOption, start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
        let calcom = self.slots.as_ref().is_none_or(|slots| {
            slots
                .get(&o.event_type_id)
                .is_some_and(|f| f.covers(start, end))
        });
        calcom
            && !self.claims.iter().any(|c| {
                c.host == o.host
                    && c.start < end
                    && start < c.end
                    && Some(c.workflow) != self.replacing
            })
    }

    /// What the store's claims alone say (the replaced booking's excepted).
    fn from_claims(claims: Vec<ClaimRow>, replacing: Option<uuid::Uuid>) -> FreeTime {
        FreeTime {
            slots: None,
            claims,
            replacing,
        }
    }
}

pub struct Availability {
    api: Arc<dyn CalcomApi>,
    store: Store,
    clock: Arc<dyn Clock>,
    slot_interval_min: NonZeroU32,
    cache: Mutex<HashMap<CacheKey, (Instant, Slots)>>,
}

impl Availability {
    pub fn new(
        api: Arc<dyn CalcomApi>,
        store: Store,
        clock: Arc<dyn Clock>,
        slot_interval_min: NonZeroU32,
    ) -> Availability {
        Availability {
            api,
            store,
            clock,
            slot_interval_min,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// A booking of `[start, end)` was made, moved or cancelled in Cal.com:
    /// forgets the cached slot sets it can have changed, and only those, so
    /// one booking does not turn every other day's search cold. A set is
    /// kept when its window ends a day before `start` or begins a day after
    /// `end`: a day either side covers an event type's limits per local day
    /// in any time zone (limits per week or month stay cached until
    /// `CACHE_TTL`, and Cal.com still refuses a time they exclude).
    pub fn invalidate(&self, start: DateTime<Utc>, end: DateTime<Utc>) {
        let day = chrono::Days::new(1);
        let from = start
            .checked_sub_days(day)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let to = end
            .checked_add_days(day)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        self.cache_lock()
            .retain(|(_, f, t), _| *t <= from || to <= *f);
    }

    fn cache_lock(&self) -> std::sync::MutexGuard<'_, HashMap<CacheKey, (Instant, Slots)>> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub async fn search(&self, q: &Search<'_>) -> Result<Found, AvailabilityError> {
        let (from, to) = utc_range(q.start, q.end, q.zone)?;
        let options = options(q.service, q.staff)?;
        // Any segment starts within a day of the service start.
        let window_end = to + chrono::Duration::minutes(i64::from(SERVICE_MINUTES_MAX));
        let mut slots = HashMap::new();
        let mut cached = true;
        for event_type in event_types(&options) {
            let (set, hit) = self
                .slots(event_type, from, window_end, Read::cached(q.fresh))
                .await?;
            cached &= hit;
            slots.insert(event_type, set);
        }
        let claims = self.claims(&options, from, window_end)?;
        let free = FreeTime {
            slots: Some(slots),
            claims,
            replacing: None,
        };
        let starts = compose(
            q.service,
            q.staff,
            &options,
            &free,
            (from, to),
            self.clock.now(),
            self.slot_interval_min,
        );
        Ok(Found { starts, cached })
    }

    /// Who is free for `service` starting at `start`, for planning a
    /// booking: Cal.com's slots (a cached search covering the service when
    /// one is fresh, else one narrow call per event type, waiting at most
    /// `wait`; a Cal.com that does not answer leaves only the claims) and
    /// the live claims. For a reschedule, `replacing`'s claims do not block
    /// and its segments' times count as free for their hosts (Cal.com's
    /// slots show the host busy with the very booking being moved).
    /// Cal.com's slots are read only for the options `asked(segment, option)`
    /// names (those the caller may pick); the others count as busy.
    pub async fn free_at(
        &self,
        service: &Service,
        start: DateTime<Utc>,
        replacing: Option<&OriginalBooking>,
        wait: Option<Duration>,
        asked: impl Fn(usize, &StaffOption) -> bool,
    ) -> Result<FreeTime, StoreError> {
        let (from, to) = service_window(service, start);
        let options: Vec<Vec<StaffOption>> =
            service.segments.iter().map(|s| s.staff.clone()).collect();
        let claims = self.claims(&options, from, to)?;
        let replaced = replacing.map(|o| o.workflow);
        let Some(wait) = wait else {
            return Ok(FreeTime::from_claims(claims, replaced));
        };
        let fetch = async {
            let mut slots = HashMap::new();
            for (k, opts) in options.iter().enumerate() {
                for o in opts.iter().filter(|o| asked(k, o)) {
                    // Cal.com's own answer for the booking being moved: its
                    // slots with that booking's time counted as free.
                    let read = moved_booking(service, start, k, o, replacing)
                        .map_or(Read::Cache, Read::Moving);
                    let (set, _) = self.slots(o.event_type_id, from, to, read).await?;
                    // Every original segment of the host counts as free too.
                    slots.insert(o.event_type_id, with_own_time(&set, o.host, replacing));
                }
            }
            Ok::<_, AvailabilityError>(slots)
        };
        let slots = match tokio::time::timeout(wait, fetch).await {
            Ok(Ok(slots)) => Some(slots),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, service = %service.id, "Cal.com's slots could not be read; planning from calsaga's claims only (Cal.com refuses a time that is not free)");
                None
            }
            Err(_) => {
                tracing::warn!(wait_s = wait.as_secs(), service = %service.id, "Cal.com's slots did not come in time; planning from calsaga's claims only (Cal.com refuses a time that is not free)");
                None
            }
        };
        Ok(FreeTime {
            slots,
            claims,
            replacing: replaced,
        })
    }

    /// Live claims on every host of `options` overlapping `[from, to)`.
    fn claims(
        &self,
        options: &[Vec<StaffOption>],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<ClaimRow>, StoreError> {
        let hosts: BTreeSet<u64> = options.iter().flatten().map(|o| o.host).collect();
        let mut claims = Vec::new();
        for host in hosts {
            claims.extend(self.store.live_claims_overlapping(host, from, to)?);
        }
        Ok(claims)
    }

    /// A fresh cached slot set of the event type whose window covers
    /// `[from, to)` (a booking right after a search reuses the search's).
    fn cached(&self, key: CacheKey) -> Option<Slots> {
        let (event_type, from, to) = key;
        let cache = self.cache_lock();
        // A search asks for its own window again: found without a scan.
        cache
            .get(&key)
            .into_iter()
            .chain(
                cache
                    .iter()
                    .filter(|((e, f, t), _)| *e == event_type && *f <= from && to <= *t)
                    .map(|(_, entry)| entry),
            )
            .find(|(at, _)| at.elapsed() < CACHE_TTL)
            .map(|(_, set)| Arc::clone(set))
    }

    /// One event type's free slot starts in the window, from the cache
    /// when fresh enough; and whether it came from the cache.
    async fn slots(
        &self,
        event_type: u64,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        read: Read<'_>,
    ) -> Result<(Slots, bool), AvailabilityError> {
        let key = (event_type, from, to);
        if read == Read::Cache
            && let Some(set) = self.cached(key)
        {
            return Ok((set, true));
        }
        let moving = match read {
            Read::Moving(uid) => Some(uid.to_owned()),
            Read::Cache | Read::Fresh => None,
        };
        let query = SlotsQuery {
            event_type_id: event_type,
            start: crate::calcom::wire::ts::format(&from),
            end: crate::calcom::wire::ts::format(&to),
            time_zone: None,
            duration_min: None,
            range: true,
            booking_uid_to_reschedule: moving.clone(),
        };
        let days = self
            .api
            .slots(&query)
            .await
            .map_err(AvailabilityError::Calcom)?;
        let instant = |s: &str| DateTime::parse_from_rfc3339(s).ok().map(|t| t.to_utc());
        let set: Slots =
            Arc::new(Free::from_slots(days.values().flatten().filter_map(|s| {
                Some((instant(&s.start)?, instant(s.end.as_deref()?)?))
            })));
        if moving.is_some() {
            // Slots as seen by one reschedule are nobody else's.
            return Ok((set, false));
        }
        let mut cache = self.cache_lock();
        if cache.len() >= CACHE_ENTRIES_MAX {
            cache.retain(|_, (at, _)| at.elapsed() < CACHE_TTL);
            if cache.len() >= CACHE_ENTRIES_MAX {
                cache.clear();
            }
        }
        cache.insert(key, (Instant::now(), Arc::clone(&set)));
        Ok((set, false))
    }
}

/// `[first local midnight, midnight after the last day)` in UTC.
pub fn utc_range(
    start: NaiveDate,
    end: NaiveDate,
    zone: Tz,
) -> Result<(DateTime<Utc>, DateTime<Utc>), AvailabilityError> {
    if end < start {
        return Err(AvailabilityError::Reversed { start, end });
    }
    let days = u64::try_from((end - start).num_days()).unwrap_or(u64::MAX) + 1;
    if days > RANGE_DAYS_MAX {
        return Err(AvailabilityError::TooLarge { days });
    }
    let after = end
        .checked_add_days(Days::new(1))
        .ok_or(AvailabilityError::NoSuchDay { date: end, zone })?;
    Ok((midnight(start, zone)?, midnight(after, zone)?))
}

/// The first instant of a local day (a DST jump at midnight moves it).
fn midnight(date: NaiveDate, zone: Tz) -> Result<DateTime<Utc>, AvailabilityError> {
    let no_such_day = || AvailabilityError::NoSuchDay { date, zone };
    (0..=2)
        .filter_map(|h| NaiveTime::from_hms_opt(h, 0, 0))
        .find_map(|t| zone.from_local_datetime(&date.and_time(t)).earliest())
        .map(|t| t.to_utc())
        .ok_or_else(no_such_day)
}

/// Each segment's allowed options: only `staff` where they can do it.
fn options(
    service: &Service,
    staff: Option<u64>,
) -> Result<Vec<Vec<StaffOption>>, AvailabilityError> {
    let all: Vec<Vec<StaffOption>> = service.segments.iter().map(|s| s.staff.clone()).collect();
    let Some(host) = staff else { return Ok(all) };
    if !all.iter().flatten().any(|o| o.host == host) {
        let hosts: BTreeSet<u64> = all.iter().flatten().map(|o| o.host).collect();
        return Err(AvailabilityError::Staff {
            host,
            service: service.id.clone(),
            hosts: hosts.into_iter().collect(),
        });
    }
    Ok(all
        .into_iter()
        .map(|opts| {
            let theirs: Vec<StaffOption> =
                opts.iter().copied().filter(|o| o.host == host).collect();
            if theirs.is_empty() { opts } else { theirs }
        })
        .collect())
}

fn event_types(options: &[Vec<StaffOption>]) -> BTreeSet<u64> {
    options.iter().flatten().map(|o| o.event_type_id).collect()
}

/// The interval Cal.com's slots must cover to plan `service` at `start`:
/// from one longest segment before it (a segment's free time is the union
/// of slots that may start that much earlier) to the end of the service.
fn service_window(service: &Service, start: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let minutes = |m: u32| chrono::Duration::minutes(i64::from(m));
    let longest = service.segments.iter().map(|s| s.duration_min).max();
    let last = service.segments.len().saturating_sub(1);
    let span = service.offset_min(last) + service.segments.last().map_or(0, |s| s.duration_min);
    (start - minutes(longest.unwrap_or(0)), start + minutes(span))
}

/// How `slots` reads an event type's slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read<'a> {
    /// From the cache when fresh enough.
    Cache,
    /// From Cal.com, refreshing the cache.
    Fresh,
    /// From Cal.com with this booking's time counted as free
    /// (`bookingUidToReschedule`); never cached.
    Moving(&'a str),
}

impl Read<'_> {
    fn cached(fresh: bool) -> Read<'static> {
        if fresh { Read::Fresh } else { Read::Cache }
    }
}

/// The original booking segment `k` would move if option `o` did it from
/// `start`: same host and event type as the original's segment `k`, and
/// overlapping it. Only then does Cal.com's view without that booking
/// differ from the cached one (one uncached read per move, not per option).
fn moved_booking<'a>(
    service: &Service,
    start: DateTime<Utc>,
    k: usize,
    o: &StaffOption,
    replacing: Option<&'a OriginalBooking>,
) -> Option<&'a str> {
    let b = replacing?.segments.get(k)?;
    let minutes = |m: u32| chrono::Duration::minutes(i64::from(m));
    let from = start + minutes(service.offset_min(k));
    let to = from + minutes(service.segments.get(k)?.duration_min);
    let same = b.segment.host == o.host && b.segment.event_type_id == o.event_type_id;
    (same && from < b.segment.end && b.segment.start < to).then_some(b.calcom_uid.as_str())
}

/// `set` plus the times `host` spends on the booking being replaced.
fn with_own_time(set: &Slots, host: u64, replacing: Option<&OriginalBooking>) -> Slots {
    let own: Vec<_> = replacing
        .into_iter()
        .flat_map(|o| &o.segments)
        .filter(|b| b.segment.host == host)
        .map(|b| (b.segment.start, b.segment.end))
        .collect();
    if own.is_empty() {
        return Arc::clone(set);
    }
    Arc::new(set.with_spans(own))
}

/// The starts in `[from, to)` at which every segment has a free option,
/// each planned exactly as a booking at that start would be (`saga::plan`
/// with `free.is_free`); pure, so it is tested without Cal.com.
pub fn compose(
    service: &Service,
    staff: Option<u64>,
    options: &[Vec<StaffOption>],
    free: &FreeTime,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    now: DateTime<Utc>,
    slot_interval_min: NonZeroU32,
) -> Vec<Start> {
    let Some(slots) = &free.slots else {
        return Vec::new();
    };
    let candidates: BTreeSet<DateTime<Utc>> = options
        .first()
        .into_iter()
        .flatten()
        .filter_map(|o| slots.get(&o.event_type_id))
        .flat_map(|f| f.starts.range(from..to).copied())
        .collect();
    candidates
        .into_iter()
        .filter_map(|start| {
            let request = PlanRequest {
                start,
                host: staff,
                segment_hosts: BTreeMap::new(),
                preferred: BTreeMap::new(),
                slot_interval_min,
            };
            let plan = saga::plan(service, &request, now, |o, s, e| free.is_free(o, s, e)).ok()?;
            Some(Start {
                start,
                segments: plan.segments,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn opt(host: u64, event_type_id: u64) -> StaffOption {
        StaffOption {
            host,
            event_type_id,
        }
    }

    /// The shipped colour 30 (Anna) + 40 pause + cut 45 (Ben or Chloe).
    fn colour_and_cut() -> Service {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows");
        let catalog = crate::catalog::Catalog::load_dir(&dir).unwrap();
        catalog.get("colour-and-cut").unwrap().clone()
    }

    /// Slots of `length_min` starting at `times`.
    fn set(length_min: i64, times: &[&str]) -> Slots {
        let length = chrono::Duration::minutes(length_min);
        Arc::new(Free::from_slots(
            times.iter().map(|s| (t(s), t(s) + length)),
        ))
    }

    #[test]
    fn a_start_needs_every_segment_free_at_its_offset_and_picks_a_free_host() {
        let service = colour_and_cut();
        let slots = HashMap::from([
            (
                101,
                set(
                    30,
                    &[
                        "2030-03-05T09:00:00Z",
                        "2030-03-05T10:00:00Z",
                        "2030-03-05T11:00:00Z",
                    ],
                ),
            ),
            // Cuts at +70 min fall between the 15-minute slots: 11:10 is
            // inside Chloe's 11:00 + 11:15 slots, 12:10 inside both hosts'.
            (
                201,
                set(45, &["2030-03-05T12:00:00Z", "2030-03-05T12:15:00Z"]),
            ),
            (
                301,
                set(
                    45,
                    &[
                        "2030-03-05T11:00:00Z",
                        "2030-03-05T11:15:00Z",
                        "2030-03-05T12:00:00Z",
                        "2030-03-05T12:15:00Z",
                    ],
                ),
            ),
        ]);
        let options = options(&service, None).unwrap();
        let search = |claims: Vec<ClaimRow>| {
            let free = FreeTime {
                slots: Some(slots.clone()),
                claims,
                replacing: None,
            };
            compose(
                &service,
                None,
                &options,
                &free,
                (t("2030-03-05T00:00:00Z"), t("2030-03-06T00:00:00Z")),
                t("2030-03-01T00:00:00Z"),
                NonZeroU32::new(15).unwrap(),
            )
        };
        let starts = search(Vec::new());
        let found: Vec<(DateTime<Utc>, u64)> = starts
            .iter()
            .map(|s| (s.start, s.segments[1].host))
            .collect();
        assert_eq!(
            found,
            [
                (t("2030-03-05T10:00:00Z"), 3),
                (t("2030-03-05T11:00:00Z"), 2)
            ]
        );
        assert_eq!(starts[0].segments[1].end, t("2030-03-05T11:55:00Z"));

        let claim = ClaimRow {
            workflow: uuid::Uuid::nil(),
            segment: 1,
            host: 2,
            start: t("2030-03-05T12:00:00Z"),
            end: t("2030-03-05T12:45:00Z"),
            live: true,
        };
        let starts = search(vec![claim]);
        let hosts: Vec<u64> = starts.iter().map(|s| s.segments[1].host).collect();
        assert_eq!(
            hosts,
            [3, 3],
            "a host we claimed is not offered; Chloe takes 12:10"
        );
    }

    #[test]
    fn free_time_is_the_union_of_slots_and_a_gap_breaks_it() {
        let free = set(
            45,
            &[
                "2030-03-05T09:00:00Z",
                "2030-03-05T09:15:00Z",
                "2030-03-05T11:00:00Z",
            ],
        );
        assert!(free.covers(t("2030-03-05T09:10:00Z"), t("2030-03-05T09:55:00Z")));
        assert!(free.covers(t("2030-03-05T09:15:00Z"), t("2030-03-05T10:00:00Z")));
        assert!(!free.covers(t("2030-03-05T09:20:00Z"), t("2030-03-05T10:05:00Z")));
        assert!(!free.covers(t("2030-03-05T08:55:00Z"), t("2030-03-05T09:40:00Z")));
        assert!(!free.covers(t("2030-03-05T10:30:00Z"), t("2030-03-05T11:15:00Z")));
    }

    #[test]
    fn staff_narrows_the_segments_they_do_and_must_do_one() {
        let service = colour_and_cut();
        let only_ben = options(&service, Some(2)).unwrap();
        assert_eq!(only_ben, vec![vec![opt(1, 101)], vec![opt(2, 201)]]);
        assert!(matches!(
            options(&service, Some(4)),
            Err(AvailabilityError::Staff { host: 4, .. })
        ));
    }

    #[test]
    fn ranges_are_local_days_across_dst_and_capped() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        // EU DST starts 2030-03-31: that day has 23 hours.
        let (from, to) = utc_range(d("2030-03-31"), d("2030-03-31"), berlin).unwrap();
        assert_eq!(
            (from, to),
            (t("2030-03-30T23:00:00Z"), t("2030-03-31T22:00:00Z"))
        );
        assert!(matches!(
            utc_range(d("2030-03-02"), d("2030-03-01"), berlin),
            Err(AvailabilityError::Reversed { .. })
        ));
        assert!(utc_range(d("2030-03-01"), d("2030-03-31"), berlin).is_ok());
        assert_eq!(
            utc_range(d("2030-03-01"), d("2030-04-01"), berlin),
            Err(AvailabilityError::TooLarge { days: 32 })
        );
        // Santiago's clocks jump from 00:00 to 01:00 on 2030-09-08.
        let santiago: Tz = "America/Santiago".parse().unwrap();
        let (from, _) = utc_range(d("2030-09-08"), d("2030-09-08"), santiago).unwrap();
        assert_eq!(from.with_timezone(&santiago).date_naive(), d("2030-09-08"));
    }
}
