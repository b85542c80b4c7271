//! The booking as the API shows it: the saga's plan and progress, joined
//! with what the mirror knows of each Cal.com booking and with the booking's
//! lineage (the reschedule or cancel saga that replaced it, the one it
//! replaces, flags raised by webhooks). `status` is the one word a front end
//! needs: pending, held, booked, cancelled, rescheduled, compensated,
//! expired, failed or broken. Read-only: nothing here writes or waits.

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use serde::{Serialize, Serializer};
use uuid::Uuid;

use super::App;
use super::reply::ApiError;
use crate::catalog::Hosts;
use crate::runtime::EngineError;
use crate::saga::{HostChange, Phase, Saga, SegmentStatus};
use crate::status::{self, Around, Status};
use crate::store::{BookingFlag, WorkflowRow};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BookingBody {
    pub id: Uuid,
    /// `book`, `hold`, `reschedule` or `cancel`.
    pub kind: String,
    pub service: String,
    pub status: Status,
    /// The saga's own state, for support.
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<LocalTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<LocalTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attendee: Option<AttendeeBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    pub segments: Vec<SegmentBody>,
    /// Why it was compensated or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A hold's expiry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<LocalTime>,
    /// The booking a reschedule or cancel saga changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaces: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancelled_by: Option<Uuid>,
    /// A reschedule or cancel of this booking that has not finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_in_progress: Option<Uuid>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<FlagBody>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AttendeeBody {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SegmentBody {
    pub index: u16,
    pub name: String,
    pub host: u64,
    /// The host's name from the catalogue (`workflows/hosts.json`), if any.
    pub host_name: Option<String>,
    pub event_type_id: u64,
    pub start: LocalTime,
    pub end: LocalTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calcom_uid: Option<String>,
    /// Our saga's view of the segment.
    pub status: SegmentStatus,
    /// Cal.com's status as the mirror knows it (`accepted`, `cancelled`...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calcom_status: Option<String>,
    /// The host this segment had before (the booking a reschedule replaces,
    /// or a staff option Cal.com refused) and why it changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_change: Option<HostChangeBody>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostChangeBody {
    pub from: u64,
    pub from_name: Option<String>,
    pub reason: String,
}

impl HostChangeBody {
    fn of(change: HostChange, hosts: &Hosts) -> HostChangeBody {
        HostChangeBody {
            from: change.from,
            from_name: hosts.name(change.from).map(str::to_string),
            reason: change.reason,
        }
    }
}

/// An appointment time as the client reads it: RFC 3339 in the zone the
/// client asked in (a booking's `timeZone`, a search's), with its offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime(pub DateTime<Tz>);

impl LocalTime {
    pub fn new(t: DateTime<Utc>, zone: Tz) -> LocalTime {
        LocalTime(t.with_timezone(&zone))
    }
}

impl Serialize for LocalTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_rfc3339_opts(SecondsFormat::Secs, true))
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FlagBody {
    pub calcom_uid: String,
    pub trigger: String,
    pub policy: String,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_workflow: Option<Uuid>,
    pub at: DateTime<Utc>,
}

impl From<BookingFlag> for FlagBody {
    fn from(f: BookingFlag) -> FlagBody {
        FlagBody {
            calcom_uid: f.calcom_uid,
            trigger: f.trigger,
            policy: f.policy,
            detail: f.detail,
            change_workflow: f.change_workflow,
            at: f.at,
        }
    }
}

/// A stored workflow and its parsed projection.
pub struct Loaded {
    pub row: WorkflowRow,
    pub saga: Saga,
}

/// Loads workflow `id`, or 404.
pub fn load(app: &App, id: Uuid) -> Result<Loaded, ApiError> {
    let row = app
        .engine
        .store()
        .workflow(id)
        .map_err(EngineError::from)?
        .ok_or(EngineError::UnknownWorkflow { id })?;
    parse(row)
}

pub fn parse(row: WorkflowRow) -> Result<Loaded, ApiError> {
    let saga = status::parse(&row)?;
    Ok(Loaded { row, saga })
}

/// Booking `id` as the API shows it, or 404.
pub fn booking(app: &App, id: Uuid) -> Result<BookingBody, ApiError> {
    let loaded = load(app, id)?;
    present(app, loaded)
}

/// Builds the body of a loaded workflow.
pub fn present(app: &App, loaded: Loaded) -> Result<BookingBody, ApiError> {
    let Loaded { row, saga } = loaded;
    let around = Around::read(app.engine.store(), &row, &saga)?;
    let (status, lineage) = around.standing(row.id, &saga);
    let Around { mirror, flags, .. } = around;
    let hosts = app.engine.catalog().hosts();
    let request = saga.request.as_ref();
    // A cancel saga has no request of its own; its times read in UTC.
    let zone = request
        .and_then(|r| r.attendee.time_zone.parse::<Tz>().ok())
        .unwrap_or(Tz::UTC);
    let local = |t: DateTime<Utc>| LocalTime::new(t, zone);
    let segments: Vec<SegmentBody> = saga
        .segments_view()
        .into_iter()
        .map(|v| {
            let calcom_status = v.calcom_uid.as_ref().and_then(|uid| {
                mirror
                    .iter()
                    .find(|m| &m.calcom_uid == uid)
                    .map(|m| m.status.clone())
            });
            SegmentBody {
                index: v.segment.index,
                name: v.segment.name,
                host: v.segment.host,
                host_name: hosts.name(v.segment.host).map(str::to_string),
                event_type_id: v.segment.event_type_id,
                start: local(v.segment.start),
                end: local(v.segment.end),
                calcom_uid: v.calcom_uid,
                status: v.status,
                calcom_status,
                host_change: v.segment.host_change.map(|c| HostChangeBody::of(c, hosts)),
            }
        })
        .collect();
    Ok(BookingBody {
        id: row.id,
        kind: row.kind,
        service: row.service,
        status,
        state: row.state,
        start: segments.first().map(|s| s.start),
        end: segments.last().map(|s| s.end),
        time_zone: request.map(|r| r.attendee.time_zone.clone()),
        attendee: request.map(|r| AttendeeBody {
            name: r.attendee.name.clone(),
            email: r.attendee.email.clone(),
            phone: r.attendee.phone.clone(),
        }),
        notes: request.and_then(|r| r.notes.clone()),
        segments,
        reason: reason(&saga),
        expires_at: match saga.phase {
            Phase::Held { expires_at } => Some(local(expires_at)),
            _ => None,
        },
        replaces: lineage.replaces,
        replaced_by: lineage.replaced_by,
        cancelled_by: lineage.cancelled_by,
        change_in_progress: lineage.change_in_progress,
        flags: flags.into_iter().map(FlagBody::from).collect(),
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

/// Why it needs an admin, else why it was undone.
fn reason(saga: &Saga) -> Option<String> {
    let undone = match &saga.phase {
        Phase::Compensating { reason } | Phase::Compensated { reason } => Some(reason),
        _ => None,
    };
    saga.failure.as_ref().or(undone).cloned()
}
