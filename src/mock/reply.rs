//! The one place that writes the mock's response bodies: success envelopes,
//! Nest's error envelope, the bare bodies that escape Cal.com's filters, and
//! the throttler's 429 (calcom-v2 reference, section 0 "Errors"). Handlers
//! return an `Answer` or an `ApiError`; only this module turns them into
//! bytes, so every error in the mock has one shape per kind.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use crate::calcom::ApiResponse;
use crate::calcom::wire::{BareError, Envelope, ErrorDetail, ErrorEnvelope, ts};

/// The throttler's text, used as message and details alike.
pub const THROTTLED: &str = "CustomThrottlerGuard - Too many requests. Please try again later.";
pub const NO_AUTH: &str = "ApiAuthStrategy - No authentication method provided. Either pass an API key as 'Bearer' header or OAuth client credentials as 'x-cal-secret-key' and 'x-cal-client-id' headers";
pub const INVALID_KEY: &str = "CustomThrottlerGuard - Invalid API Key";

/// An answer before headers are added. The body is serialised straight
/// from typed data, so keys keep Cal.com's order (`status` before `data`).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    /// `{"status":"success","data":...}` with 200.
    pub fn ok(data: impl Serialize) -> Answer {
        Answer::enveloped(200, data)
    }

    /// `{"status":"success","data":...}` with 201.
    pub fn created(data: impl Serialize) -> Answer {
        Answer::enveloped(201, data)
    }

    /// `{"status":"success"}` alone, as some deletes answer.
    pub fn bare_success() -> Answer {
        Answer {
            status: 200,
            body: to_json(json!({"status": "success"})),
        }
    }

    /// A body outside Cal.com's envelopes (the mock's control routes).
    pub fn plain(status: u16, body: impl Serialize) -> Answer {
        Answer {
            status,
            body: to_json(body),
        }
    }

    fn enveloped(status: u16, data: impl Serialize) -> Answer {
        Answer {
            status,
            body: to_json(Envelope::success(data)),
        }
    }
}

fn to_json(body: impl Serialize) -> Vec<u8> {
    // Serialising our own plain data cannot fail; an empty body would show it.
    serde_json::to_vec(&body).unwrap_or_default()
}

/// A refusal, in the form the real API produces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// A Nest HttpException through the enveloping filter.
    Nest { status: u16, message: String },
    /// An error that reaches Nest's base filter: `{"statusCode","message"}`.
    Bare { status: u16, message: String },
    /// The throttler's 429 (its `details` is the message string).
    Throttled,
}

impl ApiError {
    pub fn nest(status: u16, message: impl Into<String>) -> ApiError {
        ApiError::Nest {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::nest(400, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::nest(404, message)
    }

    /// class-validator's text for one bad property, as Cal.com's pipes join it.
    pub fn bad_property(property: &str, constraint: &str) -> ApiError {
        ApiError::bad_request(format!("{property} property is wrong,{constraint}"))
    }

    /// `forbidNonWhitelisted`: a property the input class does not declare.
    pub fn unknown_property(property: &str) -> ApiError {
        ApiError::bad_property(property, &format!("property {property} should not exist"))
    }

    /// Nest's router 404 for a path or a version without a controller.
    pub fn no_route(method: &str, url: &str) -> ApiError {
        ApiError::not_found(format!("Cannot {method} {url}"))
    }

    /// Anything that escapes every filter.
    pub fn internal() -> ApiError {
        ApiError::bare(500, "Internal server error")
    }

    pub fn bare(status: u16, message: impl Into<String>) -> ApiError {
        ApiError::Bare {
            status,
            message: message.into(),
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            ApiError::Nest { status, .. } | ApiError::Bare { status, .. } => *status,
            ApiError::Throttled => 429,
        }
    }

    /// The body Cal.com would send; `url` is the path with its query.
    pub fn render(&self, url: &str, now: DateTime<Utc>) -> Answer {
        let body = match self {
            ApiError::Bare { status, message } => to_json(BareError {
                status_code: *status,
                message: message.clone(),
            }),
            ApiError::Nest { status, message } => {
                let (code, reason) = exception(*status);
                let details = json!({"message": message, "error": reason, "statusCode": status});
                envelope(url, now, code, message, details)
            }
            ApiError::Throttled => {
                envelope(url, now, "ThrottlerException", THROTTLED, json!(THROTTLED))
            }
        };
        Answer {
            status: self.status(),
            body,
        }
    }
}

fn envelope(url: &str, now: DateTime<Utc>, code: &str, message: &str, details: Value) -> Vec<u8> {
    to_json(ErrorEnvelope {
        status: "error".into(),
        timestamp: ts::format(&now),
        path: url.to_string(),
        error: ErrorDetail {
            code: code.into(),
            message: message.into(),
            details: Some(details),
        },
    })
}

/// Nest's exception class and reason phrase per status.
fn exception(status: u16) -> (&'static str, &'static str) {
    match status {
        400 => ("BadRequestException", "Bad Request"),
        401 => ("UnauthorizedException", "Unauthorized"),
        403 => ("ForbiddenException", "Forbidden"),
        404 => ("NotFoundException", "Not Found"),
        409 => ("ConflictException", "Conflict"),
        413 => ("PayloadTooLargeException", "Payload Too Large"),
        422 => ("UnprocessableEntityException", "Unprocessable Entity"),
        503 => ("ServiceUnavailableException", "Service Unavailable"),
        _ => ("InternalServerErrorException", "Internal Server Error"),
    }
}

/// The finished response: JSON body plus `headers`.
pub fn response(answer: Answer, headers: Vec<(String, String)>) -> ApiResponse {
    let mut all = vec![(
        "Content-Type".to_string(),
        "application/json; charset=utf-8".to_string(),
    )];
    all.extend(headers);
    ApiResponse {
        status: answer.status,
        headers: all,
        body: answer.body,
    }
}

/// A bare error answered before a request reaches the mock (socket limits).
pub fn bare_response(status: u16, message: &str) -> ApiResponse {
    let body = to_json(BareError {
        status_code: status,
        message: message.to_string(),
    });
    response(Answer { status, body }, request_id())
}

/// Every answer carries a fresh `X-Request-Id`, as Cal.com's middleware adds.
pub fn request_id() -> Vec<(String, String)> {
    vec![("X-Request-Id".to_string(), uuid::Uuid::new_v4().to_string())]
}
