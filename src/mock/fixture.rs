//! The mock's world as data: API keys, users with weekly working hours in
//! their own time zone, their event types, existing bookings, optional
//! webhooks and the rate limit. Loading validates everything and names the
//! file and field of the first problem, so a bad fixture never reaches a
//! running mock. This module never looks at the clock or at mutable state.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

use chrono::{DateTime, Duration, NaiveTime, Utc, Weekday};
use chrono_tz::Tz;
use serde::Deserialize;

use super::error::MockError;
use crate::calcom::wire::{self, Booking, BookingStatus, EventType, Webhook};

/// Cal.com's default API-key limit per 60 s window.
pub const RATE_LIMIT_PER_MINUTE_DEFAULT: u32 = 120;
/// The salon fixture shipped with calsaga, compiled in so tests and demos
/// need no path.
const SALON_JSON: &str = include_str!("../../fixtures/mock/salon.json");
const SALON_PATH: &str = "fixtures/mock/salon.json";

/// A validated fixture.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub api_keys: Vec<ApiKey>,
    pub users: BTreeMap<u64, User>,
    pub event_types: Vec<EventType>,
    pub bookings: Vec<Booking>,
    pub webhooks: Vec<Webhook>,
    pub rate_limit_per_minute: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiKey {
    pub key: String,
    /// The user the key belongs to: owner of what it creates.
    pub user_id: u64,
}

/// A Cal.com user and the weekly hours they can be booked, in their zone.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: u64,
    pub username: String,
    pub name: String,
    pub email: String,
    pub time_zone: Tz,
    /// Working ranges per weekday, Monday first, local wall-clock times.
    pub week: [Vec<(NaiveTime, NaiveTime)>; 7],
}

impl User {
    pub fn host(&self) -> wire::Host {
        wire::Host {
            id: self.id,
            name: self.name.clone(),
            email: self.email.clone(),
            display_email: self.email.clone(),
            username: self.username.clone(),
            time_zone: self.time_zone.name().to_string(),
        }
    }
}

impl Fixture {
    /// Reads and validates a fixture file.
    pub fn load(path: &Path) -> Result<Fixture, MockError> {
        let text = std::fs::read_to_string(path).map_err(|source| MockError::FixtureRead {
            path: path.to_path_buf(),
            source,
        })?;
        Fixture::parse(&text, path)
    }

    /// The salon of the shared test world (users 1-4, event types 101-402).
    pub fn salon() -> Fixture {
        Fixture::parse(SALON_JSON, Path::new(SALON_PATH))
            .expect("the shipped salon fixture is valid (checked by a unit test)")
    }

    /// Validates fixture JSON; `path` only names the source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Fixture, MockError> {
        let raw: RawFixture = serde_json::from_str(text).map_err(|e| MockError::FixtureSyntax {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        Checker { path }.check(raw)
    }

    pub fn user(&self, id: u64) -> Option<&User> {
        self.users.get(&id)
    }

    pub fn user_by_name(&self, username: &str) -> Option<&User> {
        self.users.values().find(|u| u.username == username)
    }

    pub fn api_key(&self, key: &str) -> Option<&ApiKey> {
        self.api_keys.iter().find(|k| k.key == key)
    }
}

// ------------------------------------------------------------ file shapes

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawFixture {
    api_keys: Vec<ApiKey>,
    users: Vec<RawUser>,
    event_types: Vec<RawEventType>,
    #[serde(default)]
    bookings: Vec<RawBooking>,
    #[serde(default)]
    webhooks: Vec<RawWebhook>,
    #[serde(default)]
    rate_limit_per_minute: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawUser {
    id: u64,
    username: String,
    name: String,
    email: String,
    time_zone: String,
    schedule: Vec<RawHours>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawHours {
    days: Vec<String>,
    start_time: String,
    end_time: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawEventType {
    id: u64,
    owner_id: u64,
    slug: String,
    title: String,
    length_in_minutes: u32,
    #[serde(default)]
    slot_interval: Option<u32>,
    #[serde(default)]
    minimum_booking_notice: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawBooking {
    uid: String,
    event_type_id: u64,
    start: String,
    #[serde(default)]
    end: Option<String>,
    #[serde(default)]
    status: Option<BookingStatus>,
    attendee: RawAttendee,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawAttendee {
    name: String,
    email: String,
    time_zone: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawWebhook {
    id: String,
    subscriber_url: String,
    triggers: Vec<String>,
    #[serde(default = "yes")]
    active: bool,
    #[serde(default)]
    secret: Option<String>,
}

fn yes() -> bool {
    true
}

// -------------------------------------------------------------- checking

struct Checker<'a> {
    path: &'a Path,
}

impl Checker<'_> {
    fn fail(&self, field: String, problem: String, fix: &str) -> MockError {
        MockError::field(self.path, field, problem, fix)
    }

    fn check(&self, raw: RawFixture) -> Result<Fixture, MockError> {
        if raw.api_keys.is_empty() {
            return Err(self.fail(
                "apiKeys".into(),
                "no API key is listed".into(),
                "add {\"key\":\"cal_test_calsaga_mock\",\"userId\":1}",
            ));
        }
        let mut users = BTreeMap::new();
        for (i, u) in raw.users.into_iter().enumerate() {
            let user = self.user(i, u)?;
            if users.insert(user.id, user).is_some() {
                return Err(self.fail(
                    format!("users[{i}].id"),
                    "the id is used twice".into(),
                    "give every user its own id",
                ));
            }
        }
        for (i, k) in raw.api_keys.iter().enumerate() {
            if !k.key.starts_with("cal_") || !users.contains_key(&k.user_id) {
                return Err(self.fail(
                    format!("apiKeys[{i}]"),
                    format!("key {:?} of user {}", k.key, k.user_id),
                    "keys start with cal_ and name a listed user as userId",
                ));
            }
        }
        let mut event_types: Vec<EventType> = Vec::new();
        for (i, e) in raw.event_types.into_iter().enumerate() {
            let et = self.event_type(i, e, &users)?;
            if event_types.iter().any(|o| o.id == et.id) {
                return Err(self.fail(
                    format!("eventTypes[{i}].id"),
                    format!("event type id {} is used twice", et.id),
                    "give every event type its own id",
                ));
            }
            event_types.push(et);
        }
        let bookings = raw
            .bookings
            .into_iter()
            .enumerate()
            .map(|(i, b)| self.booking(i, b, &users, &event_types))
            .collect::<Result<Vec<_>, _>>()?;
        let webhooks = raw
            .webhooks
            .into_iter()
            .enumerate()
            .map(|(i, w)| self.webhook(i, w, raw.api_keys[0].user_id))
            .collect::<Result<Vec<_>, _>>()?;
        let rate = raw
            .rate_limit_per_minute
            .unwrap_or(RATE_LIMIT_PER_MINUTE_DEFAULT);
        if rate == 0 {
            return Err(self.fail(
                "rateLimitPerMinute".into(),
                "0 would refuse every request".into(),
                "use a positive number (Cal.com's default is 120)",
            ));
        }
        Ok(Fixture {
            api_keys: raw.api_keys,
            users,
            event_types,
            bookings,
            webhooks,
            rate_limit_per_minute: rate,
        })
    }

    fn user(&self, i: usize, u: RawUser) -> Result<User, MockError> {
        let time_zone = Tz::from_str(&u.time_zone).map_err(|_| {
            self.fail(
                format!("users[{i}].timeZone"),
                format!("{:?} is not an IANA time zone", u.time_zone),
                "use a name like Europe/Berlin",
            )
        })?;
        let mut week: [Vec<(NaiveTime, NaiveTime)>; 7] = Default::default();
        for (j, h) in u.schedule.iter().enumerate() {
            let field = format!("users[{i}].schedule[{j}]");
            let start = self.clock_time(&field, "startTime", &h.start_time)?;
            let end = self.clock_time(&field, "endTime", &h.end_time)?;
            if end <= start {
                return Err(self.fail(
                    field,
                    format!(
                        "endTime {} is not after startTime {}",
                        h.end_time, h.start_time
                    ),
                    "working hours end later the same day",
                ));
            }
            for d in &h.days {
                let day = Weekday::from_str(d).map_err(|_| {
                    self.fail(
                        format!("{field}.days"),
                        format!("{d:?} is not a weekday"),
                        "use Mon, Tue, Wed, Thu, Fri, Sat or Sun",
                    )
                })?;
                week[day.num_days_from_monday() as usize].push((start, end));
            }
        }
        week.iter_mut().for_each(|ranges| ranges.sort());
        Ok(User {
            id: u.id,
            username: u.username,
            name: u.name,
            email: u.email,
            time_zone,
            week,
        })
    }

    fn clock_time(&self, field: &str, name: &str, raw: &str) -> Result<NaiveTime, MockError> {
        NaiveTime::parse_from_str(raw, "%H:%M").map_err(|_| {
            self.fail(
                format!("{field}.{name}"),
                format!("{raw:?} is not a time of day"),
                "write HH:MM, e.g. 09:00",
            )
        })
    }

    fn event_type(
        &self,
        i: usize,
        e: RawEventType,
        users: &BTreeMap<u64, User>,
    ) -> Result<EventType, MockError> {
        if !users.contains_key(&e.owner_id) {
            return Err(self.fail(
                format!("eventTypes[{i}].ownerId"),
                format!("user {} is not in users", e.owner_id),
                "use the id of a listed user",
            ));
        }
        if e.length_in_minutes == 0 || e.slot_interval == Some(0) {
            return Err(self.fail(
                format!("eventTypes[{i}]"),
                "lengthInMinutes and slotInterval must be positive".into(),
                "give the length in whole minutes, e.g. 30",
            ));
        }
        Ok(EventType {
            id: e.id,
            owner_id: Some(e.owner_id),
            length_in_minutes: e.length_in_minutes,
            title: e.title,
            slug: e.slug,
            description: None,
            hidden: false,
            slot_interval: e.slot_interval,
            minimum_booking_notice: e.minimum_booking_notice,
        })
    }

    fn instant(&self, field: String, raw: &str) -> Result<DateTime<Utc>, MockError> {
        DateTime::parse_from_rfc3339(raw)
            .map(|t| t.to_utc())
            .map_err(|_| {
                self.fail(
                    field,
                    format!("{raw:?} is not an ISO-8601 time"),
                    "write UTC like 2030-03-05T09:00:00Z",
                )
            })
    }

    fn booking(
        &self,
        i: usize,
        b: RawBooking,
        users: &BTreeMap<u64, User>,
        event_types: &[EventType],
    ) -> Result<Booking, MockError> {
        let field = format!("bookings[{i}]");
        let et = event_types
            .iter()
            .find(|e| e.id == b.event_type_id)
            .ok_or_else(|| {
                self.fail(
                    format!("{field}.eventTypeId"),
                    format!("event type {} is not in eventTypes", b.event_type_id),
                    "use the id of a listed event type",
                )
            })?;
        let start = self.instant(format!("{field}.start"), &b.start)?;
        let end = match &b.end {
            Some(raw) => self.instant(format!("{field}.end"), raw)?,
            None => start + Duration::minutes(i64::from(et.length_in_minutes)),
        };
        if end <= start || b.uid.is_empty() {
            return Err(self.fail(
                field,
                "the booking needs a uid and an end after its start".into(),
                "give a uid and an end later than start (or leave end out)",
            ));
        }
        let owner = et.owner_id.and_then(|id| users.get(&id));
        let owner = owner.expect("event type owners were checked above");
        let attendee = super::state::NewAttendeeParts {
            name: b.attendee.name,
            email: Some(b.attendee.email),
            phone_number: None,
            time_zone: b.attendee.time_zone,
            language: "en".into(),
        };
        let mut booking = super::state::new_booking(super::state::NewBookingParts {
            id: 1 + i as u64,
            uid: b.uid,
            event_type: et,
            host: owner,
            start,
            end,
            attendee,
            guests: vec![],
            metadata: b.metadata,
            created_at: start - Duration::days(30),
        });
        booking.status = b.status.unwrap_or(BookingStatus::Accepted);
        Ok(booking)
    }

    fn webhook(&self, i: usize, w: RawWebhook, user_id: u64) -> Result<Webhook, MockError> {
        if let Some(t) = w.triggers.iter().find(|t| !super::webhooks::is_trigger(t)) {
            return Err(self.fail(
                format!("webhooks[{i}].triggers"),
                format!("{t:?} is not a Cal.com webhook trigger"),
                "use BOOKING_CREATED, BOOKING_RESCHEDULED or BOOKING_CANCELLED",
            ));
        }
        Ok(Webhook {
            id: w.id,
            user_id: Some(user_id),
            subscriber_url: w.subscriber_url,
            triggers: w.triggers,
            active: w.active,
            payload_template: None,
            secret: w.secret,
        })
    }
}
