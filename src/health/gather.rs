//! Reading the figures of one run: the local ones from the store (saga
//! activity, the webhook inbox, recorded Cal.com calls) and the remote ones
//! from a few bounded Cal.com reads (one probe, one lookup per catalogue
//! event type, the database sync's pages). Every Cal.com phase has a
//! deadline; a failure becomes a check's status, never a panic or an error
//! of the run. Judging the figures is `evaluate`'s job, not this file's.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::evaluate::{
    self, ActivityFigures, CallFigures, EventTypeFigures, EventTypeProblem, Probe, WebhookFigures,
};
use super::{Check, CheckResult, Health, Report, Status, sync, within};
use crate::calcom::wire::BookingFilter;
use crate::calcom::{CalcomApi, CalcomError, Client};
use crate::catalog::Catalog;
use crate::store::{Store, StoreError};

/// Sagas waiting for an admin named in the activity check.
const FAILED_IDS_MAX: usize = 10;

/// Runs every check and rolls them up.
pub async fn report(health: &Health) -> Report {
    let inner = &health.inner;
    let started = Instant::now();
    let checked_at = inner.clock.now();
    let t = &inner.config.thresholds;
    let probe = match &inner.calcom {
        Some(client) => probe(client).await,
        None => Probe::NotConfigured,
    };
    // Without a usable answer the other Cal.com reads would only wait out
    // their own deadlines; they say why they did not look instead.
    let reachable = match &probe {
        Probe::Answered { .. } => inner.calcom.as_deref(),
        _ => None,
    };
    let unverified = unverified_reason(&probe);
    let mut checks = vec![
        evaluate::connectivity(&probe, t),
        evaluate::authentication(&probe),
    ];
    checks.push(match reachable {
        Some(client) => evaluate::event_types(
            &event_types(client, &inner.catalog, inner.config.event_types_max).await,
        ),
        None => evaluate::event_types(&EventTypeFigures {
            unverified: Some(unverified.clone()),
            ..EventTypeFigures::default()
        }),
    });
    let local = local(health);
    checks.extend(local_checks(local, t));
    checks.push(match reachable {
        Some(client) => evaluate::database_sync(&sync::figures(health, client).await),
        None => evaluate::database_sync(&evaluate::SyncFigures {
            unverified: Some(unverified),
            ..evaluate::SyncFigures::default()
        }),
    });
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Report::new(checked_at, duration_ms, checks)
}

fn unverified_reason(probe: &Probe) -> String {
    match probe {
        Probe::NotConfigured => "no Cal.com is configured".to_string(),
        _ => "Cal.com gave no usable answer to the probe (see connectivity and authentication)"
            .to_string(),
    }
}

/// Checks 4 to 7 from the local figures, or critical if the store failed.
fn local_checks(
    local: Result<LocalFigures, StoreError>,
    t: &evaluate::Thresholds,
) -> Vec<CheckResult> {
    match local {
        Ok(f) => vec![
            evaluate::activity(&f.activity),
            evaluate::webhooks(&f.webhooks, t),
            evaluate::error_rate(&f.calls, t),
            evaluate::response_time(&f.calls, t),
        ],
        Err(e) => [Check::Activity, Check::Webhooks, Check::ErrorRate, Check::ResponseTime]
            .into_iter()
            .map(|check| CheckResult {
                check,
                status: Status::Critical,
                message: format!(
                    "cannot read the database: {e}; run `sqlite3 DB 'PRAGMA integrity_check'` and check the disk"
                ),
                figures: serde_json::Value::Null,
            })
            .collect(),
    }
}

/// Checks 1 and 2: one authenticated list call of one booking.
async fn probe(client: &Client) -> Probe {
    let started = Instant::now();
    let filter = BookingFilter {
        take: Some(1),
        ..BookingFilter::default()
    };
    let outcome = within(client.list_bookings(&filter)).await;
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match outcome {
        Ok(_) => Probe::Answered { latency_ms },
        Err(CalcomError::Permanent { status, message }) => Probe::Refused {
            status,
            message,
            latency_ms,
        },
        Err(e @ (CalcomError::Retryable { .. } | CalcomError::OutcomeUnknown { .. })) => {
            Probe::Failed {
                reason: e.to_string(),
                latency_ms,
            }
        }
    }
}

/// Check 3: each catalogue event type looked up by id (at most `max`).
async fn event_types(client: &Client, catalog: &Catalog, max: usize) -> EventTypeFigures {
    let mut expected: BTreeMap<u64, EventTypeProblem> = BTreeMap::new();
    for service in catalog.services() {
        for seg in &service.segments {
            for option in &seg.staff {
                let entry = expected
                    .entry(option.event_type_id)
                    .or_insert(EventTypeProblem {
                        event_type_id: option.event_type_id,
                        used_by: Vec::new(),
                        expected_min: seg.duration_min,
                        actual_min: None,
                    });
                entry.used_by.push(format!("{}/{}", service.id, seg.name));
            }
        }
    }
    let mut figures = EventTypeFigures::default();
    for (id, mut problem) in expected.into_iter().take(max) {
        match within(client.get_event_type(id)).await {
            Ok(et) if et.length_in_minutes == problem.expected_min => {}
            Ok(et) => {
                problem.actual_min = Some(et.length_in_minutes);
                figures.mismatched.push(problem);
            }
            Err(CalcomError::Permanent { status: 404, .. }) => figures.missing.push(problem),
            Err(e) => {
                figures.unverified = Some(format!("looking up event type {id}: {e}"));
                return figures;
            }
        }
        figures.checked += 1;
    }
    figures
}

/// The figures that need no Cal.com call (also the metrics route's body).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalFigures {
    pub at: DateTime<Utc>,
    pub activity: ActivityFigures,
    pub webhooks: WebhookFigures,
    pub calls: CallFigures,
}

pub fn local(health: &Health) -> Result<LocalFigures, StoreError> {
    let inner = &health.inner;
    let now = inner.clock.now();
    let store: &Store = &inner.store;
    let (failed_open, failed_ids) = store.failed_workflows(FAILED_IDS_MAX)?;
    let activity = ActivityFigures {
        last_24h: store.activity_since(now - chrono::Duration::hours(24))?,
        last_7d: store.activity_since(now - chrono::Duration::days(7))?,
        failed_open,
        failed_ids,
    };
    let inbox = store.inbox_summary(now - chrono::Duration::hours(24))?;
    let window = inner.config.calls_window;
    let since = now - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
    let calls = store.call_stats(since, inner.config.calls_read_max)?;
    Ok(LocalFigures {
        at: now,
        activity,
        webhooks: WebhookFigures::of(&inbox, now),
        calls: CallFigures::of(&calls, window.as_secs()),
    })
}
