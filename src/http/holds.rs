//! Holds: every segment of a service reserved at Cal.com for a few minutes
//! while the customer decides (`POST /api/v2/holds`), then booked
//! (`POST /api/v2/holds/{id}/confirm`) or let go (`DELETE
//! /api/v2/holds/{id}`). A hold is a booking resource in the making: its id
//! is the booking's id once confirmed. Confirm and release are safe to
//! repeat. The saga does the Cal.com work; this file only starts it.

use uuid::Uuid;

use super::App;
use super::bookings::{self, BOOKING_FIELDS};
use super::call::Call;
use super::calls::{self, run};
use super::input::{self, Fields, json_object};
use super::outcome::{self, location};
use super::reply::{ApiError, Reply};
use super::view::{self, Loaded};
use crate::saga::{Event, Kind};

/// How long a hold lasts unless `holdMinutes` says otherwise, and the most.
const HOLD_MIN_DEFAULT: u64 = 10;
const HOLD_MIN_MAX: u64 = 60;

pub fn create(app: &App, call: &Call<'_>) -> Result<Reply, ApiError> {
    let key = outcome::optional_idempotency(call)?;
    let body = json_object(&call.body)?;
    let fields: Vec<&str> = BOOKING_FIELDS
        .iter()
        .copied()
        .chain(["holdMinutes"])
        .collect();
    let f = Fields::new(&body, "", &fields)?;
    let request = bookings::parse_booking(app, &f)?;
    let hold_min = f.opt_u64("holdMinutes")?.unwrap_or(HOLD_MIN_DEFAULT);
    if !(1..=HOLD_MIN_MAX).contains(&hold_min) {
        return Err(f.invalid(
            "holdMinutes",
            format!("must be from 1 to {HOLD_MIN_MAX} minutes"),
        ));
    }
    let hold_min = u32::try_from(hold_min).unwrap_or(u32::MAX);
    let started = run(app, app.engine.hold(request, hold_min, key.clone()));
    outcome::start_answer(app, started, key.as_ref(), calls::wait(call))
}

pub fn confirm(app: &App, call: &Call<'_>) -> Result<Reply, ApiError> {
    let hold = load_hold(app, call.param(0))?;
    let id = hold.row.id;
    // A repeated confirm answers with what the hold became.
    if view::present(app, hold)?.status == crate::status::Status::Held {
        run(app, app.engine.confirm(id))?;
    }
    outcome::settle(app, id, calls::wait(call), 200)
}

pub fn release(app: &App, call: &Call<'_>) -> Result<Reply, ApiError> {
    let hold = load_hold(app, call.param(0))?;
    let id = hold.row.id;
    match hold.row.state.as_str() {
        "held" | "reserving" => {
            let reason = "hold released by the client".to_string();
            run(
                app,
                app.engine
                    .append(id, Event::AdminCompensateRequested { reason }),
            )?;
        }
        "compensating" | "compensated" | "expiring" | "expired" => {}
        state => {
            return Err(ApiError::conflict(
                "hold_confirmed",
                format!(
                    "hold {id} is {state}: it was confirmed; cancel the booking with POST {}/cancel",
                    location(id)
                ),
            ));
        }
    }
    let done = run(app, app.engine.wait_terminal(id, calls::wait(call)))?;
    let body = view::booking(app, id)?;
    Ok(if done.terminal {
        Reply::json(200, &body)
    } else {
        Reply::json(202, &body).with_header("Location", location(id))
    })
}

fn load_hold(app: &App, raw: &str) -> Result<Loaded, ApiError> {
    let id: Uuid = input::workflow_id(raw, "hold")?;
    let loaded = view::load(app, id)?;
    if loaded.saga.kind != Kind::Hold {
        return Err(ApiError::not_found(format!(
            "{id} is a {} workflow, not a hold; holds are created with POST /api/v2/holds",
            loaded.row.kind
        )));
    }
    Ok(loaded)
}
