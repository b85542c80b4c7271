//! The route table: every method and path calsaga answers, who may call it
//! and what body it takes. It is the one list the server dispatches from and
//! the OpenAPI test checks against; a route exists if and only if it is
//! here. Matching is exact per path segment, `{name}` captures one segment.

use super::App;
use super::call::Call;
use super::reply::{ApiError, Reply};
use super::{admin, admin_page, availability, batch, bookings, health, holds, webhooks};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (health, the OpenAPI document); rate-limited per IP.
    Public,
    /// A token with the `booking` or `admin` scope.
    Booking,
    /// A token with the `admin` scope.
    Admin,
    /// Cal.com: the body's HMAC signature is the credential.
    Signed,
}

/// What body a route takes. The cap is enforced from Content-Length before
/// any of the body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyRule {
    None,
    /// `application/json`, at most this many bytes (an empty body is
    /// allowed where the handler says so).
    Json {
        bytes_max: usize,
    },
    /// A Cal.com webhook: raw bytes, verified before parsing.
    Webhook {
        bytes_max: usize,
    },
}

impl BodyRule {
    pub fn bytes_max(self) -> usize {
        match self {
            BodyRule::None => 0,
            BodyRule::Json { bytes_max } | BodyRule::Webhook { bytes_max } => bytes_max,
        }
    }
}

/// A JSON body of one booking-sized request.
pub const JSON_BODY_BYTES_MAX: usize = 64 * 1024;
/// A batch of up to 50 bookings.
pub const BATCH_BODY_BYTES_MAX: usize = 1024 * 1024;
/// Cal.com booking webhooks are a few KiB; a large margin, still bounded.
pub const WEBHOOK_BODY_BYTES_MAX: usize = 256 * 1024;

pub type Handler = fn(&App, &Call<'_>) -> Result<Reply, ApiError>;

pub struct Route {
    pub method: &'static str,
    pub pattern: &'static str,
    pub access: Access,
    pub body: BodyRule,
    pub handler: Handler,
}

const fn route(
    method: &'static str,
    pattern: &'static str,
    access: Access,
    body: BodyRule,
    handler: Handler,
) -> Route {
    Route {
        method,
        pattern,
        access,
        body,
        handler,
    }
}

const JSON: BodyRule = BodyRule::Json {
    bytes_max: JSON_BODY_BYTES_MAX,
};
const NONE: BodyRule = BodyRule::None;

/// Every route. Literal segments are listed before `{param}` ones that
/// could match the same path.
pub static ROUTES: &[Route] = &[
    route("GET", "/api/health", Access::Public, NONE, health::health),
    route(
        "GET",
        "/api/health/calcom",
        Access::Public,
        NONE,
        health::calcom,
    ),
    route(
        "GET",
        "/api/health/calcom/detailed",
        Access::Admin,
        NONE,
        health::calcom_detailed,
    ),
    route(
        "GET",
        "/api/health/calcom/metrics",
        Access::Admin,
        NONE,
        health::calcom_metrics,
    ),
    route(
        "POST",
        "/api/health/calcom/check",
        Access::Admin,
        NONE,
        health::calcom_check,
    ),
    route(
        "GET",
        "/api/v2/openapi.json",
        Access::Public,
        NONE,
        health::openapi,
    ),
    route(
        "GET",
        "/api/v2/services",
        Access::Booking,
        NONE,
        admin::services,
    ),
    route(
        "GET",
        "/api/v2/availability",
        Access::Booking,
        NONE,
        availability::search,
    ),
    route(
        "POST",
        "/api/v2/bookings",
        Access::Booking,
        JSON,
        bookings::create,
    ),
    route(
        "POST",
        "/api/v2/bookings/batch",
        Access::Booking,
        BodyRule::Json {
            bytes_max: BATCH_BODY_BYTES_MAX,
        },
        batch::create,
    ),
    route(
        "GET",
        "/api/v2/bookings",
        Access::Booking,
        NONE,
        bookings::list,
    ),
    route(
        "GET",
        "/api/v2/bookings/{id}",
        Access::Booking,
        NONE,
        bookings::show,
    ),
    route(
        "POST",
        "/api/v2/bookings/{id}/reschedule",
        Access::Booking,
        JSON,
        bookings::reschedule,
    ),
    route(
        "POST",
        "/api/v2/bookings/{id}/cancel",
        Access::Booking,
        JSON,
        bookings::cancel,
    ),
    route(
        "POST",
        "/api/v2/holds",
        Access::Booking,
        JSON,
        holds::create,
    ),
    route(
        "POST",
        "/api/v2/holds/{id}/confirm",
        Access::Booking,
        JSON,
        holds::confirm,
    ),
    route(
        "DELETE",
        "/api/v2/holds/{id}",
        Access::Booking,
        NONE,
        holds::release,
    ),
    route(
        "GET",
        "/api/v2/workflows",
        Access::Admin,
        NONE,
        admin::workflows,
    ),
    route(
        "GET",
        "/api/v2/workflows/{id}",
        Access::Admin,
        NONE,
        admin::workflow,
    ),
    // A static shell without data; its script calls the admin routes above.
    route("GET", "/admin", Access::Public, NONE, admin_page::page),
    route(
        "POST",
        "/webhooks/calcom",
        Access::Signed,
        BodyRule::Webhook {
            bytes_max: WEBHOOK_BODY_BYTES_MAX,
        },
        webhooks::receive,
    ),
    route(
        "GET",
        "/metrics",
        Access::Admin,
        NONE,
        super::metrics::scrape,
    ),
];

/// What a method and path lead to.
pub enum Found<'p> {
    Route(&'static Route, Vec<&'p str>),
    /// The path exists with other methods (405 with `Allow`).
    WrongMethod(Vec<&'static str>),
    Unknown,
}

pub fn find<'p>(method: &str, path: &'p str) -> Found<'p> {
    let mut allowed = Vec::new();
    for r in ROUTES {
        let Some(params) = matches(r.pattern, path) else {
            continue;
        };
        if r.method == method {
            return Found::Route(r, params);
        }
        allowed.push(r.method);
    }
    if allowed.is_empty() {
        Found::Unknown
    } else {
        Found::WrongMethod(allowed)
    }
}

fn matches<'p>(pattern: &str, path: &'p str) -> Option<Vec<&'p str>> {
    let mut want = pattern.split('/');
    let mut got = path.split('/');
    let mut params = Vec::new();
    loop {
        match (want.next(), got.next()) {
            (None, None) => return Some(params),
            (Some(w), Some(g)) if w.starts_with('{') && !g.is_empty() => params.push(g),
            (Some(w), Some(g)) if w == g => {}
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_routes_win_and_parameters_are_captured() {
        match find("POST", "/api/v2/bookings/batch") {
            Found::Route(r, p) => assert_eq!((r.pattern, p.len()), ("/api/v2/bookings/batch", 0)),
            _ => panic!("batch not found"),
        }
        match find("POST", "/api/v2/bookings/abc/cancel") {
            Found::Route(r, p) => {
                assert_eq!(r.pattern, "/api/v2/bookings/{id}/cancel");
                assert_eq!(p, ["abc"]);
            }
            _ => panic!("cancel not found"),
        }
    }

    #[test]
    fn the_openapi_document_describes_exactly_the_routes_and_their_access() {
        use std::collections::BTreeSet;
        let doc: serde_json::Value = serde_json::from_str(super::health::OPENAPI).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let documented: BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, ops)| {
                ops.as_object()
                    .unwrap()
                    .keys()
                    .map(move |m| (m.to_ascii_uppercase(), path.clone()))
            })
            .collect();
        let routed: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|r| (r.method.to_string(), r.pattern.to_string()))
            .collect();
        assert_eq!(documented, routed);
        for r in ROUTES {
            let op = &doc["paths"][r.pattern][r.method.to_ascii_lowercase()];
            let open = op["security"].as_array().is_some_and(Vec::is_empty);
            assert_eq!(
                open,
                matches!(r.access, Access::Public | Access::Signed),
                "{} {}",
                r.method,
                r.pattern
            );
            let scope = &op["security"][0]["bearer"][0];
            match r.access {
                Access::Admin => assert_eq!(scope, "admin"),
                Access::Booking => assert_eq!(scope, "booking"),
                _ => {}
            }
        }
    }

    /// The document is valid OpenAPI 3.1 (checked against the OpenAPI
    /// Initiative's schema, vendored in fixtures/openapi) and every `$ref`
    /// in it points at something that exists.
    #[test]
    fn the_openapi_document_is_valid_openapi_3_1_with_no_dangling_refs() {
        let doc: serde_json::Value = serde_json::from_str(super::health::OPENAPI).unwrap();
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../fixtures/openapi/oas-3.1-schema.json"))
                .unwrap();
        let validator = jsonschema::validator_for(&schema).expect("the OAS 3.1 schema compiles");
        let errors: Vec<String> = validator
            .iter_errors(&doc)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "docs/openapi.json: {errors:#?}");
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        assert!(!refs.is_empty(), "the document uses components");
        for r in refs {
            let pointer = r
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("external $ref {r}"));
            assert!(doc.pointer(pointer).is_some(), "dangling $ref {r}");
        }
    }

    fn collect_refs(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::String(r)) = map.get("$ref") {
                    out.push(r.clone());
                }
                map.values().for_each(|v| collect_refs(v, out));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn a_known_path_with_another_method_is_405_and_unknown_is_404() {
        assert!(
            matches!(find("PUT", "/api/v2/bookings"), Found::WrongMethod(m) if m == ["POST", "GET"])
        );
        assert!(matches!(find("GET", "/api/v2/nope"), Found::Unknown));
        assert!(matches!(find("GET", "/api/v2/bookings/"), Found::Unknown));
    }
}
