//! Public routes: liveness (`/api/health`: 200 while the database takes
//! writes, 503 once a write failed and the engine stopped).

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
