//! `GET /metrics`: the Prometheus exposition of this process (admin token,
//! like every other operations read; Prometheus sends it as a bearer
//! token). It only reads: the figures come from `crate::metrics`.

use super::App;
use super::call::Call;
use super::reply::{ApiError, Reply};
use crate::metrics::CONTENT_TYPE;

pub fn scrape(app: &App, _call: &Call<'_>) -> Result<Reply, ApiError> {
    let text = app.metrics.render(app.engine.store(), app.clock.now())?;
    Ok(Reply {
        status: 200,
        headers: vec![("Content-Type", CONTENT_TYPE.into())],
        body: text.into_bytes(),
    })
}
