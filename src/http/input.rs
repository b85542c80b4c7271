//! Reading what clients send: JSON bodies field by field (every error names
//! the field, unknown fields are refused by name), query strings, and the
//! value shapes the API takes (RFC 3339 instants with an offset, IANA time
//! zones, dates, e-mail and phone shapes, UUIDs). This is the one parser of
//! each; handlers never pick JSON apart themselves. Nothing here writes.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::reply::ApiError;

/// A JSON body's top-level object, or 400.
pub fn json_object(body: &[u8]) -> Result<Value, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body is not valid JSON ({e}); send one JSON object"
        ))
    })?;
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "the body must be a JSON object, e.g. {\"service\": \"haircut\", ...}",
        ));
    }
    Ok(value)
}

/// The fields of one JSON object, read with typed getters. `path` prefixes
/// field names in errors ("attendee.email").
pub struct Fields<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

fn field_error(status: u16, field: &str, message: String) -> ApiError {
    let code = if status == 400 {
        "bad_request"
    } else {
        "invalid_request"
    };
    ApiError::new(status, code, message).details(json!({ "field": field }))
}

impl<'a> Fields<'a> {
    /// Refuses any key not in `known`, naming it.
    pub fn new(value: &'a Value, path: &str, known: &[&str]) -> Result<Fields<'a>, ApiError> {
        let map = value
            .as_object()
            .ok_or_else(|| field_error(400, path, format!("`{path}` must be a JSON object")))?;
        if let Some(unknown) = map.keys().find(|k| !known.contains(&k.as_str())) {
            let name = join(path, unknown);
            return Err(field_error(
                400,
                &name,
                format!(
                    "unknown field `{name}`; the fields here are: {}",
                    known.join(", ")
                ),
            ));
        }
        Ok(Fields {
            map,
            path: path.to_string(),
        })
    }

    pub fn name(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// 400 naming the field.
    pub fn wrong(&self, key: &str, expected: &str) -> ApiError {
        let name = self.name(key);
        field_error(400, &name, format!("`{name}` must be {expected}"))
    }

    /// 422 naming the field: well-formed but not acceptable.
    pub fn invalid(&self, key: &str, message: impl std::fmt::Display) -> ApiError {
        let name = self.name(key);
        field_error(422, &name, format!("`{name}`: {message}"))
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn required(&self, key: &str, expected: &str) -> Result<&'a Value, ApiError> {
        self.get(key).ok_or_else(|| {
            let name = self.name(key);
            field_error(
                400,
                &name,
                format!("`{name}` is missing; send it as {expected}"),
            )
        })
    }

    pub fn string(&self, key: &str) -> Result<&'a str, ApiError> {
        let v = self.required(key, "a string")?;
        let s = v.as_str().ok_or_else(|| self.wrong(key, "a string"))?;
        if s.trim().is_empty() {
            return Err(self.wrong(key, "a non-empty string"));
        }
        Ok(s)
    }

    pub fn opt_string(&self, key: &str) -> Result<Option<&'a str>, ApiError> {
        self.get(key)
            .map(|v| v.as_str().ok_or_else(|| self.wrong(key, "a string")))
            .transpose()
    }

    /// A string of at most `chars_max` characters.
    pub fn bounded(&self, key: &str, chars_max: usize) -> Result<Option<&'a str>, ApiError> {
        let s = self.opt_string(key)?;
        if s.is_some_and(|s| s.chars().count() > chars_max) {
            return Err(self.invalid(key, format!("is longer than {chars_max} characters")));
        }
        Ok(s)
    }

    pub fn opt_u64(&self, key: &str) -> Result<Option<u64>, ApiError> {
        self.get(key)
            .map(|v| {
                v.as_u64()
                    .ok_or_else(|| self.wrong(key, "a non-negative integer"))
            })
            .transpose()
    }

    pub fn object(&self, key: &str, known: &[&str]) -> Result<Fields<'a>, ApiError> {
        Fields::new(self.required(key, "an object")?, &self.name(key), known)
    }

    pub fn opt_value(&self, key: &str) -> Option<&'a Value> {
        self.get(key)
    }

    /// An RFC 3339 instant with an explicit offset.
    pub fn instant(&self, key: &str) -> Result<DateTime<Utc>, ApiError> {
        let s = self.string(key)?;
        instant(s).map_err(|m| self.invalid(key, m))
    }

    /// An IANA time zone name.
    pub fn time_zone(&self, key: &str) -> Result<Tz, ApiError> {
        let s = self.string(key)?;
        time_zone(s).map_err(|m| self.invalid(key, m))
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// RFC 3339 with an offset (`Z` or `+01:00`); a bare local time is refused
/// because it means different instants in different places.
pub fn instant(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.to_utc())
        .map_err(|e| {
            format!(
                "{s:?} is not an RFC 3339 time with an offset ({e}); send e.g. 2030-03-05T11:00:00+01:00"
            )
        })
}

/// An IANA time zone by name, or what to send instead; the one parser of
/// the HTTP API and the command line.
pub fn time_zone(s: &str) -> Result<Tz, String> {
    s.parse::<Tz>().map_err(|_| {
        format!(
            "{s:?} is not an IANA time zone; send a name such as Europe/Berlin or America/New_York"
        )
    })
}

pub fn date(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| format!("{s:?} is not a date; send YYYY-MM-DD, e.g. 2030-03-05"))
}

/// The shape of an address: one `@`, a local part, a dotted domain, no
/// spaces. Deliverability is not ours to judge.
pub fn email(s: &str) -> Result<(), String> {
    let ok = s.len() <= 254
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && s.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not an e-mail address; send e.g. jo@example.com"
        ))
    }
}

/// E.164: `+` and 7 to 15 digits.
pub fn phone(s: &str) -> Result<(), String> {
    let digits = s.strip_prefix('+').unwrap_or("");
    if (7..=15).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit()) {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a phone number in E.164 form; send e.g. +4930123456"
        ))
    }
}

/// A workflow id from a path, or 404 naming it.
pub fn workflow_id(raw: &str, what: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| {
        ApiError::not_found(format!(
            "there is no {what} {raw:?}; ids are UUIDs as returned when it was created"
        ))
    })
}

/// A decoded query string.
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Parses `a=1&b=x%20y`; refuses keys not in `known`, naming them.
    pub fn parse(raw: &str, known: &[&str]) -> Result<Query, ApiError> {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(raw.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if let Some((unknown, _)) = pairs.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            return Err(ApiError::bad_request(format!(
                "unknown query parameter {unknown:?}; the parameters here are: {}",
                known.join(", ")
            ))
            .details(json!({ "field": unknown })));
        }
        Ok(Query { pairs })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    pub fn require(&self, key: &str, example: &str) -> Result<&str, ApiError> {
        self.get(key).ok_or_else(|| {
            ApiError::bad_request(format!(
                "query parameter {key:?} is missing; add e.g. {key}={example}"
            ))
            .details(json!({ "field": key }))
        })
    }

    /// A value from a fixed set, or absent; any other is a 422 (like every
    /// value that fails its check) listing the set.
    pub fn one_of(&self, key: &str, names: &[&str]) -> Result<Option<&str>, ApiError> {
        match self.get(key) {
            Some(v) if !names.contains(&v) => Err(self
                .invalid(key, format!("{v:?} is not one of {}", names.join(", ")))
                .details(json!({ "field": key, "known": names }))),
            v => Ok(v),
        }
    }

    /// A value that failed its check: 422 naming the parameter.
    pub fn invalid(&self, key: &str, message: impl std::fmt::Display) -> ApiError {
        ApiError::invalid(format!("query parameter {key:?}: {message}"))
            .details(json!({ "field": key }))
    }

    /// An integer in `1..=max`, or `default` when absent.
    pub fn limit(&self, key: &str, default: usize, max: usize) -> Result<usize, ApiError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| self.invalid(key, format!("{v:?} is not a number from 1 to {max}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_name_the_unknown_the_missing_and_the_mistyped() {
        let v = json!({"a": "x", "n": "7", "o": {"z": 1}});
        let f = Fields::new(&v, "", &["a", "n", "o", "m"]).unwrap();
        assert_eq!(f.string("a").unwrap(), "x");
        assert_eq!(f.opt_u64("n").unwrap_err().details, json!({"field": "n"}));
        assert!(
            f.string("m")
                .unwrap_err()
                .message
                .contains("`m` is missing")
        );
        let e = f.object("o", &["y"]).err().unwrap();
        assert!(e.message.contains("unknown field `o.z`"), "{}", e.message);
    }

    #[test]
    fn values_are_checked_for_shape() {
        assert!(instant("2030-03-05T11:00:00+01:00").is_ok());
        assert!(instant("2030-03-05T11:00:00").is_err());
        assert!(time_zone("Europe/Berlin").is_ok());
        assert!(time_zone("Mars/Olympus").is_err());
        assert!(email("jo@example.com").is_ok());
        for bad in ["jo", "jo@", "@x.y", "jo@x", "j o@x.y", "a@b@c.d", "jo@.x"] {
            assert!(email(bad).is_err(), "{bad}");
        }
        assert!(phone("+4930123456").is_ok());
        assert!(phone("030 123").is_err());
        assert!(date("2030-03-05").is_ok());
        assert!(date("05.03.2030").is_err());
    }

    #[test]
    fn queries_decode_and_refuse_unknown_keys() {
        let q = Query::parse(
            "timeZone=Europe%2FBerlin&limit=5&x=",
            &["timeZone", "limit", "x"],
        )
        .unwrap();
        assert_eq!(q.get("timeZone"), Some("Europe/Berlin"));
        assert_eq!(q.get("x"), None);
        assert_eq!(q.limit("limit", 10, 100).unwrap(), 5);
        assert!(q.limit("limit", 10, 4).is_err());
        assert!(Query::parse("bogus=1", &["a"]).is_err());
        let odd = Query::parse("a=a%2&b=%41+b", &["a", "b"]).unwrap();
        assert_eq!((odd.get("a"), odd.get("b")), (Some("a%2"), Some("A b")));
    }
}
