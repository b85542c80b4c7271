//! Cal.com's output DTOs as the mock writes them, where they carry more
//! than calsaga's wire types read: an event type answers with every field
//! `EventTypeOutput_2024_06_14` requires (packages/platform/types/event-types/
//! event-types_2024_06_14/outputs/event-type.output.ts), filled with the
//! defaults Cal.com gives an event type created through the API. The
//! conformance test (`tests/conformance.rs`) checks them against Cal.com's
//! OpenAPI document.

use serde_json::{Value, json};

use super::fixture::Fixture;
use crate::calcom::wire::EventType;

/// One event type as `GET /v2/event-types/{id}` (and list, create, update)
/// answer it.
pub fn event_type(et: &EventType, fixture: &Fixture) -> Value {
    let owner = et.owner_id.and_then(|id| fixture.user(id));
    let username = owner.map_or("", |u| u.username.as_str());
    json!({
        "id": et.id,
        "ownerId": et.owner_id,
        "lengthInMinutes": et.length_in_minutes,
        "lengthInMinutesOptions": [],
        "title": et.title,
        "slug": et.slug,
        "description": et.description.clone().unwrap_or_default(),
        "locations": [{"type": "integration", "integration": "cal-video"}],
        "bookingFields": booking_fields(),
        "disableGuests": false,
        "slotInterval": et.slot_interval,
        "minimumBookingNotice": et.minimum_booking_notice.unwrap_or(0),
        "beforeEventBuffer": 0,
        "afterEventBuffer": 0,
        "recurrence": null,
        "metadata": {},
        "price": 0,
        "currency": "usd",
        "lockTimeZoneToggleOnBookingPage": false,
        "seatsPerTimeSlot": null,
        "forwardParamsSuccessRedirect": true,
        "successRedirectUrl": null,
        "isInstantEvent": false,
        "seatsShowAvailabilityCount": false,
        "scheduleId": null,
        "hidden": et.hidden,
        "bookingRequiresAuthentication": false,
        "users": owner.map(|u| json!({"id": u.id, "name": u.name, "username": u.username}))
            .into_iter()
            .collect::<Vec<_>>(),
        "bookingUrl": format!("https://cal.com/{username}/{}", et.slug),
    })
}

/// The system booking fields every event type has.
fn booking_fields() -> Value {
    let field = |kind: &str, slug: &str, label: &str, required: bool| {
        json!({"type": kind, "slug": slug, "label": label, "placeholder": "",
               "required": required, "hidden": false, "isDefault": true})
    };
    json!([
        field("name", "name", "Your name", true),
        field("email", "email", "Email address", true),
        field("text", "title", "What is this meeting about?", true),
        field("textarea", "notes", "Additional notes", false),
        field("multiemail", "guests", "Add guests", false),
        field(
            "textarea",
            "rescheduleReason",
            "Reason for reschedule",
            false
        ),
    ])
}
