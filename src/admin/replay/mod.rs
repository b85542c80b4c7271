//! `calsaga workflows replay`: fold each workflow's log with today's code and
//! compare the result with what the database stores beside it (I7): the
//! projection, the state column and the event count. Any difference is
//! reported per workflow and makes the command fail. The same check runs on
//! a file written by `export` (`replay_file`), which is how the golden logs
//! in `fixtures/logs/` prove that old logs still fold to the same state.
//! Reads only; it never repairs anything.

use std::io::Write;
use std::path::Path;

use serde_json::Value;
use uuid::Uuid;

use super::{AdminError, each_workflow, open_checked, parse_events, workflow};
use crate::saga::{Saga, fold};
use crate::store::{EventRow, WorkflowFilter, WorkflowRow};

/// Differences reported per workflow; a broken projection can differ in
/// every field and the first few say enough.
const DIFFERENCES_MAX: usize = 12;

/// The verdict on one workflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    pub workflow: Uuid,
    pub events: usize,
    /// The state the fold reached (or `?` when it did not finish).
    pub state: String,
    /// Empty when the stored row is exactly the fold of its log.
    pub differences: Vec<String>,
}

/// Replays one workflow (`Some(id)`) or all of them on the database at
/// `db`, prints one line per workflow (and its differences) and fails with
/// `ReplayDiffers` when any differs.
pub fn replay(db: &Path, id: Option<Uuid>, out: &mut dyn Write) -> Result<(), AdminError> {
    let store = open_checked(db)?;
    let mut tally = Tally::new(out);
    match id {
        Some(id) => {
            let (row, events) = workflow(&store, id)?;
            tally.check(&row, &events)?;
        }
        None => each_workflow(&store, &WorkflowFilter::default(), |row| {
            let events = store.events(row.id)?;
            tally.check(&row, &events)
        })?,
    }
    tally.finish()
}

/// `replay` of a file written by `calsaga workflows export`.
pub fn replay_file(path: &Path, out: &mut dyn Write) -> Result<(), AdminError> {
    let logs = super::export::read_file(path)?;
    let mut tally = Tally::new(out);
    for (row, events) in &logs {
        tally.check(row, events)?;
    }
    tally.finish()
}

/// Prints each verdict as it comes and counts them.
struct Tally<'a> {
    out: &'a mut dyn Write,
    replayed: usize,
    differing: usize,
}

impl<'a> Tally<'a> {
    fn new(out: &'a mut dyn Write) -> Tally<'a> {
        Tally {
            out,
            replayed: 0,
            differing: 0,
        }
    }

    fn check(&mut self, row: &WorkflowRow, events: &[EventRow]) -> Result<(), AdminError> {
        let report = replay_log(row, events);
        self.replayed += 1;
        let verdict = if report.differences.is_empty() {
            "ok"
        } else {
            self.differing += 1;
            "DIFFERS"
        };
        writeln!(
            self.out,
            "{verdict:<7}  {}  {} events  {}",
            report.workflow, report.events, report.state
        )?;
        for d in &report.differences {
            writeln!(self.out, "         - {d}")?;
        }
        Ok(())
    }

    fn finish(self) -> Result<(), AdminError> {
        writeln!(
            self.out,
            "replayed {} workflow(s), {} differ",
            self.replayed, self.differing
        )?;
        match self.differing {
            0 => Ok(()),
            workflows => Err(AdminError::ReplayDiffers { workflows }),
        }
    }
}

/// Folds `events` and compares the result with the stored `row`.
pub fn replay_log(row: &WorkflowRow, events: &[EventRow]) -> ReplayReport {
    let mut differences = sequence_differences(row, events);
    let folded = parse_events(events).and_then(|parsed| {
        fold(&parsed).map_err(|e| format!("the log does not fold: {}", e.problem))
    });
    let state = match &folded {
        Ok(saga) => saga.state_name().to_string(),
        Err(_) => "?".to_string(),
    };
    match folded {
        Ok(saga) => differences.extend(projection_differences(row, &saga)),
        Err(problem) => differences.push(problem),
    }
    differences.truncate(DIFFERENCES_MAX);
    ReplayReport {
        workflow: row.id,
        events: events.len(),
        state,
        differences,
    }
}

fn sequence_differences(row: &WorkflowRow, events: &[EventRow]) -> Vec<String> {
    let mut found = Vec::new();
    if row.next_seq != events.len() as u64 {
        found.push(format!(
            "next_seq: stored {}, the log has {} events",
            row.next_seq,
            events.len()
        ));
    }
    if let Some((i, e)) = events.iter().enumerate().find(|(i, e)| e.seq != *i as u64) {
        found.push(format!("event #{i} is numbered {} (a gap)", e.seq));
    }
    found
}

fn projection_differences(row: &WorkflowRow, saga: &Saga) -> Vec<String> {
    let mut found = Vec::new();
    if row.state != saga.state_name() {
        found.push(format!(
            "state: stored {:?}, replay {:?}",
            row.state,
            saga.state_name()
        ));
    }
    let stored: Saga = match serde_json::from_str(&row.projection) {
        Ok(stored) => stored,
        Err(e) => {
            found.push(format!("the stored projection does not parse: {e}"));
            return found;
        }
    };
    if stored != *saga {
        // Both sides through today's serialiser, so only real differences show.
        let (stored, replayed) = (to_value(&stored), to_value(saga));
        diff("$", &stored, &replayed, &mut found);
    }
    found
}

fn to_value(saga: &Saga) -> Value {
    serde_json::to_value(saga).unwrap_or(Value::Null)
}

/// Paths where `stored` and `replayed` differ, with both values.
fn diff(path: &str, stored: &Value, replayed: &Value, found: &mut Vec<String>) {
    if found.len() >= DIFFERENCES_MAX || stored == replayed {
        return;
    }
    match (stored, replayed) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let (x, y) = (
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                );
                diff(&format!("{path}.{k}"), x, y, found);
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff(&format!("{path}[{i}]"), x, y, found);
            }
        }
        _ => found.push(format!("{path}: stored {stored}, replay {replayed}")),
    }
}

#[cfg(test)]
mod tests;
