//! Public routes: liveness (`/api/health`: 200 while the database takes
//! writes, 503 once a write failed and the engine stopped) and the OpenAPI
//! document, which is docs/openapi.json built into the binary.

use serde_json::json;

use super::App;
use super::reply::{ApiError, Reply};
use super::router::Call;

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
