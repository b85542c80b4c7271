//! `GET /api/v2/availability`: the start times at which a whole service
//! fits, in the client's time zone, each with its segment plan. The search
//! itself (Cal.com slots, intersection, cache) is `crate::availability`;
//! this file reads the query and shapes the answer.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::App;
use super::call::Call;
use super::calls::run;
use super::input::{self, Query};
use super::reply::{ApiError, Reply};
use super::view::LocalTime;
use crate::availability::{AvailabilityError, Search};
use crate::calcom::CalcomError;
use crate::catalog::Hosts;
use crate::runtime::EngineError;

pub fn search(app: &App, call: &Call<'_>) -> Result<Reply, ApiError> {
    let q = Query::parse(
        call.query,
        &[
            "service", "start", "end", "timeZone", "host", "staff", "fresh",
        ],
    )?;
    let service_id = q.require("service", "colour-and-cut")?;
    let service = app.engine.service(service_id)?;
    let catalog = app.engine.catalog();
    let day = |key: &str| -> Result<_, ApiError> {
        let raw = q.require(key, "2030-03-05")?;
        input::date(raw).map_err(|m| q.invalid(key, m))
    };
    let (start, end) = (day("start")?, day("end")?);
    let zone = input::time_zone(q.require("timeZone", "Europe/Berlin")?)
        .map_err(|m| q.invalid("timeZone", m))?;
    // Nothing can be booked in the past: say so rather than answer "no
    // start", which reads like a fully booked day.
    let today = app.clock.now().with_timezone(&zone).date_naive();
    if end < today {
        return Err(q.invalid(
            "end",
            format!("{end} is in the past (today is {today} in {zone}); search from today on"),
        ));
    }
    let hosts = catalog.hosts();
    let staff = host(&q, hosts)?;
    let fresh = match q.get("fresh") {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => return Err(q.invalid("fresh", format!("{other:?} is not true or false"))),
    };
    let search = Search {
        service,
        start,
        end,
        zone,
        staff,
        fresh,
    };
    let found = run(app, async {
        tokio::time::timeout(SEARCH_DEADLINE, app.availability.search(&search)).await
    })
    .map_err(|_| too_slow())?
    .map_err(error)?;
    let local = |t: DateTime<Utc>| LocalTime::new(t, zone);
    let slots: Vec<Value> = found
        .starts
        .iter()
        .map(|s| {
            let segments: Vec<Value> = s
                .segments
                .iter()
                .map(|g| {
                    json!({"index": g.index, "name": g.name, "host": g.host,
                           "hostName": hosts.name(g.host), "eventTypeId": g.event_type_id,
                           "start": local(g.start), "end": local(g.end)})
                })
                .collect();
            json!({"start": local(s.start), "segments": segments})
        })
        .collect();
    Ok(Reply::json(
        200,
        &json!({
            "service": service.id, "timeZone": zone.name(), "start": start, "end": end,
            "cached": found.cached, "slots": slots,
        }),
    ))
}

/// How long one search may wait for Cal.com. A search asks for slots per
/// staff option, and every call waits its turn under Cal.com's per-minute
/// limit; once that budget is spent a search could wait a minute, holding an
/// HTTP worker that bookings need. Better a quick 503 the caller can retry.
const SEARCH_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);
const SEARCH_RETRY_S: u64 = 5;

fn too_slow() -> ApiError {
    ApiError::new(
        503,
        "calcom_unavailable",
        format!(
            "Cal.com did not answer the slot searches within {} s (calsaga keeps under Cal.com's requests-per-minute limit and that budget is spent, or Cal.com is slow); retry in {SEARCH_RETRY_S} s",
            SEARCH_DEADLINE.as_secs()
        ),
    )
    .with_header("Retry-After", SEARCH_RETRY_S.to_string())
}

/// `host=` (by id or name; `staff=` is its older name, still read): keep
/// that host for every segment they can do.
fn host(q: &Query, hosts: &Hosts) -> Result<Option<u64>, ApiError> {
    let (key, given) = match (q.get("host"), q.get("staff")) {
        (Some(_), Some(_)) => {
            return Err(q.invalid("staff", "is the older name of `host`; send only `host`"));
        }
        (Some(h), None) => ("host", h),
        (None, Some(s)) => ("staff", s),
        (None, None) => return Ok(None),
    };
    hosts
        .resolve(given)
        .map(Some)
        .map_err(|e| q.invalid(key, e))
}

fn error(e: AvailabilityError) -> ApiError {
    let message = e.to_string();
    match e {
        AvailabilityError::TooLarge { .. } => ApiError::new(422, "range_too_large", message),
        AvailabilityError::Reversed { .. } | AvailabilityError::NoSuchDay { .. } => {
            ApiError::invalid(message)
        }
        AvailabilityError::Staff { .. } => ApiError::new(422, "host_not_allowed", message),
        AvailabilityError::Calcom(CalcomError::Retryable { after, .. }) => {
            let retry_s = after.map_or(5, |a| a.as_secs().max(1));
            ApiError::new(
                503,
                "calcom_unavailable",
                format!("{message}; retry in {retry_s} s"),
            )
            .with_header("Retry-After", retry_s.to_string())
        }
        AvailabilityError::Calcom(_) => ApiError::new(
            502,
            "calcom_failed",
            format!("{message}; check calsaga's Cal.com settings"),
        ),
        AvailabilityError::Store(e) => EngineError::from(e).into(),
    }
}
