//! The embedded Cal.com API v2 mock: a faithful stand-in so every test, demo
//! and benchmark of calsaga runs without a Cal.com account. It serves the
//! same routes, status codes, envelopes and error texts as the real API
//! (slots 2024-09-04, bookings 2024-08-13, event types 2024-06-14, webhooks),
//! in-process through `Mock::handle` / `MockTransport` or over HTTP through
//! `MockServer`, and adds control routes (`/_mock/state`, `/_mock/reset`,
//! `/_mock/faults`) plus seeded faults. It never calls the real Cal.com and
//! never reads the wall clock except through the injected `Clock`.
//!
//! Choices where the real API is only partly known (calcom-v2 reference):
//! - **Versions.** A missing or unknown `cal-api-version` becomes 2024-04-15.
//!   Only the current controllers are modelled. A route+version pair with no
//!   controller answers Nest's router 404 `Cannot METHOD /path?query`: slots
//!   and reservations with anything but 2024-09-04 (the legacy slots
//!   controller has other paths), bookings with 2024-09-04 (#22079),
//!   reschedule with a legacy version, event types with 2024-08-13/09-04.
//!   A version a legacy controller would take (bookings 04-15/06-11/06-14,
//!   event types 04-15/06-11) answers the bare 500 users saw (#16924).
//! - **Auth.** An unknown `cal_` key is refused on every route with 401
//!   "CustomThrottlerGuard - Invalid API Key". An `Authorization` header
//!   without `Bearer ` ends in the bare 500 of #20808 on routes that require
//!   auth and counts as anonymous elsewhere. Non-`cal_` bearer tokens are
//!   managed-user tokens the mock does not know (401 on guarded routes).
//! - **Order.** Faults first (they model the network), then the throttler
//!   guard, version routing, the auth guard, the handler. Unknown routes and
//!   `/_mock/*` are not throttled.
//! - **Races.** Booking creation checks availability and inserts in two
//!   critical sections; only identical (host, start, end) among ACCEPTED
//!   bookings is unique, so overlapping-but-different racing creates can
//!   both succeed, as on Cal.com. `/_mock/state` lists such overlaps.
//! - **Canned fault bodies.** 400/409 on create and reschedule use the real
//!   slot-taken texts, 429 the throttler body, 500 the bare internal error,
//!   503 a bare `{"statusCode":503,"message":"Service Unavailable"}` (what a
//!   proxy in front of Cal.com answers is not documented).
//! - **HTTP.** The socket server uses the crate's own HTTP/1.1 codec
//!   (`httpwire`, shared with calsaga's server) instead of tiny_http,
//!   because a lost reply must close the connection without a response,
//!   which tiny_http 0.12 cannot do: dropping its `Request` sends a 500, and
//!   dropping `into_writer()` leaves the keep-alive connection open
//!   (tiny-http PR #282, unmerged).

mod admin;
mod availability;
mod bookings;
mod control;
mod engine;
mod error;
mod faults;
mod fixture;
mod guard;
mod input;
mod listing;
mod outputs;
mod reply;
mod route;
mod run;
mod server;
mod slots;
mod state;
mod transport;
mod webhooks;

#[cfg(test)]
mod tests;

pub use engine::{Mock, MockConfig, MockReply, StateView};
pub use error::MockError;
pub use faults::{ActiveRule, FaultRule, Scenario};
pub use fixture::{ApiKey, Fixture, RATE_LIMIT_PER_MINUTE_DEFAULT, User};
pub use run::{MockOptions, run, run_with};
pub use server::{BODY_BYTES_MAX, CONNECTIONS_MAX, MockServer};
pub use state::Overlap;
pub use transport::MockTransport;
pub use webhooks::{Delivery, RecordingPoster, sign};
