//! Everything calsaga knows about talking to Cal.com API v2: the narrow
//! `CalcomApi` trait the saga runtime depends on, the error classes that tell a
//! caller what to do next, the wire shapes (`wire`), the transport seam
//! (`transport`: reqwest over HTTP, or the embedded mock in-process) and the
//! client that adds versions, auth, retries and the outbound rate limit.
//! This is the only module that may import reqwest (invariant I8).

pub mod client;
pub mod http;
pub mod limiter;
pub mod retry;
pub mod transport;
pub mod wire;

use std::time::Duration;

use async_trait::async_trait;

pub use client::{CallObserver, CallOutcome, CallRecord, Client, ClientConfig};
pub use http::{HttpLimits, HttpPoster, HttpSetupError, HttpTransport};
pub use retry::RetryPolicy;
pub use transport::{ApiRequest, ApiResponse, Method, Poster, Transport, TransportError};
use wire::{
    Booking, BookingFilter, BookingPage, CancelBooking, CreateBooking, RescheduleBooking,
    Reservation, ReserveSlot, SlotsByDay, SlotsQuery,
};

/// What went wrong with a Cal.com call, split by what the caller must do next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalcomError {
    /// Cal.com did not act on the request (429, 5xx on a safe request, or the
    /// connection was refused before anything was sent): the same request may
    /// be sent again, not before `after` when it is given.
    #[error("Cal.com did not act on the request ({reason}); it is safe to retry{}", after.map(|a| format!(" after {} s", a.as_secs_f64())).unwrap_or_default())]
    Retryable {
        after: Option<Duration>,
        reason: String,
    },
    /// Cal.com refused the request; sending it again gives the same answer.
    /// `message` is Cal.com's own text, kept verbatim.
    #[error("Cal.com refused the request with HTTP {status}: {message}")]
    Permanent { status: u16, message: String },
    /// The request may have reached Cal.com and taken effect, but no answer was
    /// read (timeout, reset, unreadable reply). Never repeat a create blindly:
    /// reconcile against Cal.com's bookings first.
    #[error(
        "the outcome of the Cal.com call is unknown ({reason}); reconcile against Cal.com before repeating it"
    )]
    OutcomeUnknown { reason: String },
}

impl CalcomError {
    /// True for a refusal that means "this slot is taken" (400 "already has
    /// booking", 409 booking_conflict_error, 422 reservation overlap).
    pub fn is_slot_taken(&self) -> bool {
        match self {
            CalcomError::Permanent {
                status: 409 | 422, ..
            } => true,
            CalcomError::Permanent {
                status: 400,
                message,
            } => {
                let m = message.to_ascii_lowercase();
                m.contains("already has booking") || m.contains("not available")
            }
            _ => false,
        }
    }

    /// True for Cal.com's 400 on cancelling a booking that is already
    /// cancelled ("... because it has been cancelled already"): for a caller
    /// that wanted it cancelled, that is success.
    pub fn is_already_cancelled(&self) -> bool {
        match self {
            CalcomError::Permanent {
                status: 400,
                message,
            } => message.to_ascii_lowercase().contains("cancelled already"),
            _ => false,
        }
    }
}

/// The calls a saga needs. Deliberately narrow: event types and webhooks are
/// admin work and live on `Client` itself.
#[async_trait]
pub trait CalcomApi: Send + Sync {
    /// `GET /v2/slots` (2024-09-04): free start times per local day.
    async fn slots(&self, query: &SlotsQuery) -> Result<SlotsByDay, CalcomError>;
    /// `POST /v2/slots/reservations`: hide a slot from other clients for a while.
    async fn reserve_slot(&self, input: &ReserveSlot) -> Result<Reservation, CalcomError>;
    /// `DELETE /v2/slots/reservations/{uid}`: succeeds for unknown uids too.
    async fn release_reservation(&self, reservation_uid: &str) -> Result<(), CalcomError>;
    /// `POST /v2/bookings` (2024-08-13).
    async fn create_booking(&self, input: &CreateBooking) -> Result<Booking, CalcomError>;
    /// `GET /v2/bookings` with filters and paging.
    async fn list_bookings(&self, filter: &BookingFilter) -> Result<BookingPage, CalcomError>;
    /// `GET /v2/bookings/{uid}`.
    async fn get_booking(&self, uid: &str) -> Result<Booking, CalcomError>;
    /// `POST /v2/bookings/{uid}/reschedule`: returns the new booking.
    async fn reschedule_booking(
        &self,
        uid: &str,
        input: &RescheduleBooking,
    ) -> Result<Booking, CalcomError>;
    /// `POST /v2/bookings/{uid}/cancel`.
    async fn cancel_booking(
        &self,
        uid: &str,
        input: &CancelBooking,
    ) -> Result<Booking, CalcomError>;
}
