//! Public routes: liveness (`/api/health`: 200 while the database takes
//! writes, 503 once a write failed and the engine stopped) and the OpenAPI
//! document, which is docs/openapi.json built into the binary; and the
//! Cal.com health routes, which only present what `crate::health` reports
//! (the quick roll-up is public and carries statuses only).

use serde_json::json;

use super::App;
use super::call::Call;
use super::calls::run;
use super::reply::{ApiError, Reply};
use crate::health::{Health, Status};
use crate::runtime::EngineError;

pub fn health(app: &App, _call: &Call<'_>) -> Result<Reply, ApiError> {
    if app.engine.store().is_poisoned() {
        return Err(ApiError::unavailable(
            "a database write failed and calsaga takes no new work; fix the disk and restart it",
        ));
    }
    Ok(Reply::json(200, &json!({ "status": "ok" })))
}

/// The OpenAPI 3.1 document of every route (docs/openapi.json).
pub const OPENAPI: &str = include_str!("../../docs/openapi.json");

pub fn openapi(_app: &App, _call: &Call<'_>) -> Result<Reply, ApiError> {
    Ok(Reply::raw_json(200, OPENAPI))
}

/// The health checks of this process, or 503 when it runs without them.
fn checks(app: &App) -> Result<&Health, ApiError> {
    app.health.as_ref().ok_or_else(|| {
        ApiError::unavailable(
            "the Cal.com health checks are not set up in this process; they run in `calsaga serve`",
        )
    })
}

/// `GET /api/health/calcom`: the roll-up of the last report younger than
/// the cache TTL (else a new run); 503 when critical. Statuses only.
pub fn calcom(app: &App, _call: &Call<'_>) -> Result<Reply, ApiError> {
    let report = run(app, checks(app)?.cached());
    let status = if report.status == Status::Critical {
        503
    } else {
        200
    };
    Ok(Reply::json(status, &report.summary()).with_header("Cache-Control", "no-store"))
}

/// `GET /api/health/calcom/detailed`: the cached report with every
/// check's message and figures.
pub fn calcom_detailed(app: &App, _call: &Call<'_>) -> Result<Reply, ApiError> {
    let report = run(app, checks(app)?.cached());
    Ok(Reply::json(200, &report))
}

/// `GET /api/health/calcom/metrics`: figures from the database only.
pub fn calcom_metrics(app: &App, _call: &Call<'_>) -> Result<Reply, ApiError> {
    let health = checks(app)?;
    let figures = health.metrics().map_err(EngineError::from)?;
    let last = health.last().map(|r| r.summary());
    Ok(Reply::json(
        200,
        &json!({ "figures": figures, "lastCheck": last }),
    ))
}

/// `POST /api/health/calcom/check`: every check now; alerts on changes.
pub fn calcom_check(app: &App, _call: &Call<'_>) -> Result<Reply, ApiError> {
    let report = run(app, checks(app)?.run());
    Ok(Reply::json(200, &report))
}
