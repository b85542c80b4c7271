//! The parts of calsaga's API answers the smoke scenarios and the load
//! generator read: services, availability slots, booking views. Only the
//! fields they check; unknown fields are ignored so a newer server still
//! parses. Shapes only: no requests, no judgement.

use chrono::{DateTime, FixedOffset, Utc};
use serde::Deserialize;
use uuid::Uuid;

/// One service of `GET /services`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceInfo {
    pub id: String,
    pub segments: Vec<SegmentInfo>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SegmentInfo {
    pub duration_min: u32,
    pub offset_min: u32,
    pub pause_after_min: u32,
    pub hosts: Vec<HostInfo>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HostInfo {
    pub host: u64,
}

impl SegmentInfo {
    pub fn allows(&self, host: u64) -> bool {
        self.hosts.iter().any(|s| s.host == host)
    }
}

/// `GET /availability`.
#[derive(Debug, Clone, Deserialize)]
pub struct Found {
    pub cached: bool,
    pub slots: Vec<Slot>,
}

/// One start at which the whole service fits, with its plan.
#[derive(Debug, Clone, Deserialize)]
pub struct Slot {
    pub start: DateTime<FixedOffset>,
    pub segments: Vec<SlotSegment>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SlotSegment {
    pub host: u64,
    pub start: DateTime<FixedOffset>,
    pub end: DateTime<FixedOffset>,
}

impl Slot {
    pub fn start_utc(&self) -> DateTime<Utc> {
        self.start.to_utc()
    }

    /// The first segment's host.
    pub fn host(&self) -> u64 {
        self.segments.first().map_or(0, |s| s.host)
    }

    /// Each segment's host, in segment order.
    pub fn hosts(&self) -> Vec<u64> {
        self.segments.iter().map(|s| s.host).collect()
    }
}

/// A booking as `GET /bookings/{id}` shows it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BookingView {
    pub id: Uuid,
    pub status: String,
    pub segments: Vec<SegmentView>,
    pub replaces: Option<Uuid>,
    pub replaced_by: Option<Uuid>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SegmentView {
    pub host: u64,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub calcom_uid: Option<String>,
    pub status: String,
    pub calcom_status: Option<String>,
}

impl SegmentView {
    /// Holds a live Cal.com booking: ours booked, Cal.com not cancelled.
    pub fn is_live(&self) -> bool {
        self.status == "booked" && self.calcom_status.as_deref() != Some("cancelled")
    }
}
