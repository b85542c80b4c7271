//! A booking's status as its users see it, and its lineage. A saga's own
//! state says what that saga did; a person asks what became of the booking:
//! a book saga that ended `booked` was later rescheduled away or cancelled
//! by another saga, and a segment may have been cancelled in Cal.com
//! directly. One word, computed here for every reader (the booking API, the
//! admin API and page, `calsaga workflows list|show`, the bookings gauge of
//! `/metrics`), from the saga, the
//! reschedule and cancel sagas of it, and the mirror and flags of its
//! Cal.com bookings. Read-only.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::saga::{Kind, Phase, Saga};
use crate::store::{
    BookingFlag, BookingQuery, LIST_ROWS_MAX, MirrorEntry, Store, StoreError, WorkflowRow,
};

/// The most upcoming bookings `upcoming` reads: far more than a business
/// has ahead of it, and a bound on one scrape's work if that ever changes.
pub const UPCOMING_MAX: usize = 20_000;

/// The one word a front end or a person needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    Held,
    Booked,
    Cancelled,
    Rescheduled,
    Compensated,
    Expired,
    Failed,
    Broken,
}

impl Status {
    pub const ALL: [Status; 9] = [
        Status::Pending,
        Status::Held,
        Status::Booked,
        Status::Cancelled,
        Status::Rescheduled,
        Status::Compensated,
        Status::Expired,
        Status::Failed,
        Status::Broken,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Held => "held",
            Status::Booked => "booked",
            Status::Cancelled => "cancelled",
            Status::Rescheduled => "rescheduled",
            Status::Compensated => "compensated",
            Status::Expired => "expired",
            Status::Failed => "failed",
            Status::Broken => "broken",
        }
    }

    /// Pure: the status of `saga`, given what changed it and whether any of
    /// its Cal.com bookings left it (flagged, or not accepted in the mirror).
    pub fn of(saga: &Saga, lineage: &Lineage, broken: bool) -> Status {
        if saga.failure.is_some() {
            return Status::Failed;
        }
        let own = match (&saga.kind, &saga.phase) {
            (Kind::Book | Kind::Hold, Phase::Booked) | (Kind::Reschedule, Phase::Rescheduled) => {
                Status::Booked
            }
            (_, Phase::Held { .. }) => Status::Held,
            (_, Phase::Compensated { .. }) => Status::Compensated,
            (_, Phase::Expired) => Status::Expired,
            (Kind::Cancel, Phase::Cancelled) => Status::Cancelled,
            _ => Status::Pending,
        };
        match own {
            Status::Booked if lineage.cancelled_by.is_some() => Status::Cancelled,
            Status::Booked if lineage.replaced_by.is_some() => Status::Rescheduled,
            Status::Booked if broken => Status::Broken,
            own => own,
        }
    }
}

/// The sagas a booking is linked to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Lineage {
    /// The booking this reschedule or cancel saga changes.
    pub replaces: Option<Uuid>,
    /// The reschedule saga that moved this booking.
    pub replaced_by: Option<Uuid>,
    /// The cancel saga that cancelled it.
    pub cancelled_by: Option<Uuid>,
    /// A reschedule or cancel of it that has not finished.
    pub change_in_progress: Option<Uuid>,
}

impl Lineage {
    /// Pure: from `saga` and the reschedule and cancel sagas of it.
    pub fn of<'s>(saga: &Saga, changes: impl IntoIterator<Item = (Uuid, &'s Saga)>) -> Lineage {
        let mut lineage = Lineage {
            replaces: saga.original.as_ref().map(|o| o.workflow),
            ..Lineage::default()
        };
        for (id, change) in changes {
            match (&change.kind, &change.phase) {
                _ if !change.is_terminal() => lineage.change_in_progress = Some(id),
                (Kind::Reschedule, Phase::Rescheduled) => lineage.replaced_by = Some(id),
                (Kind::Cancel, Phase::Cancelled) => lineage.cancelled_by = Some(id),
                _ => {}
            }
        }
        lineage
    }
}

/// What the store knows around one workflow: its Cal.com bookings in the
/// mirror, the flags webhooks raised, and the sagas that changed it.
pub struct Around {
    pub mirror: Vec<MirrorEntry>,
    pub flags: Vec<BookingFlag>,
    changes: Vec<(Uuid, Saga)>,
}

impl Around {
    pub fn read(store: &Store, row: &WorkflowRow, saga: &Saga) -> Result<Around, StatusError> {
        // A cancel saga is never changed by another.
        let rows = store.around(row.id, saga.kind != Kind::Cancel)?;
        let changes = rows
            .changes
            .iter()
            .map(|change| Ok((change.id, parse(change)?)))
            .collect::<Result<_, StatusError>>()?;
        Ok(Around {
            mirror: rows.mirror,
            flags: rows.flags,
            changes,
        })
    }

    /// The status and lineage of `saga` (workflow `id`).
    pub fn standing(&self, id: Uuid, saga: &Saga) -> (Status, Lineage) {
        let lineage = Lineage::of(saga, self.changes.iter().map(|(id, s)| (*id, s)));
        let broken = !self.flags.is_empty()
            || self
                .mirror
                .iter()
                .any(|m| m.workflow == id && m.status != "accepted");
        (Status::of(saga, &lineage, broken), lineage)
    }
}

/// The status and lineage of a stored workflow.
pub fn read(store: &Store, row: &WorkflowRow) -> Result<(Status, Lineage), StatusError> {
    let saga = parse(row)?;
    Ok(Around::read(store, row, &saga)?.standing(row.id, &saga))
}

/// How many bookings whose first segment starts at or after `from` have
/// each status (every status, zeros too), reading at most `UPCOMING_MAX`.
pub fn upcoming(store: &Store, from: DateTime<Utc>) -> Result<Vec<(Status, u64)>, StatusError> {
    let mut counts = [0u64; Status::ALL.len()];
    let (mut after, mut read_so_far) = (None, 0);
    loop {
        let page = store.list_bookings(&BookingQuery {
            from: Some(from),
            to: None,
            after,
            limit: LIST_ROWS_MAX,
        })?;
        for booking in &page {
            let (status, _) = read(store, &booking.workflow)?;
            counts[status as usize] += 1;
            after = Some(booking.cursor());
        }
        read_so_far += page.len();
        if page.len() < LIST_ROWS_MAX || read_so_far >= UPCOMING_MAX {
            break;
        }
    }
    Ok(Status::ALL.into_iter().zip(counts).collect())
}

/// A workflow's stored projection as a saga.
pub fn parse(row: &WorkflowRow) -> Result<Saga, StatusError> {
    serde_json::from_str(&row.projection).map_err(|e| StatusError::Projection {
        workflow: row.id,
        detail: e.to_string(),
    })
}

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(transparent)]
    Store(#[from] StoreError),

    #[error(
        "workflow {workflow}'s stored state does not parse ({detail}); run `calsaga workflows replay {workflow}` to check its log"
    )]
    Projection { workflow: Uuid, detail: String },
}
