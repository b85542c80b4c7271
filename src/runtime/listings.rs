//! One Cal.com listing per event type and day, shared by the reconciles that
//! need it at the same time. A mass recovery reconciles one uncertain create
//! per interrupted saga; each used to list its own segment's hour, which on
//! a real account (120 requests a minute per key) turned 10,000 sagas into
//! 10,000 requests. Sagas of one day and event type now read one listing.
//!
//! Sharing keeps a reconcile exactly as sound as its own listing: a
//! reconcile joins only a listing begun strictly after its uncertain create
//! was sent (so a clock that stands still never lets a listing begun before
//! the create stand for one begun after it); the settle check uses the
//! listing's start (`Listed::at`), so a "not found" is the truth only from
//! a listing begun once the create could no longer land, and a reconcile
//! past that point joins only such a listing; and a
//! listing serves for `REUSE` after it began, so what it says of a
//! booking's status is no older than a listing of its own a moment later.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use tokio::sync::OnceCell;

use crate::calcom::wire::{Booking, BookingFilter};
use crate::calcom::{CalcomApi, CalcomError};
use crate::saga::PlannedSegment;

/// Bookings per page: Cal.com's maximum.
const PAGE_ROWS: u32 = 250;
/// Pages read before giving up; with filters ignored a busy account could
/// page forever, and a reconcile that fails is retried later.
const PAGES_MAX: u32 = 40;
/// How long after it began a listing may serve another reconcile.
const REUSE: Duration = Duration::seconds(2);
/// Bookings a little outside the window still count (Cal.com's filters are
/// not trusted to be exact; every condition is checked again by the caller).
const MARGIN: Duration = Duration::hours(1);

/// The bookings of one window, and when the listing began.
#[derive(Debug, Clone)]
pub struct Listed {
    pub bookings: Arc<Vec<Booking>>,
    pub at: DateTime<Utc>,
}

/// The create a reconcile is about.
#[derive(Debug, Clone, Copy)]
pub struct Uncertain {
    /// When its intent was committed (it was sent after).
    pub sent: DateTime<Utc>,
    /// From when it can no longer land at Cal.com.
    pub settled: DateTime<Utc>,
}

impl Uncertain {
    /// Whether a reconcile at `now` may take a listing begun `at`: begun
    /// after the create was sent, and once it settled if `now` is past that
    /// (an earlier one would only be looked at again, at once).
    fn may_use(self, at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        at > self.sent && (at >= self.settled || now < self.settled)
    }
}

type Key = (u64, NaiveDate);

struct Shared {
    at: DateTime<Utc>,
    result: OnceCell<Result<Arc<Vec<Booking>>, CalcomError>>,
}

impl Shared {
    /// Whether it may still serve another reconcile at `now`.
    fn reusable(&self, now: DateTime<Utc>) -> bool {
        now - self.at <= REUSE
    }
}

/// Listings begun lately. Those past their reuse are dropped when the map
/// has doubled since it was last pruned, not on every look: a mass
/// recovery looks thousands of times a second, over as many days.
#[derive(Default)]
struct Table {
    by_key: HashMap<Key, Arc<Shared>>,
    prune_at: usize,
}

/// The map is never pruned below this many listings.
const PRUNE_MIN: usize = 64;

#[derive(Default)]
pub struct Listings {
    shared: Mutex<Table>,
    /// Reconciles waiting for a listing another one began: their Cal.com
    /// call is that one's (the simulator counts them as parked with it).
    joined: AtomicUsize,
}

/// Counts a reconcile in `Listings::joined` while it waits, however the
/// wait ends.
struct Joined<'a>(&'a AtomicUsize);

impl<'a> Joined<'a> {
    fn new(count: &'a AtomicUsize) -> Joined<'a> {
        count.fetch_add(1, Ordering::SeqCst);
        Joined(count)
    }
}

impl Drop for Joined<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Listings {
    /// Every booking of `seg`'s event type around its window, oldest first:
    /// the listing of its whole day begun up to `REUSE` ago that it may use
    /// for `uncertain`, else one begun now; a listing of its own when the
    /// segment runs into the next day.
    pub async fn around(
        &self,
        api: &dyn CalcomApi,
        seg: &PlannedSegment,
        now: DateTime<Utc>,
        uncertain: Option<Uncertain>,
    ) -> Result<Listed, CalcomError> {
        let day = seg.start.date_naive();
        let day_start = day.and_time(chrono::NaiveTime::MIN).and_utc();
        let day_end = day_start + Duration::days(1);
        if seg.end > day_end {
            return Ok(Listed {
                bookings: Arc::new(of_segment(api, seg).await?),
                at: now,
            });
        }
        let key = (seg.event_type_id, day);
        let (shared, begun_here) = self.join(key, now, uncertain);
        let window = (day_start - MARGIN, day_end + MARGIN);
        let _joined = (!begun_here).then(|| Joined::new(&self.joined));
        let result = shared
            .result
            .get_or_init(|| async {
                read_all(api, seg.event_type_id, window, seg)
                    .await
                    .map(Arc::new)
            })
            .await;
        if result.is_err() {
            // Those already waiting share the failure; a later look (a
            // retry, an admin's resume) asks Cal.com again.
            self.forget(key, &shared);
        }
        let bookings = result.clone()?;
        Ok(Listed {
            bookings,
            at: shared.at,
        })
    }

    /// Reconciles waiting right now for a listing another one began.
    pub fn joined(&self) -> usize {
        self.joined.load(Ordering::SeqCst)
    }

    fn forget(&self, key: Key, listing: &Arc<Shared>) {
        let mut table = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        if table
            .by_key
            .get(&key)
            .is_some_and(|s| Arc::ptr_eq(s, listing))
        {
            table.by_key.remove(&key);
        }
    }

    /// The listing of `key` begun within `REUSE` that may serve for
    /// `uncertain`, or a new one begun now (then `true`).
    fn join(
        &self,
        key: Key,
        now: DateTime<Utc>,
        uncertain: Option<Uncertain>,
    ) -> (Arc<Shared>, bool) {
        let mut table = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        if table.by_key.len() >= table.prune_at {
            table.by_key.retain(|_, s| s.reusable(now));
            table.prune_at = (2 * table.by_key.len()).max(PRUNE_MIN);
        }
        match table.by_key.get(&key) {
            Some(s) if s.reusable(now) && uncertain.is_none_or(|u| u.may_use(s.at, now)) => {
                (Arc::clone(s), false)
            }
            _ => {
                let fresh = Arc::new(Shared {
                    at: now,
                    result: OnceCell::new(),
                });
                table.by_key.insert(key, Arc::clone(&fresh));
                (fresh, true)
            }
        }
    }
}

/// Every booking of `seg`'s event type around its own window, oldest
/// first, read for this caller alone.
pub async fn of_segment(
    api: &dyn CalcomApi,
    seg: &PlannedSegment,
) -> Result<Vec<Booking>, CalcomError> {
    let window = (seg.start - MARGIN, seg.end + MARGIN);
    read_all(api, seg.event_type_id, window, seg).await
}

/// Every booking of the event type in `[from, to)`, oldest first, page by
/// page.
async fn read_all(
    api: &dyn CalcomApi,
    event_type_id: u64,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    seg: &PlannedSegment,
) -> Result<Vec<Booking>, CalcomError> {
    let mut filter = BookingFilter {
        event_type_ids: vec![event_type_id],
        after_start: Some(from),
        before_end: Some(to),
        take: Some(PAGE_ROWS),
        skip: Some(0),
        sort_start: Some("asc".into()),
        ..BookingFilter::default()
    };
    let mut found: Vec<Booking> = Vec::new();
    for _ in 0..PAGES_MAX {
        let page = api.list_bookings(&filter).await?;
        let read = u32::try_from(page.bookings.len()).unwrap_or(u32::MAX);
        found.extend(page.bookings);
        if !page.pagination.has_next_page || read == 0 {
            found.sort_by_key(|b| (b.created_at, b.id));
            return Ok(found);
        }
        filter.skip = Some(filter.skip.unwrap_or(0).saturating_add(read));
    }
    Err(CalcomError::Retryable {
        after: None,
        reason: format!(
            "reading the bookings around segment {} ({}) took {PAGES_MAX} pages without reaching the end",
            seg.index, seg.start
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        "2030-03-04T09:00:00Z".parse().unwrap()
    }

    fn day(n: i64) -> NaiveDate {
        NaiveDate::from_ymd_opt(2030, 3, 4).unwrap() + Duration::days(n)
    }

    #[test]
    fn a_listing_past_its_reuse_is_not_joined_before_the_map_is_pruned() {
        let listings = Listings::default();
        let (first, begun) = listings.join((7, day(0)), t0(), None);
        assert!(begun);
        let (again, begun) = listings.join((7, day(0)), t0() + REUSE, None);
        assert!(!begun && Arc::ptr_eq(&first, &again), "within its reuse");
        let late = t0() + REUSE + Duration::milliseconds(1);
        let (fresh, begun) = listings.join((7, day(0)), late, None);
        assert!(begun && !Arc::ptr_eq(&first, &fresh), "past its reuse");
    }

    #[test]
    fn a_mass_recovery_over_many_days_keeps_only_about_the_live_listings() {
        let listings = Listings::default();
        // A new day every 10 ms: 201 listings are within their reuse at once.
        for n in 0..10_000 {
            listings.join((7, day(n)), t0() + Duration::milliseconds(10 * n), None);
            let held = listings.shared.lock().unwrap().by_key.len();
            assert!(held <= 2 * 201, "{held} listings held after {n}");
        }
    }
}
