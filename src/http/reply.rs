//! What a handler answers: `Reply` (status, headers, JSON body) and
//! `ApiError`, whose `From` impl is the ONE place an error body
//! `{"error":{"code","message","details"}}` is written. Every message says
//! what failed and what to do. Nothing here reads a request or the store.

use serde::Serialize;
use serde_json::{Value, json};

/// One response, ready to be framed.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// `status` with `body` serialised as JSON.
    pub fn json(status: u16, body: &impl Serialize) -> Reply {
        match serde_json::to_vec(body) {
            Ok(body) => Reply {
                status,
                headers: vec![("Content-Type", "application/json".into())],
                body,
            },
            Err(e) => ApiError::internal(format!("the answer could not be written: {e}")).into(),
        }
    }

    /// A body that is JSON text already (a stored answer, the OpenAPI file).
    pub fn raw_json(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type", "application/json".into())],
            body: body.into(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A refusal or failure, as the client sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    /// Stable, snake_case; clients branch on it.
    pub code: &'static str,
    /// For people: what failed and what to do.
    pub message: String,
    pub details: Value,
    pub headers: Vec<(&'static str, String)>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Value::Null,
            headers: Vec::new(),
        }
    }

    pub fn details(mut self, details: Value) -> ApiError {
        self.details = details;
        self
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> ApiError {
        self.headers.push((name, value.into()));
        self
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "bad_request", message)
    }

    /// A well-formed request that asks for something invalid.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(422, "invalid_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(404, "not_found", message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(409, code, message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(500, "internal", message)
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(503, "unavailable", message)
    }

    /// 401 with the challenge RFC 6750 asks for.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(401, "unauthorized", message)
            .with_header("WWW-Authenticate", r#"Bearer realm="calsaga""#)
    }
}

impl From<ApiError> for Reply {
    fn from(e: ApiError) -> Reply {
        let body = json!({"error": {"code": e.code, "message": e.message, "details": e.details}});
        let mut reply = Reply::raw_json(e.status, body.to_string());
        reply.headers.extend(e.headers);
        reply
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_the_one_shape_and_keeps_its_headers() {
        let reply: Reply = ApiError::unauthorized("send a Bearer token")
            .details(json!({"hint": 1}))
            .into();
        assert_eq!(reply.status, 401);
        assert_eq!(
            reply.header("www-authenticate"),
            Some(r#"Bearer realm="calsaga""#)
        );
        let body: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(
            body,
            json!({"error": {"code": "unauthorized", "message": "send a Bearer token", "details": {"hint": 1}}})
        );
    }
}
