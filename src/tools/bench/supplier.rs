//! The supplier the benchmark books against: an in-process `CalcomApi` that
//! answers every call at once (a create returns a booking with a fresh uid
//! and the requested times, cancels and releases succeed, lists are empty),
//! so a measurement holds only engine and store costs. Stalled, it answers
//! nothing: every call is counted and then waits forever, which leaves each
//! saga with a committed intent and no outcome, the state a crash leaves.
//! It keeps no bookings and checks no availability; it must never stand in
//! for Cal.com outside `calsaga bench`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use tokio::sync::watch;
use uuid::Uuid;

use crate::calcom::wire::{
    Booking, BookingFilter, BookingPage, BookingStatus, CancelBooking, CreateBooking, Pagination,
    RescheduleBooking, Reservation, ReserveSlot, SlotsByDay, SlotsQuery,
};
use crate::calcom::{CalcomApi, CalcomError};
use crate::catalog::Catalog;
use crate::clock::Clock;

/// Minutes a reservation lasts when the request names none (Cal.com's default).
const RESERVATION_MIN_DEFAULT: u32 = 5;

pub struct Supplier {
    /// Length in minutes of every event type the catalogue books.
    lengths_min: HashMap<u64, u32>,
    clock: Arc<dyn Clock>,
    next_id: AtomicU64,
    /// Every call made, answered or not: what an operation costs Cal.com.
    calls: AtomicU64,
    /// Set when stalled: counts the calls that will never be answered.
    stalled_calls: Option<watch::Sender<usize>>,
}

impl Supplier {
    /// Answers every call at once.
    pub fn instant(catalog: &Catalog, clock: Arc<dyn Clock>) -> Supplier {
        let lengths_min = catalog
            .services()
            .flat_map(|s| &s.segments)
            .flat_map(|seg| {
                seg.staff
                    .iter()
                    .map(|o| (o.event_type_id, seg.duration_min))
            })
            .collect();
        Supplier {
            lengths_min,
            clock,
            next_id: AtomicU64::new(1),
            calls: AtomicU64::new(0),
            stalled_calls: None,
        }
    }

    /// Answers nothing; the receiver counts the calls waiting forever.
    pub fn stalled(catalog: &Catalog, clock: Arc<dyn Clock>) -> (Supplier, watch::Receiver<usize>) {
        let (calls, counted) = watch::channel(0);
        let supplier = Supplier {
            stalled_calls: Some(calls),
            ..Supplier::instant(catalog, clock)
        };
        (supplier, counted)
    }

    /// Returns at once, or never when stalled (the task is dropped with its
    /// runtime, as a killed process drops it).
    async fn answer(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if let Some(calls) = &self.stalled_calls {
            calls.send_modify(|n| *n += 1);
            std::future::pending::<()>().await;
        }
    }

    /// Calls made so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    fn length_min(&self, event_type_id: u64) -> Result<u32, CalcomError> {
        self.lengths_min
            .get(&event_type_id)
            .copied()
            .ok_or_else(|| CalcomError::Permanent {
                status: 404,
                message: format!("event type {event_type_id} is not in the bench catalogue"),
            })
    }

    fn booking(
        &self,
        event_type_id: u64,
        start: DateTime<Utc>,
        length_min: u32,
        status: BookingStatus,
    ) -> Booking {
        Booking {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            uid: Uuid::new_v4().to_string(),
            title: String::new(),
            description: String::new(),
            hosts: Vec::new(),
            status,
            cancellation_reason: None,
            cancelled_by_email: None,
            start,
            end: start + Duration::minutes(i64::from(length_min)),
            duration: length_min,
            event_type_id,
            event_type: None,
            attendees: Vec::new(),
            guests: Vec::new(),
            location: None,
            meeting_url: None,
            absent_host: false,
            created_at: self.clock.now(),
            updated_at: None,
            rating: None,
            ics_uid: None,
            metadata: Default::default(),
            booking_fields_responses: serde_json::Value::Null,
            rescheduled_from_uid: None,
            rescheduled_to_uid: None,
        }
    }
}

fn not_kept(uid: &str) -> CalcomError {
    CalcomError::Permanent {
        status: 404,
        message: format!("the bench supplier keeps no bookings, so it has no {uid}"),
    }
}

#[async_trait]
impl CalcomApi for Supplier {
    async fn slots(&self, _query: &SlotsQuery) -> Result<SlotsByDay, CalcomError> {
        self.answer().await;
        Ok(SlotsByDay::new())
    }

    async fn reserve_slot(&self, input: &ReserveSlot) -> Result<Reservation, CalcomError> {
        self.answer().await;
        let length_min = self.length_min(input.event_type_id)?;
        let reservation_min = input
            .reservation_duration
            .unwrap_or(RESERVATION_MIN_DEFAULT);
        Ok(Reservation {
            event_type_id: input.event_type_id,
            slot_start: input.slot_start,
            slot_end: input.slot_start + Duration::minutes(i64::from(length_min)),
            slot_duration: length_min,
            reservation_uid: Uuid::new_v4().to_string(),
            reservation_duration: reservation_min,
            reservation_until: self.clock.now() + Duration::minutes(i64::from(reservation_min)),
        })
    }

    async fn release_reservation(&self, _reservation_uid: &str) -> Result<(), CalcomError> {
        self.answer().await;
        Ok(())
    }

    async fn create_booking(&self, input: &CreateBooking) -> Result<Booking, CalcomError> {
        self.answer().await;
        let length_min = self.length_min(input.event_type_id)?;
        Ok(self.booking(
            input.event_type_id,
            input.start,
            length_min,
            BookingStatus::Accepted,
        ))
    }

    async fn list_bookings(&self, _filter: &BookingFilter) -> Result<BookingPage, CalcomError> {
        self.answer().await;
        Ok(BookingPage {
            bookings: Vec::new(),
            pagination: Pagination::default(),
        })
    }

    async fn get_booking(&self, uid: &str) -> Result<Booking, CalcomError> {
        self.answer().await;
        Err(not_kept(uid))
    }

    async fn reschedule_booking(
        &self,
        uid: &str,
        _input: &RescheduleBooking,
    ) -> Result<Booking, CalcomError> {
        self.answer().await;
        Err(not_kept(uid))
    }

    async fn cancel_booking(
        &self,
        uid: &str,
        _input: &CancelBooking,
    ) -> Result<Booking, CalcomError> {
        self.answer().await;
        // Without the booking's own times, a cancelled stub of no length.
        Ok(Booking {
            uid: uid.to_string(),
            ..self.booking(0, self.clock.now(), 0, BookingStatus::Cancelled)
        })
    }
}
