//! `calsaga catalog sync`: compares the event types the catalogue books
//! (workflows/*.json) with Cal.com's and, when asked, makes Cal.com match.
//! What the catalogue wants of event type N is derived from the segments
//! that book it: owner = the staff option's host, length = the segment's
//! minutes, slug = `<segment>-<minutes>`, title = the segment name with a
//! capital (the salon convention: `cut-45`, "Cut"). A differing length,
//! slug or title is patched; a missing event type is created, and since
//! Cal.com gives it a new id, the line to change in the catalogue is
//! printed: this module never rewrites the user's files. An event type
//! owned by someone else than the host cannot be fixed from here.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::calcom::wire::{CreateEventType, EventType, UpdateEventType};
use crate::calcom::{CalcomError, Client};
use crate::calcom_admin::{AdminCalcom, AdminError, failed};
use crate::catalog::Catalog;

/// What the catalogue needs of one Cal.com event type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub event_type_id: u64,
    pub host: u64,
    pub length_min: u32,
    pub slug: String,
    pub title: String,
    /// `service/segment` of every use, for the messages.
    pub used_by: Vec<String>,
}

/// How Cal.com's event type compares with what is wanted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    InSync,
    /// Cal.com has no event type with this id.
    Missing,
    /// It exists but length, slug or title differ.
    Differs(Vec<FieldDiff>),
    /// It belongs to another user (or to none): the catalogue names the
    /// wrong event type, or the wrong host.
    OtherOwner(Option<u64>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDiff {
    pub field: &'static str,
    pub calcom: String,
    pub catalogue: String,
}

/// One event type of the comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub wanted: Wanted,
    pub status: Status,
}

/// What `apply` did for one row that was not in sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Updated {
        id: u64,
    },
    /// Created with a new id: the catalogue must be edited to use it.
    Created {
        wanted: Wanted,
        created: EventType,
    },
    /// Nothing Cal.com can do: the catalogue must change.
    Skipped {
        id: u64,
        reason: String,
    },
    Failed {
        id: u64,
        error: String,
    },
}

impl Applied {
    /// True when the catalogue and Cal.com still differ after this.
    pub fn remains(&self) -> bool {
        !matches!(self, Applied::Updated { .. })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(
        "catalog: event type {event_type_id} is booked as {first} and as {second}, which disagree on {field}; give each distinct segment its own event type"
    )]
    Conflict {
        event_type_id: u64,
        first: String,
        second: String,
        field: &'static str,
    },
    #[error(transparent)]
    Calcom(#[from] AdminError),
    #[error(
        "{0} event types differ from the catalogue; run `calsaga catalog sync --apply` to fix them in Cal.com"
    )]
    Differs(usize),
    #[error(
        "{0} event types still differ from the catalogue: edit workflows/*.json as printed above (or fix them in Cal.com), then run `calsaga catalog sync` again"
    )]
    Remains(usize),
}

/// The whole command: compare, print the table, and with `apply` fix what
/// Cal.com can fix. Ok only when nothing differs afterwards, so scripts
/// can rely on the exit code.
pub fn run(
    calcom: &AdminCalcom,
    catalog: &Catalog,
    apply_fixes: bool,
    out: &mut impl std::io::Write,
) -> Result<(), SyncError> {
    let rows = calcom.block_on(plan(calcom.client(), wanted(catalog)?))?;
    let _ = write!(out, "{}", table(&rows));
    let differ = differences(&rows);
    if differ == 0 {
        let _ = writeln!(
            out,
            "in sync: every event type the catalogue books matches Cal.com"
        );
        return Ok(());
    }
    if !apply_fixes {
        return Err(SyncError::Differs(differ));
    }
    let applied = calcom.block_on(apply(calcom.client(), &rows));
    let _ = write!(out, "{}", applied_report(&applied));
    match applied.iter().filter(|a| a.remains()).count() {
        0 => Ok(()),
        left => Err(SyncError::Remains(left)),
    }
}

/// Every event type the catalogue books, by id, with what it must be.
pub fn wanted(catalog: &Catalog) -> Result<Vec<Wanted>, SyncError> {
    let mut by_id: BTreeMap<u64, Wanted> = BTreeMap::new();
    for service in catalog.services() {
        for segment in &service.segments {
            let use_name = format!("{}/{}", service.id, segment.name);
            for option in &segment.staff {
                let want = Wanted {
                    event_type_id: option.event_type_id,
                    host: option.host,
                    length_min: segment.duration_min,
                    slug: format!("{}-{}", segment.name, segment.duration_min),
                    title: title(&segment.name),
                    used_by: vec![use_name.clone()],
                };
                match by_id.get_mut(&option.event_type_id) {
                    None => {
                        by_id.insert(option.event_type_id, want);
                    }
                    Some(known) => merge(known, want)?,
                }
            }
        }
    }
    Ok(by_id.into_values().collect())
}

/// Adds another use of the same event type, which must want the same.
fn merge(known: &mut Wanted, other: Wanted) -> Result<(), SyncError> {
    let field = if known.host != other.host {
        Some("the host")
    } else if known.length_min != other.length_min {
        Some("the length")
    } else if known.slug != other.slug {
        Some("the segment name")
    } else {
        None
    };
    if let Some(field) = field {
        return Err(SyncError::Conflict {
            event_type_id: known.event_type_id,
            first: known.used_by.join(", "),
            second: other.used_by.join(", "),
            field,
        });
    }
    known.used_by.extend(other.used_by);
    Ok(())
}

/// `blow-dry` -> `Blow-dry`.
fn title(segment: &str) -> String {
    let mut chars = segment.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// Compares `wanted` with what Cal.com has (one read per event type).
pub async fn plan(client: &Client, wanted: Vec<Wanted>) -> Result<Vec<Row>, SyncError> {
    let mut rows = Vec::with_capacity(wanted.len());
    for want in wanted {
        let found = match client.get_event_type(want.event_type_id).await {
            Ok(found) => Some(found),
            Err(CalcomError::Permanent { status: 404, .. }) => None,
            Err(e) => {
                let doing = format!("reading Cal.com event type {}", want.event_type_id);
                return Err(failed(doing)(e).into());
            }
        };
        let status = compare(&want, found.as_ref());
        rows.push(Row {
            wanted: want,
            status,
        });
    }
    Ok(rows)
}

/// How `found` (None: missing) compares with `want`.
pub fn compare(want: &Wanted, found: Option<&EventType>) -> Status {
    let Some(found) = found else {
        return Status::Missing;
    };
    if found.owner_id != Some(want.host) {
        return Status::OtherOwner(found.owner_id);
    }
    let mut diffs = Vec::new();
    let mut check = |field, calcom: String, catalogue: String| {
        if calcom != catalogue {
            diffs.push(FieldDiff {
                field,
                calcom,
                catalogue,
            });
        }
    };
    check(
        "length",
        found.length_in_minutes.to_string(),
        want.length_min.to_string(),
    );
    check("slug", found.slug.clone(), want.slug.clone());
    check("title", found.title.clone(), want.title.clone());
    if diffs.is_empty() {
        Status::InSync
    } else {
        Status::Differs(diffs)
    }
}

/// Makes Cal.com match the rows that differ: patch what differs, create
/// what is missing. Each row is tried on its own; failures are reported,
/// not fatal, so one refusal does not hide the rest.
pub async fn apply(client: &Client, rows: &[Row]) -> Vec<Applied> {
    let mut done = Vec::new();
    for row in rows {
        let want = &row.wanted;
        let id = want.event_type_id;
        let outcome = match &row.status {
            Status::InSync => continue,
            Status::Differs(_) => match client.update_event_type(id, &update(want)).await {
                Ok(_) => Applied::Updated { id },
                Err(e) => Applied::Failed {
                    id,
                    error: e.to_string(),
                },
            },
            Status::Missing => match client.create_event_type(&create(want)).await {
                Ok(created) => Applied::Created {
                    wanted: want.clone(),
                    created,
                },
                Err(e) => Applied::Failed {
                    id,
                    error: format!(
                        "{e}; if the host already has an event type {:?}, point the catalogue at its id instead",
                        want.slug
                    ),
                },
            },
            Status::OtherOwner(owner) => Applied::Skipped {
                id,
                reason: format!(
                    "it belongs to user {}, not host {}; point the catalogue at an event type of host {}",
                    owner.map_or("none".to_string(), |o| o.to_string()),
                    want.host,
                    want.host
                ),
            },
        };
        done.push(outcome);
    }
    done
}

fn update(want: &Wanted) -> UpdateEventType {
    UpdateEventType {
        length_in_minutes: Some(want.length_min),
        title: Some(want.title.clone()),
        slug: Some(want.slug.clone()),
        ..UpdateEventType::default()
    }
}

fn create(want: &Wanted) -> CreateEventType {
    CreateEventType {
        length_in_minutes: want.length_min,
        title: want.title.clone(),
        slug: want.slug.clone(),
        description: None,
        hidden: None,
    }
}

/// Rows that are not in sync.
pub fn differences(rows: &[Row]) -> usize {
    rows.iter().filter(|r| r.status != Status::InSync).count()
}

/// The comparison as a table, per host then event type.
pub fn table(rows: &[Row]) -> String {
    let mut sorted: Vec<&Row> = rows.iter().collect();
    sorted.sort_by_key(|r| (r.wanted.host, r.wanted.event_type_id));
    let mut out = format!(
        "{:<6} {:<11} {:<12} {}\n",
        "HOST", "EVENT TYPE", "STATUS", "DETAIL"
    );
    for row in sorted {
        let w = &row.wanted;
        let (status, detail) = match &row.status {
            Status::InSync => ("in sync", describe(w)),
            Status::Missing => (
                "missing",
                format!("Cal.com has no such event type; wanted {}", describe(w)),
            ),
            Status::Differs(diffs) => ("differs", diff_text(diffs)),
            Status::OtherOwner(owner) => (
                "other owner",
                format!(
                    "owned by user {}, not host {}",
                    owner.map_or("none".to_string(), |o| o.to_string()),
                    w.host
                ),
            ),
        };
        let _ = writeln!(
            out,
            "{:<6} {:<11} {:<12} {detail} (used by {})",
            w.host,
            w.event_type_id,
            status,
            w.used_by.join(", ")
        );
    }
    out
}

fn describe(w: &Wanted) -> String {
    format!("{} {:?} {} min", w.slug, w.title, w.length_min)
}

fn diff_text(diffs: &[FieldDiff]) -> String {
    diffs
        .iter()
        .map(|d| {
            format!(
                "{}: Cal.com {:?}, catalogue {:?}",
                d.field, d.calcom, d.catalogue
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// What `apply` did, one line each; created event types come with the
/// catalogue edit they need.
pub fn applied_report(applied: &[Applied]) -> String {
    let mut out = String::new();
    for a in applied {
        let _ = match a {
            Applied::Updated { id } => writeln!(out, "updated event type {id}"),
            Applied::Created { wanted, created } => {
                let mut line = format!(
                    "created event type {} for {}; in workflows/*.json ({}) change \"event_type_id\": {} to \"event_type_id\": {}",
                    created.id,
                    describe(wanted),
                    wanted.used_by.join(", "),
                    wanted.event_type_id,
                    created.id
                );
                if created.owner_id != Some(wanted.host) {
                    let _ = write!(
                        line,
                        "; note: Cal.com made it for user {} (the API key's user), not host {}: create it with host {}'s key instead",
                        created
                            .owner_id
                            .map_or("none".to_string(), |o| o.to_string()),
                        wanted.host,
                        wanted.host
                    );
                }
                writeln!(out, "{line}")
            }
            Applied::Skipped { id, reason } => {
                writeln!(out, "left event type {id} alone: {reason}")
            }
            Applied::Failed { id, error } => {
                writeln!(out, "could not fix event type {id}: {error}")
            }
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Segment, Service, StaffOption};

    fn service(id: &str, segment: &str, minutes: u32, host: u64, event_type_id: u64) -> Service {
        Service {
            id: id.into(),
            name: id.into(),
            segments: vec![Segment {
                name: segment.into(),
                duration_min: minutes,
                staff: vec![StaffOption {
                    host,
                    event_type_id,
                }],
                pause_after_min: 0,
            }],
        }
    }

    fn event_type(id: u64, owner: u64, length: u32, slug: &str, title: &str) -> EventType {
        EventType {
            id,
            owner_id: Some(owner),
            length_in_minutes: length,
            title: title.into(),
            slug: slug.into(),
            description: None,
            hidden: false,
            slot_interval: Some(15),
            minimum_booking_notice: None,
        }
    }

    #[test]
    fn the_catalogue_wants_slug_and_title_from_the_segment_and_merges_uses() {
        let catalog = Catalog::from_services(vec![
            service("haircut", "cut", 45, 2, 201),
            service("trim", "cut", 45, 2, 201),
            service("dry", "blow-dry", 30, 3, 302),
        ])
        .unwrap();
        let wanted = wanted(&catalog).unwrap();
        assert_eq!(wanted.len(), 2);
        assert_eq!(
            (wanted[0].slug.as_str(), wanted[0].title.as_str()),
            ("cut-45", "Cut")
        );
        assert_eq!(wanted[0].used_by, ["haircut/cut", "trim/cut"]);
        assert_eq!(wanted[1].title, "Blow-dry");
    }

    #[test]
    fn one_event_type_booked_with_two_lengths_is_a_catalogue_conflict() {
        let catalog = Catalog::from_services(vec![
            service("haircut", "cut", 45, 2, 201),
            service("quick", "cut", 30, 2, 201),
        ])
        .unwrap();
        let e = wanted(&catalog).unwrap_err().to_string();
        assert!(
            e.contains("event type 201") && e.contains("the length"),
            "{e}"
        );
    }

    #[test]
    fn comparison_names_each_differing_field_and_a_foreign_owner() {
        let catalog = Catalog::from_services(vec![service("haircut", "cut", 45, 2, 201)]).unwrap();
        let want = &wanted(&catalog).unwrap()[0];
        assert_eq!(
            compare(want, Some(&event_type(201, 2, 45, "cut-45", "Cut"))),
            Status::InSync
        );
        assert_eq!(compare(want, None), Status::Missing);
        assert_eq!(
            compare(want, Some(&event_type(201, 3, 45, "cut-45", "Cut"))),
            Status::OtherOwner(Some(3))
        );
        let Status::Differs(diffs) = compare(want, Some(&event_type(201, 2, 30, "cut", "Cut")))
        else {
            panic!("expected a difference");
        };
        let fields: Vec<_> = diffs.iter().map(|d| d.field).collect();
        assert_eq!(fields, ["length", "slug"]);
        assert_eq!(
            (diffs[0].calcom.as_str(), diffs[0].catalogue.as_str()),
            ("30", "45")
        );
    }
}
