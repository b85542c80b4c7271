//! Reading what a caller sent, the way Cal.com's pipes read it: JSON bodies
//! checked against the properties an input class declares (an unknown one is
//! a 400 under `forbidNonWhitelisted`), query parameters, and ISO-8601 times
//! (bare dates allowed). Every parse error here becomes a 400 `ApiError`.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::reply::ApiError;

/// A JSON object body; no body reads as `{}`.
pub fn object(body: Option<&[u8]>) -> Result<Map<String, Value>, ApiError> {
    let Some(bytes) = body.filter(|b| !b.iter().all(u8::is_ascii_whitespace)) else {
        return Ok(Map::new());
    };
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad_request(
            "The request body must be a JSON object",
        )),
        Err(e) => Err(ApiError::bad_request(format!(
            "The request body is not valid JSON: {e}"
        ))),
    }
}

/// Refuses the first property not in `allowed` (`forbidNonWhitelisted`).
pub fn only(map: &Map<String, Value>, allowed: &[&str]) -> Result<(), ApiError> {
    match map.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(ApiError::unknown_property(k)),
        None => Ok(()),
    }
}

/// Drops every property not in `allowed`, as Cal.com's global
/// `ValidationPipe({whitelist: true})` does for bodies without a stricter
/// pipe of their own (`apps/api/v2/src/bootstrap.ts`).
pub fn keep_only(map: &mut Map<String, Value>, allowed: &[&str]) {
    map.retain(|k, _| allowed.contains(&k.as_str()));
}

/// Removes properties Cal.com accepts but the mock does not model.
pub fn drop_keys(map: &mut Map<String, Value>, ignored: &[&str]) {
    map.retain(|k, _| !ignored.contains(&k.as_str()));
}

/// Decodes a checked object into a wire type.
pub fn decode<T: DeserializeOwned>(map: Map<String, Value>) -> Result<T, ApiError> {
    serde_json::from_value(Value::Object(map)).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// A query with its parameters decoded, as sent.
pub struct Query(pub Vec<(String, String)>);

impl Query {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Refuses the first parameter not in `allowed`.
    pub fn only(&self, allowed: &[&str]) -> Result<(), ApiError> {
        match self.0.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
            Some((k, _)) => Err(ApiError::unknown_property(k)),
            None => Ok(()),
        }
    }

    /// An optional whole number; a bad one is refused the class-validator way.
    pub fn number(&self, name: &str) -> Result<Option<u64>, ApiError> {
        self.get(name)
            .map(|raw| {
                raw.trim().parse::<u64>().map_err(|_| {
                    ApiError::bad_property(
                        name,
                        &format!("{name} must be a number conforming to the specified constraints"),
                    )
                })
            })
            .transpose()
    }

    /// A required ISO-8601 time; a missing one is refused like a bad one.
    pub fn required_instant(&self, name: &str) -> Result<Instant, ApiError> {
        instant(name, self.get(name).unwrap_or(""))
    }

    /// An optional ISO-8601 time.
    pub fn instant(&self, name: &str) -> Result<Option<Instant>, ApiError> {
        self.get(name).map(|raw| instant(name, raw)).transpose()
    }
}

/// A parsed time, remembering whether it was a bare date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instant {
    pub at: DateTime<Utc>,
    pub bare_date: bool,
}

/// `2030-03-05`, `2030-03-05T09:00:00Z`, `...+01:00` or without an offset
/// (read as UTC, as on Cal.com's servers).
pub fn instant(name: &str, raw: &str) -> Result<Instant, ApiError> {
    let raw = raw.trim();
    let parsed = if let Ok(d) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        d.and_hms_opt(0, 0, 0).map(|t| Instant {
            at: t.and_utc(),
            bare_date: true,
        })
    } else if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        Some(Instant {
            at: t.to_utc(),
            bare_date: false,
        })
    } else {
        NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f")
            .ok()
            .map(|t| Instant {
                at: t.and_utc(),
                bare_date: false,
            })
    };
    parsed.ok_or_else(|| {
        ApiError::bad_property(
            name,
            &format!("{name} must be a valid ISO 8601 date string"),
        )
    })
}
