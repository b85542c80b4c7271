//! Alerts with a scripted receiver and simulated time: what is a change,
//! one message per change, retries with backoff, de-duplication, the
//! hourly limit, and both body shapes.

use std::sync::Mutex;

use chrono::TimeZone;

use super::*;
use crate::calcom::TransportError;
use crate::clock::SimClock;
use crate::health::{Check, CheckResult};

/// Answers each POST with the next scripted status (then 200) and keeps
/// every body it got.
struct Receiver {
    script: Mutex<VecDeque<u16>>,
    got: Mutex<Vec<(String, serde_json::Value)>>,
}

impl Receiver {
    fn new(script: &[u16]) -> Arc<Receiver> {
        Arc::new(Receiver {
            script: Mutex::new(script.iter().copied().collect()),
            got: Mutex::new(Vec::new()),
        })
    }

    fn got(&self) -> Vec<(String, serde_json::Value)> {
        self.got.lock().unwrap().clone()
    }
}

impl Poster for Receiver {
    fn post(
        &self,
        url: &str,
        _headers: &[(String, String)],
        body: &[u8],
    ) -> Result<u16, TransportError> {
        let body = serde_json::from_slice(body).unwrap();
        self.got.lock().unwrap().push((url.to_string(), body));
        Ok(self.script.lock().unwrap().pop_front().unwrap_or(200))
    }
}

fn report(at_s: i64, statuses: &[(Check, Status)]) -> Report {
    let checks = statuses
        .iter()
        .map(|&(check, status)| CheckResult {
            check,
            status,
            message: format!("{} is {}", check.as_str(), status.as_str()),
            figures: serde_json::Value::Null,
        })
        .collect();
    Report::new(Utc.timestamp_opt(at_s, 0).unwrap(), 1, checks)
}

fn world(script: &[u16], targets: &[AlertFormat]) -> (Alerts, Arc<Receiver>, Arc<SimClock>) {
    let clock = Arc::new(SimClock::new(Utc.timestamp_opt(0, 0).unwrap()));
    let receiver = Receiver::new(script);
    let config = AlertConfig {
        targets: targets
            .iter()
            .enumerate()
            .map(|(i, &format)| AlertTarget {
                url: format!("http://127.0.0.1:9/{i}"),
                format,
            })
            .collect(),
        per_hour_max: 3,
        ..AlertConfig::default()
    };
    let alerts = Alerts::new(config, receiver.clone(), clock.clone());
    (alerts, receiver, clock)
}

#[test]
fn a_first_run_reports_what_is_not_ok_and_later_runs_only_changes() {
    use Check::*;
    let first = report(
        0,
        &[(Connectivity, Status::Ok), (Webhooks, Status::Warning)],
    );
    let subjects = |c: &[Change]| c.iter().map(|c| c.subject.clone()).collect::<Vec<_>>();
    assert_eq!(subjects(&changes(None, &first)), ["overall", "webhooks"]);
    assert!(changes(Some(&first), &first).is_empty());
    let next = report(
        60,
        &[
            (Connectivity, Status::Critical),
            (Webhooks, Status::Warning),
        ],
    );
    let changed = changes(Some(&first), &next);
    assert_eq!(subjects(&changed), ["overall", "connectivity"]);
    assert_eq!(
        (changed[1].from, changed[1].to),
        (Some(Status::Ok), Status::Critical)
    );
}

#[tokio::test]
async fn a_failed_delivery_is_retried_with_backoff_until_acknowledged() {
    let (alerts, receiver, clock) = world(&[500, 503], &[AlertFormat::Generic]);
    let down = report(0, &[(Check::Connectivity, Status::Critical)]);
    let outcome = alerts.notify(&changes(None, &down)).await.unwrap();
    assert_eq!((outcome.delivered, outcome.failed), (1, 0));
    assert_eq!(receiver.got().len(), 3, "two failures, then delivered");
    assert_eq!(
        clock.sleeps(),
        [Duration::from_secs(1), Duration::from_secs(2)]
    );
}

#[tokio::test]
async fn a_receiver_that_never_acknowledges_gets_a_bounded_number_of_attempts() {
    let (alerts, receiver, _clock) = world(&[500; 10], &[AlertFormat::Slack]);
    let down = report(0, &[(Check::Connectivity, Status::Critical)]);
    let outcome = alerts.notify(&changes(None, &down)).await.unwrap();
    assert_eq!((outcome.delivered, outcome.failed), (0, 1));
    assert_eq!(receiver.got().len(), 3);
}

#[tokio::test]
async fn the_same_transition_is_sent_once_within_the_window() {
    let (alerts, receiver, clock) = world(&[], &[AlertFormat::Generic]);
    let down = report(0, &[(Check::Connectivity, Status::Critical)]);
    let change = changes(None, &down);
    alerts.notify(&change).await.unwrap();
    let again = alerts.notify(&change).await.unwrap();
    assert_eq!((again.sent_changes, again.deduplicated), (0, 2));
    assert_eq!(receiver.got().len(), 1);
    clock.advance(Duration::from_secs(16 * 60));
    let later = alerts.notify(&change).await.unwrap();
    assert_eq!(later.sent_changes, 2);
    assert_eq!(receiver.got().len(), 2);
}

#[tokio::test]
async fn at_most_the_hourly_limit_of_messages_leaves() {
    let (alerts, receiver, clock) = world(&[], &[AlertFormat::Generic]);
    let statuses = [
        Status::Critical,
        Status::Ok,
        Status::Warning,
        Status::Critical,
    ];
    let mut previous: Option<Report> = None;
    let mut limited = 0;
    for (i, status) in statuses.into_iter().enumerate() {
        let next = report(i as i64, &[(Check::ErrorRate, status)]);
        clock.advance(Duration::from_secs(1));
        limited += alerts
            .notify(&changes(previous.as_ref(), &next))
            .await
            .unwrap()
            .rate_limited;
        previous = Some(next);
    }
    assert_eq!((receiver.got().len(), limited), (3, 1));
}

#[tokio::test]
async fn slack_gets_text_and_the_generic_receiver_the_structured_change() {
    let (alerts, receiver, _clock) = world(&[], &[AlertFormat::Slack, AlertFormat::Generic]);
    let down = report(0, &[(Check::Authentication, Status::Critical)]);
    alerts.notify(&changes(None, &down)).await.unwrap();
    let got = receiver.got();
    let text = got[0].1["text"].as_str().unwrap();
    assert!(
        text.contains("authentication: unknown → critical: authentication is critical"),
        "{text}"
    );
    let generic = &got[1].1;
    assert_eq!(generic["status"], "critical");
    assert_eq!(generic["changes"][1]["subject"], "authentication");
    assert_eq!(generic["changes"][1]["to"], "critical");
}
