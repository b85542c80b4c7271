//! Admin routes: event types (API 2024-06-14) and webhook subscriptions
//! (`/v2/webhooks`, any version). They change what the slot and booking
//! handlers see, and who gets deliveries; they never touch bookings.

use serde_json::{Map, Value, json};

use super::engine::{Call, Mock};
use super::input::{self, Query};
use super::outputs;
use super::reply::{Answer, ApiError};
use super::state::State;
use super::webhooks::is_trigger;
use crate::calcom::wire::{
    CreateEventType, CreateWebhook, EventType, UpdateEventType, UpdateWebhook, WEBHOOK_VERSION,
    Webhook,
};

pub const WEBHOOK_DUPLICATE: &str = "Webhook with this subscriber url already exists for this user";
const DELEGATION_TRIGGER: &str = "DELEGATION_CREDENTIAL_ERROR";
const SLUG_TAKEN: &str = "User already has an event type with this slug.";
const WEBHOOKS_TAKE_MAX: u64 = 250;
const WEBHOOK_FIELDS: [&str; 6] = [
    "subscriberUrl",
    "triggers",
    "active",
    "payloadTemplate",
    "secret",
    "version",
];

// ------------------------------------------------------------ event types

/// The numeric `{id}` path parameter (Nest's ParseIntPipe).
fn id_param(call: &Call<'_>) -> Result<u64, ApiError> {
    call.param
        .parse()
        .map_err(|_| ApiError::bad_request("Validation failed (numeric string is expected)"))
}

/// `slotInterval` and `minimumBookingNotice` from a body; the shared wire
/// inputs leave them out because calsaga never sends them.
fn timing(body: &Map<String, Value>) -> (Option<u32>, Option<u32>) {
    let minutes = |k: &str| {
        body.get(k)
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
    };
    (minutes("slotInterval"), minutes("minimumBookingNotice"))
}

fn slug_taken(s: &State, owner: Option<u64>, slug: &str, except: Option<u64>) -> bool {
    s.event_types
        .iter()
        .any(|e| e.owner_id == owner && e.slug == slug && Some(e.id) != except)
}

pub fn create_event_type(mock: &Mock, call: &Call<'_>) -> Result<Answer, ApiError> {
    let body = input::object(call.body)?;
    let (slot_interval, notice) = timing(&body);
    let input: CreateEventType = input::decode(body)?;
    if input.length_in_minutes == 0 || slot_interval == Some(0) {
        return Err(ApiError::bad_property(
            "lengthInMinutes",
            "lengthInMinutes must not be less than 1",
        ));
    }
    let owner = call.caller.user_id();
    let et = mock.commit(|s| {
        if slug_taken(s, owner, &input.slug, None) {
            return Err(ApiError::bad_request(SLUG_TAKEN));
        }
        let et = EventType {
            id: s.take_event_type_id(),
            owner_id: owner,
            length_in_minutes: input.length_in_minutes,
            title: input.title,
            slug: input.slug,
            description: input.description,
            hidden: input.hidden.unwrap_or(false),
            slot_interval,
            minimum_booking_notice: notice,
        };
        s.event_types.push(et.clone());
        Ok(et)
    })?;
    Ok(Answer::created(outputs::event_type(&et, &mock.fixture)))
}

pub fn list_event_types(mock: &Mock, call: &Call<'_>) -> Result<Answer, ApiError> {
    let q: &Query = &call.query;
    let mut owners: Vec<u64> = q
        .get("usernames")
        .into_iter()
        .chain(q.get("username"))
        .flat_map(|names| names.split(','))
        .filter_map(|name| mock.fixture.user_by_name(name.trim()).map(|u| u.id))
        .collect();
    if q.get("username").is_none() && q.get("usernames").is_none() {
        owners.extend(call.caller.user_id());
    }
    let slug = q.get("eventSlug");
    let list: Vec<Value> = mock.read(|s| {
        s.event_types
            .iter()
            .filter(|e| e.owner_id.is_some_and(|o| owners.contains(&o)))
            .filter(|e| slug.is_none_or(|sl| e.slug == sl))
            .map(|e| outputs::event_type(e, &mock.fixture))
            .collect()
    });
    Ok(Answer::ok(list))
}

fn event_type_missing(id: u64) -> ApiError {
    ApiError::not_found(format!("Event type with id {id} not found"))
}

pub fn get_event_type(mock: &Mock, call: &Call<'_>) -> Result<Answer, ApiError> {
    let id = id_param(call)?;
    let et = mock.read(|s| s.event_type(id).cloned());
    et.map(|et| Answer::ok(outputs::event_type(&et, &mock.fixture)))
        .ok_or_else(|| event_type_missing(id))
}

pub fn update_event_type(mock: &Mock, call: &Call<'_>) -> Result<Answer, ApiError> {
    let id = id_param(call)?;
    let body = input::object(call.body)?;
    let (slot_interval, notice) = timing(&body);
    let input: UpdateEventType = input::decode(body)?;
    if input.length_in_minutes == Some(0) || slot_interval == Some(0) {
        return Err(ApiError::bad_property(
            "lengthInMinutes",
            "lengthInMinutes must not be less than 1",
        ));
    }
    let et = mock.commit(|s| {
        let owner = s
            .event_type(id)
            .ok_or_else(|| event_type_missing(id))?
            .owner_id;
        if input
            .slug
            .as_deref()
            .is_some_and(|slug| slug_taken(s, owner, slug, Some(id)))
        {
            return Err(ApiError::bad_request(SLUG_TAKEN));
        }
        let et = s
            .event_types
            .iter_mut()
            .find(|e| e.id == id)
            .ok_or_else(|| event_type_missing(id))?;
        let u = input;
        et.length_in_minutes = u.length_in_minutes.unwrap_or(et.length_in_minutes);
        et.title = u.title.unwrap_or_else(|| et.title.clone());
        et.slug = u.slug.unwrap_or_else(|| et.slug.clone());
        et.description = u.description.or_else(|| et.description.clone());
        et.hidden = u.hidden.unwrap_or(et.hidden);
        et.slot_interval = slot_interval.or(et.slot_interval);
        et.minimum_booking_notice = notice.or(et.minimum_booking_notice);
        Ok(et.clone())
    })?;
    Ok(Answer::ok(outputs::event_type(&et, &mock.fixture)))
}

pub fn delete_event_type(mock: &Mock, call: &Call<'_>) -> Result<Answer, ApiError> {
    let id = id_param(call)?;
    let et = mock.commit(|s| {
        let i = s
            .event_types
            .iter()
            .position(|e| e.id == id)
            .ok_or_else(|| {
                ApiError::not_found(format!("Event type with ID={id} does not exist."))
            })?;
        Ok(s.event_types.remove(i))
    })?;
    Ok(Answer::ok(json!({
        "id": et.id, "lengthInMinutes": et.length_in_minutes, "slug": et.slug, "title": et.title,
    })))
}

// --------------------------------------------------------------- webhooks

/// Checks the shared webhook fields; drops the ones the wire types omit.
fn webhook_body(call: &Call<'_>) -> Result<Map<String, Value>, ApiError> {
    let mut body = input::object(call.body)?;
    input::keep_only(&mut body, &WEBHOOK_FIELDS);
    if body.get("version").is_some_and(|v| v != WEBHOOK_VERSION) {
        return Err(ApiError::bad_property(
            "version",
            &format!("version must be one of the following values: {WEBHOOK_VERSION}"),
        ));
    }
    let triggers = body.get("triggers").and_then(Value::as_array);
    if triggers.is_some_and(|t| t.iter().any(|t| !t.as_str().is_some_and(is_trigger))) {
        return Err(ApiError::bad_property(
            "triggers",
            "each value in triggers must be a valid WebhookTriggerEvents value",
        ));
    }
    input::drop_keys(&mut body, &["version"]);
    Ok(body)
}

fn url_taken(s: &State, user: Option<u64>, url: &str, except: Option<&str>) -> bool {
    s.webhooks
        .iter()
        .any(|w| w.user_id == user && w.subscriber_url == url && Some(w.id.as_str()) != except)
}

fn webhook_missing(id: &str) -> ApiError {
    ApiError::not_found(format!("Webhook ({id}) not found"))
}

pub fn create_webhook(mock: &Mock, call: &Call<'_>) -> Result<Answer, ApiError> {
    let input: CreateWebhook = input::decode(webhook_body(call)?)?;
    // user-webhooks.service.ts createUserWebhook.
    if input.triggers.iter().any(|t| t == DELEGATION_TRIGGER) {
        return Err(ApiError::bad_request(
            "DELEGATION_CREDENTIAL_ERROR trigger is only available for organization webhooks",
        ));
    }
    let user = call.caller.user_id();
    let id = mock.new_uuid();
    let w = mock.commit(|s| {
        if url_taken(s, user, &input.subscriber_url, None) {
            return Err(ApiError::nest(409, WEBHOOK_DUPLICATE));
        }
        let w = Webhook {
            id,
            user_id: user,
            subscriber_url: input.subscriber_url,
            triggers: input.triggers,
            active: input.active,
            payload_template: input.payload_template,
            secret: input.secret,
        };
        s.webhooks.push(w.clone());
        Ok(w)
    })?;
    Ok(Answer::created(w))
}

pub fn list_webhooks(mock: &Mock, call: &Call<'_>) -> Result<Answer, ApiError> {
    let take = call.query.number("take")?.unwrap_or(WEBHOOKS_TAKE_MAX);
    if !(1..=WEBHOOKS_TAKE_MAX).contains(&take) {
        return Err(ApiError::bad_property(
            "take",
            &format!("take must not be less than 1 or greater than {WEBHOOKS_TAKE_MAX}"),
        ));
    }
    let skip = call.query.number("skip")?.unwrap_or(0);
    let user = call.caller.user_id();
    let list: Vec<Webhook> = mock.read(|s| {
        s.webhooks
            .iter()
            .filter(|w| w.user_id == user)
            .skip(usize::try_from(skip).unwrap_or(usize::MAX))
            .take(take as usize)
            .cloned()
            .collect()
    });
    Ok(Answer::ok(list))
}

pub fn get_webhook(mock: &Mock, call: &Call<'_>) -> Result<Answer, ApiError> {
    let w = mock.read(|s| s.webhooks.iter().find(|w| w.id == call.param).cloned());
    w.map(Answer::ok)
        .ok_or_else(|| webhook_missing(&call.param))
}

pub fn update_webhook(mock: &Mock, call: &Call<'_>) -> Result<Answer, ApiError> {
    let mut body = webhook_body(call)?;
    input::drop_keys(&mut body, &["payloadTemplate"]);
    let u: UpdateWebhook = input::decode(body)?;
    let id = call.param.as_str();
    let w = mock.commit(|s| {
        let user = s
            .webhooks
            .iter()
            .find(|w| w.id == id)
            .ok_or_else(|| webhook_missing(id))?
            .user_id;
        if u.subscriber_url
            .as_deref()
            .is_some_and(|url| url_taken(s, user, url, Some(id)))
        {
            return Err(ApiError::nest(409, WEBHOOK_DUPLICATE));
        }
        let w = s
            .webhooks
            .iter_mut()
            .find(|w| w.id == id)
            .ok_or_else(|| webhook_missing(id))?;
        w.subscriber_url = u.subscriber_url.unwrap_or_else(|| w.subscriber_url.clone());
        w.triggers = u.triggers.unwrap_or_else(|| w.triggers.clone());
        w.active = u.active.unwrap_or(w.active);
        w.secret = u.secret.or_else(|| w.secret.clone());
        Ok(w.clone())
    })?;
    Ok(Answer::ok(w))
}

pub fn delete_webhook(mock: &Mock, call: &Call<'_>) -> Result<Answer, ApiError> {
    let id = call.param.as_str();
    let w = mock.commit(|s| {
        let i = s
            .webhooks
            .iter()
            .position(|w| w.id == id)
            .ok_or_else(|| webhook_missing(id))?;
        Ok(s.webhooks.remove(i))
    })?;
    Ok(Answer::ok(w))
}
