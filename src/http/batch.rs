//! `POST /api/v2/bookings/batch`: up to 50 bookings in one request, one
//! saga each, one result per item in order. Every item is validated before
//! any saga starts, so a bad item writes nothing. Items are independent: a
//! taken slot fails that item only. The batch's `Idempotency-Key` gives
//! item i the key `<key>#<i>` (fingerprint: the item itself), so a retried
//! batch replays each item's answer. All sagas run at once; the request
//! waits for them under one shared `Prefer: wait` deadline.

use serde_json::{Value, json};
use tokio::time::Instant;

use super::App;
use super::bookings::{BOOKING_FIELDS, parse_booking};
use super::call::Call;
use super::calls::{self, run};
use super::input::{Fields, json_object};
use super::outcome::{fingerprint, idempotency, start_answer};
use super::reply::{ApiError, Reply};
use crate::runtime::Idempotency;

/// Most bookings in one batch.
pub const BATCH_ITEMS_MAX: usize = 50;

pub fn create(app: &App, call: &Call<'_>) -> Result<Reply, ApiError> {
    let key = idempotency(call)?;
    let body = json_object(&call.body)?;
    let f = Fields::new(&body, "", &["bookings"])?;
    let expected = format!("an array of 1 to {BATCH_ITEMS_MAX} bookings");
    let items = f
        .opt_value("bookings")
        .and_then(Value::as_array)
        .ok_or_else(|| f.wrong("bookings", &expected))?;
    if items.is_empty() || items.len() > BATCH_ITEMS_MAX {
        return Err(f.invalid(
            "bookings",
            format!("holds {} bookings; send {expected}", items.len()),
        ));
    }
    let requests = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let request = parse_booking(
                app,
                &Fields::new(item, &format!("bookings[{i}]"), BOOKING_FIELDS)?,
            )?;
            let key = Idempotency {
                key: format!("{}#{i}", key.key),
                fingerprint: fingerprint("POST", call.path, item.to_string().as_bytes()),
            };
            Ok((request, key))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let deadline = Instant::now() + calls::wait(call);
    let started: Vec<_> = requests
        .into_iter()
        .map(|(request, key)| (run(app, app.engine.book(request, Some(key.clone()))), key))
        .collect();
    let results: Vec<Value> = started
        .into_iter()
        .enumerate()
        .map(|(index, (started, key))| {
            let wait = deadline.saturating_duration_since(Instant::now());
            let reply = start_answer(app, started, Some(&key), wait).unwrap_or_else(Reply::from);
            let body: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
            json!({ "index": index, "status": reply.status, "body": body })
        })
        .collect();
    Ok(Reply::json(200, &json!({ "results": results })))
}
