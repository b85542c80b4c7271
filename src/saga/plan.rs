//! Turning "this service at this time, maybe with this host" into a segment
//! plan: each segment's start and end, and which staff member (and so which
//! Cal.com event type) does it. Pure: whether a host is free is a question the
//! caller answers through a predicate (claims, a slot cache...), so this file
//! never looks at a calendar or a clock.

use std::collections::BTreeMap;
use std::num::NonZeroU32;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::event::OriginalBooking;
use crate::catalog::{Service, StaffOption};

/// One segment as it will be booked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedSegment {
    pub index: u16,
    pub name: String,
    pub host: u64,
    pub event_type_id: u64,
    #[serde(serialize_with = "super::wire_time::serialize")]
    pub start: DateTime<Utc>,
    #[serde(serialize_with = "super::wire_time::serialize")]
    pub end: DateTime<Utc>,
    /// Gap before the next segment (kept so the log shows the whole service).
    pub pause_after_min: u32,
    /// The segment's other staff options, in catalogue order (empty: the
    /// host was pinned, or nobody else does the segment): the options a
    /// refused segment may fail over to, each at most once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<StaffOption>,
    /// Set when this segment's host is not the one it had before: the
    /// booking a reschedule replaces, or the option Cal.com refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_change: Option<HostChange>,
    /// A reschedule's segment that keeps its host and event type and
    /// overlaps its own original: Cal.com cannot book the new time while
    /// the original holds the host, so the saga moves this Cal.com booking
    /// (`POST /v2/bookings/{uid}/reschedule`) instead of creating one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moves: Option<String>,
}

/// Who a segment had before and why it has another host now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostChange {
    pub from: u64,
    pub reason: String,
}

/// The service snapshot a saga books.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub service_id: String,
    pub service_name: String,
    pub segments: Vec<PlannedSegment>,
}

/// A host's busy interval that one saga holds against every other saga (the
/// store's slot claims; Cal.com reservations do not stop other clients).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SlotClaim {
    pub host: u64,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Plan {
    /// For a reschedule of `original`: every segment that keeps its
    /// original's host and event type and overlaps its original's time
    /// moves that booking; the others are made before the originals go.
    pub fn mark_moves(&mut self, original: &OriginalBooking) {
        for (p, o) in self.segments.iter_mut().zip(&original.segments) {
            let same_staff = p.host == o.segment.host && p.event_type_id == o.segment.event_type_id;
            let overlaps = p.start < o.segment.end && o.segment.start < p.end;
            p.moves = (same_staff && overlaps).then(|| o.calcom_uid.clone());
        }
    }

    /// The intervals to claim in the same transaction as the request.
    pub fn claims(&self) -> Vec<SlotClaim> {
        self.segments
            .iter()
            .map(|s| SlotClaim {
                host: s.host,
                start: s.start,
                end: s.end,
            })
            .collect()
    }
}

/// What the customer asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRequest {
    pub start: DateTime<Utc>,
    /// A host wanted for every segment they can do; the other segments go to
    /// the first free allowed staff member.
    pub host: Option<u64>,
    /// Hosts pinned per segment index (overrides `host` for that segment).
    pub segment_hosts: BTreeMap<u16, u64>,
    /// Hosts to keep per segment index when they are free (a reschedule
    /// keeps the people); a busy one gives way to the first free option.
    pub preferred: BTreeMap<u16, u64>,
    /// Cal.com's `slotInterval` of the event types (15 in the shipped catalogue).
    pub slot_interval_min: NonZeroU32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    StartInPast {
        start: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    StartNotAligned {
        start: DateTime<Utc>,
        slot_interval_min: u32,
    },
    StartOutOfRange {
        start: DateTime<Utc>,
    },
    UnknownHost {
        host: u64,
        service: String,
        hosts: Vec<u64>,
    },
    NoSuchSegment {
        service: String,
        segment: u16,
        segments: usize,
    },
    HostNotAllowed {
        segment: u16,
        name: String,
        host: u64,
        allowed: Vec<u64>,
    },
    HostBusy {
        segment: u16,
        name: String,
        host: u64,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
    NoFreeHost {
        segment: u16,
        name: String,
        tried: Vec<u64>,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
}

impl PlanError {
    /// What failed and what to do, each host named by `label` (the engine
    /// passes the catalogue's "3 (Chloe Stylist)"; `Display` the bare id).
    pub fn describe(&self, label: &dyn Fn(u64) -> String) -> String {
        let list = |hosts: &[u64]| {
            hosts
                .iter()
                .map(|&h| label(h))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            PlanError::StartInPast { start, now } => {
                format!("start {start} is not in the future (now {now}); pick a later start")
            }
            PlanError::StartNotAligned {
                start,
                slot_interval_min,
            } => format!(
                "start {start} is not on a {slot_interval_min}-minute slot boundary; pick a start from the availability search"
            ),
            PlanError::StartOutOfRange { start } => format!(
                "start {start} is too far in the future to plan; pick a start in the coming months"
            ),
            PlanError::UnknownHost {
                host,
                service,
                hosts,
            } => format!(
                "host {} does not do any part of service {service:?}; choose one of {} or leave the host out",
                label(*host),
                list(hosts)
            ),
            PlanError::NoSuchSegment {
                service,
                segment,
                segments,
            } => format!(
                "service {service:?} has {segments} segments, so there is no segment {segment} to pin a host to; use indexes 0 to {}",
                segments.saturating_sub(1)
            ),
            PlanError::HostNotAllowed {
                segment,
                name,
                host,
                allowed,
            } => format!(
                "host {} cannot do segment {segment} ({name:?}); choose one of {} for it",
                label(*host),
                list(allowed)
            ),
            PlanError::HostBusy {
                segment,
                name,
                host,
                start,
                end,
            } => format!(
                "host {} is not free for segment {segment} ({name:?}) from {start} to {end}; choose another time or host",
                label(*host)
            ),
            PlanError::NoFreeHost {
                segment,
                name,
                tried,
                start,
                end,
            } => format!(
                "no allowed host ({}) is free for segment {segment} ({name:?}) from {start} to {end}; choose another time",
                list(tried)
            ),
        }
    }
}

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe(&|h| h.to_string()))
    }
}

impl std::error::Error for PlanError {}

/// Plans `service` for `request`. `is_free(option, start, end)` says whether
/// that staff member can take that interval; it is asked only for hosts the
/// plan may pick.
pub fn plan(
    service: &Service,
    request: &PlanRequest,
    now: DateTime<Utc>,
    mut is_free: impl FnMut(&StaffOption, DateTime<Utc>, DateTime<Utc>) -> bool,
) -> Result<Plan, PlanError> {
    check_start(request, now)?;
    check_hosts(service, request)?;
    let mut segments = Vec::with_capacity(service.segments.len());
    for (k, seg) in service.segments.iter().enumerate() {
        let index = segment_index(k);
        let start = after(request.start, service.offset_min(k))?;
        let end = after(start, seg.duration_min)?;
        let (option, pinned) = choose(seg, index, request, start, end, &mut is_free)?;
        let alternatives = if pinned {
            Vec::new()
        } else {
            seg.staff.iter().copied().filter(|o| *o != option).collect()
        };
        segments.push(PlannedSegment {
            index,
            name: seg.name.clone(),
            host: option.host,
            event_type_id: option.event_type_id,
            start,
            end,
            pause_after_min: seg.pause_after_min,
            alternatives,
            host_change: request
                .preferred
                .get(&index)
                .filter(|from| **from != option.host)
                .map(|&from| HostChange {
                    from,
                    reason: if pinned {
                        format!("the request asked for host {}", option.host)
                    } else {
                        format!("host {from} is not free from {start} to {end}")
                    },
                }),
            moves: None,
        });
    }
    Ok(Plan {
        service_id: service.id.clone(),
        service_name: service.name.clone(),
        segments,
    })
}

fn check_start(request: &PlanRequest, now: DateTime<Utc>) -> Result<(), PlanError> {
    if request.start <= now {
        return Err(PlanError::StartInPast {
            start: request.start,
            now,
        });
    }
    let interval_s = i64::from(request.slot_interval_min.get()) * 60;
    let aligned = request.start.timestamp_subsec_nanos() == 0
        && request.start.timestamp().rem_euclid(interval_s) == 0;
    if !aligned {
        return Err(PlanError::StartNotAligned {
            start: request.start,
            slot_interval_min: request.slot_interval_min.get(),
        });
    }
    Ok(())
}

fn check_hosts(service: &Service, request: &PlanRequest) -> Result<(), PlanError> {
    let hosts: Vec<u64> = {
        let mut all: Vec<u64> = service
            .segments
            .iter()
            .flat_map(|s| s.staff.iter().map(|o| o.host))
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    };
    if let Some(host) = request.host.filter(|h| !hosts.contains(h)) {
        return Err(PlanError::UnknownHost {
            host,
            service: service.id.clone(),
            hosts,
        });
    }
    if let Some(&segment) = request
        .segment_hosts
        .keys()
        .find(|k| usize::from(**k) >= service.segments.len())
    {
        return Err(PlanError::NoSuchSegment {
            service: service.id.clone(),
            segment,
            segments: service.segments.len(),
        });
    }
    Ok(())
}

fn pinned_option(
    seg: &crate::catalog::Segment,
    index: u16,
    host: u64,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    is_free: &mut impl FnMut(&StaffOption, DateTime<Utc>, DateTime<Utc>) -> bool,
) -> Result<StaffOption, PlanError> {
    let Some(option) = seg.staff.iter().find(|o| o.host == host) else {
        return Err(PlanError::HostNotAllowed {
            segment: index,
            name: seg.name.clone(),
            host,
            allowed: seg.staff.iter().map(|o| o.host).collect(),
        });
    };
    if !is_free(option, start, end) {
        return Err(PlanError::HostBusy {
            segment: index,
            name: seg.name.clone(),
            host,
            start,
            end,
        });
    }
    Ok(*option)
}

/// The segment's staff option, and whether the customer pinned it: a pin
/// for this segment, else the host wanted for every segment they can do
/// (busy is an error: the customer asked for them), else the preferred
/// host when free, else the first free allowed option.
fn choose(
    seg: &crate::catalog::Segment,
    index: u16,
    request: &PlanRequest,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    is_free: &mut impl FnMut(&StaffOption, DateTime<Utc>, DateTime<Utc>) -> bool,
) -> Result<(StaffOption, bool), PlanError> {
    if let Some(host) = pinned_host(seg, index, request) {
        return Ok((pinned_option(seg, index, host, start, end, is_free)?, true));
    }
    let kept = request
        .preferred
        .get(&index)
        .and_then(|h| seg.staff.iter().find(|o| o.host == *h));
    kept.into_iter()
        .chain(seg.staff.iter())
        .find(|o| is_free(o, start, end))
        .map(|o| (*o, false))
        .ok_or_else(|| PlanError::NoFreeHost {
            segment: index,
            name: seg.name.clone(),
            tried: seg.staff.iter().map(|o| o.host).collect(),
            start,
            end,
        })
}

/// The host `request` pins segment `index` to: its own pin, else the
/// request's host where that host does the segment.
fn pinned_host(seg: &crate::catalog::Segment, index: u16, request: &PlanRequest) -> Option<u64> {
    let does = |h: &u64| seg.staff.iter().any(|o| o.host == *h);
    request
        .segment_hosts
        .get(&index)
        .copied()
        .or(request.host.filter(does))
}

/// Whether `plan` may give segment `index` to `option`: the only ones whose
/// free time it can ask about, so the only ones worth reading from Cal.com.
pub fn may_pick(
    seg: &crate::catalog::Segment,
    index: u16,
    request: &PlanRequest,
    option: &StaffOption,
) -> bool {
    pinned_host(seg, index, request).is_none_or(|host| option.host == host)
}

/// `at` plus `min` minutes, refused instead of overflowing near the end of time.
fn after(at: DateTime<Utc>, min: u32) -> Result<DateTime<Utc>, PlanError> {
    at.checked_add_signed(Duration::minutes(i64::from(min)))
        .ok_or(PlanError::StartOutOfRange { start: at })
}

/// Catalogue services have at most `SEGMENTS_MAX` (16) segments.
fn segment_index(k: usize) -> u16 {
    u16::try_from(k).unwrap_or(u16::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Segment;
    use chrono::TimeZone;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn colour_and_cut() -> Service {
        let opt = |host, event_type_id| StaffOption {
            host,
            event_type_id,
        };
        Service {
            id: "colour-and-cut".into(),
            name: "Colour and cut".into(),
            segments: vec![
                Segment {
                    name: "colour".into(),
                    duration_min: 30,
                    staff: vec![opt(1, 101)],
                    pause_after_min: 40,
                },
                Segment {
                    name: "cut".into(),
                    duration_min: 45,
                    staff: vec![opt(2, 201), opt(3, 301)],
                    pause_after_min: 0,
                },
            ],
        }
    }

    fn request(host: Option<u64>, pins: &[(u16, u64)]) -> PlanRequest {
        PlanRequest {
            start: at("2030-03-05T09:00:00Z"),
            host,
            segment_hosts: pins.iter().copied().collect(),
            preferred: BTreeMap::new(),
            slot_interval_min: NonZeroU32::new(15).unwrap(),
        }
    }

    const NOW: &str = "2030-03-01T00:00:00Z";

    /// Plans with every host free except those in `busy`.
    fn check(request: &PlanRequest, busy: &[u64]) -> Result<Plan, PlanError> {
        plan(&colour_and_cut(), request, at(NOW), |o, _, _| {
            !busy.contains(&o.host)
        })
    }

    fn hosts(plan: &Plan) -> Vec<(u64, u64)> {
        plan.segments
            .iter()
            .map(|s| (s.host, s.event_type_id))
            .collect()
    }

    #[test]
    fn segments_start_at_their_offsets_with_pauses_between() {
        let p = check(&request(None, &[]), &[]).unwrap();
        assert_eq!(p.segments[0].start, at("2030-03-05T09:00:00Z"));
        assert_eq!(p.segments[0].end, at("2030-03-05T09:30:00Z"));
        assert_eq!(p.segments[1].start, at("2030-03-05T10:10:00Z"));
        assert_eq!(p.segments[1].end, at("2030-03-05T10:55:00Z"));
        assert_eq!(hosts(&p), vec![(1, 101), (2, 201)]);
        assert_eq!(
            p.claims(),
            vec![
                SlotClaim {
                    host: 1,
                    start: at("2030-03-05T09:00:00Z"),
                    end: at("2030-03-05T09:30:00Z")
                },
                SlotClaim {
                    host: 2,
                    start: at("2030-03-05T10:10:00Z"),
                    end: at("2030-03-05T10:55:00Z")
                },
            ]
        );
    }

    #[test]
    fn hosts_follow_the_wish_where_allowed_and_fall_back_to_the_first_free() {
        let p = check(&request(Some(3), &[]), &[]).unwrap();
        assert_eq!(hosts(&p), vec![(1, 101), (3, 301)]);
        let p = check(&request(None, &[]), &[2]).unwrap();
        assert_eq!(hosts(&p), vec![(1, 101), (3, 301)]);
        let p = check(&request(Some(2), &[(1, 3)]), &[]).unwrap();
        assert_eq!(hosts(&p), vec![(1, 101), (3, 301)], "a pin beats the wish");
    }

    #[test]
    fn unpinned_segments_keep_their_other_options_for_failover_and_pinned_ones_none() {
        let p = check(&request(None, &[]), &[]).unwrap();
        assert_eq!(p.segments[0].alternatives, vec![]);
        assert_eq!(
            p.segments[1].alternatives,
            vec![StaffOption {
                host: 3,
                event_type_id: 301
            }]
        );
        let p = check(&request(None, &[]), &[2]).unwrap();
        assert_eq!(p.segments[1].host, 3);
        assert_eq!(
            p.segments[1].alternatives[0].host, 2,
            "Cal.com may know better"
        );
        for pinned in [request(Some(3), &[]), request(None, &[(1, 3)])] {
            let p = check(&pinned, &[]).unwrap();
            assert!(
                p.segments[1].alternatives.is_empty(),
                "a pin never fails over"
            );
        }
    }

    #[test]
    fn a_preferred_host_is_kept_when_free_and_gives_way_when_busy() {
        let mut keep_chloe = request(None, &[]);
        keep_chloe.preferred = BTreeMap::from([(1, 3)]);
        let p = check(&keep_chloe, &[]).unwrap();
        assert_eq!(hosts(&p), vec![(1, 101), (3, 301)]);
        assert_eq!(p.segments[1].alternatives[0].host, 2);
        let p = check(&keep_chloe, &[3]).unwrap();
        assert_eq!(hosts(&p), vec![(1, 101), (2, 201)]);
        keep_chloe.host = Some(2);
        let p = check(&keep_chloe, &[]).unwrap();
        assert_eq!(
            hosts(&p),
            vec![(1, 101), (2, 201)],
            "a wish beats a preference"
        );
    }

    #[test]
    fn the_free_predicate_is_asked_about_the_segment_interval() {
        let mut asked = Vec::new();
        plan(
            &colour_and_cut(),
            &request(None, &[]),
            at(NOW),
            |o, s, e| {
                asked.push((o.host, s, e));
                true
            },
        )
        .unwrap();
        assert_eq!(
            asked,
            vec![
                (1, at("2030-03-05T09:00:00Z"), at("2030-03-05T09:30:00Z")),
                (2, at("2030-03-05T10:10:00Z"), at("2030-03-05T10:55:00Z")),
            ]
        );
    }

    #[test]
    fn every_plan_error_says_what_failed_and_what_to_do() {
        let mut late = request(None, &[]);
        late.start = at("2030-03-05T09:10:00Z");
        let mut past = request(None, &[]);
        past.start = at("2030-02-01T09:00:00Z");
        let mut end_of_time = request(None, &[]);
        // The cut would start after the last instant chrono can represent.
        end_of_time.start = Utc.with_ymd_and_hms(262_142, 12, 31, 23, 0, 0).unwrap();
        let cases: Vec<(PlanRequest, &[u64], &str)> = vec![
            (past, &[], "is not in the future"),
            (end_of_time, &[], "too far in the future"),
            (late, &[], "not on a 15-minute slot boundary"),
            (request(Some(9), &[]), &[], "host 9 does not do any part"),
            (request(None, &[(5, 2)]), &[], "no segment 5 to pin"),
            (
                request(None, &[(0, 2)]),
                &[],
                "host 2 cannot do segment 0 (\"colour\"); choose one of 1",
            ),
            (
                request(Some(3), &[]),
                &[3],
                "host 3 is not free for segment 1 (\"cut\")",
            ),
            (
                request(None, &[]),
                &[2, 3],
                "no allowed host (2, 3) is free for segment 1",
            ),
        ];
        for (req, busy, expected) in cases {
            let e = check(&req, busy).unwrap_err().to_string();
            assert!(e.contains(expected), "expected {expected:?} in {e}");
            assert!(e.contains("; "), "{e} must say what to do");
        }
    }
}
